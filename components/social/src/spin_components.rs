//! The glue the social components run inside Spin: the settings, and
//! `social-scheduler` (cron, hourly): each active connection's posts, and
//! once a day the token upkeep.

use village_jobs::{NewJob, Queue};
use village_platform::clock::Clock;
use village_platform::spin::Env;
use village_platform::sql::Sql;

use crate::Config;
use crate::graph::Meta;
use crate::tokens::KeyRing;

fn get(name: &str) -> String {
    spin_sdk::variables::get(name).unwrap_or_default()
}

/// From `facebook_client_id`, `facebook_client_secret`,
/// `facebook_www_origin`, `facebook_graph_origin`, `social_token_keys`
/// (secret) and `public_base_url`. Missing keys are an error: tokens are
/// never stored unsealed.
pub fn config() -> Result<Config, String> {
    Ok(Config {
        meta: Meta {
            app_id: get("facebook_client_id"),
            app_secret: get("facebook_client_secret"),
            www_origin: get("facebook_www_origin"),
            graph_origin: get("facebook_graph_origin"),
        },
        keys: KeyRing::try_from(get("social_token_keys").as_str()).map_err(|e| e.to_string())?,
        public_base_url: get("public_base_url"),
    })
}

/// Hourly: fetch every active connection's posts; daily (the first run of
/// the UTC day), the token upkeep. Keyed by slot: a double fire does no
/// double work. Nothing while the `social_integration` kill switch is off.
pub async fn schedule(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let now = env.clock.now();
    if !village_flags::store::on_for_anyone(&env.sql, &env.cache, crate::FLAG).await {
        village_platform::log::event(
            "INFO",
            "social refreshes skipped: social_integration is off",
            serde_json::json!({ "scheduled": scheduled }),
        );
        return Ok(());
    }
    let users = env
        .sql
        .query(
            "SELECT user_id FROM social_connections WHERE status = 'active' ORDER BY user_id",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let hour = now.format("%Y-%m-%dT%H").to_string();
    let mut jobs: Vec<NewJob> = Vec::with_capacity(users.len() + 1);
    for r in &users {
        let user: uuid::Uuid = r.get("user_id").map_err(|e| e.to_string())?;
        jobs.push(
            NewJob::new(
                Queue::Low,
                crate::jobs::FETCH_POSTS,
                serde_json::json!({ "user_id": user }),
            )
            .idempotency_key(format!("{}:{user}:{hour}", crate::jobs::FETCH_POSTS))
            .max_attempts(3),
        );
    }
    jobs.push(
        NewJob::new(Queue::Low, crate::jobs::UPKEEP, serde_json::json!({})).idempotency_key(
            format!("{}:{}", crate::jobs::UPKEEP, now.format("%Y-%m-%d")),
        ),
    );
    village_jobs::enqueue_many(&env.sql, &env.cache, now, &jobs)
        .await
        .map_err(|e| format!("queueing social jobs failed: {e}"))?;
    village_platform::log::event(
        "INFO",
        "social refreshes queued",
        serde_json::json!({ "scheduled": scheduled, "connections": users.len() }),
    );
    Ok(())
}
