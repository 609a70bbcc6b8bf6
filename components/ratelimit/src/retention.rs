//! Keeping the rate-limit record within policy: violations and ended bans
//! for 90 days (they name addresses and users), outage notices a day.

use chrono::{DateTime, Duration, Utc};
use village_platform::sql::{Sql, SqlError, SqlValue};

pub const RETENTION_DAYS: i64 = 90;

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    pub violations: u64,
    pub bans: u64,
    pub notices: u64,
}

pub async fn purge(sql: &impl Sql, now: DateTime<Utc>) -> Result<Purged, SqlError> {
    let cutoff = SqlValue::Timestamp(now - Duration::days(RETENTION_DAYS));
    Ok(Purged {
        violations: sql
            .execute(
                "DELETE FROM rate_limit_violations WHERE occurred_at < $1",
                std::slice::from_ref(&cutoff),
            )
            .await?,
        bans: sql
            .execute(
                "DELETE FROM rate_limit_bans WHERE coalesce(lifted_at, expires_at) < $1",
                std::slice::from_ref(&cutoff),
            )
            .await?,
        notices: sql
            .execute(
                "DELETE FROM rate_limit_outage_notices WHERE noticed_at < $1",
                &[SqlValue::Timestamp(now - Duration::days(1))],
            )
            .await?,
    })
}
