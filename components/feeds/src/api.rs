//! The visitor's feeds over HTTP (component `news`):
//!
//! - `GET /api/feeds`: the feeds the visitor reads, with their health;
//! - `POST /api/feeds {"url"}`: follow a feed (signed in; 201);
//! - `DELETE /api/feeds/{id}`: stop following it (204);
//! - `GET /api/news?tag=`: the widget's articles as JSON;
//! - `POST /news/feeds` (form `url`) and `POST /news/feeds/{id}/remove`:
//!   the same two changes from the homepage's forms, answered with a
//!   redirect back to the widget (a readable page on bad input).
//!
//! Form posts rely on the session cookie being `SameSite=Lax`: a
//! cross-site form cannot carry it, so it cannot act for a user.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use village_platform::admin::parse_body;
use village_platform::cache::Cache;
use village_platform::error::FieldError;
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::{subscriptions, view};

pub struct NewsRequest<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
    /// Test-only exemptions from the private-address refusal.
    pub allowed_hosts: &'a [String],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    url: Option<String>,
}

fn user(ctx: &RequestContext) -> Result<uuid::Uuid, AppError> {
    ctx.user_id().ok_or(AppError::Unauthorized)
}

fn feed_id(segment: &str) -> Result<i64, AppError> {
    segment.parse().map_err(|_| AppError::NotFound)
}

fn required_url(url: Option<String>) -> Result<String, AppError> {
    url.map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| AppError::Validation(vec![FieldError::new("url", "required")]))
}

fn back_to_widget() -> Response {
    web::see_other("/#widget-news")
}

pub async fn handle(
    req: NewsRequest<'_>,
    sql: &impl Sql,
    cache: &impl Cache,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    use http::Method as M;
    let segments: Vec<&str> = req.path.trim_end_matches('/').split('/').skip(1).collect();
    match (req.method, segments.as_slice()) {
        (&M::GET, ["api", "feeds"]) => {
            let feeds = subscriptions::feeds_of(sql, ctx.user_id(), now).await?;
            Ok(web::json(
                http::StatusCode::OK,
                &serde_json::json!({ "feeds": feeds }),
            ))
        }
        (&M::POST, ["api", "feeds"]) => {
            let user = user(ctx)?;
            let body: AddBody = parse_body(req.body)?;
            let url = required_url(body.url)?;
            let feed = subscriptions::add(sql, cache, user, &url, req.allowed_hosts, now).await?;
            Ok(web::json(
                http::StatusCode::CREATED,
                &serde_json::json!({ "feed": feed }),
            ))
        }
        (&M::DELETE, ["api", "feeds", id]) => {
            let user = user(ctx)?;
            if subscriptions::remove(sql, user, feed_id(id)?, now).await? {
                Ok(web::text(http::StatusCode::NO_CONTENT, ""))
            } else {
                Err(AppError::NotFound)
            }
        }
        (&M::GET, ["api", "news"]) => {
            let tag = web::query_param(req.query.as_bytes(), "tag");
            let news =
                view::news_for(sql, ctx.user_id(), tag.as_deref(), view::WIDGET_ITEMS, now).await?;
            Ok(web::json(http::StatusCode::OK, &news))
        }
        (&M::POST, ["news", "feeds"]) => {
            let user = user(ctx)?;
            let url = web::query_param(req.body, "url");
            subscriptions::add(
                sql,
                cache,
                user,
                &required_url(url)?,
                req.allowed_hosts,
                now,
            )
            .await?;
            Ok(back_to_widget())
        }
        (&M::POST, ["news", "feeds", id, "remove"]) => {
            let user = user(ctx)?;
            subscriptions::remove(sql, user, feed_id(id)?, now).await?;
            Ok(back_to_widget())
        }
        (_, ["api", "feeds"]) => Err(AppError::MethodNotAllowed {
            allowed: "GET, POST",
        }),
        (_, ["api", "feeds", _]) => Err(AppError::MethodNotAllowed { allowed: "DELETE" }),
        (_, ["api", "news"]) => Err(AppError::MethodNotAllowed { allowed: "GET" }),
        (_, ["news", ..]) => Err(AppError::MethodNotAllowed { allowed: "POST" }),
        _ => Err(AppError::NotFound),
    }
}
