//! The `feeds-scheduler` cron's work: every minute, a `feeds.refresh` job
//! for each feed that is due and that somebody reads (a default feed, or
//! one a user subscribes to). The idempotency key names the feed and the
//! due time it was scheduled for (its slot), so two cron fires — or a cron
//! fire and a user adding the feed — before the refresh ran create one job.

use chrono::{DateTime, Utc};
use village_jobs::{JobsError, NewJob, Queue};
use village_platform::cache::Cache;
use village_platform::sql::{Sql, SqlValue};

/// The job handler's name (see [`crate::handler`]).
pub const REFRESH: &str = "feeds.refresh";
/// Feeds enqueued per run at most; the rest wait a minute.
pub const MAX_PER_RUN: i64 = 500;

/// A refresh job for one feed's slot.
pub fn refresh_job(feed_id: i64, due_at: DateTime<Utc>) -> NewJob {
    NewJob::new(
        Queue::Default,
        REFRESH,
        serde_json::json!({ "feed_id": feed_id }),
    )
    .idempotency_key(format!("{REFRESH}:{feed_id}:{}", due_at.timestamp()))
    // The refresh records a feed's own failures and backs off; only a
    // database error retries the job.
    .max_attempts(3)
}

/// Enqueues a refresh for every due feed. Returns how many jobs were new.
pub async fn enqueue_due(
    sql: &impl Sql,
    cache: &impl Cache,
    now: DateTime<Utc>,
) -> Result<usize, JobsError> {
    let rows = sql
        .query(
            "SELECT id, next_fetch_at FROM feeds f \
             WHERE next_fetch_at <= $1 \
               AND (is_default OR EXISTS (SELECT 1 FROM feed_subscriptions s WHERE s.feed_id = f.id)) \
             ORDER BY next_fetch_at LIMIT $2",
            &[SqlValue::Timestamp(now), SqlValue::Int64(MAX_PER_RUN)],
        )
        .await?;
    let jobs = rows
        .iter()
        .map(|r| Ok(refresh_job(r.get("id")?, r.get("next_fetch_at")?)))
        .collect::<Result<Vec<_>, village_platform::sql::SqlError>>()?;
    Ok(village_jobs::enqueue_many(sql, cache, now, &jobs)
        .await?
        .len())
}
