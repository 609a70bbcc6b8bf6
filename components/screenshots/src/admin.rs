//! `/admin/api/screenshots` — for callers with `manage_system`:
//!
//! - `POST /admin/api/screenshots` `{"url": "...", "site_id": 7?}`: queues
//!   a capture (202, with the job id); a URL that is not public http(s) is a
//!   400 with a field error. Audited (`screenshot.enqueue`).
//! - `GET /admin/api/screenshots?limit=50`: the newest finished captures,
//!   captured or failed with their reason, each captured one with links to
//!   its images, and how many captures wait in the queue.
//! - `GET /admin/api/screenshots/history?url=...`: a URL's versions.
//! - `GET /admin/api/screenshots/versions/{id}/full` (or `thumb`): an image,
//!   read from blob storage (the bucket or the embedded store).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use village_platform::RequestContext;
use village_platform::admin::{Actor, parse_body, parse_limit};
use village_platform::audit::{self, AuditEntry};
use village_platform::blob::BlobStore;
use village_platform::cache::Cache;
use village_platform::error::{AppError, FieldError};
use village_platform::sql::{Sql, SqlValue};
use village_platform::web::{self, Response, query_param};

use crate::versions::{self, Version};
use crate::{EnqueueError, enqueue};

/// The route's own prefix, for the links it hands out.
pub const PREFIX: &str = "/admin/api/screenshots";

/// The request as this API needs it.
pub struct AdminRequest<'a> {
    pub method: &'a http::Method,
    /// The path below [`PREFIX`].
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// What the API works with.
pub struct Services<'a, S, C, B> {
    pub sql: &'a S,
    pub cache: &'a C,
    pub blobs: &'a B,
    pub now: DateTime<Utc>,
    /// Hosts captured whatever their address (`screenshot_allowed_hosts`).
    pub allowed_hosts: &'a [String],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enqueue {
    url: Option<String>,
    site_id: Option<i64>,
}

pub async fn handle<S: Sql, C: Cache, B: BlobStore>(
    req: AdminRequest<'_>,
    services: &Services<'_, S, C, B>,
    actor: &Actor,
    ctx: &RequestContext,
) -> Result<Response, AppError> {
    let segments = web::path_segments(req.path);
    let get = *req.method == http::Method::GET;
    let post = *req.method == http::Method::POST;
    match segments.as_slice() {
        [] if get => list(req.query, services).await,
        [] if post => queue_capture(req.body, services, actor, ctx).await,
        ["history"] if get => {
            let url = query_param(req.query.as_bytes(), "url")
                .ok_or_else(|| AppError::Validation(vec![FieldError::new("url", "required")]))?;
            let versions = versions::history(services.sql, &url).await?;
            let versions: Vec<_> = versions.iter().map(with_links).collect();
            Ok(web::json(
                http::StatusCode::OK,
                &json!({ "url": url, "versions": versions }),
            ))
        }
        ["versions", id, which @ ("full" | "thumb")] if get => {
            let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
            let version = versions::find(services.sql, id)
                .await?
                .ok_or(AppError::NotFound)?;
            // Ops only: never in a shared cache.
            crate::image_response(
                services.blobs,
                &version,
                which,
                "private, max-age=86400, immutable",
            )
            .await
        }
        [] => Err(AppError::MethodNotAllowed {
            allowed: "GET, POST",
        }),
        ["history"] | ["versions", _, "full" | "thumb"] => {
            Err(AppError::MethodNotAllowed { allowed: "GET" })
        }
        _ => Err(AppError::NotFound),
    }
}

async fn list<S: Sql, C: Cache, B: BlobStore>(
    query: &str,
    services: &Services<'_, S, C, B>,
) -> Result<Response, AppError> {
    let limit = parse_limit(query_param(query.as_bytes(), "limit").as_deref(), 50, 500)?;
    let captures = versions::recent(services.sql, limit).await?;
    let captures: Vec<_> = captures
        .iter()
        .map(|c| {
            let mut value = json!(c);
            if let Some(v) = &c.version {
                value["version"] = with_links(v);
            }
            value
        })
        .collect();
    let waiting = services
        .sql
        .query_opt(
            "SELECT count(*) FILTER (WHERE status = 'pending') AS pending, \
                    count(*) FILTER (WHERE status = 'running') AS running \
             FROM delayed_jobs WHERE queue = $1 AND handler = $2 \
               AND status IN ('pending', 'running')",
            &[
                SqlValue::Text(village_jobs::Queue::Screenshot.as_str().into()),
                SqlValue::Text(crate::CAPTURE_HANDLER.into()),
            ],
        )
        .await?
        .ok_or_else(|| AppError::Internal("no queue counts".into()))?;
    Ok(web::json(
        http::StatusCode::OK,
        &json!({
            "captures": captures,
            "queue": {
                "pending": waiting.get::<i64>("pending")?,
                "running": waiting.get::<i64>("running")?,
            },
        }),
    ))
}

async fn queue_capture<S: Sql, C: Cache, B: BlobStore>(
    body: &[u8],
    services: &Services<'_, S, C, B>,
    actor: &Actor,
    ctx: &RequestContext,
) -> Result<Response, AppError> {
    let body: Enqueue = parse_body(body)?;
    let url = body
        .url
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| AppError::Validation(vec![FieldError::new("url", "required")]))?;
    if body.site_id.is_some_and(|id| id < 1) {
        return Err(AppError::Validation(vec![FieldError::new(
            "site_id",
            "a positive whole number",
        )]));
    }
    // Versions name their site with a foreign key (V28): a capture for a
    // site that does not exist would fail at the end, after the work.
    if let Some(id) = body.site_id
        && services
            .sql
            .query_opt(
                "SELECT 1 AS found FROM directory_sites WHERE id = $1",
                &[village_platform::sql::SqlValue::Int64(id)],
            )
            .await?
            .is_none()
    {
        return Err(AppError::Validation(vec![FieldError::new(
            "site_id",
            "no Good Sites entry has this id",
        )]));
    }
    let (job_id, checked) = match enqueue(
        services.sql,
        services.cache,
        &url,
        body.site_id,
        services.allowed_hosts,
        services.now,
    )
    .await
    {
        Ok(queued) => queued,
        Err(EnqueueError::Address(e)) => {
            return Err(AppError::Validation(vec![FieldError::new(
                "url",
                e.to_string(),
            )]));
        }
        Err(EnqueueError::Jobs(e)) => return Err(AppError::Internal(e.to_string())),
    };
    audit::record(
        services.sql,
        &AuditEntry {
            actor_label: actor.label.clone(),
            target_type: Some("screenshot".into()),
            target_id: Some(checked.as_str().to_owned()),
            after: Some(json!({ "job_id": job_id, "site_id": body.site_id })),
            ..AuditEntry::for_request(ctx, actor.user_id, "screenshot.enqueue")
        },
    )
    .await?;
    Ok(web::json(
        http::StatusCode::ACCEPTED,
        &json!({ "job_id": job_id, "url": checked.as_str() }),
    ))
}

/// A version as JSON, with where its images are served.
fn with_links(v: &Version) -> serde_json::Value {
    let mut value = json!(v);
    value["full"]["href"] = json!(format!("{PREFIX}/versions/{}/full", v.id));
    value["thumb"]["href"] = json!(format!("{PREFIX}/versions/{}/thumb", v.id));
    value
}
