//! What identity data expires, and when (the blueprint's retention rules).
//!
//! - `account_merge_audit`: 90 days after the decision.
//! - sign-in attempts (`oauth_logins`): a day after they expired.
//! - sessions: 7 days after they expired or were revoked (kept that long so
//!   support can see why somebody was signed out); their refresh tokens go
//!   with them.
//! - merge offers: a day after they lapsed or were answered.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use village_platform::sql::{Sql, SqlError, SqlValue};

pub const MERGE_AUDIT_DAYS: i64 = 90;
const SESSION_GRACE_DAYS: i64 = 7;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Purged {
    pub merge_audit: u64,
    pub login_attempts: u64,
    pub sessions: u64,
    pub merge_offers: u64,
}

pub async fn purge(sql: &impl Sql, now: DateTime<Utc>) -> Result<Purged, SqlError> {
    let at = |d: Duration| SqlValue::Timestamp(now - d);
    Ok(Purged {
        merge_audit: sql
            .execute(
                "DELETE FROM account_merge_audit WHERE decided_at < $1",
                &[at(Duration::days(MERGE_AUDIT_DAYS))],
            )
            .await?,
        login_attempts: sql
            .execute(
                "DELETE FROM oauth_logins WHERE expires_at < $1",
                &[at(Duration::days(1))],
            )
            .await?,
        sessions: sql
            .execute(
                "DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1",
                &[at(Duration::days(SESSION_GRACE_DAYS))],
            )
            .await?,
        merge_offers: sql
            .execute(
                "DELETE FROM merge_offers WHERE expires_at < $1 OR decided_at < $1",
                &[at(Duration::days(1))],
            )
            .await?,
    })
}
