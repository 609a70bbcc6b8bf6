//! The glue the directory components run inside Spin: the settings the
//! `good-sites` route reads, and `good-sites-scheduler` (cron, hourly):
//! this hour's link-health run and today's recapture run.

use village_platform::clock::Clock;
use village_platform::spin::Env;

/// Karma that makes a section's moderator (`directory_moderator_karma`).
pub fn karma_threshold() -> i64 {
    spin_sdk::variables::get("directory_moderator_karma")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(crate::moderation::DEFAULT_KARMA_THRESHOLD)
}

/// Hosts let through the address checks (`directory_allowed_hosts`;
/// tests only, empty in production).
pub fn allowed_hosts() -> Vec<String> {
    village_platform::address::allowed_hosts(
        &spin_sdk::variables::get("directory_allowed_hosts").unwrap_or_default(),
    )
}

/// Hourly: queue the link checks and the recapture run (each keyed by its
/// slot, so a double fire does no double work).
pub async fn schedule(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let now = env.clock.now();
    let checks = crate::health::schedule(
        &env.sql,
        &env.cache,
        &now.format("%Y-%m-%dT%H").to_string(),
        now,
    )
    .await
    .map_err(|e| format!("queueing link checks failed: {e}"))?;
    let recapture = crate::recapture::schedule(&env.sql, &env.cache, now)
        .await
        .map_err(|e| format!("queueing the recapture run failed: {e}"))?;
    village_platform::log::event(
        "INFO",
        "good sites upkeep queued",
        serde_json::json!({ "scheduled": scheduled, "check_links_job": checks,
                            "recapture_job": recapture }),
    );
    Ok(())
}
