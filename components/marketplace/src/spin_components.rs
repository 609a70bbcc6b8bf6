//! The glue the `marketplace-lifecycle` cron component runs inside Spin.

use village_jobs::{NewJob, Queue};
use village_platform::clock::Clock;
use village_platform::spin::Env;

/// Daily: one lifecycle job per day (the date is its idempotency key, so a
/// double fire enqueues once).
pub async fn schedule(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let now = env.clock.now();
    let job = NewJob {
        queue: Queue::Default,
        handler: crate::lifecycle::NAME.to_owned(),
        payload: serde_json::json!({}),
        traceparent: None,
        run_at: None,
        priority: 0,
        idempotency_key: Some(format!(
            "{}:{}",
            crate::lifecycle::NAME,
            now.format("%Y-%m-%d")
        )),
        max_attempts: 5,
    };
    let id = village_jobs::enqueue(&env.sql, &env.cache, now, job)
        .await
        .map_err(|e| format!("enqueueing the marketplace lifecycle failed: {e}"))?;
    village_platform::log::event(
        "INFO",
        "marketplace lifecycle enqueued",
        serde_json::json!({ "job": crate::lifecycle::NAME, "scheduled": scheduled, "job_id": id }),
    );
    Ok(())
}
