//! `POST /webhooks/stripe`: Stripe's event deliveries. The raw body (read
//! bounded by the platform, 1 MiB) is verified against `Stripe-Signature`
//! ([`crate::signature`]) before anything is parsed; the event is recorded
//! once by its id and, when it is one we act on, queued for
//! [`crate::events`] under a key naming the event — a redelivery records
//! nothing new and queues nothing new. The answer is immediate (`200`);
//! the work happens in the job. A bad signature is `400` (Stripe shows it
//! in the dashboard and retries), and logged without the body.

use chrono::{DateTime, Utc};
use village_platform::AppError;
use village_platform::cache::Cache;
use village_platform::error::FieldError;
use village_platform::sql::{Sql, SqlValue};
use village_platform::web::{self, Response};

use crate::events;
use crate::signature;

pub async fn handle(
    method: &http::Method,
    headers: &http::HeaderMap,
    body: &[u8],
    sql: &impl Sql,
    cache: &impl Cache,
    secrets: &[String],
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    if method != http::Method::POST {
        return Err(AppError::MethodNotAllowed { allowed: "POST" });
    }
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    if let Err(e) = signature::verify(header, body, secrets, now) {
        village_platform::log::event(
            "WARN",
            "stripe webhook refused",
            serde_json::json!({ "reason": e.to_string(), "bytes": body.len() }),
        );
        if e == signature::SignatureError::NoSecret {
            return Err(AppError::Unavailable {
                dependency: "payments",
                detail: "no webhook secret is configured".into(),
            });
        }
        return Err(AppError::Validation(vec![FieldError::new(
            "Stripe-Signature",
            e.to_string(),
        )]));
    }
    // Read once: the fields checked, the whole event stored.
    let payload: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        AppError::Validation(vec![FieldError::new(
            "body",
            format!("not a Stripe event: {e}"),
        )])
    })?;
    let (Some(id), Some(kind), Some(created), true) = (
        payload["id"].as_str().filter(|id| crate::stripe::is_id(id)),
        payload["type"].as_str().filter(|t| t.len() <= 100),
        payload["created"].as_i64(),
        payload["data"].is_object(),
    ) else {
        return Err(AppError::Validation(vec![FieldError::new(
            "body",
            "not a Stripe event: id, type, created or data missing or malformed",
        )]));
    };
    let (id, kind) = (id.to_owned(), kind.to_owned());
    let created = crate::unix(created).unwrap_or(now);
    let recorded = sql
        .execute(
            "INSERT INTO stripe_events (id, type, created, payload, received_at) \
             VALUES ($1, $2, $3::timestamp, $4, $5::timestamp) ON CONFLICT (id) DO NOTHING",
            &[
                SqlValue::Text(id.clone()),
                SqlValue::Text(kind.clone()),
                SqlValue::Timestamp(created),
                SqlValue::Json(payload),
                SqlValue::Timestamp(now),
            ],
        )
        .await?;
    let handled = events::HANDLED.contains(&kind.as_str());
    if handled {
        // Queued on every delivery (the key makes repeats no-ops), so an
        // enqueue that failed after the insert is made good by Stripe's retry.
        village_jobs::enqueue(sql, cache, now, events::job(&id))
            .await
            .map_err(|e| AppError::Internal(format!("queueing the event: {e}")))?;
    } else if recorded > 0 {
        sql.execute(
            "UPDATE stripe_events SET processed_at = $2::timestamp, outcome = 'not handled' WHERE id = $1",
            &[SqlValue::Text(id.clone()), SqlValue::Timestamp(now)],
        )
        .await?;
    }
    village_platform::log::event(
        "INFO",
        "stripe webhook received",
        serde_json::json!({ "event_id": id, "type": kind, "new": recorded > 0,
                            "lag_seconds": (now - created).num_seconds() }),
    );
    Ok(web::json(
        http::StatusCode::OK,
        &serde_json::json!({ "received": true }),
    ))
}
