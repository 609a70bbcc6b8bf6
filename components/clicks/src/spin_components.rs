//! The glue the click components run inside Spin: `track-click` (the
//! route) reads its keys here; `clicks-maintenance` (cron, hourly) queues
//! the maintenance job.

use village_platform::clock::Clock;
use village_platform::spin::Env;

use crate::links::LinkSigner;

/// The link signer from the component's variables (`click_signing_keys`,
/// `session_signing_key`). A malformed setting is logged and treated as
/// none: links are then rendered plain and `/track/click` refuses all.
pub fn signer(component: &str) -> Option<LinkSigner> {
    let keys = spin_sdk::variables::get("click_signing_keys").unwrap_or_default();
    let session = spin_sdk::variables::get("session_signing_key")
        .ok()
        .and_then(|k| village_platform::session::SigningKey::try_from(k.as_str()).ok());
    LinkSigner::from_settings(&keys, session.as_ref(), chrono::Utc::now()).unwrap_or_else(|e| {
        village_platform::log::event(
            "ERROR",
            &format!("click tracking disabled: {e}"),
            serde_json::json!({ "component": component }),
        );
        None
    })
}

/// Hourly: this hour's `clicks.maintain` job.
pub async fn schedule(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let id = crate::maintain::schedule(&env.sql, &env.cache, env.clock.now())
        .await
        .map_err(|e| format!("queueing click maintenance failed: {e}"))?;
    village_platform::log::event(
        "INFO",
        "click maintenance queued",
        serde_json::json!({ "job": crate::maintain::NAME, "scheduled": scheduled, "job_id": id }),
    );
    Ok(())
}
