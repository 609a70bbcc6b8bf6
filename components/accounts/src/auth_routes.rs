//! The `/auth/...` routes: sign-in start and callback per provider, the
//! merge consent page, refresh, logout and a JSON view of the session.
//! The `auth` function hands every request here with its ports and settings.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use village_platform::audit;
use village_platform::http_client::HttpClient;
use village_platform::session::{self, ACCESS_COOKIE, REFRESH_COOKIE, SigningKey};
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AnonId, AppError, RequestContext};

use crate::login::{self, Callback, Origin, STATE_COOKIE, safe_return_to};
use crate::merge::{self, Decision};
use crate::oidc::{LoginError, Provider, ProviderConfig};
use crate::sessions::{self, RefreshError};
use crate::{authz, pages};

/// The auth component's settings.
pub struct AuthSettings {
    /// Where this site is served, e.g. `https://village.example`: the base of
    /// every `redirect_uri` (never taken from the request's Host header).
    pub public_base_url: String,
    pub providers: Vec<ProviderConfig>,
    pub signing_key: Option<SigningKey>,
    pub cookie_secure: bool,
}

impl AuthSettings {
    fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        let p: Provider = name.parse().ok()?;
        self.providers.iter().find(|c| c.provider == p)
    }

    fn redirect_uri(&self, p: Provider) -> String {
        format!(
            "{}/auth/{}/callback",
            self.public_base_url.trim_end_matches('/'),
            p.as_str()
        )
    }

    fn key(&self) -> Result<&SigningKey, AppError> {
        self.signing_key.as_ref().ok_or_else(|| {
            AppError::Internal("session_signing_key is missing or shorter than 32 bytes".into())
        })
    }
}

/// One request to `/auth/...`, decoded by the function.
pub struct AuthRequest<'a> {
    pub method: &'a http::Method,
    /// The path below `/auth`, e.g. `/google/login`.
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

fn pairs(s: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(s).into_owned().collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn set_cookie(r: &mut Response, value: String) {
    if let Ok(v) = http::HeaderValue::from_str(&value) {
        r.headers_mut().append(http::header::SET_COOKIE, v);
    }
}

/// Sets the access and refresh cookies. The access cookie outlives its JWT
/// so a page can tell "expired, refresh me" from "never signed in".
fn set_session_cookies(r: &mut Response, access: &str, refresh: Option<&str>, secure: bool) {
    let max_age = village_platform::session::SESSION_COOKIE_MAX_AGE;
    set_cookie(
        r,
        web::cookie(ACCESS_COOKIE, access, "/", max_age, secure, false),
    );
    if let Some(refresh) = refresh {
        set_cookie(
            r,
            web::cookie(REFRESH_COOKIE, refresh, "/auth", max_age, secure, false),
        );
    }
}

fn clear_session_cookies(r: &mut Response, secure: bool) {
    set_cookie(r, web::expired_cookie(ACCESS_COOKIE, "/", secure));
    set_cookie(r, web::expired_cookie(REFRESH_COOKIE, "/auth", secure));
}

fn page(status: http::StatusCode, html: String) -> Response {
    let mut r = web::html(status, html);
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

fn origin(ctx: &RequestContext) -> Origin {
    Origin {
        ip: ctx.client_ip.clone(),
        user_agent: ctx.user_agent.clone(),
    }
}

pub async fn handle(
    req: AuthRequest<'_>,
    settings: &AuthSettings,
    sql: &impl Sql,
    http: &impl HttpClient,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    // The same reading of the path the rate limits use (`path_segments`).
    let segments = village_platform::web::path_segments(req.path);
    let m = req.method;
    match segments.as_slice() {
        [provider, "login"] if m == http::Method::GET => {
            start(&req, settings, sql, ctx, provider, now).await
        }
        [provider, "callback"] if m == http::Method::GET || m == http::Method::POST => {
            callback(&req, settings, sql, http, ctx, provider, now).await
        }
        ["merge"] if m == http::Method::GET => merge_page(sql, ctx, now).await,
        ["merge"] if m == http::Method::POST => merge_decision(&req, settings, sql, ctx, now).await,
        ["refresh"] if m == http::Method::GET || m == http::Method::POST => {
            refresh(&req, settings, sql, ctx, now).await
        }
        ["logout"] if m == http::Method::POST => logout(settings, sql, ctx, now).await,
        ["session"] if m == http::Method::GET => session_info(sql, ctx).await,
        [_, "login"] | ["session"] => Err(AppError::MethodNotAllowed { allowed: "GET" }),
        [_, "callback"] | ["merge"] | ["refresh"] => Err(AppError::MethodNotAllowed {
            allowed: "GET, POST",
        }),
        ["logout"] => Err(AppError::MethodNotAllowed { allowed: "POST" }),
        _ => Err(AppError::NotFound),
    }
}

async fn start(
    req: &AuthRequest<'_>,
    settings: &AuthSettings,
    sql: &impl Sql,
    ctx: &RequestContext,
    provider: &str,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    let cfg = settings.provider(provider).ok_or(AppError::NotFound)?;
    let query = pairs(req.query.as_bytes());
    let return_to = safe_return_to(param(&query, "return_to"));
    // A visitor whose id was minted by this very request owns no data.
    let anon = (!ctx.anon_id_is_new).then_some(ctx.anon_id);
    let started = login::start(
        sql,
        cfg,
        &settings.redirect_uri(cfg.provider),
        anon,
        &return_to,
        now,
    )
    .await
    .map_err(login_error_to_app)?;
    let mut r = web::see_other(&started.redirect);
    set_cookie(
        &mut r,
        web::cookie(
            STATE_COOKIE,
            &started.state,
            "/auth",
            login::ATTEMPT_TTL_MINUTES * 60,
            settings.cookie_secure,
            // Apple posts the callback cross-site.
            cfg.provider == Provider::Apple,
        ),
    );
    Ok(r)
}

fn login_error_to_app(e: LoginError) -> AppError {
    match e {
        LoginError::Sql(e) => e.into(),
        other => AppError::Internal(other.to_string()),
    }
}

async fn callback(
    req: &AuthRequest<'_>,
    settings: &AuthSettings,
    sql: &impl Sql,
    http: &impl HttpClient,
    ctx: &RequestContext,
    provider: &str,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    let cfg = settings.provider(provider).ok_or(AppError::NotFound)?;
    let key = settings.key()?;
    // Apple's form_post puts the answer in the body; the others in the query.
    let fields = if req.method == http::Method::POST {
        pairs(req.body)
    } else {
        pairs(req.query.as_bytes())
    };
    let cb = Callback {
        code: param(&fields, "code").map(str::to_owned),
        state: param(&fields, "state").map(str::to_owned),
        error: param(&fields, "error").map(str::to_owned),
    };
    let cookie_state = web::cookie_value(req.headers, STATE_COOKIE);
    let result = login::finish(
        sql,
        http,
        cfg,
        &settings.redirect_uri(cfg.provider),
        &cb,
        cookie_state.as_deref(),
        &origin(ctx),
        now,
    )
    .await;
    let signed_in = match result {
        Ok(s) => s,
        Err(e) => return sign_in_failed(sql, ctx, cfg.provider, e).await,
    };
    let access = session::issue_access(
        key,
        signed_in.user_id,
        signed_in.session.session_id,
        None,
        now,
    )
    .map_err(|e| AppError::Internal(e.to_string()))?;
    let mut entry = authz::entry(ctx, Some(signed_in.user_id), "auth.sign_in");
    entry.target_type = Some("user".into());
    entry.target_id = Some(signed_in.user_id.to_string());
    entry.after = Some(serde_json::json!({
        "provider": cfg.provider.as_str(),
        "new_account": signed_in.created,
        "session": signed_in.session.session_id,
        "merge_offered": signed_in.merge_offer.is_some(),
    }));
    audit::record(sql, &entry).await?;
    let next = if signed_in.merge_offer.is_some() {
        "/auth/merge".to_owned()
    } else {
        signed_in.return_to.clone()
    };
    let mut r = web::see_other(&next);
    set_session_cookies(
        &mut r,
        &access,
        Some(&signed_in.session.refresh_token),
        settings.cookie_secure,
    );
    set_cookie(
        &mut r,
        web::expired_cookie(STATE_COOKIE, "/auth", settings.cookie_secure),
    );
    Ok(r)
}

/// Audits a failed sign-in and shows a page saying what to do next.
async fn sign_in_failed(
    sql: &impl Sql,
    ctx: &RequestContext,
    provider: Provider,
    e: LoginError,
) -> Result<Response, AppError> {
    if e.is_server_fault() {
        return Err(login_error_to_app(e));
    }
    let mut entry = authz::entry(ctx, None, "auth.sign_in_failed");
    entry.target_type = Some("provider".into());
    entry.target_id = Some(provider.as_str().into());
    entry.reason = Some(e.reason().into());
    entry.after = Some(serde_json::json!({ "detail": e.to_string() }));
    audit::record(sql, &entry).await?;
    village_platform::log::event(
        "WARNING",
        "sign-in failed",
        serde_json::json!({ "provider": provider.as_str(), "reason": e.reason(), "trace_id": ctx.trace_id }),
    );
    let (status, message) = match e {
        LoginError::Http(_) => (
            http::StatusCode::BAD_GATEWAY,
            format!("{} could not be reached. Please try again in a moment.", provider.display_name()),
        ),
        LoginError::ProviderDenied(_) => (
            http::StatusCode::BAD_REQUEST,
            format!("{} did not sign you in.", provider.display_name()),
        ),
        _ => (
            http::StatusCode::BAD_REQUEST,
            "This sign-in could not be verified, so we did not sign you in. It may have expired or been started in another browser.".to_owned(),
        ),
    };
    let login = format!("/auth/{}/login", provider.as_str());
    Ok(page(
        status,
        pages::message("Sign-in failed", &message, &login, "Try again")?,
    ))
}

async fn merge_page(
    sql: &impl Sql,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    let principal = ctx.principal.as_ref().ok_or(AppError::Unauthorized)?;
    match merge::pending(sql, principal.user_id, now).await? {
        Some(offer) => Ok(page(http::StatusCode::OK, pages::merge(&offer)?)),
        None => Ok(web::see_other("/")),
    }
}

async fn merge_decision(
    req: &AuthRequest<'_>,
    settings: &AuthSettings,
    sql: &impl Sql,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    let principal = ctx.principal.as_ref().ok_or(AppError::Unauthorized)?;
    let form = pairs(req.body);
    let mut errors = Vec::new();
    let offer = param(&form, "offer").and_then(|o| Uuid::try_parse(o).ok());
    if offer.is_none() {
        errors.push(village_platform::FieldError::new(
            "offer",
            "missing or not an offer id",
        ));
    }
    let decision = match param(&form, "decision") {
        Some("accept") => Some(Decision::Accept),
        Some("decline") => Some(Decision::Decline),
        _ => {
            errors.push(village_platform::FieldError::new(
                "decision",
                "must be accept or decline",
            ));
            None
        }
    };
    let (Some(offer), Some(decision)) = (offer, decision) else {
        return Err(AppError::Validation(errors));
    };
    merge::decide(sql, offer, principal.user_id, decision, &origin(ctx), now)
        .await
        .map_err(|e| match e {
            merge::MergeError::NoSuchOffer => AppError::Conflict(e.to_string()),
            merge::MergeError::Sql(e) => e.into(),
        })?;
    // Either way this browser stops pointing at the anonymous data.
    let mut r = web::see_other("/");
    set_cookie(
        &mut r,
        web::anon_cookie(AnonId::generate(), settings.cookie_secure),
    );
    Ok(r)
}

#[derive(Serialize)]
struct Refreshed {
    refreshed: bool,
}

/// Whether a GET comes from our own pages (or the address bar): Fetch
/// Metadata says so, or — a client that sends none — is no browser a
/// cross-site page could drive.
fn same_origin_navigation(headers: &http::HeaderMap) -> bool {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => matches!(site, "same-origin" | "none"),
        None => true,
    }
}

async fn refresh(
    req: &AuthRequest<'_>,
    settings: &AuthSettings,
    sql: &impl Sql,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    let key = settings.key()?;
    let query = pairs(req.query.as_bytes());
    // A navigation (or our continue form, which names where to go back to)
    // is answered with a redirect; a script's POST with JSON.
    let browser = req.method == http::Method::GET || param(&query, "return_to").is_some();
    let return_to = safe_return_to(param(&query, "return_to"));
    if req.method == http::Method::GET && !same_origin_navigation(req.headers) {
        // A page on another site may link or redirect here, but may not
        // make the browser spend its refresh token: one click on our own
        // form (a same-origin POST) continues.
        return Ok(web::html(
            http::StatusCode::OK,
            pages::continue_refresh(&return_to)?,
        ));
    }
    let token = web::cookie_value(req.headers, REFRESH_COOKIE);
    let outcome = match token.as_deref() {
        Some(t) => sessions::rotate(sql, key, t, now).await,
        None => Err(RefreshError::Unknown),
    };
    match outcome {
        Ok(rotated) => {
            let (sub, imp) = match rotated.impersonating {
                Some(target) => (target, Some(rotated.user_id)),
                None => (rotated.user_id, None),
            };
            let access = session::issue_access(key, sub, rotated.session_id, imp, now)
                .map_err(|e| AppError::Internal(e.to_string()))?;
            let mut r = if browser {
                web::see_other(&return_to)
            } else {
                web::json(http::StatusCode::OK, &Refreshed { refreshed: true })
            };
            set_session_cookies(
                &mut r,
                &access,
                Some(&rotated.refresh_token),
                settings.cookie_secure,
            );
            Ok(r)
        }
        Err(RefreshError::Sql(e)) => Err(e.into()),
        Err(e) => {
            if let RefreshError::Reused {
                session_id,
                user_id,
            } = &e
            {
                let mut entry = authz::entry(ctx, Some(*user_id), "auth.refresh_reuse");
                entry.target_type = Some("session".into());
                entry.target_id = Some(session_id.to_string());
                entry.reason =
                    Some("a spent refresh token was presented; the session is revoked".into());
                audit::record(sql, &entry).await?;
            }
            // Signed out either way: drop the cookies and carry on anonymous.
            let mut r = if browser {
                web::see_other(&return_to)
            } else {
                AppError::Unauthorized.to_problem()
            };
            clear_session_cookies(&mut r, settings.cookie_secure);
            Ok(r)
        }
    }
}

async fn logout(
    settings: &AuthSettings,
    sql: &impl Sql,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    if let Some(p) = &ctx.principal {
        sessions::revoke(sql, p.session_id, "logout", now).await?;
        let mut entry = authz::entry(
            ctx,
            Some(p.impersonator.unwrap_or(p.user_id)),
            "auth.logout",
        );
        entry.target_type = Some("session".into());
        entry.target_id = Some(p.session_id.to_string());
        audit::record(sql, &entry).await?;
    }
    let mut r = web::see_other("/");
    clear_session_cookies(&mut r, settings.cookie_secure);
    Ok(r)
}

#[derive(Serialize)]
struct SessionInfo {
    signed_in: bool,
    user_id: Option<Uuid>,
    impersonator: Option<Uuid>,
    roles: Vec<crate::Role>,
}

async fn session_info(sql: &impl Sql, ctx: &RequestContext) -> Result<Response, AppError> {
    let info = match &ctx.principal {
        Some(p) => SessionInfo {
            signed_in: true,
            user_id: Some(p.user_id),
            impersonator: p.impersonator,
            roles: authz::roles_of(sql, p.user_id).await?,
        },
        None => SessionInfo {
            signed_in: false,
            user_id: None,
            impersonator: None,
            roles: Vec::new(),
        },
    };
    let mut r = web::json(http::StatusCode::OK, &info);
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}
