//! `accounts-retention` — cron component. Daily: purges merge-consent audit
//! rows after 90 days, spent sign-in attempts, lapsed merge offers and ended
//! sessions (see `village_accounts::retention`).

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

use village_platform::clock::Clock;
use village_platform::spin::Env;

async fn purge(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let purged = village_accounts::retention::purge(&env.sql, env.clock.now())
        .await
        .map_err(|e| format!("accounts retention failed: {e}"))?;
    village_platform::log::event(
        "INFO",
        "accounts retention done",
        serde_json::json!({ "job": "accounts.retention", "scheduled": scheduled, "purged": purged }),
    );
    Ok(())
}

village_platform::cron_component!(purge);
