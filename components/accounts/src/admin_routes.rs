//! Routing for `/admin/api/users/...` and `/admin/api/impersonation`.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use village_platform::session::{ACCESS_COOKIE, SESSION_COOKIE_MAX_AGE, SigningKey};
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::admin_users::{self, ReasonBody, RoleBody, parse_limit};
use crate::authz::authorize;
use crate::impersonation::{self, StartBody};
use village_platform::admin::parse_body;

pub struct AdminRequest<'a> {
    pub method: &'a http::Method,
    /// The full path, e.g. `/admin/api/users/<id>/roles`.
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

fn user_id(s: &str) -> Result<Uuid, AppError> {
    Uuid::try_parse(s).map_err(|_| AppError::NotFound)
}

fn ok<T: serde::Serialize>(v: &T) -> Result<Response, AppError> {
    Ok(web::json(http::StatusCode::OK, v))
}

fn with_access_cookie(mut r: Response, token: &str, secure: bool) -> Response {
    let c = web::cookie(
        ACCESS_COOKIE,
        token,
        "/",
        SESSION_COOKIE_MAX_AGE,
        secure,
        false,
    );
    if let Ok(v) = http::HeaderValue::from_str(&c) {
        r.headers_mut().append(http::header::SET_COOKIE, v);
    }
    r
}

pub async fn handle(
    req: AdminRequest<'_>,
    sql: &impl Sql,
    key: Option<&SigningKey>,
    cookie_secure: bool,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    let key =
        || key.ok_or_else(|| AppError::Internal("session_signing_key is not configured".into()));
    let rest = req.path.trim_end_matches('/');
    // Stopping is the one admin action open while impersonating: it is
    // checked against the real admin behind the session, not a role.
    if rest == "/admin/api/impersonation" && req.method == http::Method::DELETE {
        let token = impersonation::stop(sql, key()?, ctx, now).await?;
        let r = web::json(
            http::StatusCode::OK,
            &serde_json::json!({ "impersonating": null }),
        );
        return Ok(with_access_cookie(r, &token, cookie_secure));
    }
    let admin = authorize(sql, ctx, req.method.as_str(), rest).await?;
    if rest == "/admin/api/impersonation" {
        if req.method != http::Method::POST {
            return Err(AppError::MethodNotAllowed {
                allowed: "POST, DELETE",
            });
        }
        let body: StartBody = parse_body(req.body)?;
        let (target, token) = impersonation::start(sql, key()?, ctx, &admin, &body, now).await?;
        let r = web::json(
            http::StatusCode::OK,
            &serde_json::json!({ "impersonating": target }),
        );
        return Ok(with_access_cookie(r, &token, cookie_secure));
    }
    let segments: Vec<&str> = rest
        .strip_prefix("/admin/api/users")
        .unwrap_or_default()
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let m = req.method;
    match segments.as_slice() {
        [] if m == http::Method::GET => {
            let q: Vec<(String, String)> = url::form_urlencoded::parse(req.query.as_bytes())
                .into_owned()
                .collect();
            let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let limit = parse_limit(get("limit"))?;
            ok(&admin_users::search(sql, get("q"), limit, get("after")).await?)
        }
        [id] if m == http::Method::GET => ok(&admin_users::view(sql, user_id(id)?).await?),
        [id, "roles"] if m == http::Method::POST => {
            let body: RoleBody = parse_body(req.body)?;
            let roles = admin_users::assign_role(sql, ctx, &admin, user_id(id)?, &body).await?;
            ok(&serde_json::json!({ "roles": roles }))
        }
        [id, "roles", role] if m == http::Method::DELETE => {
            let body: ReasonBody = parse_body(req.body)?;
            let roles =
                admin_users::remove_role(sql, ctx, &admin, user_id(id)?, role, &body).await?;
            ok(&serde_json::json!({ "roles": roles }))
        }
        [id, "sessions", "revoke"] if m == http::Method::POST => {
            let body: ReasonBody = parse_body(req.body)?;
            let n =
                admin_users::revoke_sessions(sql, ctx, &admin, user_id(id)?, &body, now).await?;
            ok(&serde_json::json!({ "revoked": n }))
        }
        _ => Err(AppError::NotFound),
    }
}
