//! The glue the payments components run inside Spin: the settings, and
//! `payments-scheduler` (cron, every five minutes; what it queues is
//! [`crate::scheduler::due`]).

use village_platform::clock::Clock;
use village_platform::spin::Env;

use crate::Config;

fn get(name: &str) -> String {
    spin_sdk::variables::get(name)
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// From the `stripe_*` variables (`stripe_secret_key`,
/// `stripe_webhook_secret` and `stripe_webhook_secret_previous` are
/// secrets), `mail_from`, `ops_email` and `public_base_url`; trimmed (a
/// secret pasted with a newline still works).
pub fn config() -> Config {
    let currency = get("stripe_currency").to_ascii_lowercase();
    Config {
        api_base: get("stripe_api_base"),
        secret_key: get("stripe_secret_key"),
        publishable_key: get("stripe_publishable_key"),
        js_url: get("stripe_js_url"),
        webhook_secrets: [
            get("stripe_webhook_secret"),
            get("stripe_webhook_secret_previous"),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect(),
        currency: if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_lowercase()) {
            currency
        } else {
            "usd".into()
        },
        mail_from: get("mail_from"),
        ops_email: get("ops_email"),
        public_base_url: get("public_base_url"),
    }
}

pub async fn schedule(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let now = env.clock.now();
    let jobs = crate::scheduler::due(&env.sql, now)
        .await
        .map_err(|e| e.to_string())?;
    let considered = jobs.len();
    for job in jobs {
        village_jobs::enqueue(&env.sql, &env.cache, now, job)
            .await
            .map_err(|e| e.to_string())?;
    }
    village_platform::log::event(
        "INFO",
        "payments scheduler ran",
        serde_json::json!({ "scheduled": scheduled, "considered": considered }),
    );
    Ok(())
}
