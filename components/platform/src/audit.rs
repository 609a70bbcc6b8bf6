//! The audit log: who did what to what, when, why, from where. Every admin
//! change and every denial writes one row (`audit_log`).

use crate::sql::{Sql, SqlError, SqlValue};

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub actor_user_id: Option<uuid::Uuid>,
    /// Who, in words that stay meaningful after a user is deleted.
    pub actor_label: String,
    /// Dotted verb, e.g. `queue.pause`, `job.requeue`.
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub reason: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub trace_id: Option<String>,
}

impl AuditEntry {
    /// An entry for the request behind `ctx`: its IP, user agent and trace,
    /// and `actor` (labelled `user:<id>`, or `anonymous`).
    pub fn for_request(
        ctx: &crate::RequestContext,
        actor: Option<uuid::Uuid>,
        action: &str,
    ) -> Self {
        AuditEntry {
            actor_user_id: actor,
            actor_label: actor.map_or_else(|| "anonymous".to_owned(), |u| format!("user:{u}")),
            action: action.to_owned(),
            ip: ctx.client_ip.clone(),
            user_agent: ctx.user_agent.clone(),
            trace_id: Some(ctx.trace_id.clone()),
            ..AuditEntry::default()
        }
    }
}

impl AuditEntry {
    /// The entry as one JSON parameter, for the SQL function
    /// `audit_record(entry, before, after)` (migration V12): a statement can
    /// then write a change and its audit row together.
    pub fn as_param(&self) -> SqlValue {
        SqlValue::Json(serde_json::to_value(self).unwrap_or_default())
    }
}

fn opt_text(v: &Option<String>) -> SqlValue {
    v.clone().map(SqlValue::Text).unwrap_or(SqlValue::Null)
}

fn opt_json(v: &Option<serde_json::Value>) -> SqlValue {
    v.clone().map(SqlValue::Json).unwrap_or(SqlValue::Null)
}

pub async fn record(sql: &impl Sql, e: &AuditEntry) -> Result<i64, SqlError> {
    let row = sql
        .query_opt(
            "INSERT INTO audit_log (actor_user_id, actor_label, action, target_type, target_id, reason, \
                 before, after, ip, user_agent, trace_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            &[
                e.actor_user_id.map(SqlValue::Uuid).unwrap_or(SqlValue::Null),
                SqlValue::Text(e.actor_label.clone()),
                SqlValue::Text(e.action.clone()),
                opt_text(&e.target_type),
                opt_text(&e.target_id),
                opt_text(&e.reason),
                opt_json(&e.before),
                opt_json(&e.after),
                opt_text(&e.ip),
                opt_text(&e.user_agent),
                opt_text(&e.trace_id),
            ],
        )
        .await?;
    row.ok_or_else(|| SqlError::Decode("INSERT … RETURNING gave no row".into()))?
        .get("id")
}
