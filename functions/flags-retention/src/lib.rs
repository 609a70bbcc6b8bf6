//! `flags-retention` — cron component. Daily: creates the monthly
//! partitions of `feature_flag_evaluations` ahead and drops those older than
//! 90 days (see `village_flags::retention`).

// wit-bindgen's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use village_platform::clock::Clock;
use village_platform::spin::Env;

wit_bindgen::generate!({
    path: "../../wit",
    world: "fermyon:spin-cron/spin-cron@2.0.0",
});

struct Component;

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

impl Guest for Component {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        spin_sdk::http::run(maintain(metadata.timestamp)).map_err(Error::Other)
    }
}

export!(Component);
