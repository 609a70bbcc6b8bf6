//! The Good Sites pages (askama templates, HTML-escaped by default: site
//! titles and descriptions are plain text). Every form posts back and
//! redirects; bad input re-shows the form with a message beside each
//! field, status 400, nothing typed lost. Outbound links go through
//! `/track/click` ([`village_clicks`]).

use askama::Template;
use village_clicks::{Link, LinkKind, LinkSigner};
use village_platform::blob::BlobStore;
use village_platform::cache::Cache;
use village_platform::error::FieldError;
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::api::{DirectoryRequest, Services, id_of, page_of, search_query, visible_site, vote_of};
use crate::categories::{self, Section};
use crate::moderation::{self, Edits, Scope};
use crate::sites::{self, RawSubmission, Site, Sort};
use crate::votes;

/// Where a screenshot version's picture is served.
pub fn screenshot_path(version: i64, which: &str) -> String {
    format!("/good-sites/screenshots/{version}/{which}")
}

fn message_for(errors: &[FieldError], field: &str) -> Option<String> {
    errors
        .iter()
        .filter(|e| e.field == field)
        .map(|e| e.message.clone())
        .reduce(|a, b| format!("{a}; {b}"))
}

pub(crate) struct Chrome {
    pub signed_in: bool,
    pub moderator: bool,
}

/// A site in a list.
pub(crate) struct Card {
    pub id: i64,
    pub title: String,
    pub host: String,
    pub description: String,
    pub href: String,
    pub score: i32,
    pub category: String,
    pub category_slug: String,
    pub thumb: Option<String>,
}

pub(crate) fn cards(signer: Option<&LinkSigner>, list: &[Site], source: &str) -> Vec<Card> {
    list.iter()
        .enumerate()
        .map(|(i, site)| Card {
            id: site.id,
            title: site.title.clone(),
            host: site.host.clone(),
            description: site.description.clone(),
            href: LinkSigner::href_or_plain(
                signer,
                &Link::to(&site.url, LinkKind::Site, site.id, source)
                    .at(i + 1)
                    .in_category(site.category_id),
            ),
            score: site.score(),
            category: site.category_name.clone(),
            category_slug: site.category_slug.clone(),
            thumb: site.screenshot.map(|v| screenshot_path(v, "thumb")),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    chrome: Chrome,
    sections: Vec<Section>,
    top: Vec<Card>,
    newest: Vec<Card>,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    chrome: Chrome,
    heading: String,
    intro: String,
    /// The page's own path, for the sort and page links.
    base: String,
    sort: Option<&'static str>,
    q: String,
    sites: Vec<Card>,
    page: i64,
    more: bool,
    children: Vec<categories::Category>,
}

#[derive(Template)]
#[template(path = "site.html")]
struct SitePage {
    chrome: Chrome,
    site: Site,
    /// The tracked link; `None` until the site is approved.
    href: Option<String>,
    your_vote: i32,
    can_moderate: bool,
    history: Vec<Shot>,
    sections: Vec<Section>,
    errors: Vec<FieldError>,
    notice: Option<String>,
}

impl SitePage {
    fn err(&self, field: &str) -> Option<String> {
        message_for(&self.errors, field)
    }
}

pub(crate) struct Shot {
    version: i32,
    captured: String,
    thumb: String,
    full: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "submit.html")]
struct SubmitPage {
    chrome: Chrome,
    sections: Vec<Section>,
    raw: RawSubmission,
    errors: Vec<FieldError>,
}

impl SubmitPage {
    fn err(&self, field: &str) -> Option<String> {
        message_for(&self.errors, field)
    }
    fn value(&self, v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "moderation.html")]
struct ModerationPage {
    chrome: Chrome,
    sites: Vec<Site>,
}

#[derive(Template)]
#[template(path = "mine.html")]
struct MinePage {
    chrome: Chrome,
    karma: moderation::Karma,
    sites: Vec<Site>,
    notice: Option<String>,
}

fn render(t: &impl Template, status: http::StatusCode) -> Result<Response, AppError> {
    let html = t
        .render()
        .map_err(|e| AppError::Internal(format!("failed to render a page: {e}")))?;
    Ok(web::html(status, html))
}

fn form(body: &[u8], name: &str) -> Option<String> {
    web::query_param(body, name)
}

pub async fn handle<S: Sql, C: Cache, B: BlobStore>(
    req: DirectoryRequest<'_>,
    s: &Services<'_, S, C, B>,
    ctx: &RequestContext,
    segments: &[&str],
) -> Result<Response, AppError> {
    let sql = s.sql;
    let get = *req.method == http::Method::GET || *req.method == http::Method::HEAD;
    let scope = moderation::scope_for(sql, ctx, s.threshold).await?;
    let chrome = Chrome {
        signed_in: ctx.principal.is_some(),
        moderator: !scope.is_empty(),
    };
    let signer = s.signer;
    match (get, segments) {
        (true, ["good-sites"]) => {
            let top = sites::approved(sql, None, Sort::Top, 10, 0).await?;
            let newest = sites::approved(sql, None, Sort::New, 10, 0).await?;
            render(
                &IndexPage {
                    chrome,
                    sections: categories::tree(sql).await?,
                    top: cards(signer, &top, "directory_index_top"),
                    newest: cards(signer, &newest, "directory_index_new"),
                },
                http::StatusCode::OK,
            )
        }
        (true, ["good-sites", which @ ("top" | "new")]) => {
            let sort = if *which == "top" {
                Sort::Top
            } else {
                Sort::New
            };
            let page = page_of(req.query);
            let list = sites::approved(
                sql,
                None,
                sort,
                sites::PAGE_SIZE + 1,
                (page - 1) * sites::PAGE_SIZE,
            )
            .await?;
            list_page(
                chrome,
                signer,
                list,
                page,
                ListSpec {
                    heading: if sort == Sort::Top {
                        "Top sites".into()
                    } else {
                        "New sites".into()
                    },
                    intro: if sort == Sort::Top {
                        "Ranked by votes and by what visitors open (one vote counts as ten visits in the last 30 days).".into()
                    } else {
                        "The latest sites moderators approved.".into()
                    },
                    base: format!("/good-sites/{which}"),
                    sort: None,
                    q: String::new(),
                    source: if sort == Sort::Top {
                        "directory_top"
                    } else {
                        "directory_new"
                    },
                    children: Vec::new(),
                },
            )
        }
        (true, ["good-sites", "c", slug]) => {
            let category = categories::by_slug(sql, slug)
                .await?
                .ok_or(AppError::NotFound)?;
            let sort = Sort::parse(web::query_param(req.query.as_bytes(), "sort").as_deref());
            let page = page_of(req.query);
            let list = sites::approved(
                sql,
                Some(&category),
                sort,
                sites::PAGE_SIZE + 1,
                (page - 1) * sites::PAGE_SIZE,
            )
            .await?;
            let children = categories::all(sql)
                .await?
                .into_iter()
                .filter(|c| c.parent_id == Some(category.id))
                .collect();
            list_page(
                chrome,
                signer,
                list,
                page,
                ListSpec {
                    heading: category.name.clone(),
                    intro: category.description.clone(),
                    base: format!("/good-sites/c/{}", category.slug),
                    sort: Some(sort.as_str()),
                    q: String::new(),
                    source: "directory_category",
                    children,
                },
            )
        }
        (true, ["good-sites", "search"]) => {
            let q = search_query(req.query)?;
            let list = match &q {
                Some(q) => sites::search(sql, q, sites::PAGE_SIZE).await?,
                None => Vec::new(),
            };
            let heading = match &q {
                Some(q) => format!("Sites matching “{q}”"),
                None => "Search Good Sites".into(),
            };
            list_page(
                chrome,
                signer,
                list,
                1,
                ListSpec {
                    heading,
                    intro: String::new(),
                    base: "/good-sites/search".into(),
                    sort: None,
                    q: q.unwrap_or_default(),
                    source: "directory_search",
                    children: Vec::new(),
                },
            )
        }
        (true, ["good-sites", "sites", id]) => {
            site_page(
                s,
                ctx,
                chrome,
                id_of(id)?,
                Vec::new(),
                notice(req.query),
                http::StatusCode::OK,
            )
            .await
        }
        (
            true,
            [
                "good-sites",
                "screenshots",
                version,
                which @ ("full" | "thumb"),
            ],
        ) => {
            let version = village_screenshots::versions::find(sql, id_of(version)?)
                .await?
                .ok_or(AppError::NotFound)?;
            // Only an approved site's pictures are public.
            let site = match version.site_id {
                Some(id) => sites::get(sql, id).await?,
                None => None,
            };
            if site.is_none_or(|site| site.status != "approved") {
                return Err(AppError::NotFound);
            }
            let blobs = s.blobs.ok_or(AppError::Unavailable {
                dependency: "blob storage",
                detail: "object storage settings are broken".into(),
            })?;
            // A version's pictures never change (its id in the path is the
            // cache-buster), but a removed site's must leave shared caches
            // (the CDN) soon: an hour, as listing images.
            village_screenshots::image_response(blobs, &version, which, "public, max-age=3600")
                .await
        }
        (true, ["good-sites", "submit"]) => {
            sites::user(ctx)?;
            render(
                &SubmitPage {
                    chrome,
                    sections: categories::tree(sql).await?,
                    raw: RawSubmission::default(),
                    errors: Vec::new(),
                },
                http::StatusCode::OK,
            )
        }
        (false, ["good-sites", "submit"]) => {
            let user = sites::user(ctx)?;
            village_accounts::authz::refuse_while_impersonating(sql, ctx, "submitting sites")
                .await?;
            let raw = RawSubmission {
                url: form(req.body, "url"),
                title: form(req.body, "title"),
                description: form(req.body, "description"),
                category: form(req.body, "category"),
            };
            let submitted = match sites::check(sql, &raw, s.allowed_hosts).await {
                Ok(checked) => sites::submit(sql, s.cache, user, &checked, s.now).await,
                Err(errors) => Err(AppError::Validation(errors)),
            };
            match submitted {
                Ok(_) => Ok(web::see_other("/good-sites/mine?notice=submitted")),
                Err(AppError::Validation(errors)) => render(
                    &SubmitPage {
                        chrome,
                        sections: categories::tree(sql).await?,
                        raw,
                        errors,
                    },
                    http::StatusCode::BAD_REQUEST,
                ),
                Err(e) => Err(e),
            }
        }
        (true, ["good-sites", "mine"]) => {
            let user = sites::user(ctx)?;
            render(
                &MinePage {
                    chrome,
                    karma: moderation::karma_of(sql, user).await?,
                    sites: sites::of_submitter(sql, user).await?,
                    notice: notice(req.query),
                },
                http::StatusCode::OK,
            )
        }
        (true, ["good-sites", "moderation"]) => {
            sites::user(ctx)?;
            let queue = match &scope {
                Scope::All => sites::needing_moderation(sql, None).await?,
                Scope::Categories(ids) if ids.is_empty() => {
                    return Err(AppError::Forbidden(
                        "you do not moderate any category".into(),
                    ));
                }
                Scope::Categories(ids) => sites::needing_moderation(sql, Some(ids)).await?,
            };
            render(
                &ModerationPage {
                    chrome,
                    sites: queue,
                },
                http::StatusCode::OK,
            )
        }
        (false, ["good-sites", "sites", id, "vote"]) => {
            let user = sites::user(ctx)?;
            village_accounts::authz::refuse_while_impersonating(sql, ctx, "voting").await?;
            let id = id_of(id)?;
            let vote = vote_of(&form(req.body, "vote").unwrap_or_default())?;
            votes::cast(sql, id, user, vote, s.now)
                .await?
                .ok_or(AppError::NotFound)?;
            Ok(web::see_other(&format!("/good-sites/sites/{id}")))
        }
        (
            false,
            [
                "good-sites",
                "sites",
                id,
                action @ ("approve" | "reject" | "edit"),
            ],
        ) => {
            let id = id_of(id)?;
            let edits = Edits {
                title: form(req.body, "title"),
                description: form(req.body, "description"),
                category: form(req.body, "category"),
            };
            let decision = s.decision(ctx);
            let done = match *action {
                "approve" => decision.approve(id, &edits).await,
                "reject" => {
                    decision
                        .reject(id, &form(req.body, "reason").unwrap_or_default())
                        .await
                }
                _ => {
                    decision
                        .edit(id, &edits, form(req.body, "health_seen").is_some())
                        .await
                }
            };
            match done {
                Ok(()) => Ok(web::see_other(&format!(
                    "/good-sites/sites/{id}?notice={action}"
                ))),
                Err(AppError::Validation(errors)) => {
                    site_page(
                        s,
                        ctx,
                        chrome,
                        id,
                        errors,
                        None,
                        http::StatusCode::BAD_REQUEST,
                    )
                    .await
                }
                Err(e) => Err(e),
            }
        }
        (false, _) => Err(AppError::MethodNotAllowed {
            allowed: "GET, HEAD",
        }),
        _ => Err(AppError::NotFound),
    }
}

/// A notice named in the query after a redirect (a fixed set of texts:
/// nothing from the query is shown).
fn notice(query: &str) -> Option<String> {
    let text = match web::query_param(query.as_bytes(), "notice")?.as_str() {
        "submitted" => "Thank you: your site is waiting for a moderator.",
        "approve" => "Approved: a screenshot is on its way.",
        "reject" => "Rejected, with your reason.",
        "edit" => "Saved.",
        _ => return None,
    };
    Some(text.to_owned())
}

struct ListSpec {
    heading: String,
    intro: String,
    base: String,
    sort: Option<&'static str>,
    q: String,
    source: &'static str,
    children: Vec<categories::Category>,
}

fn list_page(
    chrome: Chrome,
    signer: Option<&LinkSigner>,
    mut list: Vec<Site>,
    page: i64,
    spec: ListSpec,
) -> Result<Response, AppError> {
    let more = list.len() as i64 > sites::PAGE_SIZE;
    list.truncate(sites::PAGE_SIZE as usize);
    render(
        &ListPage {
            chrome,
            heading: spec.heading,
            intro: spec.intro,
            base: spec.base,
            sort: spec.sort,
            q: spec.q,
            sites: cards(signer, &list, spec.source),
            page,
            more,
            children: spec.children,
        },
        http::StatusCode::OK,
    )
}

async fn site_page<S: Sql, C: Cache, B>(
    s: &Services<'_, S, C, B>,
    ctx: &RequestContext,
    chrome: Chrome,
    id: i64,
    errors: Vec<FieldError>,
    notice: Option<String>,
    status: http::StatusCode,
) -> Result<Response, AppError> {
    let (site, scope) = visible_site(s, ctx, id).await?;
    let history = village_screenshots::versions::of_site(s.sql, site.id)
        .await?
        .into_iter()
        .map(|v| Shot {
            version: v.version,
            captured: v.captured_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            thumb: screenshot_path(v.id, "thumb"),
            full: screenshot_path(v.id, "full"),
            current: v.is_current,
        })
        .collect();
    let your_vote = match ctx.user_id() {
        Some(u) => votes::of(s.sql, site.id, u).await?,
        None => 0,
    };
    // Only an approved site is linked: a pending or rejected one is shown
    // as text, so nobody gets a tracked link to an address we never vetted.
    let href = (site.status == "approved").then(|| {
        LinkSigner::href_or_plain(
            s.signer,
            &Link::to(&site.url, LinkKind::Site, site.id, "directory_site")
                .in_category(site.category_id),
        )
    });
    render(
        &SitePage {
            chrome,
            can_moderate: scope.covers(site.category_id),
            href,
            your_vote,
            history,
            sections: categories::tree(s.sql).await?,
            site,
            errors,
            notice,
        },
        status,
    )
}
