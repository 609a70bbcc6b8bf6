//! The `social` component's routes (pages; all but the deletion status
//! page behind `social_integration`, 404 while it is off):
//!
//! | route | what |
//! |---|---|
//! | `GET /social/connect` | to Meta's consent dialog (signed in) |
//! | `GET /social/callback` | Meta's redirect back: the connection is made |
//! | `POST /social/disconnect` | the token and every cached post go |
//! | `POST /social/posts/{network}/{id}/remove` | one cached post goes |
//! | `GET /social/deletion/{code}` | a data-deletion request's status |

use chrono::{DateTime, Utc};
use village_flags::Visitor;
use village_platform::cache::Cache;
use village_platform::http_client::HttpClient;
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::Config;
use crate::connect::STATE_COOKIE;

pub struct SocialRequest<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

pub struct Services<'a, S, K, H> {
    pub sql: &'a S,
    pub cache: &'a K,
    pub http: &'a H,
    pub config: &'a Config,
    pub cookie_secure: bool,
    pub now: DateTime<Utc>,
}

fn page(title: &str, text: &str) -> Response {
    web::html(
        http::StatusCode::OK,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
             <link rel=\"stylesheet\" href=\"/static/site.css\"></head><body><main>\
             <h1>{t}</h1><p>{x}</p><p><a href=\"/\">Back to your homepage</a></p></main></body></html>",
            t = web::escape_html(title),
            x = web::escape_html(text)
        ),
    )
}

pub async fn handle<S: Sql, K: Cache, H: HttpClient>(
    req: SocialRequest<'_>,
    s: &Services<'_, S, K, H>,
    ctx: &RequestContext,
) -> Result<Response, AppError> {
    use http::Method as M;
    let segments = web::path_segments(req.path);
    if let (&M::GET, ["social", "deletion", code]) = (req.method, segments.as_slice()) {
        return Ok(match crate::webhooks::deletion_status(s.sql, code).await? {
            Some((at, Some(done))) => page(
                "Your data was deleted",
                &format!(
                    "Meta asked us on {} to delete what we held from your Facebook and Instagram \
                     accounts. It was deleted on {}: your connection and every cached post.",
                    at.format("%-d %B %Y"),
                    done.format("%-d %B %Y")
                ),
            ),
            Some((at, None)) => page(
                "Your deletion request is in progress",
                &format!("Requested on {}.", at.format("%-d %B %Y")),
            ),
            None => return Err(AppError::NotFound),
        });
    }
    let flags = village_flags::flags_for(s.sql, s.cache, &Visitor::of(ctx), s.now).await;
    if !flags.is_on(crate::FLAG) {
        return Err(AppError::NotFound);
    }
    let principal = ctx.principal.as_ref().ok_or(AppError::Unauthorized)?;
    let user = principal.user_id;
    match (req.method, segments.as_slice()) {
        (&M::GET, ["social", "connect"]) => {
            if principal.is_impersonating() {
                return Err(AppError::Forbidden(
                    "accounts cannot be connected while impersonating".into(),
                ));
            }
            let (url, state) = crate::connect::start(s.config, user, s.now)?;
            let mut r = web::see_other(&url);
            if let Ok(v) = http::HeaderValue::from_str(&web::cookie(
                STATE_COOKIE,
                &state,
                "/social",
                600,
                s.cookie_secure,
                false,
            )) {
                r.headers_mut().append(http::header::SET_COOKIE, v);
            }
            Ok(r)
        }
        (&M::GET, ["social", "callback"]) => {
            let q = req.query.as_bytes();
            if let Some(error) = web::query_param(q, "error") {
                let why = if error == "access_denied" {
                    "You chose not to connect. Nothing was stored."
                } else {
                    "Meta did not complete the connection. Nothing was stored."
                };
                return Ok(page("Not connected", why));
            }
            let code = web::query_param(q, "code").unwrap_or_default();
            let state = web::query_param(q, "state").unwrap_or_default();
            let cookie = web::cookie_value(req.headers, STATE_COOKIE);
            crate::connect::complete(
                s.sql,
                s.cache,
                s.http,
                s.config,
                user,
                &code,
                &state,
                cookie.as_deref(),
                s.now,
            )
            .await?;
            let mut r = web::see_other("/#widget-social");
            if let Ok(v) = http::HeaderValue::from_str(&web::expired_cookie(
                STATE_COOKIE,
                "/social",
                s.cookie_secure,
            )) {
                r.headers_mut().append(http::header::SET_COOKIE, v);
            }
            Ok(r)
        }
        (&M::POST, ["social", "disconnect"]) => {
            crate::connect::disconnect(s.sql, user).await?;
            Ok(web::see_other("/#widget-social"))
        }
        (&M::POST, ["social", "posts", network, id, "remove"]) => {
            crate::posts::remove(s.sql, user, network, id).await?;
            Ok(web::see_other("/#widget-social"))
        }
        _ => Err(AppError::NotFound),
    }
}
