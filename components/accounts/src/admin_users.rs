//! `/admin/api/users`: search and view users, assign and remove roles,
//! revoke sessions — every change with a reason, every change audited.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use village_platform::admin::require_reason;
use village_platform::audit::{self, AuditEntry};
use village_platform::sql::{Sql, SqlValue};
use village_platform::{AppError, FieldError, RequestContext};

use crate::authz::{self, Admin, roles_of};
use crate::roles::Role;
use crate::sessions;

/// Page size bounds for listings.
const MAX_LIMIT: i64 = 100;
const DEFAULT_LIMIT: i64 = 25;
/// Reasons are for humans reading the audit log; keep them readable.

#[derive(Debug, Serialize)]
pub struct UserSummary {
    pub id: Uuid,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub is_anonymous: bool,
    pub roles: Vec<Role>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct UserPage {
    pub users: Vec<UserSummary>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next: Option<String>,
}

/// `LIKE` pattern for a search term, with its wildcards escaped.
fn like_pattern(q: &str) -> String {
    let escaped = q
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The users and audit APIs' `limit`: 25 by default, at most 100.
pub fn parse_limit(v: Option<&str>) -> Result<i64, AppError> {
    village_platform::admin::parse_limit(v, DEFAULT_LIMIT, MAX_LIMIT)
}

/// Signed-in accounts matching `q` (e-mail or name), oldest first, paged by
/// keyset on `(created_at, id)` so pages stay stable while users sign up.
pub async fn search(
    sql: &impl Sql,
    q: Option<&str>,
    limit: i64,
    after: Option<&str>,
) -> Result<UserPage, AppError> {
    let cursor = match after {
        None => None,
        Some(a) => Some(parse_cursor(a).ok_or_else(|| {
            AppError::Validation(vec![FieldError::new(
                "after",
                "not a cursor from a previous page",
            )])
        })?),
    };
    let (after_time, after_id) = match cursor {
        Some((t, id)) => (SqlValue::Timestamp(t), SqlValue::Uuid(id)),
        None => (SqlValue::Null, SqlValue::Null),
    };
    let rows = sql
        .query(
            "SELECT u.id, u.email, u.display_name, u.is_anonymous, u.created_at, \
                    COALESCE(array_to_string(array_agg(r.role ORDER BY r.role) FILTER (WHERE r.role IS NOT NULL), ','), '') AS roles \
             FROM users u LEFT JOIN user_roles r ON r.user_id = u.id \
             WHERE NOT u.is_anonymous \
               AND ($1::text IS NULL OR u.email ILIKE $1 ESCAPE '\\' OR u.display_name ILIKE $1 ESCAPE '\\') \
               AND ($2::timestamp IS NULL OR (u.created_at, u.id) > ($2, $3::uuid)) \
             GROUP BY u.id ORDER BY u.created_at, u.id LIMIT $4",
            &[
                q.filter(|s| !s.trim().is_empty())
                    .map(|s| SqlValue::Text(like_pattern(s.trim())))
                    .unwrap_or(SqlValue::Null),
                after_time,
                after_id,
                SqlValue::Int64(limit + 1),
            ],
        )
        .await?;
    let mut users = rows
        .iter()
        .map(|r| {
            let roles: String = r.get("roles")?;
            Ok(UserSummary {
                id: r.get("id")?,
                email: r.get("email")?,
                display_name: r.get("display_name")?,
                is_anonymous: r.get("is_anonymous")?,
                roles: roles.split(',').filter_map(|s| s.parse().ok()).collect(),
                created_at: r.get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>, village_platform::sql::SqlError>>()?;
    let next = if users.len() as i64 > limit {
        users.truncate(limit as usize);
        users
            .last()
            .map(|u| format!("{}_{}", u.created_at.timestamp_micros(), u.id))
    } else {
        None
    };
    Ok(UserPage { users, next })
}

fn parse_cursor(s: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = s.split_once('_')?;
    Some((
        DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        Uuid::try_parse(id).ok()?,
    ))
}

#[derive(Debug, Serialize)]
pub struct Identity {
    pub provider: String,
    pub email: Option<String>,
    pub last_login_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct UserDetail {
    #[serde(flatten)]
    pub user: UserSummary,
    pub identities: Vec<Identity>,
    pub live_sessions: i64,
}

pub async fn view(sql: &impl Sql, id: Uuid) -> Result<UserDetail, AppError> {
    let row = sql
        .query_opt(
            "SELECT id, email, display_name, is_anonymous, created_at, \
                    (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL \
                       AND s.expires_at > now()) AS live_sessions \
             FROM users u WHERE id = $1",
            &[SqlValue::Uuid(id)],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let identities = sql
        .query(
            "SELECT provider, email, last_login_at FROM user_identities WHERE user_id = $1 ORDER BY provider",
            &[SqlValue::Uuid(id)],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Identity {
                provider: r.get("provider")?,
                email: r.get("email")?,
                last_login_at: r.get("last_login_at")?,
            })
        })
        .collect::<Result<Vec<_>, village_platform::sql::SqlError>>()?;
    Ok(UserDetail {
        user: UserSummary {
            id: row.get("id")?,
            email: row.get("email")?,
            display_name: row.get("display_name")?,
            is_anonymous: row.get("is_anonymous")?,
            roles: roles_of(sql, id).await?,
            created_at: row.get("created_at")?,
        },
        identities,
        live_sessions: row.get("live_sessions")?,
    })
}

/// A body carrying the reason an admin gives for a change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Validates a role change: a known role and a reason, every error at once.
fn role_change(role: Option<&str>, reason: Option<&str>) -> Result<(Role, String), AppError> {
    let mut errors = Vec::new();
    let role = match role.map(str::parse::<Role>) {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            errors.push(FieldError::new("role", e));
            None
        }
        None => {
            errors.push(FieldError::new("role", "a role is required"));
            None
        }
    };
    let reason = require_reason(reason, &mut errors);
    match role {
        Some(role) if errors.is_empty() => Ok((role, reason)),
        _ => Err(AppError::Validation(errors)),
    }
}

async fn ensure_account(sql: &impl Sql, id: Uuid) -> Result<(), AppError> {
    let exists = sql
        .query_opt(
            "SELECT 1 AS one FROM users WHERE id = $1 AND NOT is_anonymous",
            &[SqlValue::Uuid(id)],
        )
        .await?;
    exists.map(drop).ok_or(AppError::NotFound)
}

fn role_audit(
    ctx: &RequestContext,
    admin: &Admin,
    action: &str,
    target: Uuid,
    reason: String,
    before: &[Role],
    after: &[Role],
) -> AuditEntry {
    let mut e = authz::entry(ctx, Some(admin.user_id), action);
    e.target_type = Some("user".into());
    e.target_id = Some(target.to_string());
    e.reason = Some(reason);
    e.before = Some(serde_json::json!({ "roles": before }));
    e.after = Some(serde_json::json!({ "roles": after }));
    e
}

/// Grants `role`; granting one already held changes nothing but is audited.
pub async fn assign_role(
    sql: &impl Sql,
    ctx: &RequestContext,
    admin: &Admin,
    target: Uuid,
    body: &RoleBody,
) -> Result<Vec<Role>, AppError> {
    let (role, reason) = role_change(body.role.as_deref(), body.reason.as_deref())?;
    authz::refuse_while_impersonating(sql, ctx, "changing roles").await?;
    ensure_account(sql, target).await?;
    let before = roles_of(sql, target).await?;
    sql.execute(
        "INSERT INTO user_roles (user_id, role, granted_by, reason) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, role) DO NOTHING",
        &[
            SqlValue::Uuid(target),
            SqlValue::Text(role.as_str().into()),
            SqlValue::Uuid(admin.user_id),
            SqlValue::Text(reason.clone()),
        ],
    )
    .await?;
    let after = roles_of(sql, target).await?;
    audit::record(
        sql,
        &role_audit(ctx, admin, "role.grant", target, reason, &before, &after),
    )
    .await?;
    Ok(after)
}

/// Removes `role`. The last super_admin cannot be removed: that would leave
/// nobody able to grant roles, and `/bootstrap` only works once.
pub async fn remove_role(
    sql: &impl Sql,
    ctx: &RequestContext,
    admin: &Admin,
    target: Uuid,
    role: &str,
    body: &ReasonBody,
) -> Result<Vec<Role>, AppError> {
    let (role, reason) = role_change(Some(role), body.reason.as_deref())?;
    authz::refuse_while_impersonating(sql, ctx, "changing roles").await?;
    ensure_account(sql, target).await?;
    let before = roles_of(sql, target).await?;
    if !before.contains(&role) {
        return Err(AppError::NotFound);
    }
    let removed = sql
        .execute(
            "DELETE FROM user_roles WHERE user_id = $1 AND role = $2 \
               AND ($2 <> 'super_admin' OR \
                    (SELECT count(*) FROM user_roles WHERE role = 'super_admin') > 1)",
            &[SqlValue::Uuid(target), SqlValue::Text(role.as_str().into())],
        )
        .await?;
    if removed == 0 {
        return Err(AppError::Conflict(
            "the last super_admin cannot be removed".into(),
        ));
    }
    let after = roles_of(sql, target).await?;
    audit::record(
        sql,
        &role_audit(ctx, admin, "role.revoke", target, reason, &before, &after),
    )
    .await?;
    Ok(after)
}

/// Ends every live session of `target`.
pub async fn revoke_sessions(
    sql: &impl Sql,
    ctx: &RequestContext,
    admin: &Admin,
    target: Uuid,
    body: &ReasonBody,
    now: DateTime<Utc>,
) -> Result<u64, AppError> {
    let mut errors = Vec::new();
    let reason = require_reason(body.reason.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    ensure_account(sql, target).await?;
    let n = sessions::revoke_all(sql, target, "revoked_by_admin", now).await?;
    let mut e = authz::entry(ctx, Some(admin.user_id), "session.revoke_all");
    e.target_type = Some("user".into());
    e.target_id = Some(target.to_string());
    e.reason = Some(reason);
    e.after = Some(serde_json::json!({ "revoked": n }));
    audit::record(sql, &e).await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_cannot_inject_wildcards() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = Uuid::new_v4();
        let t = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time");
        assert_eq!(
            parse_cursor(&format!("{}_{id}", t.timestamp_micros())),
            Some((t, id))
        );
        assert_eq!(parse_cursor("nope"), None);
    }
}
