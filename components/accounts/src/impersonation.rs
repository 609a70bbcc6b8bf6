//! Impersonation: `support` and `super_admin` may act as a non-admin user to
//! see what they see. The session itself records whom it impersonates, so
//! every access token it issues — including refreshed ones — says so, and
//! revoking the admin's session ends the impersonation too. Start and stop
//! are audited with actor, target, IP and user agent.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;
use village_platform::audit;
use village_platform::session::{self, SigningKey};
use village_platform::sql::{Sql, SqlValue};
use village_platform::{AppError, FieldError, RequestContext};

use crate::authz::{self, Admin, roles_of};
use village_platform::admin::require_reason;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Starts impersonating; returns the new access token (acting as the target).
pub async fn start(
    sql: &impl Sql,
    key: &SigningKey,
    ctx: &RequestContext,
    admin: &Admin,
    body: &StartBody,
    now: DateTime<Utc>,
) -> Result<(Uuid, String), AppError> {
    let mut errors = Vec::new();
    let target = match body.user_id.as_deref().map(Uuid::try_parse) {
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            errors.push(FieldError::new("user_id", "not a user id"));
            None
        }
        None => {
            errors.push(FieldError::new(
                "user_id",
                "the user to impersonate is required",
            ));
            None
        }
    };
    let reason = require_reason(body.reason.as_deref(), &mut errors);
    let Some(target) = target.filter(|_| errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    let exists = sql
        .query_opt(
            "SELECT 1 AS one FROM users WHERE id = $1 AND NOT is_anonymous",
            &[SqlValue::Uuid(target)],
        )
        .await?;
    if exists.is_none() {
        return Err(AppError::NotFound);
    }
    let target_roles = roles_of(sql, target).await?;
    let mut e = authz::entry(ctx, Some(admin.user_id), "impersonation.start");
    e.target_type = Some("user".into());
    e.target_id = Some(target.to_string());
    e.reason = Some(reason);
    if target == admin.user_id || !target_roles.is_empty() {
        e.action = "impersonation.refused".into();
        e.after = Some(serde_json::json!({ "target_roles": target_roles }));
        audit::record(sql, &e).await?;
        return Err(AppError::Forbidden(
            "only users without admin roles can be impersonated".into(),
        ));
    }
    sql.execute(
        "UPDATE sessions SET impersonating_user_id = $2 WHERE id = $1 AND revoked_at IS NULL",
        &[SqlValue::Uuid(admin.session_id), SqlValue::Uuid(target)],
    )
    .await?;
    audit::record(sql, &e).await?;
    let token = session::issue_access(key, target, admin.session_id, Some(admin.user_id), now)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((target, token))
}

/// Stops impersonating; returns the admin's own access token again.
pub async fn stop(
    sql: &impl Sql,
    key: &SigningKey,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<String, AppError> {
    let principal = ctx.principal.clone().ok_or(AppError::Unauthorized)?;
    let Some(real) = principal.impersonator else {
        return Err(AppError::Conflict(
            "you are not impersonating anyone".into(),
        ));
    };
    sql.execute(
        "UPDATE sessions SET impersonating_user_id = NULL WHERE id = $1",
        &[SqlValue::Uuid(principal.session_id)],
    )
    .await?;
    let mut e = authz::entry(ctx, Some(real), "impersonation.stop");
    e.target_type = Some("user".into());
    e.target_id = Some(principal.user_id.to_string());
    audit::record(sql, &e).await?;
    session::issue_access(key, real, principal.session_id, None, now)
        .map_err(|e| AppError::Internal(e.to_string()))
}
