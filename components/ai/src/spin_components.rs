//! The glue the `ai-budget` cron component runs inside Spin, hourly:
//! recompute the month's budget, send any threshold notice not yet
//! delivered, and start tagging if articles wait and the budget allows (a
//! new month, or a raised budget, resumes work this way).

use village_platform::clock::Clock;
use village_platform::spin::{Env, SpinHttp};
use village_platform::sql::Sql;

use crate::{AiConfig, budget, notify, tagging};

/// The service's settings from the component's Spin variables.
pub fn config() -> Result<AiConfig, String> {
    AiConfig::from_lookup(|name| spin_sdk::variables::get(name).ok())
}

pub async fn hourly(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let config = config()?;
    let http = SpinHttp::default();
    let now = env.clock.now();
    let b = budget::current(&env.sql, now, config.default_limit_cents)
        .await
        .map_err(|e| format!("budget: {e}"))?;
    let notices = notify::send_due(&env.sql, &http, &config.notify, &b, now)
        .await
        .map_err(|e| format!("notices: {e}"))?;
    let pending = env
        .sql
        .query_opt(
            "SELECT EXISTS (SELECT 1 FROM feed_items WHERE tag_state = 'pending') AS any",
            &[],
        )
        .await
        .map_err(|e| format!("pending articles: {e}"))?
        .map(|r| r.get::<bool>("any"))
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or(false);
    let tagging = if pending {
        format!(
            "{:?}",
            tagging::schedule_within(&env.sql, &env.cache, &config, &b, now)
                .await
                .map_err(|e| format!("tagging: {e}"))?
        )
    } else {
        "nothing pending".to_owned()
    };
    village_platform::log::event(
        "INFO",
        "AI budget checked",
        serde_json::json!({
            "job": "ai.budget", "scheduled": scheduled, "level": b.level(),
            "used_basis_points": b.used_basis_points(), "notices": notices, "tagging": tagging,
        }),
    );
    Ok(())
}
