//! `/admin/api/feeds` (permission `manage_system`, checked before): ops
//! look after the feeds themselves.
//!
//! - `GET /admin/api/feeds[?limit=]`: every feed with its health, readers,
//!   default status and refresh interval;
//! - `POST /admin/api/feeds {"url", "is_default"?, "refresh_interval_seconds"?, "reason"}`:
//!   adds a feed (say, to the default set) or updates the one at that URL;
//! - `PATCH /admin/api/feeds/{id} {"is_default"?, "refresh_interval_seconds"?, "reason"}`:
//!   changes a feed's default status or interval (breaking news: 300).
//!
//! Every change carries a reason and is written with its audit row (before
//! and after) in one statement.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use village_platform::admin::{parse_body, parse_limit, require_reason};
use village_platform::audit::AuditEntry;
use village_platform::error::FieldError;
use village_platform::sql::{Sql, SqlValue};
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::subscriptions::{self, FeedStatus};
use village_platform::address;

/// The shortest and longest refresh intervals ops may set.
pub const MIN_INTERVAL: i64 = 60;
pub const MAX_INTERVAL: i64 = 86_400;

pub struct FeedsAdminRequest<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
    pub allowed_hosts: &'a [String],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    url: Option<String>,
    is_default: Option<bool>,
    refresh_interval_seconds: Option<i64>,
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
struct AdminFeed {
    #[serde(flatten)]
    feed: FeedStatus,
    refresh_interval_seconds: i32,
    consecutive_failures: i32,
    subscribers: i64,
}

/// The JSON a feed's audit rows record.
const FEED_JSON: &str = "jsonb_build_object('url', url, 'is_default', is_default, \
     'refresh_interval_seconds', refresh_interval_seconds)";

fn interval(v: Option<i64>, errors: &mut Vec<FieldError>) -> Option<i32> {
    match v {
        Some(n) if (MIN_INTERVAL..=MAX_INTERVAL).contains(&n) => Some(n as i32),
        Some(_) => {
            errors.push(FieldError::new(
                "refresh_interval_seconds",
                format!("{MIN_INTERVAL} to {MAX_INTERVAL} seconds"),
            ));
            None
        }
        None => None,
    }
}

fn audit(
    ctx: &RequestContext,
    actor: Option<Uuid>,
    action: &str,
    target: &str,
    reason: String,
) -> SqlValue {
    let mut e = AuditEntry::for_request(ctx, actor, action);
    e.target_type = Some("feed".into());
    e.target_id = Some(target.to_owned());
    e.reason = Some(reason);
    e.as_param()
}

fn opt_bool(v: Option<bool>) -> SqlValue {
    v.map_or(SqlValue::Null, SqlValue::Bool)
}

fn opt_int(v: Option<i32>) -> SqlValue {
    v.map_or(SqlValue::Null, SqlValue::Int32)
}

async fn list(sql: &impl Sql, limit: i64, now: DateTime<Utc>) -> Result<Vec<AdminFeed>, AppError> {
    let rows = sql
        .query(
            &format!(
                "SELECT {}, f.consecutive_failures, \
                        (SELECT count(*) FROM feed_subscriptions s WHERE s.feed_id = f.id) AS subscribers \
                 FROM feeds f ORDER BY f.is_default DESC, subscribers DESC, f.id LIMIT $1",
                subscriptions::COLUMNS
            ),
            &[SqlValue::Int64(limit)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            Ok(AdminFeed {
                feed: subscriptions::status(r, now)?,
                refresh_interval_seconds: r.get("refresh_interval_seconds")?,
                consecutive_failures: r.get("consecutive_failures")?,
                subscribers: r.get("subscribers")?,
            })
        })
        .collect::<Result<Vec<_>, village_platform::sql::SqlError>>()?)
}

/// The answer to a change: the feed before (none: 201, created) and after.
fn changed(row: &village_platform::sql::Row) -> Result<Response, AppError> {
    let before: Option<serde_json::Value> = row.get("before")?;
    let status = if before.is_none() {
        http::StatusCode::CREATED
    } else {
        http::StatusCode::OK
    };
    Ok(web::json(
        status,
        &serde_json::json!({
            "id": row.get::<i64>("id")?,
            "before": before,
            "feed": row.get::<serde_json::Value>("after")?,
        }),
    ))
}

pub async fn handle(
    req: FeedsAdminRequest<'_>,
    sql: &impl Sql,
    ctx: &RequestContext,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    use http::Method as M;
    let rest = req
        .path
        .trim_end_matches('/')
        .strip_prefix("/admin/api/feeds")
        .ok_or(AppError::NotFound)?;
    match (req.method, rest) {
        (&M::GET, "") => {
            let limit = web::query_param(req.query.as_bytes(), "limit");
            let feeds = list(sql, parse_limit(limit.as_deref(), 200, 1_000)?, now).await?;
            Ok(web::json(
                http::StatusCode::OK,
                &serde_json::json!({ "feeds": feeds }),
            ))
        }
        (&M::POST, "") => {
            let c: Change = parse_body(req.body)?;
            let mut errors = Vec::new();
            let url = match c
                .url
                .as_deref()
                .map(|u| address::check(u, req.allowed_hosts))
            {
                Some(Ok(u)) => Some(u),
                Some(Err(e)) => {
                    errors.push(FieldError::new("url", e.to_string()));
                    None
                }
                None => {
                    errors.push(FieldError::new("url", "required"));
                    None
                }
            };
            let every = interval(c.refresh_interval_seconds, &mut errors);
            let reason = require_reason(c.reason.as_deref(), &mut errors);
            let Some(url) = url.filter(|_| errors.is_empty()) else {
                return Err(AppError::Validation(errors));
            };
            let row = sql
                .query_opt(
                    &format!(
                        "WITH old AS (SELECT {FEED_JSON} AS j FROM feeds WHERE url = $1), \
                         up AS ( \
                             INSERT INTO feeds (url, is_default, refresh_interval_seconds, next_fetch_at) \
                             VALUES ($1, coalesce($2, false), coalesce($3, 900), $5) \
                             ON CONFLICT (url) DO UPDATE SET \
                                 is_default = coalesce($2, feeds.is_default), \
                                 refresh_interval_seconds = coalesce($3, feeds.refresh_interval_seconds) \
                             RETURNING id, {FEED_JSON} AS j), \
                         audit AS (SELECT audit_record($4, (SELECT j FROM old), up.j) AS id FROM up) \
                         SELECT up.id, (SELECT j FROM old) AS before, up.j AS after FROM up, audit"
                    ),
                    &[
                        SqlValue::Text(url.as_str().to_owned()),
                        opt_bool(c.is_default),
                        opt_int(every),
                        audit(ctx, actor, "feed.upsert", url.as_str(), reason),
                        SqlValue::Timestamp(now),
                    ],
                )
                .await?
                .ok_or_else(|| AppError::Internal("feed upsert returned no row".into()))?;
            changed(&row)
        }
        (&M::PATCH, id) => {
            let id: i64 = id
                .strip_prefix('/')
                .and_then(|s| s.parse().ok())
                .ok_or(AppError::NotFound)?;
            let c: Change = parse_body(req.body)?;
            let mut errors = Vec::new();
            if c.url.is_some() {
                errors.push(FieldError::new(
                    "url",
                    "a feed's address cannot change: add the new one",
                ));
            }
            let every = interval(c.refresh_interval_seconds, &mut errors);
            let reason = require_reason(c.reason.as_deref(), &mut errors);
            if c.is_default.is_none() && c.refresh_interval_seconds.is_none() {
                errors.push(FieldError::new(
                    "body",
                    "nothing to change: is_default or refresh_interval_seconds",
                ));
            }
            if !errors.is_empty() {
                return Err(AppError::Validation(errors));
            }
            let row = sql
                .query_opt(
                    &format!(
                        "WITH old AS (SELECT {FEED_JSON} AS j FROM feeds WHERE id = $1), \
                         up AS ( \
                             UPDATE feeds SET is_default = coalesce($2, is_default), \
                                 refresh_interval_seconds = coalesce($3, refresh_interval_seconds), \
                                 next_fetch_at = CASE WHEN $3::int IS NULL THEN next_fetch_at \
                                     ELSE least(next_fetch_at, \
                                                coalesce(last_success_at, $5) + make_interval(secs => $3::int)) END \
                             WHERE id = $1 RETURNING id, {FEED_JSON} AS j), \
                         audit AS (SELECT audit_record($4, (SELECT j FROM old), up.j) AS id FROM up) \
                         SELECT up.id, (SELECT j FROM old) AS before, up.j AS after FROM up, audit"
                    ),
                    &[
                        SqlValue::Int64(id),
                        opt_bool(c.is_default),
                        opt_int(every),
                        audit(ctx, actor, "feed.update", &id.to_string(), reason),
                        SqlValue::Timestamp(now),
                    ],
                )
                .await?
                .ok_or(AppError::NotFound)?;
            changed(&row)
        }
        (_, "") => Err(AppError::MethodNotAllowed {
            allowed: "GET, POST",
        }),
        _ => Err(AppError::MethodNotAllowed { allowed: "PATCH" }),
    }
}
