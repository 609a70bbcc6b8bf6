//! The glue the stocks components run inside Spin: the provider settings,
//! and `stocks-scheduler` (cron, every five minutes).

use village_platform::clock::Clock;
use village_platform::spin::Env;

use crate::Config;
use crate::alpha::AlphaVantage;
use crate::quota::Quota;

fn get(name: &str) -> Option<String> {
    spin_sdk::variables::get(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

fn number(name: &str, default: u32) -> u32 {
    get(name)
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// From `alpha_vantage_base_url`, `alpha_vantage_api_key` (secret),
/// `alpha_vantage_calls_per_minute`, `_per_day`, `_min_interval_ms` and
/// `stocks_open_refresh_minutes`.
pub fn config() -> Config {
    Config {
        alpha: AlphaVantage {
            base_url: get("alpha_vantage_base_url")
                .unwrap_or_else(|| "https://www.alphavantage.co".into()),
            api_key: get("alpha_vantage_api_key").unwrap_or_else(|| "demo".into()),
        },
        quota: Quota {
            per_minute: number(
                "alpha_vantage_calls_per_minute",
                Quota::FREE_TIER.per_minute,
            ),
            per_day: number("alpha_vantage_calls_per_day", Quota::FREE_TIER.per_day),
            // 0 turns the spacing off (a paid plan).
            min_interval_ms: get("alpha_vantage_min_interval_ms")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(Quota::FREE_TIER.min_interval_ms),
        },
        open_every_minutes: i64::from(number("stocks_open_refresh_minutes", 15)),
    }
}

/// Every five minutes: queue the quote refreshes that are due.
pub async fn schedule(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let config = config();
    let done = crate::schedule::run(&env.sql, &env.cache, &config, env.clock.now())
        .await
        .map_err(|e| format!("queueing quote refreshes failed: {e}"))?;
    village_platform::log::event(
        "INFO",
        "quote refreshes queued",
        serde_json::json!({ "scheduled": scheduled, "considered": done.considered,
                            "queued": done.queued, "market_open": done.market_open,
                            "open_every_minutes": done.open_every_minutes }),
    );
    Ok(())
}
