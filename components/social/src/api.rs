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
    /// The settings, or why they are unusable: only connecting needs them
    /// (the status page, removals and disconnecting work without).
    pub config: Result<&'a Config, &'a str>,
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

fn configured<'a, S, K, H>(s: &Services<'a, S, K, H>) -> Result<&'a Config, AppError> {
    s.config.map_err(|why| AppError::Unavailable {
        dependency: "social settings",
        detail: why.to_owned(),
    })
}

fn clear_state(r: &mut Response, secure: bool) {
    if let Ok(v) =
        http::HeaderValue::from_str(&web::expired_cookie(STATE_COOKIE, "/social", secure))
    {
        r.headers_mut().append(http::header::SET_COOKIE, v);
    }
}

pub async fn handle<S: Sql, K: Cache, H: HttpClient>(
    req: SocialRequest<'_>,
    s: &Services<'_, S, K, H>,
    ctx: &RequestContext,
) -> Result<Response, AppError> {
    use http::Method as M;
    let segments = web::path_segments(req.path);
    if let (&M::GET, ["social", "deletion", code]) = (req.method, segments.as_slice()) {
        let Some(d) = crate::webhooks::deletion_status(s.sql, code).await? else {
            return Err(AppError::NotFound);
        };
        let asked = d.requested_at.format("%-d %B %Y");
        return Ok(match d.completed_at {
            Some(done) if d.connections + d.posts == 0 => page(
                "Nothing to delete",
                &format!(
                    "Meta asked us on {asked} to delete what we held from your Facebook and \
                     Instagram accounts. By {} we held nothing from them.",
                    done.format("%-d %B %Y")
                ),
            ),
            Some(done) => page(
                "Your data was deleted",
                &format!(
                    "Meta asked us on {asked} to delete what we held from your Facebook and \
                     Instagram accounts. On {} we deleted {} and {} cached post{}.",
                    done.format("%-d %B %Y"),
                    if d.connections > 0 {
                        "your connection"
                    } else {
                        "no connection (it was already gone)"
                    },
                    d.posts,
                    if d.posts == 1 { "" } else { "s" }
                ),
            ),
            None => page(
                "Your deletion request is in progress",
                &format!("Requested on {asked}."),
            ),
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
            let (url, state) = crate::connect::start(configured(s)?, user, s.now)?;
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
                let mut r = page("Not connected", why);
                clear_state(&mut r, s.cookie_secure);
                return Ok(r);
            }
            let code = web::query_param(q, "code").unwrap_or_default();
            let state = web::query_param(q, "state").unwrap_or_default();
            let cookie = web::cookie_value(req.headers, STATE_COOKIE);
            crate::connect::complete(
                s.sql,
                s.cache,
                s.http,
                configured(s)?,
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
            if !matches!(*network, "facebook" | "instagram") {
                return Err(AppError::Validation(vec![
                    village_platform::error::FieldError::new("network", "facebook or instagram"),
                ]));
            }
            // Post ids are Graph ids (`crate::graph::is_post_id`), which
            // travel in a path unencoded: anything else names no post.
            if !crate::graph::is_post_id(id)
                || !crate::posts::remove(s.sql, user, network, id, s.now).await?
            {
                return Err(AppError::NotFound);
            }
            Ok(web::see_other("/#widget-social"))
        }
        _ => Err(AppError::NotFound),
    }
}
