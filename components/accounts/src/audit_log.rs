//! `/admin/api/audit`: a filtered, paginated read of the audit log, newest
//! first, paged by id so new rows never shift a page.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use village_platform::audit::AuditEntry;
use village_platform::sql::{Sql, SqlError, SqlValue};
use village_platform::{AppError, FieldError};

use crate::admin_users::parse_limit;

/// The filters, as parsed from the query string.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor: Option<Uuid>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub before: Option<i64>,
    pub limit: i64,
}

impl AuditQuery {
    /// Parses `action`, `actor`, `target_type`, `target_id`, `since`,
    /// `until` (RFC 3339), `before` (an id) and `limit`; reports every bad
    /// field at once.
    pub fn parse(query: &str) -> Result<Self, AppError> {
        let mut q = AuditQuery::default();
        let mut errors = Vec::new();
        let mut limit = None;
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "action" => q.action = Some(v),
                "target_type" => q.target_type = Some(v),
                "target_id" => q.target_id = Some(v),
                "actor" => match Uuid::try_parse(&v) {
                    Ok(id) => q.actor = Some(id),
                    Err(_) => errors.push(FieldError::new("actor", "not a user id")),
                },
                "since" | "until" => match DateTime::parse_from_rfc3339(&v) {
                    Ok(t) => {
                        let t = t.with_timezone(&Utc);
                        if k == "since" {
                            q.since = Some(t)
                        } else {
                            q.until = Some(t)
                        }
                    }
                    Err(_) => errors.push(FieldError::new(k.as_ref(), "not an RFC 3339 time")),
                },
                "before" => match v.parse::<i64>() {
                    Ok(id) => q.before = Some(id),
                    Err(_) => errors.push(FieldError::new("before", "not an audit entry id")),
                },
                "limit" => limit = Some(v),
                other => errors.push(FieldError::new(other, "unknown filter")),
            }
        }
        match parse_limit(limit.as_deref()) {
            Ok(n) => q.limit = n,
            Err(AppError::Validation(mut e)) => errors.append(&mut e),
            Err(e) => return Err(e),
        }
        if errors.is_empty() {
            Ok(q)
        } else {
            Err(AppError::Validation(errors))
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

#[derive(Debug, Serialize)]
pub struct AuditPage {
    pub entries: Vec<AuditRow>,
    /// Pass as `before` for the next (older) page.
    pub next_before: Option<i64>,
}

pub async fn read(sql: &impl Sql, q: &AuditQuery) -> Result<AuditPage, AppError> {
    let text = |v: &Option<String>| v.clone().map(SqlValue::Text).unwrap_or(SqlValue::Null);
    let rows = sql
        .query(
            "SELECT id, occurred_at, actor_user_id, actor_label, action, target_type, target_id, \
                    reason, before, after, ip, user_agent, trace_id \
             FROM audit_log \
             WHERE ($1::text IS NULL OR action = $1) \
               AND ($2::uuid IS NULL OR actor_user_id = $2) \
               AND ($3::text IS NULL OR target_type = $3) \
               AND ($4::text IS NULL OR target_id = $4) \
               AND ($5::timestamp IS NULL OR occurred_at >= $5) \
               AND ($6::timestamp IS NULL OR occurred_at < $6) \
               AND ($7::bigint IS NULL OR id < $7) \
             ORDER BY id DESC LIMIT $8",
            &[
                text(&q.action),
                q.actor.map(SqlValue::Uuid).unwrap_or(SqlValue::Null),
                text(&q.target_type),
                text(&q.target_id),
                q.since.map(SqlValue::Timestamp).unwrap_or(SqlValue::Null),
                q.until.map(SqlValue::Timestamp).unwrap_or(SqlValue::Null),
                q.before.map(SqlValue::Int64).unwrap_or(SqlValue::Null),
                SqlValue::Int64(q.limit + 1),
            ],
        )
        .await?;
    let mut entries = rows
        .iter()
        .map(|r| {
            Ok(AuditRow {
                id: r.get("id")?,
                occurred_at: r.get("occurred_at")?,
                entry: AuditEntry {
                    actor_user_id: r.get("actor_user_id")?,
                    actor_label: r.get("actor_label")?,
                    action: r.get("action")?,
                    target_type: r.get("target_type")?,
                    target_id: r.get("target_id")?,
                    reason: r.get("reason")?,
                    before: r.get("before")?,
                    after: r.get("after")?,
                    ip: r.get("ip")?,
                    user_agent: r.get("user_agent")?,
                    trace_id: r.get("trace_id")?,
                },
            })
        })
        .collect::<Result<Vec<_>, SqlError>>()?;
    let next_before = if entries.len() as i64 > q.limit {
        entries.truncate(q.limit as usize);
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(AuditPage {
        entries,
        next_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters_and_reports_every_bad_one() {
        let q = AuditQuery::parse("action=role.grant&limit=10&since=2026-11-01T00:00:00Z")
            .expect("parses");
        assert_eq!(q.action.as_deref(), Some("role.grant"));
        assert_eq!(q.limit, 10);
        assert!(q.since.is_some());
        match AuditQuery::parse("actor=bob&since=yesterday&limit=0&colour=red") {
            Err(AppError::Validation(errors)) => {
                let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(fields, ["actor", "since", "colour", "limit"]);
            }
            other => panic!("expected field errors, got {other:?}"),
        }
    }
}
