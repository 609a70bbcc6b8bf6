//! The glue the feeds cron components run inside Spin: `feeds-scheduler`
//! (every minute) and `feeds-retention` (daily).

use village_platform::clock::Clock;
use village_platform::spin::Env;

/// Every minute: a refresh job for each due feed.
pub async fn schedule(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let enqueued = crate::schedule::enqueue_due(&env.sql, &env.cache, env.clock.now())
        .await
        .map_err(|e| format!("scheduling feed refreshes failed: {e}"))?;
    village_platform::log::event(
        "INFO",
        "feed refreshes scheduled",
        serde_json::json!({ "job": "feeds.schedule", "scheduled": scheduled, "enqueued": enqueued }),
    );
    Ok(())
}

/// Daily: old articles and unread feeds pruned.
pub async fn retention(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let pruned = crate::retention::prune(&env.sql, env.clock.now())
        .await
        .map_err(|e| format!("feed retention failed: {e}"))?;
    village_platform::log::event(
        "INFO",
        "feed retention done",
        serde_json::json!({ "job": "feeds.retention", "scheduled": scheduled, "pruned": pruned }),
    );
    Ok(())
}
