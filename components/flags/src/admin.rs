//! `/admin/api/flags`: list, view, create and change flags. Who may call it
//! is decided before (permission `manage_flags`); here every change needs a
//! reason, and the change and its audit row (before and after) are written
//! by one statement (the SQL function `audit_record`, migration V12), so no
//! flag changes without its trail.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use village_platform::admin::{is_snake_key, parse_body, require_reason};
use village_platform::audit::AuditEntry;
use village_platform::cache::Cache;
use village_platform::error::FieldError;
use village_platform::sql::{Sql, SqlError, SqlValue};
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::model::FlagDef;
use crate::store;

const MAX_DESCRIPTION: usize = 500;
const MAX_ALLOW_LIST: usize = 1_000;

pub struct FlagsRequest<'a> {
    pub method: &'a http::Method,
    /// The full path, e.g. `/admin/api/flags/stocks_widget`.
    pub path: &'a str,
    pub body: &'a [u8],
}

/// A create or change: every field optional here, checked by [`validate`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagBody {
    pub key: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub rollout_percent: Option<i64>,
    pub allow_user_ids: Option<Vec<String>>,
    pub kill_switch: Option<bool>,
    pub reason: Option<String>,
}

/// A validated change.
#[derive(Debug, Clone, PartialEq)]
struct Change {
    description: Option<String>,
    enabled: Option<bool>,
    rollout_percent: Option<i32>,
    allow_user_ids: Option<Vec<Uuid>>,
    kill_switch: Option<bool>,
    reason: String,
}

/// Checks every field at once; `creating` requires a key.
fn validate(body: FlagBody, creating: bool) -> Result<(Option<String>, Change), AppError> {
    let mut errors = Vec::new();
    let key = match (body.key, creating) {
        (Some(k), true) if is_snake_key(&k) => Some(k),
        (Some(_), true) => {
            errors.push(FieldError::new(
                "key",
                "2–63 characters: a lowercase letter, then lowercase letters, digits or _",
            ));
            None
        }
        (None, true) => {
            errors.push(FieldError::new("key", "required"));
            None
        }
        (Some(_), false) => {
            errors.push(FieldError::new("key", "a flag's key cannot be changed"));
            None
        }
        (None, false) => None,
    };
    if let Some(d) = &body.description
        && d.chars().count() > MAX_DESCRIPTION
    {
        errors.push(FieldError::new(
            "description",
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    let rollout_percent = match body.rollout_percent {
        Some(p) if (0..=100).contains(&p) => Some(p as i32),
        Some(_) => {
            errors.push(FieldError::new("rollout_percent", "0 to 100"));
            None
        }
        None => None,
    };
    let allow_user_ids = body.allow_user_ids.map(|ids| {
        if ids.len() > MAX_ALLOW_LIST {
            errors.push(FieldError::new(
                "allow_user_ids",
                format!("at most {MAX_ALLOW_LIST} users"),
            ));
        }
        ids.iter()
            .enumerate()
            .filter_map(|(i, s)| match Uuid::try_parse(s) {
                Ok(u) => Some(u),
                Err(_) => {
                    errors.push(FieldError::new(
                        format!("allow_user_ids[{i}]"),
                        "not a user id",
                    ));
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    let reason = require_reason(body.reason.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    Ok((
        key,
        Change {
            description: body.description.map(|d| d.trim().to_owned()),
            enabled: body.enabled,
            rollout_percent,
            allow_user_ids,
            kill_switch: body.kill_switch,
            reason,
        },
    ))
}

/// A flag with how it has been answered lately: what ops look at when they
/// correlate an incident with a rollout.
#[derive(Debug, Serialize)]
struct FlagView {
    #[serde(flatten)]
    flag: FlagDef,
    evaluations_24h: Counts,
}

#[derive(Debug, Serialize)]
struct Counts {
    on: i64,
    off: i64,
}

fn ok<T: Serialize>(status: http::StatusCode, v: &T) -> Result<Response, AppError> {
    Ok(web::json(status, v))
}

pub async fn handle(
    req: FlagsRequest<'_>,
    sql: &impl Sql,
    cache: &impl Cache,
    ctx: &RequestContext,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    let rest = req
        .path
        .trim_end_matches('/')
        .strip_prefix("/admin/api/flags")
        .ok_or(AppError::NotFound)?;
    let m = req.method;
    match rest.trim_start_matches('/') {
        "" if m == http::Method::GET => ok(
            http::StatusCode::OK,
            &serde_json::json!({ "flags": store::load(sql).await? }),
        ),
        "" if m == http::Method::POST => {
            let (key, change) = validate(parse_body(req.body)?, true)?;
            let key = key.ok_or_else(|| AppError::Internal("validated key missing".into()))?;
            let flag = create(sql, ctx, actor, &key, &change).await?;
            store::invalidate(cache).await;
            ok(http::StatusCode::CREATED, &flag)
        }
        "" => Err(AppError::MethodNotAllowed {
            allowed: "GET, POST",
        }),
        key if key.contains('/') => Err(AppError::NotFound),
        key if m == http::Method::GET => {
            let flag = store::load(sql)
                .await?
                .into_iter()
                .find(|f| f.key == key)
                .ok_or(AppError::NotFound)?;
            let evaluations_24h = counts(sql, key, now - Duration::hours(24)).await?;
            ok(
                http::StatusCode::OK,
                &FlagView {
                    flag,
                    evaluations_24h,
                },
            )
        }
        key if m == http::Method::PATCH => {
            let (_, change) = validate(parse_body(req.body)?, false)?;
            let (before, after) = update(sql, ctx, actor, key, &change).await?;
            store::invalidate(cache).await;
            ok(
                http::StatusCode::OK,
                &serde_json::json!({ "before": before, "flag": after }),
            )
        }
        _ => Err(AppError::MethodNotAllowed {
            allowed: "GET, PATCH",
        }),
    }
}

async fn counts(sql: &impl Sql, key: &str, since: DateTime<Utc>) -> Result<Counts, SqlError> {
    let row = sql
        .query_opt(
            "SELECT count(*) FILTER (WHERE result) AS on_count, \
                    count(*) FILTER (WHERE NOT result) AS off_count \
             FROM feature_flag_evaluations WHERE flag_key = $1 AND evaluated_at > $2",
            &[SqlValue::Text(key.to_owned()), SqlValue::Timestamp(since)],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("count returned no row".into()))?;
    Ok(Counts {
        on: row.get("on_count")?,
        off: row.get("off_count")?,
    })
}

fn audit_json(
    ctx: &RequestContext,
    actor: Option<Uuid>,
    action: &str,
    key: &str,
    reason: &str,
) -> SqlValue {
    let mut entry = AuditEntry::for_request(ctx, actor, action);
    entry.target_type = Some("feature_flag".into());
    entry.target_id = Some(key.to_owned());
    entry.reason = Some(reason.to_owned());
    entry.as_param()
}

impl Change {
    /// `$1`–`$7` of the create and update statements: the key, each field
    /// (NULL when the change leaves it alone) and the audit entry.
    fn params(&self, key: &str, audit: SqlValue) -> [SqlValue; 7] {
        let or_null = |v: Option<SqlValue>| v.unwrap_or(SqlValue::Null);
        [
            SqlValue::Text(key.to_owned()),
            or_null(self.description.clone().map(SqlValue::Text)),
            or_null(self.enabled.map(SqlValue::Bool)),
            or_null(self.rollout_percent.map(SqlValue::Int32)),
            or_null(
                self.allow_user_ids
                    .as_ref()
                    .map(|ids| SqlValue::Json(serde_json::json!(ids))),
            ),
            or_null(self.kill_switch.map(SqlValue::Bool)),
            audit,
        ]
    }
}

fn decode_flag(v: serde_json::Value) -> Result<FlagDef, SqlError> {
    serde_json::from_value(v).map_err(|e| SqlError::Decode(format!("feature flag: {e}")))
}

async fn create(
    sql: &impl Sql,
    ctx: &RequestContext,
    actor: Option<Uuid>,
    key: &str,
    c: &Change,
) -> Result<FlagDef, AppError> {
    let row = sql
        .query_opt(
            "WITH ins AS ( \
                 INSERT INTO feature_flags \
                     (key, description, enabled, rollout_percent, allow_user_ids, kill_switch) \
                 VALUES ($1, coalesce($2, ''), coalesce($3, false), coalesce($4::int, 0), \
                         ARRAY(SELECT jsonb_array_elements_text(coalesce($5::jsonb, '[]'))::uuid), \
                         coalesce($6, false)) \
                 ON CONFLICT (key) DO NOTHING \
                 RETURNING feature_flag_json(feature_flags) AS j), \
             audit AS (SELECT audit_record($7, NULL, ins.j) AS id FROM ins) \
             SELECT ins.j AS flag FROM ins, audit",
            &c.params(key, audit_json(ctx, actor, "flag.create", key, &c.reason)),
        )
        .await?
        .ok_or_else(|| AppError::Conflict(format!("the flag `{key}` exists")))?;
    Ok(decode_flag(row.get("flag")?)?)
}

async fn update(
    sql: &impl Sql,
    ctx: &RequestContext,
    actor: Option<Uuid>,
    key: &str,
    c: &Change,
) -> Result<(FlagDef, FlagDef), AppError> {
    let row = sql
        .query_opt(
            "WITH old AS ( \
                 SELECT feature_flag_json(f) AS j FROM feature_flags f WHERE key = $1), \
             upd AS ( \
                 UPDATE feature_flags SET \
                     description = coalesce($2, description), \
                     enabled = coalesce($3, enabled), \
                     rollout_percent = coalesce($4::int, rollout_percent), \
                     allow_user_ids = CASE WHEN $5::jsonb IS NULL THEN allow_user_ids \
                         ELSE ARRAY(SELECT jsonb_array_elements_text($5::jsonb)::uuid) END, \
                     kill_switch = coalesce($6, kill_switch), \
                     updated_at = now() \
                 WHERE key = $1 \
                 RETURNING feature_flag_json(feature_flags) AS j), \
             audit AS (SELECT audit_record($7, old.j, upd.j) AS id FROM upd, old) \
             SELECT old.j AS before, upd.j AS after FROM upd, old, audit",
            &c.params(key, audit_json(ctx, actor, "flag.update", key, &c.reason)),
        )
        .await?
        .ok_or(AppError::NotFound)?;
    Ok((
        decode_flag(row.get("before")?)?,
        decode_flag(row.get("after")?)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> FlagBody {
        serde_json::from_value(json).expect("body")
    }

    #[test]
    fn a_create_needs_a_valid_key_and_a_reason_and_reports_every_bad_field() {
        let Err(AppError::Validation(errors)) = validate(
            body(serde_json::json!({
                "key": "Bad-Key", "rollout_percent": 101,
                "allow_user_ids": ["not-a-uuid"], "reason": " "
            })),
            true,
        ) else {
            panic!("invalid")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["key", "rollout_percent", "allow_user_ids[0]", "reason"]
        );
    }

    #[test]
    fn a_change_cannot_rename_and_keeps_what_it_does_not_mention() {
        assert!(
            validate(
                body(serde_json::json!({"key": "x_y", "reason": "r"})),
                false
            )
            .is_err()
        );
        let (key, change) = validate(
            body(serde_json::json!({"rollout_percent": 25, "reason": "widen"})),
            false,
        )
        .expect("valid");
        assert_eq!(key, None);
        assert_eq!(change.rollout_percent, Some(25));
        assert_eq!(change.enabled, None);
        assert_eq!(change.allow_user_ids, None);
    }
}
