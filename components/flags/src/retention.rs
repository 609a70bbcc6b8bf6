//! Keeping the evaluation log within its policy: 90 days, in monthly
//! partitions (dropping a partition is instant and leaves no bloat), and a
//! user's rows gone at once when they withdraw consent or their account is
//! deleted.

use chrono::{DateTime, Duration, Months, Utc};
use uuid::Uuid;
use village_platform::sql::{Sql, SqlError, SqlValue};

/// How long evaluations are kept.
pub const RETENTION_DAYS: i64 = 90;
/// How many months ahead partitions exist, so inserts never find none.
pub const MONTHS_AHEAD: u32 = 2;

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Maintained {
    /// Partitions that exist for this month and the ones ahead.
    pub ensured: Vec<String>,
    /// Partitions dropped: every row in them older than the retention.
    pub dropped: Vec<String>,
}

/// Creates this month's and the next months' partitions and drops those
/// whose whole month ended more than [`RETENTION_DAYS`] ago.
pub async fn maintain(sql: &impl Sql, now: DateTime<Utc>) -> Result<Maintained, SqlError> {
    let mut done = Maintained::default();
    for ahead in 0..=MONTHS_AHEAD {
        let at = now
            .checked_add_months(Months::new(ahead))
            .ok_or_else(|| SqlError::Decode("date out of range".into()))?;
        let row = sql
            .query_opt(
                "SELECT feature_flag_evaluations_partition($1) AS name",
                &[SqlValue::Timestamp(at)],
            )
            .await?;
        if let Some(row) = row {
            done.ensured.push(row.get("name")?);
        }
    }
    let cutoff = now - Duration::days(RETENTION_DAYS);
    for row in sql
        .query(
            "SELECT feature_flag_evaluations_drop_before($1) AS name",
            &[SqlValue::Timestamp(cutoff)],
        )
        .await?
    {
        done.dropped.push(row.get("name")?);
    }
    Ok(done)
}

/// Deletes every evaluation row naming `user_id`: on withdrawn consent and
/// on account deletion.
pub async fn purge_user(sql: &impl Sql, user_id: Uuid) -> Result<u64, SqlError> {
    sql.execute(
        "DELETE FROM feature_flag_evaluations WHERE user_id = $1",
        &[SqlValue::Uuid(user_id)],
    )
    .await
}
