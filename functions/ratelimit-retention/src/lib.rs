//! `ratelimit-retention` — cron component. Daily: purges rate-limit
//! violations and ended bans after 90 days (see
//! `village_ratelimit::retention`).

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

use village_platform::clock::Clock;
use village_platform::spin::Env;

async fn purge(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let purged = village_ratelimit::retention::purge(&env.sql, env.clock.now())
        .await
        .map_err(|e| format!("rate-limit retention failed: {e}"))?;
    village_platform::log::event(
        "INFO",
        "rate-limit retention done",
        serde_json::json!({ "job": "ratelimit.retention", "scheduled": scheduled, "purged": purged }),
    );
    Ok(())
}

village_platform::cron_component!(purge);
