//! The glue the weather components run inside Spin: the provider settings
//! the workers read, and `weather-scheduler` (cron, hourly).

use village_platform::clock::Clock;
use village_platform::spin::Env;

/// The providers' settings (Spin variables; tests point them at local
/// servers speaking the providers' wire formats).
pub struct Providers {
    /// `open_meteo_base_url`.
    pub open_meteo: String,
    /// `nws_base_url`.
    pub nws: String,
    /// `nws_user_agent`: the NWS asks for an application name and contact.
    pub nws_user_agent: String,
}

impl Providers {
    pub fn from_variables() -> Self {
        let get = |name: &str, default: &str| {
            spin_sdk::variables::get(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Providers {
            open_meteo: get("open_meteo_base_url", "https://api.open-meteo.com"),
            nws: get("nws_base_url", "https://api.weather.gov"),
            nws_user_agent: get(
                "nws_user_agent",
                "VillageHomepage/1.0 (ops@village-homepage.example)",
            ),
        }
    }
}

/// Hourly: queue a refresh for every location visitors use.
pub async fn schedule(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let done = crate::schedule::run(&env.sql, &env.cache, env.clock.now())
        .await
        .map_err(|e| format!("queueing weather refreshes failed: {e}"))?;
    village_platform::log::event(
        "INFO",
        "weather refreshes queued",
        serde_json::json!({ "scheduled": scheduled, "locations": done.locations,
                            "forecast_jobs": done.forecast_jobs, "alert_jobs": done.alert_jobs,
                            "forgotten": done.forgotten }),
    );
    Ok(())
}
