//! Meta's callbacks, `POST /webhooks/meta/...`, each a form with one
//! `signed_request` verified with the app secret ([`crate::signed_request`]):
//!
//! - `deauthorize`: the person removed the app. Their token is deleted
//!   (the connection goes); cached posts stay, archived, until they remove
//!   them or reconnect.
//! - `data-deletion`: the person asks for their data to be deleted. The
//!   connection and every post from that Facebook account go at once —
//!   found by the account's id, which posts keep, so a deletion after a
//!   deauthorization still finds them — and Meta gets what its
//!   documentation asks for: `{"url": <status page>, "confirmation_code"}`.
//!
//! A request must be current (`issued_at` within a day): a captured one
//! cannot be replayed later.

use base64::Engine;
use chrono::{DateTime, Utc};
use village_platform::AppError;
use village_platform::error::FieldError;
use village_platform::sql::{Sql, SqlValue};
use village_platform::web::{self, Response};

use crate::signed_request;

fn payload(
    body: &[u8],
    app_secret: &str,
    now: DateTime<Utc>,
) -> Result<signed_request::Payload, AppError> {
    let signed = web::query_param(body, "signed_request").unwrap_or_default();
    signed_request::verify(&signed, app_secret, now)
        .map_err(|e| AppError::Validation(vec![FieldError::new("signed_request", e.to_string())]))
}

pub async fn handle(
    method: &http::Method,
    path: &str,
    body: &[u8],
    sql: &impl Sql,
    app_secret: &str,
    public_base_url: &str,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    if method != http::Method::POST {
        return Err(AppError::MethodNotAllowed { allowed: "POST" });
    }
    match path.trim_end_matches('/') {
        "/webhooks/meta/deauthorize" => {
            let p = payload(body, app_secret, now)?;
            sql.execute(
                "WITH gone AS (DELETE FROM social_connections WHERE meta_user_id = $1 RETURNING 1) \
                 UPDATE social_posts SET archived = true WHERE meta_user_id = $1 AND removed_at IS NULL",
                &[SqlValue::Text(p.user_id.clone())],
            )
            .await?;
            village_platform::log::event(
                "INFO",
                "meta deauthorized the app for a user",
                serde_json::json!({ "meta_user_id": p.user_id }),
            );
            Ok(web::json(
                http::StatusCode::OK,
                &serde_json::json!({ "success": true }),
            ))
        }
        "/webhooks/meta/data-deletion" => {
            let p = payload(body, app_secret, now)?;
            let mut raw = [0u8; 12];
            getrandom::fill(&mut raw)
                .map_err(|e| AppError::Internal(format!("randomness: {e}")))?;
            let code = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
            sql.execute(
                "WITH c AS (DELETE FROM social_connections WHERE meta_user_id = $1 RETURNING 1), \
                      p AS (DELETE FROM social_posts WHERE meta_user_id = $1 RETURNING 1) \
                 INSERT INTO social_deletion_requests (confirmation_code, meta_user_id, \
                     connections_deleted, posts_deleted, requested_at, completed_at) \
                 VALUES ($2, $1, (SELECT count(*) FROM c), (SELECT count(*) FROM p), $3, $3)",
                &[
                    SqlValue::Text(p.user_id.clone()),
                    SqlValue::Text(code.clone()),
                    SqlValue::Timestamp(now),
                ],
            )
            .await?;
            Ok(web::json(
                http::StatusCode::OK,
                &serde_json::json!({
                    "url": format!("{}/social/deletion/{code}", public_base_url.trim_end_matches('/')),
                    "confirmation_code": code,
                }),
            ))
        }
        _ => Err(AppError::NotFound),
    }
}

/// A data-deletion request, for its status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub requested_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub connections: i32,
    pub posts: i32,
}

/// The data-deletion request with `code`, if any.
pub async fn deletion_status(sql: &impl Sql, code: &str) -> Result<Option<Deletion>, AppError> {
    if code.len() > 64 {
        return Ok(None);
    }
    let row = sql
        .query_opt(
            "SELECT requested_at, completed_at, connections_deleted, posts_deleted \
             FROM social_deletion_requests WHERE confirmation_code = $1",
            &[SqlValue::Text(code.into())],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(Deletion {
            requested_at: r.get("requested_at")?,
            completed_at: r.get("completed_at")?,
            connections: r.get("connections_deleted")?,
            posts: r.get("posts_deleted")?,
        }),
        None => None,
    })
}
