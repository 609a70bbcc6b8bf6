//! `directory.recapture`: screenshots kept fresh. Each run (daily) queues
//! a capture for approved sites whose screenshot was last asked for more
//! than [`MAX_AGE_DAYS`] ago (the blueprint's cost model: 12 captures a
//! year per site), or never (an approval whose capture could not be
//! queued), longest-waiting first. Asking is recorded
//! (`screenshot_requested_at`), so a site whose page cannot be captured is
//! asked again next month, not every day, and never holds up the others;
//! the job key (site and month) keeps a double run from queueing twice.

use chrono::{DateTime, Duration, Utc};
use village_jobs::{Job, JobError, JobHandler, NewJob, Queue};
use village_platform::cache::Cache;
use village_platform::clock::Clock;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::jobs::RECAPTURE;

pub const MAX_AGE_DAYS: i64 = 30;
/// Captures queued per run: the SCREENSHOT queue's backlog alert fires at
/// 500, and a run is daily.
pub const PER_RUN: i64 = 200;

/// Queues the captures that are due; returns how many.
pub async fn queue_due(
    sql: &impl Sql,
    cache: &impl Cache,
    allowed_hosts: &[String],
    now: DateTime<Utc>,
) -> Result<usize, SqlError> {
    let due = sql
        .query(
            "SELECT s.id, s.url FROM directory_sites s \
             WHERE s.status = 'approved' \
               AND coalesce(s.screenshot_requested_at, '-infinity'::timestamp) < $1 \
             ORDER BY s.screenshot_requested_at NULLS FIRST, s.id LIMIT $2",
            &[
                SqlValue::Timestamp(now - Duration::days(MAX_AGE_DAYS)),
                SqlValue::Int64(PER_RUN),
            ],
        )
        .await?;
    let month = now.format("%Y-%m");
    let mut queued = 0;
    for row in &due {
        let id: i64 = row.get("id")?;
        let url: String = row.get("url")?;
        match village_screenshots::enqueue_keyed(
            sql,
            cache,
            &url,
            Some(id),
            allowed_hosts,
            Some(format!("screenshot.site:{id}:{month}")),
            now,
        )
        .await
        {
            Ok(_) => {
                sql.execute(
                    "UPDATE directory_sites SET screenshot_requested_at = $2 WHERE id = $1",
                    &[SqlValue::Int64(id), SqlValue::Timestamp(now)],
                )
                .await?;
                queued += 1;
            }
            Err(e) => village_platform::log::event(
                "WARNING",
                &format!("recapture not queued: {e}"),
                serde_json::json!({ "job": RECAPTURE, "site_id": id }),
            ),
        }
    }
    Ok(queued)
}

/// Queues today's run.
pub async fn schedule(
    sql: &impl Sql,
    cache: &impl Cache,
    now: DateTime<Utc>,
) -> Result<village_jobs::JobId, village_jobs::JobsError> {
    let job = NewJob::new(Queue::Low, RECAPTURE, serde_json::json!({}))
        .idempotency_key(format!("{RECAPTURE}:{}", now.format("%Y-%m-%d")));
    village_jobs::enqueue(sql, cache, now, job).await
}

/// The handler of `directory.recapture`.
pub struct Recapture<'a, S, C, K> {
    pub sql: &'a S,
    pub cache: &'a C,
    pub clock: &'a K,
    /// Hosts the screenshot queue lets through (tests only).
    pub allowed_hosts: &'a [String],
}

impl<S: Sql, C: Cache, K: Clock> JobHandler for Recapture<'_, S, C, K> {
    fn name(&self) -> &'static str {
        RECAPTURE
    }

    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        let queued = queue_due(self.sql, self.cache, self.allowed_hosts, self.clock.now())
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        village_platform::log::event(
            "INFO",
            "screenshots queued for recapture",
            serde_json::json!({ "job": RECAPTURE, "queued": queued }),
        );
        Ok(())
    }
}
