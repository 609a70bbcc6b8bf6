//! `/admin/api/payments/...` (permission `manage_refunds`; never while
//! impersonating — `village_accounts::authz` refuses admin routes then).
//! Every change needs a reason and is audited in the statement making it.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `` `?status=&limit=` | recent payments |
//! | GET | `/summary?months=12` | revenue per category, refund rate, chargebacks per month |
//! | GET | `/refunds?status=requested` | refunds (the manual-review queue) |
//! | POST | `/{payment}/refunds` `{amount_cents?, reason}` | refund now (all that is left by default) |
//! | POST | `/refunds/{id}/approve` `{reason}`, `/refunds/{id}/reject` `{reason}` | decide a request |
//! | GET | `/disputes`, `/disputes/{id}/evidence` | chargebacks and their evidence package |
//! | GET | `/discrepancies` | what the reconciliation found |
//! | GET | `/events?limit=` | the Stripe events received (no payloads) |
//! | GET | `/products`, PUT `/products/{kind}` `{price_cents, duration_days?, active?, reason}` | promotion prices (`manage_system`: ops) |

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;
use village_platform::admin::{Actor, parse_body, parse_limit, require_reason};
use village_platform::audit::AuditEntry;
use village_platform::blob::BlobStore;
use village_platform::cache::Cache;
use village_platform::error::FieldError;
use village_platform::sql::{Sql, SqlValue};
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::{ledger, refunds};

pub const PREFIX: &str = "/admin/api/payments";

pub struct AdminRequest<'a> {
    pub method: &'a http::Method,
    /// The path below [`PREFIX`].
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

pub struct Services<'a, S, C, B> {
    pub sql: &'a S,
    pub cache: &'a C,
    pub blobs: &'a B,
    pub now: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    amount_cents: Option<i64>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductBody {
    price_cents: Option<i64>,
    duration_days: Option<i64>,
    active: Option<bool>,
    reason: Option<String>,
}

/// The refund is recorded and approved; the scheduler's sweep queues it
/// if this did not.
fn queue_failed(e: village_jobs::JobsError) -> AppError {
    AppError::Internal(format!(
        "the refund is approved but queueing it failed: {e}"
    ))
}

fn ok(value: &serde_json::Value) -> Response {
    web::json(http::StatusCode::OK, value)
}

fn entry(ctx: &RequestContext, actor: &Actor, action: &str, target: String) -> AuditEntry {
    let mut e = AuditEntry::for_request(ctx, actor.user_id, action);
    e.actor_label = actor.label.clone();
    e.target_type = Some("payment".into());
    e.target_id = Some(target);
    e
}

/// Rows of a `SELECT to_jsonb(..) AS doc` as a JSON list.
async fn docs(
    sql: &impl Sql,
    statement: &str,
    params: &[SqlValue],
) -> Result<serde_json::Value, AppError> {
    let rows = sql.query(statement, params).await?;
    Ok(serde_json::Value::Array(
        rows.iter()
            .map(|r| r.get::<serde_json::Value>("doc"))
            .collect::<Result<_, _>>()?,
    ))
}

fn query(req: &AdminRequest<'_>, name: &str) -> Option<String> {
    web::query_param(req.query.as_bytes(), name)
}

pub async fn handle<S: Sql, C: Cache, B: BlobStore>(
    req: AdminRequest<'_>,
    s: &Services<'_, S, C, B>,
    actor: &Actor,
    ctx: &RequestContext,
) -> Result<Response, AppError> {
    use http::Method as M;
    let sql = s.sql;
    let segments = web::path_segments(req.path);
    match (req.method, segments.as_slice()) {
        (&M::GET, []) => {
            let limit = parse_limit(query(&req, "limit").as_deref(), 50, 500)?;
            let status = query(&req, "status");
            let list = docs(
                sql,
                "SELECT to_jsonb(p) || jsonb_build_object('listing_title', l.title, 'category', c.name) AS doc \
                 FROM payments p LEFT JOIN marketplace_listings l ON l.id = p.listing_id \
                 JOIN marketplace_categories c ON c.id = p.category_id \
                 WHERE ($1::text IS NULL OR p.status = $1) ORDER BY p.created_at DESC LIMIT $2",
                &[
                    status.map_or(SqlValue::Null, SqlValue::Text),
                    SqlValue::Int64(limit),
                ],
            )
            .await?;
            Ok(ok(&serde_json::json!({ "payments": list })))
        }
        (&M::GET, ["summary"]) => {
            let months = match query(&req, "months") {
                None => 12,
                Some(m) => m
                    .parse::<i64>()
                    .ok()
                    .filter(|m| (1..=60).contains(m))
                    .ok_or_else(|| {
                        AppError::Validation(vec![FieldError::new("months", "from 1 to 60")])
                    })?,
            };
            let summary = ledger::summary(sql, months, s.now).await?;
            Ok(ok(&serde_json::to_value(summary).unwrap_or_default()))
        }
        (&M::GET, ["refunds"]) => {
            let limit = parse_limit(query(&req, "limit").as_deref(), 100, 500)?;
            let status = query(&req, "status");
            let list = refunds::list(sql, status.as_deref(), limit).await?;
            Ok(ok(&serde_json::json!({ "refunds": list })))
        }
        (&M::POST, [payment, "refunds"]) => {
            let payment = Uuid::parse_str(payment).map_err(|_| AppError::NotFound)?;
            let body: RefundBody = parse_body(req.body)?;
            let mut errors = Vec::new();
            let reason = require_reason(body.reason.as_deref(), &mut errors);
            if !errors.is_empty() {
                return Err(AppError::Validation(errors));
            }
            let mut e = entry(ctx, actor, "payment.refund", payment.to_string());
            e.reason = Some(reason.clone());
            let id = refunds::by_staff(sql, &e, payment, body.amount_cents, &reason, s.now).await?;
            refunds::enqueue(sql, s.cache, &[id], s.now)
                .await
                .map_err(queue_failed)?;
            Ok(web::json(
                http::StatusCode::CREATED,
                &serde_json::json!({ "refund_id": id, "status": "approved" }),
            ))
        }
        (&M::POST, ["refunds", id, decision @ ("approve" | "reject")]) => {
            let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
            let body: DecisionBody = parse_body(req.body)?;
            let mut errors = Vec::new();
            let reason = require_reason(body.reason.as_deref(), &mut errors);
            if !errors.is_empty() {
                return Err(AppError::Validation(errors));
            }
            let approve = *decision == "approve";
            let mut e = entry(ctx, actor, &format!("refund.{decision}"), id.to_string());
            e.target_type = Some("payment_refund".into());
            e.reason = Some(reason.clone());
            refunds::decide(sql, &e, id, approve, &reason, s.now).await?;
            if approve {
                refunds::enqueue(sql, s.cache, &[id], s.now)
                    .await
                    .map_err(queue_failed)?;
            }
            Ok(ok(&serde_json::json!({
                "refund_id": id, "status": if approve { "approved" } else { "rejected" }
            })))
        }
        (&M::GET, ["disputes"]) => {
            let list = docs(
                sql,
                "SELECT to_jsonb(d) AS doc FROM payment_disputes d ORDER BY d.id DESC LIMIT 200",
                &[],
            )
            .await?;
            Ok(ok(&serde_json::json!({ "disputes": list })))
        }
        (&M::GET, ["disputes", id, "evidence"]) => {
            let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
            let key: Option<String> = sql
                .query_opt(
                    "SELECT evidence_key FROM payment_disputes WHERE id = $1",
                    &[SqlValue::Int64(id)],
                )
                .await?
                .ok_or(AppError::NotFound)?
                .get("evidence_key")?;
            let key = key.ok_or_else(|| {
                AppError::Conflict("the evidence package is still being gathered".into())
            })?;
            let blob = s
                .blobs
                .get(&key)
                .await
                .map_err(|e| AppError::Internal(format!("reading evidence: {e}")))?
                .ok_or(AppError::NotFound)?;
            let mut r = http::Response::new(blob.bytes);
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        (&M::GET, ["discrepancies"]) => {
            let list = docs(
                sql,
                "SELECT to_jsonb(d) || jsonb_build_object('day', d.day::text) AS doc \
                 FROM payment_discrepancies d ORDER BY d.day DESC, d.id DESC LIMIT 500",
                &[],
            )
            .await?;
            let runs = docs(
                sql,
                "SELECT jsonb_build_object('day', day::text, 'transactions', transactions, \
                     'discrepancies', discrepancies, 'finished_at', finished_at) AS doc \
                 FROM payment_reconciliations ORDER BY day DESC LIMIT 60",
                &[],
            )
            .await?;
            Ok(ok(
                &serde_json::json!({ "discrepancies": list, "reconciliations": runs }),
            ))
        }
        (&M::GET, ["events"]) => {
            let limit = parse_limit(query(&req, "limit").as_deref(), 100, 500)?;
            let list = docs(
                sql,
                "SELECT jsonb_build_object('id', id, 'type', type, 'created', created, \
                     'received_at', received_at, 'processed_at', processed_at, 'failed_at', failed_at, \
                     'outcome', outcome) AS doc \
                 FROM stripe_events ORDER BY received_at DESC, id LIMIT $1",
                &[SqlValue::Int64(limit)],
            )
            .await?;
            Ok(ok(&serde_json::json!({ "events": list })))
        }
        (&M::GET, ["products"]) => {
            let list = docs(
                sql,
                "SELECT to_jsonb(p) AS doc FROM payment_products p ORDER BY kind",
                &[],
            )
            .await?;
            Ok(ok(&serde_json::json!({ "products": list })))
        }
        (&M::PUT, ["products", kind]) => {
            let body: ProductBody = parse_body(req.body)?;
            let mut errors = Vec::new();
            let reason = require_reason(body.reason.as_deref(), &mut errors);
            let price = body.price_cents.filter(|p| (50..=100_000).contains(p));
            if price.is_none() {
                errors.push(FieldError::new("price_cents", "from 50 to 100000"));
            }
            let bump = *kind == "bump";
            let days = match (bump, body.duration_days) {
                (true, None) => None,
                (true, Some(_)) => {
                    errors.push(FieldError::new("duration_days", "a bump has no duration"));
                    None
                }
                (false, Some(d)) if (1..=365).contains(&d) => Some(d),
                (false, _) => {
                    errors.push(FieldError::new("duration_days", "from 1 to 365"));
                    None
                }
            };
            if !errors.is_empty() {
                return Err(AppError::Validation(errors));
            }
            let mut e = entry(ctx, actor, "payment.product", (*kind).to_owned());
            e.target_type = Some("payment_product".into());
            e.reason = Some(reason);
            let changed = sql
                .query(
                    "WITH old AS (SELECT to_jsonb(p) AS before FROM payment_products p WHERE kind = $1), \
                          new AS (UPDATE payment_products SET price_cents = $2::bigint, \
                                      duration_days = $3::bigint, active = coalesce($4::boolean, active), \
                                      updated_at = $5::timestamp \
                                  WHERE kind = $1 RETURNING to_jsonb(payment_products) AS after) \
                     SELECT new.after AS doc, audit_record($6, old.before, new.after) AS audit_id \
                     FROM new, old",
                    &[
                        SqlValue::Text((*kind).to_owned()),
                        price.map_or(SqlValue::Null, SqlValue::Int64),
                        days.map_or(SqlValue::Null, SqlValue::Int64),
                        body.active.map_or(SqlValue::Null, SqlValue::Bool),
                        SqlValue::Timestamp(s.now),
                        e.as_param(),
                    ],
                )
                .await?;
            let product = changed.first().ok_or(AppError::NotFound)?;
            Ok(ok(&product.get::<serde_json::Value>("doc")?))
        }
        _ => Err(AppError::NotFound),
    }
}
