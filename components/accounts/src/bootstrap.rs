//! `/bootstrap`: the first signed-in user to ask becomes the first
//! `super_admin` — once. After that the route answers 403 for ever (the
//! `bootstrap_grant` table holds at most one row, even if that admin's role
//! is later removed). Attempts are rate limited per IP before this runs
//! (the `bootstrap` rule of `village_ratelimit`, failing closed when Redis is
//! down), and every grant and refusal is audited.

use uuid::Uuid;
use village_platform::audit;
use village_platform::sql::{Sql, SqlValue};
use village_platform::{AppError, RequestContext};

use crate::authz;

/// Whether a bootstrap may still happen.
pub async fn is_open(sql: &impl Sql) -> Result<bool, AppError> {
    let row = sql
        .query_opt(
            "SELECT NOT EXISTS (SELECT 1 FROM bootstrap_grant) \
                AND NOT EXISTS (SELECT 1 FROM user_roles WHERE role = 'super_admin') AS open",
            &[],
        )
        .await?;
    Ok(match row {
        Some(r) => r.get("open")?,
        None => false,
    })
}

/// Grants `super_admin` to the signed-in caller if nobody ever was granted
/// it. One statement: two simultaneous callers cannot both win.
pub async fn grant(sql: &impl Sql, ctx: &RequestContext) -> Result<Uuid, AppError> {
    let principal = ctx.principal.clone().ok_or(AppError::Unauthorized)?;
    if principal.impersonator.is_some() {
        authz::refuse_while_impersonating(sql, ctx, "bootstrap").await?;
    }
    let user = principal.user_id;
    let won = sql
        .query_opt(
            "WITH g AS ( \
                 INSERT INTO bootstrap_grant (singleton, user_id) \
                 SELECT true, $1 WHERE NOT EXISTS (SELECT 1 FROM user_roles WHERE role = 'super_admin') \
                 ON CONFLICT (singleton) DO NOTHING RETURNING user_id), \
             r AS ( \
                 INSERT INTO user_roles (user_id, role, granted_by, reason) \
                 SELECT user_id, 'super_admin', user_id, 'bootstrap' FROM g \
                 ON CONFLICT (user_id, role) DO NOTHING) \
             SELECT user_id FROM g",
            &[SqlValue::Uuid(user)],
        )
        .await?;
    let mut e = authz::entry(ctx, Some(user), "bootstrap.grant");
    e.target_type = Some("user".into());
    e.target_id = Some(user.to_string());
    if won.is_some() {
        e.reason = Some("first super_admin".into());
        e.after = Some(serde_json::json!({ "roles": ["super_admin"] }));
        audit::record(sql, &e).await?;
        Ok(user)
    } else {
        e.action = "bootstrap.refused".into();
        e.reason = Some("a super_admin already exists".into());
        audit::record(sql, &e).await?;
        Err(AppError::Forbidden(
            "bootstrap is closed: an administrator already exists".into(),
        ))
    }
}
