//! `/admin/api/queues`: the ops view of every queue, and the controls.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /admin/api/queues` | depth per queue and status, oldest due job, last run, pause state |
//! | `GET /admin/api/queues/failures?queue=&limit=` | recent failures with their reasons |
//! | `POST /admin/api/queues/{QUEUE}/pause` `{"reason"}` | stop claiming from a queue |
//! | `POST /admin/api/queues/{QUEUE}/resume` `{"reason"}` | claim again, and wake the workers |
//! | `POST /admin/api/queues/jobs/{id}/requeue` `{"reason"}` | run a dead job again, with fresh attempts |
//! | `POST /admin/api/queues/jobs/{id}/delete` `{"reason"}` | remove a job that is not running |
//!
//! Every change writes an audit row with the actor and the reason.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use village_platform::admin::{Actor, parse_body, require_reason};
use village_platform::audit::{self, AuditEntry};
use village_platform::cache::Cache;
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, FieldError, RequestContext};

use crate::store::{self, JobsError};
use crate::{JobId, Queue};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: Option<String>,
}

fn reason(body: &[u8]) -> Result<String, AppError> {
    let parsed: ReasonBody = parse_body(body)?;
    let mut errors = Vec::new();
    let reason = require_reason(parsed.reason.as_deref(), &mut errors);
    if errors.is_empty() {
        Ok(reason)
    } else {
        Err(AppError::Validation(errors))
    }
}

fn jobs_error(e: JobsError) -> AppError {
    match e {
        JobsError::NotFound(_) => AppError::NotFound,
        JobsError::Conflict(why) => AppError::Conflict(why),
        JobsError::Sql(e) => e.into(),
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|p| {
        p.split_once('=')
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
    })
}

/// The request as this API needs it.
pub struct OpsRequest<'a> {
    pub method: &'a http::Method,
    /// The path below `/admin/api/queues`.
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

#[allow(clippy::too_many_arguments)] // the request, the ports and who is asking
pub async fn handle(
    req: OpsRequest<'_>,
    sql: &impl Sql,
    cache: &impl Cache,
    now: DateTime<Utc>,
    actor: &Actor,
    ctx: &RequestContext,
) -> Result<Response, AppError> {
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let post = *req.method == http::Method::POST;
    let get = *req.method == http::Method::GET;
    let audit =
        |action: &str, target_type: &str, target_id: String, reason: String, before, after| {
            AuditEntry {
                actor_label: actor.label.clone(),
                target_type: Some(target_type.to_owned()),
                target_id: Some(target_id),
                reason: Some(reason),
                before,
                after,
                ..AuditEntry::for_request(ctx, actor.user_id, action)
            }
        };
    match segments.as_slice() {
        [] if get => {
            let stats = store::queue_stats(sql, now).await?;
            Ok(web::json(http::StatusCode::OK, &json!({ "queues": stats })))
        }
        ["failures"] if get => {
            let queue = match query_param(req.query, "queue") {
                Some(q) => Some(Queue::parse(q).ok_or_else(|| {
                    AppError::Validation(vec![FieldError::new("queue", "unknown queue")])
                })?),
                None => None,
            };
            let limit = query_param(req.query, "limit")
                .and_then(|l| l.parse::<i64>().ok())
                .unwrap_or(50)
                .clamp(1, 500);
            let failures = store::recent_failures(sql, queue, limit).await?;
            Ok(web::json(
                http::StatusCode::OK,
                &json!({ "failures": failures }),
            ))
        }
        [queue, action @ ("pause" | "resume")] if post => {
            let q = Queue::parse(queue).ok_or(AppError::NotFound)?;
            let why = reason(req.body)?;
            let changed = if *action == "pause" {
                store::pause(sql, q, &actor.label, &why, now).await?
            } else {
                let resumed = store::resume(sql, q).await?;
                if resumed {
                    store::wake_or_log(cache, q).await;
                }
                resumed
            };
            if changed {
                let paused = *action == "pause";
                audit::record(
                    sql,
                    &audit(
                        &format!("queue.{action}"),
                        "queue",
                        q.to_string(),
                        why,
                        Some(json!({ "paused": !paused })),
                        Some(json!({ "paused": paused })),
                    ),
                )
                .await?;
            }
            Ok(web::json(
                http::StatusCode::OK,
                &json!({ "queue": q.as_str(), "changed": changed }),
            ))
        }
        ["jobs", id, action @ ("requeue" | "delete")] if post => {
            let id: JobId = id.parse().map_err(|_| AppError::NotFound)?;
            let why = reason(req.body)?;
            let before = store::find(sql, id).await?.ok_or(AppError::NotFound)?;
            let (after, result) = if *action == "requeue" {
                let job = store::requeue(sql, id, now).await.map_err(jobs_error)?;
                store::wake_or_log(cache, job.queue).await;
                (
                    Some(json!({ "status": job.status.as_str(), "attempts": job.attempts })),
                    json!({ "job": job }),
                )
            } else {
                let job = store::delete(sql, id).await.map_err(jobs_error)?;
                (None, json!({ "deleted": job.id }))
            };
            audit::record(
                sql,
                &audit(
                    &format!("job.{action}"),
                    "job",
                    id.to_string(),
                    why,
                    Some(json!({ "status": before.status.as_str(), "attempts": before.attempts, "queue": before.queue.as_str(), "handler": before.handler })),
                    after,
                ),
            )
            .await?;
            Ok(web::json(http::StatusCode::OK, &result))
        }
        [] | ["failures"] => Err(AppError::MethodNotAllowed { allowed: "GET" }),
        [_, "pause" | "resume"] | ["jobs", _, "requeue" | "delete"] => {
            Err(AppError::MethodNotAllowed { allowed: "POST" })
        }
        _ => Err(AppError::NotFound),
    }
}
