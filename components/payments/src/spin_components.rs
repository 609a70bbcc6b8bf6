//! The glue the payments components run inside Spin: the settings, and
//! `payments-scheduler` (cron, every five minutes).

use chrono::Duration;
use village_jobs::{NewJob, Queue};
use village_platform::clock::Clock;
use village_platform::spin::Env;
use village_platform::sql::{Sql, SqlValue};

use crate::Config;

fn get(name: &str) -> String {
    spin_sdk::variables::get(name).unwrap_or_default()
}

/// From the `stripe_*` variables (`stripe_secret_key`,
/// `stripe_webhook_secret` and `stripe_webhook_secret_previous` are
/// secrets), `mail_from`, `ops_email` and `public_base_url`.
pub fn config() -> Config {
    let currency = get("stripe_currency").trim().to_ascii_lowercase();
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
        .filter(|s| !s.trim().is_empty())
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

/// Every five minutes: queue again what a lost enqueue or an outage left
/// waiting — approved refunds, events not yet applied, disputes without
/// evidence — and, from 02:00 UTC, the previous day's reconciliation.
/// Every job is keyed, so a double fire queues nothing twice.
pub async fn schedule(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let now = env.clock.now();
    let err = |e: village_platform::sql::SqlError| e.to_string();
    // Every approved refund not yet issued: a removal's (queued only
    // here) and any whose job was lost. A job still pending or running
    // holds the refund's key, so nothing is queued twice.
    let refunds = crate::refunds::waiting(&env.sql, now, Duration::zero())
        .await
        .map_err(err)?;
    crate::refunds::enqueue(&env.sql, &env.cache, &refunds, now)
        .await
        .map_err(|e| e.to_string())?;
    let mut jobs = Vec::new();
    let events = env
        .sql
        .query(
            "SELECT id FROM stripe_events WHERE processed_at IS NULL \
               AND received_at <= $1::timestamp ORDER BY received_at LIMIT 500",
            &[SqlValue::Timestamp(now - Duration::minutes(10))],
        )
        .await
        .map_err(err)?;
    for r in &events {
        let id: String = r.get("id").map_err(err)?;
        jobs.push(
            NewJob::new(
                Queue::High,
                crate::events::NAME,
                serde_json::json!({ "event_id": id }),
            )
            .idempotency_key(format!("{}:{id}", crate::events::NAME))
            .max_attempts(12),
        );
    }
    let disputes = env
        .sql
        .query(
            "SELECT id FROM payment_disputes WHERE evidence_key IS NULL \
               AND created_at <= $1::timestamp ORDER BY id LIMIT 100",
            &[SqlValue::Timestamp(now - Duration::minutes(5))],
        )
        .await
        .map_err(err)?;
    for r in &disputes {
        let id: i64 = r.get("id").map_err(err)?;
        jobs.push(
            NewJob::new(
                Queue::High,
                crate::disputes::NAME,
                serde_json::json!({ "dispute_id": id }),
            )
            .idempotency_key(format!("{}:{id}", crate::disputes::NAME))
            .max_attempts(10),
        );
    }
    if now.format("%H").to_string().as_str() >= "02" {
        let day = (now - Duration::days(1)).format("%Y-%m-%d").to_string();
        jobs.push(
            NewJob::new(
                Queue::Default,
                crate::reconcile::NAME,
                serde_json::json!({ "day": day }),
            )
            .idempotency_key(format!("{}:{day}", crate::reconcile::NAME))
            .max_attempts(8),
        );
    }
    let queued = jobs.len() + refunds.len();
    for job in jobs {
        village_jobs::enqueue(&env.sql, &env.cache, now, job)
            .await
            .map_err(|e| e.to_string())?;
    }
    village_platform::log::event(
        "INFO",
        "payments scheduler ran",
        serde_json::json!({ "scheduled": scheduled, "considered": queued }),
    );
    Ok(())
}
