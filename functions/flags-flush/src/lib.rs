//! `flags-flush` — cron component. Every minute: writes the feature-flag
//! evaluations requests buffered in Redis to `feature_flag_evaluations`,
//! in batches (see `village_flags::evaluation_log`).

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

use village_platform::spin::Env;

async fn flush(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let rows = village_flags::evaluation_log::flush(&env.sql, &env.cache)
        .await
        .map_err(|e| format!("flag evaluations not flushed: {e}"))?;
    if rows > 0 {
        village_platform::log::event(
            "INFO",
            "flag evaluations flushed",
            serde_json::json!({ "job": "flags.flush", "scheduled": scheduled, "rows": rows }),
        );
    }
    Ok(())
}

village_platform::cron_component!(flush);
