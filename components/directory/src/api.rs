//! Good Sites over HTTP (component `good-sites`): JSON under
//! `/api/good-sites/...`, server-rendered pages under `/good-sites/...`
//! (see [`crate::pages`]), which work without JavaScript.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/api/good-sites/categories` | the tree |
//! | GET | `/api/good-sites/sites?category=&sort=top\|new&page=` | approved sites |
//! | GET | `/api/good-sites/search?q=` | full-text search |
//! | POST | `/api/good-sites/sites` `{url, title, description, category}` | submit (signed in) |
//! | GET | `/api/good-sites/sites/{id}` | a site and its screenshot history |
//! | POST | `/api/good-sites/sites/{id}/vote` `{vote: up\|down\|none}` | vote |
//! | GET | `/api/good-sites/moderation` | the caller's queue |
//! | POST | `/api/good-sites/sites/{id}/approve` `{title?, description?, category?}` | moderators |
//! | POST | `/api/good-sites/sites/{id}/reject` `{reason}` | moderators |
//! | POST | `/api/good-sites/sites/{id}/edit` `{title?, description?, category?, health_seen?}` | moderators |
//! | GET | `/api/good-sites/me` | the caller's karma, scope and submissions |

use chrono::{DateTime, Utc};
use serde::Deserialize;
use village_clicks::LinkSigner;
use village_platform::admin::parse_body;
use village_platform::blob::BlobStore;
use village_platform::cache::Cache;
use village_platform::error::FieldError;
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::moderation::{self, Decision, Edits};
use crate::sites::{self, RawSubmission, Sort};
use crate::votes::{self, Vote};
use crate::{categories, pages};

pub struct DirectoryRequest<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// What the handler needs besides the request.
pub struct Services<'a, S, C, B> {
    pub sql: &'a S,
    pub cache: &'a C,
    /// Where screenshots are (the bucket or the embedded store); `None`
    /// when storage settings are broken (pages then show no pictures).
    pub blobs: Option<&'a B>,
    /// Signs outbound links; `None`: links are plain.
    pub signer: Option<&'a LinkSigner>,
    /// Karma that makes a section's moderator.
    pub threshold: i64,
    /// Hosts let through the address checks (tests only).
    pub allowed_hosts: &'a [String],
    pub now: DateTime<Utc>,
}

impl<S: Sql, C: Cache, B> Services<'_, S, C, B> {
    pub(crate) fn decision<'d>(&'d self, ctx: &'d RequestContext) -> Decision<'d, S, C> {
        Decision {
            sql: self.sql,
            cache: self.cache,
            ctx,
            threshold: self.threshold,
            screenshot_hosts: self.allowed_hosts,
            now: self.now,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    url: Option<String>,
    title: Option<String>,
    description: Option<String>,
    category: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteBody {
    vote: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    title: Option<String>,
    description: Option<String>,
    category: Option<String>,
    #[serde(default)]
    health_seen: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    reason: Option<String>,
}

pub(crate) fn id_of(segment: &str) -> Result<i64, AppError> {
    segment
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(AppError::NotFound)
}

pub(crate) fn page_of(query: &str) -> i64 {
    web::query_param(query.as_bytes(), "page")
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| (1..=1000).contains(p))
        .unwrap_or(1)
}

pub(crate) fn vote_of(text: &str) -> Result<Vote, AppError> {
    Vote::parse(text)
        .ok_or_else(|| AppError::Validation(vec![FieldError::new("vote", "up, down or none")]))
}

pub(crate) fn search_query(query: &str) -> Result<Option<String>, AppError> {
    let q = web::query_param(query.as_bytes(), "q").unwrap_or_default();
    let q = q.trim();
    if q.contains('\0') || q.chars().count() > sites::MAX_QUERY {
        return Err(AppError::Validation(vec![FieldError::new(
            "q",
            format!("at most {} characters", sites::MAX_QUERY),
        )]));
    }
    Ok((!q.is_empty()).then(|| q.to_owned()))
}

/// A site the caller may see: approved ones for everyone, the rest for
/// their submitter and the moderators of their category (404 otherwise).
pub(crate) async fn visible_site<S: Sql, C: Cache, B>(
    s: &Services<'_, S, C, B>,
    ctx: &RequestContext,
    id: i64,
) -> Result<(sites::Site, moderation::Scope), AppError> {
    let site = sites::get(s.sql, id).await?.ok_or(AppError::NotFound)?;
    let scope = moderation::scope_for(s.sql, ctx, s.threshold).await?;
    if site.status == "approved"
        || (ctx.user_id().is_some() && ctx.user_id() == site.submitted_by)
        || scope.covers(site.category_id)
    {
        Ok((site, scope))
    } else {
        Err(AppError::NotFound)
    }
}

/// Fields only the submitter and the category's moderators see: who
/// submitted it and what the fetch, the model and the link check saw.
const PRIVATE_FIELDS: [&str; 8] = [
    "submitted_by",
    "fetch_state",
    "fetch_status",
    "fetch_error",
    "fetched_title",
    "fetched_description",
    "suggested_category",
    "health_detail",
];

/// A site as everyone may see it.
pub(crate) fn public_json(site: &sites::Site) -> serde_json::Value {
    let mut value = serde_json::json!(site);
    if let Some(obj) = value.as_object_mut() {
        for field in PRIVATE_FIELDS {
            obj.remove(field);
        }
    }
    value
}

fn public_list(list: &[sites::Site]) -> Vec<serde_json::Value> {
    list.iter().map(public_json).collect()
}

fn ok(value: serde_json::Value) -> Response {
    web::json(http::StatusCode::OK, &value)
}

pub async fn handle<S: Sql, C: Cache, B: BlobStore>(
    req: DirectoryRequest<'_>,
    s: &Services<'_, S, C, B>,
    ctx: &RequestContext,
) -> Result<Response, AppError> {
    use http::Method as M;
    let segments = web::path_segments(req.path);
    let sql = s.sql;
    match (req.method, segments.as_slice()) {
        (&M::GET, ["api", "good-sites", "categories"]) => Ok(ok(
            serde_json::json!({ "categories": categories::tree(sql).await? }),
        )),
        (&M::GET, ["api", "good-sites", "sites"]) => {
            let category = match web::query_param(req.query.as_bytes(), "category") {
                Some(slug) => Some(categories::by_slug(sql, &slug).await?.ok_or_else(|| {
                    AppError::Validation(vec![FieldError::new("category", "no such category")])
                })?),
                None => None,
            };
            let sort = Sort::parse(web::query_param(req.query.as_bytes(), "sort").as_deref());
            let page = page_of(req.query);
            let list = sites::approved(
                sql,
                category.as_ref(),
                sort,
                sites::PAGE_SIZE,
                (page - 1) * sites::PAGE_SIZE,
            )
            .await?;
            Ok(ok(
                serde_json::json!({ "sort": sort.as_str(), "page": page, "sites": public_list(&list) }),
            ))
        }
        (&M::GET, ["api", "good-sites", "search"]) => {
            let found = match search_query(req.query)? {
                Some(q) => sites::search(sql, &q, sites::PAGE_SIZE).await?,
                None => Vec::new(),
            };
            Ok(ok(serde_json::json!({ "sites": public_list(&found) })))
        }
        (&M::POST, ["api", "good-sites", "sites"]) => {
            let user = sites::user(ctx)?;
            village_accounts::authz::refuse_while_impersonating(sql, ctx, "submitting sites")
                .await?;
            let body: SubmitBody = parse_body(req.body)?;
            let raw = RawSubmission {
                url: body.url,
                title: body.title,
                description: body.description,
                category: body.category,
            };
            let checked = sites::check(sql, &raw, s.allowed_hosts)
                .await
                .map_err(AppError::Validation)?;
            let id = sites::submit(sql, s.cache, user, &checked, s.now).await?;
            let site = sites::get(sql, id).await?.ok_or(AppError::NotFound)?;
            Ok(web::json(
                http::StatusCode::CREATED,
                &serde_json::json!({ "site": site }),
            ))
        }
        (&M::GET, ["api", "good-sites", "sites", id]) => {
            let (site, scope) = visible_site(s, ctx, id_of(id)?).await?;
            let full = scope.covers(site.category_id)
                || (ctx.user_id().is_some() && ctx.user_id() == site.submitted_by);
            let versions = village_screenshots::versions::of_site(sql, site.id).await?;
            let history: Vec<_> = versions
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "id": v.id, "version": v.version, "is_current": v.is_current,
                        "captured_at": v.captured_at,
                        "thumb": pages::screenshot_path(v.id, "thumb"),
                        "full": pages::screenshot_path(v.id, "full"),
                    })
                })
                .collect();
            let vote = match ctx.user_id() {
                Some(u) => votes::of(sql, site.id, u).await?,
                None => 0,
            };
            let site = if full {
                serde_json::json!(site)
            } else {
                public_json(&site)
            };
            Ok(ok(
                serde_json::json!({ "site": site, "screenshots": history, "your_vote": vote }),
            ))
        }
        (&M::POST, ["api", "good-sites", "sites", id, "vote"]) => {
            let user = sites::user(ctx)?;
            village_accounts::authz::refuse_while_impersonating(sql, ctx, "voting").await?;
            let body: VoteBody = parse_body(req.body)?;
            let tally = votes::cast(sql, id_of(id)?, user, vote_of(&body.vote)?, s.now)
                .await?
                .ok_or(AppError::NotFound)?;
            Ok(ok(serde_json::json!(tally)))
        }
        (&M::GET, ["api", "good-sites", "moderation"]) => {
            sites::user(ctx)?;
            let scope = moderation::scope_for(sql, ctx, s.threshold).await?;
            let queue = match &scope {
                moderation::Scope::All => sites::needing_moderation(sql, None).await?,
                moderation::Scope::Categories(ids) if ids.is_empty() => {
                    return Err(AppError::Forbidden(
                        "you do not moderate any category".into(),
                    ));
                }
                moderation::Scope::Categories(ids) => {
                    sites::needing_moderation(sql, Some(ids)).await?
                }
            };
            Ok(ok(serde_json::json!({ "sites": queue })))
        }
        (&M::POST, ["api", "good-sites", "sites", id, "approve"]) => {
            let body: EditBody = parse_body(req.body)?;
            let id = id_of(id)?;
            s.decision(ctx)
                .approve(
                    id,
                    &Edits {
                        title: body.title,
                        description: body.description,
                        category: body.category,
                    },
                )
                .await?;
            let site = sites::get(sql, id).await?.ok_or(AppError::NotFound)?;
            Ok(ok(serde_json::json!({ "site": site })))
        }
        (&M::POST, ["api", "good-sites", "sites", id, "reject"]) => {
            let body: RejectBody = parse_body(req.body)?;
            let id = id_of(id)?;
            s.decision(ctx)
                .reject(id, body.reason.as_deref().unwrap_or_default())
                .await?;
            let site = sites::get(sql, id).await?.ok_or(AppError::NotFound)?;
            Ok(ok(serde_json::json!({ "site": site })))
        }
        (&M::POST, ["api", "good-sites", "sites", id, "edit"]) => {
            let body: EditBody = parse_body(req.body)?;
            let id = id_of(id)?;
            s.decision(ctx)
                .edit(
                    id,
                    &Edits {
                        title: body.title,
                        description: body.description,
                        category: body.category,
                    },
                    body.health_seen,
                )
                .await?;
            let site = sites::get(sql, id).await?.ok_or(AppError::NotFound)?;
            Ok(ok(serde_json::json!({ "site": site })))
        }
        (&M::GET, ["api", "good-sites", "me"]) => {
            let user = sites::user(ctx)?;
            let karma = moderation::karma_of(sql, user).await?;
            let scope = moderation::scope_for(sql, ctx, s.threshold).await?;
            let mine = sites::of_submitter(sql, user).await?;
            let moderates = match scope {
                moderation::Scope::All => serde_json::json!("all"),
                moderation::Scope::Categories(ids) => serde_json::json!(ids),
            };
            Ok(ok(serde_json::json!({
                "karma": karma, "moderates": moderates, "submissions": mine,
            })))
        }
        (_, ["api", "good-sites", ..]) => Err(AppError::NotFound),
        (&M::GET | &M::HEAD | &M::POST, ["good-sites", ..]) => {
            pages::handle(req, s, ctx, &segments).await
        }
        _ => Err(AppError::NotFound),
    }
}
