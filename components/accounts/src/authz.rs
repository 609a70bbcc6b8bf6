//! Deciding whether a signed-in caller may use an admin route — and leaving a
//! trail when they may not.

use uuid::Uuid;
use village_platform::audit::{self, AuditEntry};
use village_platform::session::Principal;
use village_platform::sql::{Sql, SqlError, SqlValue};
use village_platform::{AppError, RequestContext};

use crate::roles::{self, Permission, Role};

/// The roles a user holds.
pub async fn roles_of(sql: &impl Sql, user_id: Uuid) -> Result<Vec<Role>, SqlError> {
    let rows = sql
        .query(
            "SELECT role FROM user_roles WHERE user_id = $1 ORDER BY role",
            &[SqlValue::Uuid(user_id)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            r.get::<String>("role")?
                .parse::<Role>()
                .map_err(SqlError::Decode)
        })
        .collect()
}

/// A caller who passed the check.
#[derive(Debug, Clone)]
pub struct Admin {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub roles: Vec<Role>,
    pub permission: Permission,
}

impl Admin {
    pub fn label(&self) -> String {
        format!("user:{}", self.user_id)
    }
}

/// An audit entry for `ctx`'s request (see `AuditEntry::for_request`).
pub fn entry(ctx: &RequestContext, actor: Option<Uuid>, action: &str) -> AuditEntry {
    AuditEntry::for_request(ctx, actor, action)
}

/// Allows `method path` when the route's permission (from
/// [`roles::ADMIN_ROUTES`]) is granted to the caller's roles. Every refusal
/// is audited: no session (401), impersonating (403: admin power is not
/// used while acting as somebody else), or a missing permission (403).
pub async fn authorize(
    sql: &impl Sql,
    ctx: &RequestContext,
    method: &str,
    path: &str,
) -> Result<Admin, AppError> {
    let required = roles::required_permission(method, path);
    let deny = async |actor: Option<Uuid>, action: &str, why: String, err: AppError| {
        let mut e = entry(ctx, actor, action);
        e.target_type = Some("route".into());
        e.target_id = Some(format!("{method} {path}"));
        e.reason = Some(why);
        e.after = Some(serde_json::json!({
            "permission": required.map(|p| p.as_str()),
            "impersonator": ctx.principal.as_ref().and_then(|p| p.impersonator),
        }));
        audit::record(sql, &e).await?;
        Err::<Admin, AppError>(err)
    };
    let Some(Principal {
        user_id,
        session_id,
        impersonator,
        ..
    }) = ctx.principal.clone()
    else {
        return deny(
            None,
            "permission.denied",
            "not signed in".into(),
            AppError::Unauthorized,
        )
        .await;
    };
    if let Some(real) = impersonator {
        return deny(
            Some(real),
            "impersonation.refused",
            format!("admin routes are closed while impersonating {user_id}"),
            AppError::Forbidden("not while impersonating; stop impersonating first".into()),
        )
        .await;
    }
    let Some(permission) = required else {
        return deny(
            Some(user_id),
            "permission.denied",
            "no permission is declared for this route".into(),
            AppError::Forbidden("this admin route is not open to anyone".into()),
        )
        .await;
    };
    let held = roles_of(sql, user_id).await?;
    if !roles::grants(&held, permission) {
        return deny(
            Some(user_id),
            "permission.denied",
            format!("needs {permission}"),
            AppError::Forbidden(format!("this needs the {permission} permission")),
        )
        .await;
    }
    Ok(Admin {
        user_id,
        session_id,
        roles: held,
        permission,
    })
}

/// Refuses `action` while the caller is impersonating, with an audit row.
/// Payments, GDPR deletion and role changes call this before acting.
pub async fn refuse_while_impersonating(
    sql: &impl Sql,
    ctx: &RequestContext,
    action: &str,
) -> Result<(), AppError> {
    let Some(p) = &ctx.principal else {
        return Ok(());
    };
    let Some(real) = p.impersonator else {
        return Ok(());
    };
    let mut e = entry(ctx, Some(real), "impersonation.refused");
    e.target_type = Some("user".into());
    e.target_id = Some(p.user_id.to_string());
    e.reason = Some(format!("{action} is not allowed while impersonating"));
    audit::record(sql, &e).await?;
    Err(AppError::Forbidden(format!(
        "{action} is not allowed while impersonating"
    )))
}
