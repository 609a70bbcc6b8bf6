//! `/admin/api/ai-budget` (permission `manage_system`, checked before):
//!
//! - `GET`: the month's limit, spend, level, what tagging may do now, the
//!   threshold notices and their delivery, and spend per purpose;
//! - `PUT {"limit_cents", "reason"}`: sets this month's limit (ops raise it
//!   to lift a stop); the change and its audit row are one statement.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use village_platform::admin::{parse_body, require_reason};
use village_platform::audit::AuditEntry;
use village_platform::error::FieldError;
use village_platform::sql::{Sql, SqlError};
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::budget::{self, Allowance, Budget, Level, Priority};
use crate::config::AiConfig;

/// The largest limit accepted: $10M a month, far past any real budget.
pub const MAX_LIMIT_CENTS: i64 = 1_000_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitBody {
    limit_cents: Option<i64>,
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
struct Notice {
    threshold: i32,
    channel: String,
    attempts: i32,
    delivered_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct PurposeSpend {
    purpose: String,
    calls: i64,
    items: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost_cents: f64,
}

#[derive(Debug, Serialize)]
struct State {
    month: String,
    limit_cents: i64,
    spent_cents: f64,
    used_percent: f64,
    level: Level,
    /// What non-critical work (news tagging) may do now.
    tagging: Allowance,
    notices: Vec<Notice>,
    by_purpose: Vec<PurposeSpend>,
}

async fn state(sql: &impl Sql, b: &Budget, now: DateTime<Utc>) -> Result<State, SqlError> {
    let month = budget::date(b.month);
    let notices = sql
        .query(
            "SELECT threshold, channel, attempts, delivered_at, last_error FROM ai_budget_notices \
             WHERE month = $1::text::date ORDER BY threshold, channel",
            std::slice::from_ref(&month),
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Notice {
                threshold: r.get("threshold")?,
                channel: r.get("channel")?,
                attempts: r.get("attempts")?,
                delivered_at: r.get("delivered_at")?,
                last_error: r.get("last_error")?,
            })
        })
        .collect::<Result<Vec<_>, SqlError>>()?;
    let by_purpose = sql
        .query(
            "SELECT purpose, count(*) AS calls, sum(items)::bigint AS items, \
                    sum(input_tokens)::bigint AS input_tokens, \
                    sum(output_tokens)::bigint AS output_tokens, \
                    sum(cost_microcents)::bigint AS cost \
             FROM ai_usage WHERE month = $1::text::date GROUP BY purpose ORDER BY purpose",
            &[month],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(PurposeSpend {
                purpose: r.get("purpose")?,
                calls: r.get("calls")?,
                items: r.get("items")?,
                input_tokens: r.get("input_tokens")?,
                output_tokens: r.get("output_tokens")?,
                cost_cents: r.get::<i64>("cost")? as f64 / 1e6,
            })
        })
        .collect::<Result<Vec<_>, SqlError>>()?;
    Ok(State {
        month: b.month.format("%Y-%m").to_string(),
        limit_cents: b.limit_cents,
        spent_cents: b.spent_cents(),
        used_percent: b.used_basis_points() as f64 / 100.0,
        level: b.level(),
        tagging: budget::allowance(b.level(), Priority::NonCritical, now),
        notices,
        by_purpose,
    })
}

fn validate(body: LimitBody) -> Result<(i64, String), AppError> {
    let mut errors = Vec::new();
    let limit = match body.limit_cents {
        Some(n) if (0..=MAX_LIMIT_CENTS).contains(&n) => Some(n),
        Some(_) => {
            errors.push(FieldError::new(
                "limit_cents",
                format!("whole cents from 0 to {MAX_LIMIT_CENTS}"),
            ));
            None
        }
        None => {
            errors.push(FieldError::new("limit_cents", "required"));
            None
        }
    };
    let reason = require_reason(body.reason.as_deref(), &mut errors);
    match limit {
        Some(l) if errors.is_empty() => Ok((l, reason)),
        _ => Err(AppError::Validation(errors)),
    }
}

pub struct BudgetRequest<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub body: &'a [u8],
}

pub async fn handle(
    req: BudgetRequest<'_>,
    sql: &impl Sql,
    config: &AiConfig,
    ctx: &RequestContext,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    let BudgetRequest { method, path, body } = req;
    if path.trim_end_matches('/') != "/admin/api/ai-budget" {
        return Err(AppError::NotFound);
    }
    match *method {
        http::Method::GET => {
            let b = budget::current(sql, now, config.default_limit_cents).await?;
            Ok(web::json(http::StatusCode::OK, &state(sql, &b, now).await?))
        }
        http::Method::PUT => {
            let (limit, reason) = validate(parse_body(body)?)?;
            let mut entry = AuditEntry::for_request(ctx, actor, "ai_budget.set_limit");
            entry.target_type = Some("ai_budget".into());
            entry.target_id = Some(budget::month_of(now).format("%Y-%m").to_string());
            entry.reason = Some(reason);
            let before = budget::set_limit(
                sql,
                now,
                limit,
                config.default_limit_cents,
                entry.as_param(),
            )
            .await?;
            let b = budget::current(sql, now, config.default_limit_cents).await?;
            Ok(web::json(
                http::StatusCode::OK,
                &serde_json::json!({
                    "before_limit_cents": before,
                    "budget": state(sql, &b, now).await?,
                }),
            ))
        }
        _ => Err(AppError::MethodNotAllowed {
            allowed: "GET, PUT",
        }),
    }
}
