//! `/admin/api/rate-limits` (permission `manage_system`, checked before):
//! view rules, bans and recent violations; set a rule; lift a ban. Every
//! change needs a reason and is written with its audit row by one
//! statement (the SQL function `audit_record`, migration V12).

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use village_platform::admin::{is_snake_key, parse_body, parse_limit, require_reason};
use village_platform::audit::AuditEntry;
use village_platform::cache::Cache;
use village_platform::error::FieldError;
use village_platform::sql::{Sql, SqlError, SqlValue};
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::rules::{self, FailMode, Rule, Scope};

pub struct RateLimitsRequest<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    pub limit_count: Option<i64>,
    pub window_seconds: Option<i64>,
    pub fail_mode: Option<FailMode>,
    pub ban_after_violations: Option<i64>,
    pub ban_seconds: Option<i64>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
struct Ban {
    id: i64,
    action: String,
    scope: String,
    subject: String,
    reason: String,
    created_at: chrono::DateTime<chrono::Utc>,
    expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize)]
struct Violation {
    id: i64,
    action: String,
    scope: String,
    subject: String,
    occurred_at: chrono::DateTime<chrono::Utc>,
    violations: i64,
}

/// Validates a whole rule (a `PUT` replaces it), every error at once.
fn validate(action: &str, scope: Scope, b: RuleBody) -> Result<(Rule, String), AppError> {
    let mut errors = Vec::new();
    if !is_snake_key(action) {
        errors.push(FieldError::new("action", "lowercase letters, digits and _"));
    }
    let mut int = |name: &str, v: Option<i64>, max: i64, required: bool| -> Option<u32> {
        match v {
            Some(n) if (1..=max).contains(&n) => Some(n as u32),
            Some(_) => {
                errors.push(FieldError::new(name, format!("1 to {max}")));
                None
            }
            None if required => {
                errors.push(FieldError::new(name, "required"));
                None
            }
            None => None,
        }
    };
    let limit_count = int("limit_count", b.limit_count, 1_000_000_000, true);
    let window_seconds = int("window_seconds", b.window_seconds, 86_400, true);
    let ban_after_violations = int(
        "ban_after_violations",
        b.ban_after_violations,
        1_000_000,
        false,
    );
    let ban_seconds = int("ban_seconds", b.ban_seconds, 30 * 86_400, false);
    if ban_after_violations.is_some() != ban_seconds.is_some() {
        errors.push(FieldError::new(
            "ban_seconds",
            "ban_after_violations and ban_seconds go together",
        ));
    }
    if b.fail_mode.is_none() {
        errors.push(FieldError::new("fail_mode", "required: open or closed"));
    }
    if b.description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 500)
    {
        errors.push(FieldError::new("description", "at most 500 characters"));
    }
    let reason = require_reason(b.reason.as_deref(), &mut errors);
    match (limit_count, window_seconds, b.fail_mode) {
        (Some(limit_count), Some(window_seconds), Some(fail_mode)) if errors.is_empty() => Ok((
            Rule {
                action: action.to_owned(),
                scope,
                limit_count,
                window_seconds,
                fail_mode,
                ban_after_violations,
                ban_seconds,
                enabled: b.enabled.unwrap_or(true),
                description: b.description.unwrap_or_default(),
            },
            reason,
        )),
        _ => Err(AppError::Validation(errors)),
    }
}

fn audit_json(
    ctx: &RequestContext,
    actor: Option<Uuid>,
    action: &str,
    target: &str,
    reason: &str,
) -> SqlValue {
    let mut e = AuditEntry::for_request(ctx, actor, action);
    e.target_type = Some("rate_limit".into());
    e.target_id = Some(target.to_owned());
    e.reason = Some(reason.to_owned());
    e.as_param()
}

pub async fn handle(
    req: RateLimitsRequest<'_>,
    sql: &impl Sql,
    cache: &impl Cache,
    ctx: &RequestContext,
    actor: Option<Uuid>,
) -> Result<Response, AppError> {
    let rest = req
        .path
        .trim_end_matches('/')
        .strip_prefix("/admin/api/rate-limits")
        .ok_or(AppError::NotFound)?;
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let m = req.method;
    match segments.as_slice() {
        [] if m == http::Method::GET => Ok(web::json(
            http::StatusCode::OK,
            &serde_json::json!({
                "rules": rules::load(sql).await?,
                "bans": active_bans(sql).await?,
            }),
        )),
        ["violations"] if m == http::Method::GET => {
            let limit = web::query_param(req.query.as_bytes(), "limit");
            let limit = parse_limit(limit.as_deref(), 100, 500)?;
            Ok(web::json(
                http::StatusCode::OK,
                &serde_json::json!({ "violations": violations(sql, limit).await? }),
            ))
        }
        ["rules", action, scope] if m == http::Method::PUT => {
            let scope: Scope = scope
                .parse()
                .map_err(|e: String| AppError::Validation(vec![FieldError::new("scope", e)]))?;
            let (rule, reason) = validate(action, scope, parse_body(req.body)?)?;
            let answer = put_rule(sql, ctx, actor, &rule, &reason).await?;
            rules::invalidate(cache).await;
            Ok(web::json(http::StatusCode::OK, &answer))
        }
        ["bans", id] if m == http::Method::DELETE => {
            let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
            let body: ReasonBody = parse_body(req.body)?;
            let mut errors = Vec::new();
            let reason = require_reason(body.reason.as_deref(), &mut errors);
            if !errors.is_empty() {
                return Err(AppError::Validation(errors));
            }
            let lifted = lift_ban(sql, ctx, actor, id, &reason).await?;
            // The ban's Redis key and its violation count go too.
            for what in ["ban", "violations"] {
                let key = crate::limiter::subject_key(
                    cache,
                    &lifted.action,
                    &lifted.scope,
                    &lifted.subject,
                    what,
                );
                let _ = cache.execute("DEL", &[key.into()]).await;
            }
            Ok(web::json(http::StatusCode::OK, &lifted))
        }
        [] => Err(AppError::MethodNotAllowed { allowed: "GET" }),
        ["rules", _, _] => Err(AppError::MethodNotAllowed { allowed: "PUT" }),
        ["bans", _] => Err(AppError::MethodNotAllowed { allowed: "DELETE" }),
        _ => Err(AppError::NotFound),
    }
}

async fn active_bans(sql: &impl Sql) -> Result<Vec<Ban>, SqlError> {
    sql.query(
        "SELECT id, action, scope, subject, reason, created_at, expires_at FROM rate_limit_bans \
         WHERE lifted_at IS NULL AND expires_at > now() ORDER BY created_at DESC LIMIT 500",
        &[],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Ban {
            id: r.get("id")?,
            action: r.get("action")?,
            scope: r.get("scope")?,
            subject: r.get("subject")?,
            reason: r.get("reason")?,
            created_at: r.get("created_at")?,
            expires_at: r.get("expires_at")?,
        })
    })
    .collect()
}

async fn violations(sql: &impl Sql, limit: i64) -> Result<Vec<Violation>, SqlError> {
    sql.query(
        "SELECT id, action, scope, subject, occurred_at, violations FROM rate_limit_violations \
         ORDER BY id DESC LIMIT $1",
        &[SqlValue::Int64(limit)],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Violation {
            id: r.get("id")?,
            action: r.get("action")?,
            scope: r.get("scope")?,
            subject: r.get("subject")?,
            occurred_at: r.get("occurred_at")?,
            violations: r.get("violations")?,
        })
    })
    .collect()
}

fn opt_int(v: Option<u32>) -> SqlValue {
    v.map_or(SqlValue::Null, |n| SqlValue::Int32(n as i32))
}

async fn put_rule(
    sql: &impl Sql,
    ctx: &RequestContext,
    actor: Option<Uuid>,
    rule: &Rule,
    reason: &str,
) -> Result<serde_json::Value, AppError> {
    let target = format!("{}/{}", rule.action, rule.scope);
    let row = sql
        .query_opt(
            "WITH old AS ( \
                 SELECT rate_limit_rule_json(r) AS j FROM rate_limit_rules r \
                 WHERE action = $1 AND scope = $2), \
             up AS ( \
                 INSERT INTO rate_limit_rules (action, scope, limit_count, window_seconds, \
                     fail_mode, ban_after_violations, ban_seconds, enabled, description, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now()) \
                 ON CONFLICT (action, scope) DO UPDATE SET limit_count = EXCLUDED.limit_count, \
                     window_seconds = EXCLUDED.window_seconds, fail_mode = EXCLUDED.fail_mode, \
                     ban_after_violations = EXCLUDED.ban_after_violations, \
                     ban_seconds = EXCLUDED.ban_seconds, enabled = EXCLUDED.enabled, \
                     description = EXCLUDED.description, updated_at = now() \
                 RETURNING rate_limit_rule_json(rate_limit_rules) AS j), \
             audit AS (SELECT audit_record($10, (SELECT j FROM old), up.j) AS id FROM up) \
             SELECT (SELECT j FROM old) AS before, up.j AS after FROM up, audit",
            &[
                SqlValue::Text(rule.action.clone()),
                SqlValue::Text(rule.scope.as_str().into()),
                SqlValue::Int32(rule.limit_count as i32),
                SqlValue::Int32(rule.window_seconds as i32),
                SqlValue::Text(
                    match rule.fail_mode {
                        FailMode::Open => "open",
                        FailMode::Closed => "closed",
                    }
                    .into(),
                ),
                opt_int(rule.ban_after_violations),
                opt_int(rule.ban_seconds),
                SqlValue::Bool(rule.enabled),
                SqlValue::Text(rule.description.clone()),
                audit_json(ctx, actor, "rate_limit.rule_set", &target, reason),
            ],
        )
        .await?
        .ok_or_else(|| AppError::Internal("rule upsert returned no row".into()))?;
    let before: Option<serde_json::Value> = row.get("before")?;
    let after: serde_json::Value = row.get("after")?;
    Ok(serde_json::json!({ "before": before, "rule": after }))
}

#[derive(Debug, Serialize)]
struct Lifted {
    id: i64,
    action: String,
    scope: String,
    subject: String,
}

async fn lift_ban(
    sql: &impl Sql,
    ctx: &RequestContext,
    actor: Option<Uuid>,
    id: i64,
    reason: &str,
) -> Result<Lifted, AppError> {
    let row = sql
        .query_opt(
            "WITH lifted AS ( \
                 UPDATE rate_limit_bans SET lifted_at = now(), lifted_by = $2, lift_reason = $3 \
                 WHERE id = $1 AND lifted_at IS NULL \
                 RETURNING id, action, scope, subject, expires_at), \
             audit AS ( \
                 SELECT audit_record($4, \
                     jsonb_build_object('ban', l.id, 'action', l.action, 'scope', l.scope, \
                                        'subject', l.subject, 'expires_at', utc_text(l.expires_at)), \
                     jsonb_build_object('lifted', true)) AS id \
                 FROM lifted l) \
             SELECT l.id, l.action, l.scope, l.subject FROM lifted l, audit",
            &[
                SqlValue::Int64(id),
                actor.map_or(SqlValue::Null, SqlValue::Uuid),
                SqlValue::Text(reason.to_owned()),
                audit_json(
                    ctx,
                    actor,
                    "rate_limit.ban_lift",
                    &format!("ban/{id}"),
                    reason,
                ),
            ],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Lifted {
        id: row.get("id")?,
        action: row.get("action")?,
        scope: row.get("scope")?,
        subject: row.get("subject")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> RuleBody {
        serde_json::from_value(v).expect("body")
    }

    #[test]
    fn a_rule_is_validated_whole() {
        let Err(AppError::Validation(errors)) = validate(
            "sign_in",
            Scope::Ip,
            body(serde_json::json!({"limit_count": 0, "ban_seconds": 60})),
        ) else {
            panic!("invalid")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "limit_count",
                "window_seconds",
                "ban_seconds",
                "fail_mode",
                "reason"
            ]
        );
        let (rule, reason) = validate(
            "sign_in",
            Scope::Ip,
            body(serde_json::json!({"limit_count": 10, "window_seconds": 60,
                "fail_mode": "closed", "reason": "brute force seen"})),
        )
        .expect("valid");
        assert_eq!((rule.limit_count, rule.enabled), (10, true));
        assert_eq!(reason, "brute force seen");
    }
}
