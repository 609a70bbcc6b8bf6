//! What `payments-scheduler` queues every five minutes (its Spin glue is
//! `spin_components::schedule`): every approved refund not yet issued (a
//! staff removal's are queued only here; others whose job was lost), events
//! recorded but neither applied nor failed for good after ten minutes,
//! disputes still without evidence after five, and — from 02:00 UTC — the
//! previous day's reconciliation. Every job is keyed, so a job still
//! pending or running is never queued twice.

use chrono::{DateTime, Duration, Utc};
use village_jobs::{NewJob, Queue};
use village_platform::sql::{Sql, SqlError, SqlValue};

pub async fn due(sql: &impl Sql, now: DateTime<Utc>) -> Result<Vec<NewJob>, SqlError> {
    let mut jobs = Vec::new();
    for id in crate::refunds::waiting(sql, now, Duration::zero()).await? {
        jobs.push(crate::refunds::job(id));
    }
    let events = sql
        .query(
            "SELECT id FROM stripe_events WHERE processed_at IS NULL AND failed_at IS NULL \
               AND received_at <= $1::timestamp ORDER BY received_at LIMIT 500",
            &[SqlValue::Timestamp(now - Duration::minutes(10))],
        )
        .await?;
    for r in &events {
        let id: String = r.get("id")?;
        jobs.push(crate::events::job(&id));
    }
    let disputes = sql
        .query(
            "SELECT id FROM payment_disputes WHERE evidence_key IS NULL \
               AND created_at <= $1::timestamp ORDER BY id LIMIT 100",
            &[SqlValue::Timestamp(now - Duration::minutes(5))],
        )
        .await?;
    for r in &disputes {
        jobs.push(crate::disputes::job(r.get("id")?));
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
    Ok(jobs)
}
