//! `flags-retention` — cron component. Daily: creates the monthly
//! partitions of `feature_flag_evaluations` ahead and drops those older than
//! 90 days (see `village_flags::retention`).

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

use village_platform::clock::Clock;
use village_platform::spin::Env;

async fn maintain(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let done = village_flags::retention::maintain(&env.sql, env.clock.now())
        .await
        .map_err(|e| format!("flag evaluation retention failed: {e}"))?;
    village_platform::log::event(
        "INFO",
        "flag evaluation partitions maintained",
        serde_json::json!({ "job": "flags.retention", "scheduled": scheduled, "done": done }),
    );
    Ok(())
}

village_platform::cron_component!(maintain);
