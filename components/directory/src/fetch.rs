//! `directory.fetch_site`: a submission's page fetched for its title,
//! description and status, which moderators compare with what the
//! submitter typed; then `directory.suggest_category`: the shared AI
//! client asked which category fits, under the monthly budget (work of
//! non-critical priority: deferred at 90 %, stopped at 100 %).
//!
//! The page is fetched only through [`address::follow`] over the guarded
//! fetch service (the feeds' SSRF rules: every redirect re-checked, names
//! resolving to private addresses refused by the service).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use village_ai::AiConfig;
use village_ai::budget::{self, Allowance, Priority};
use village_ai::messages::{self, AiError, Prompt};
use village_jobs::{Job, JobError, JobHandler, NewJob, Queue};
use village_platform::address::{self, FollowError};
use village_platform::cache::Cache;
use village_platform::clock::Clock;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::categories;
use crate::jobs::FETCH_SITE;

pub const SUGGEST_CATEGORY: &str = "directory.suggest_category";
/// What `ai_usage.purpose` records for a suggestion.
pub const PURPOSE: &str = "directory_categorisation";
pub const MAX_REDIRECTS: usize = 3;
const USER_AGENT: &str = "VillageHomepage/0.1 (+https://village.example/good-sites)";
/// The most of a page read for its title and description.
const MAX_PAGE: usize = 512 * 1024;
const MAX_FETCHED_TITLE: usize = 300;
const MAX_FETCHED_DESCRIPTION: usize = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    site_id: i64,
}

/// What a page says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageInfo {
    pub title: Option<String>,
    pub description: Option<String>,
}

fn clean(text: &str, max: usize) -> Option<String> {
    let collapsed: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('\0', "");
    let bounded: String = collapsed.chars().take(max).collect();
    (!bounded.is_empty()).then_some(bounded)
}

/// The `<title>` and the description (`<meta name="description">`, or
/// Open Graph's) of an HTML page.
pub fn page_info(html: &[u8]) -> PageInfo {
    let text = String::from_utf8_lossy(&html[..html.len().min(MAX_PAGE)]);
    let doc = scraper::Html::parse_document(&text);
    let select = |css: &str| scraper::Selector::parse(css).ok();
    let title = select("title")
        .and_then(|s| doc.select(&s).next().map(|e| e.text().collect::<String>()))
        .and_then(|t| clean(&t, MAX_FETCHED_TITLE));
    let description = [
        "meta[name=description]",
        "meta[property=\"og:description\"]",
    ]
    .iter()
    .filter_map(|css| select(css))
    .find_map(|s| {
        doc.select(&s)
            .find_map(|e| e.value().attr("content").map(str::to_owned))
    })
    .and_then(|d| clean(&d, MAX_FETCHED_DESCRIPTION));
    PageInfo { title, description }
}

/// Fetches site `id`'s page and records what it saw. Only a database
/// error is an `Err`: an unreachable page is an outcome.
pub async fn fetch_site(
    sql: &impl Sql,
    http: &impl HttpClient,
    id: i64,
    allowed_hosts: &[String],
    now: DateTime<Utc>,
) -> Result<Option<&'static str>, SqlError> {
    let Some(row) = sql
        .query_opt(
            "SELECT url FROM directory_sites WHERE id = $1 AND status = 'pending'",
            &[SqlValue::Int64(id)],
        )
        .await?
    else {
        return Ok(None);
    };
    let url: String = row.get("url")?;
    let outcome = match address::check(&url, allowed_hosts) {
        Err(e) => Err(format!("refused: {e}")),
        Ok(first) => address::follow(http, first, allowed_hosts, MAX_REDIRECTS, |u| {
            http::Request::get(u.as_str())
                .header(http::header::USER_AGENT, USER_AGENT)
                .header(
                    http::header::ACCEPT,
                    "text/html, application/xhtml+xml;q=0.9, */*;q=0.1",
                )
        })
        .await
        .map_err(|e| match e {
            FollowError::Http(e) => format!("could not fetch the page ({})", e.category()),
            other => other.to_string(),
        }),
    };
    match outcome {
        Ok(followed) => {
            let status = followed.response.status();
            let is_html = followed
                .response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.contains("html"));
            let info = if status.is_success() && is_html {
                page_info(followed.response.body())
            } else {
                PageInfo::default()
            };
            let error = (!status.is_success()).then(|| format!("the page answered {status}"));
            sql.execute(
                "UPDATE directory_sites SET fetch_state = 'fetched', fetched_at = $2, \
                     fetch_status = $3, fetch_error = $4, fetched_title = $5, \
                     fetched_description = $6, updated_at = $2 \
                 WHERE id = $1",
                &[
                    SqlValue::Int64(id),
                    SqlValue::Timestamp(now),
                    SqlValue::Int32(i32::from(status.as_u16())),
                    error.map_or(SqlValue::Null, SqlValue::Text),
                    info.title.map_or(SqlValue::Null, SqlValue::Text),
                    info.description.map_or(SqlValue::Null, SqlValue::Text),
                ],
            )
            .await?;
            Ok(Some("fetched"))
        }
        Err(reason) => {
            sql.execute(
                "UPDATE directory_sites SET fetch_state = 'failed', fetched_at = $2, \
                     fetch_error = $3, updated_at = $2 WHERE id = $1",
                &[
                    SqlValue::Int64(id),
                    SqlValue::Timestamp(now),
                    SqlValue::Text(reason),
                ],
            )
            .await?;
            Ok(Some("failed"))
        }
    }
}

/// The handler of `directory.fetch_site`; chains the suggestion.
pub struct FetchSite<'a, S, C, H, K> {
    pub sql: &'a S,
    pub cache: &'a C,
    /// The guarded fetch service.
    pub http: &'a H,
    pub clock: &'a K,
    /// Hosts exempt from the private-address refusal (tests only).
    pub allowed_hosts: &'a [String],
}

impl<S: Sql, C: Cache, H: HttpClient, K: Clock> JobHandler for FetchSite<'_, S, C, H, K> {
    fn name(&self) -> &'static str {
        FETCH_SITE
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let p: Payload =
            serde_json::from_value(job.payload.clone()).map_err(JobError::malformed)?;
        let now = self.clock.now();
        let retry = |e: SqlError| JobError::Retry(e.to_string());
        let outcome = fetch_site(self.sql, self.http, p.site_id, self.allowed_hosts, now)
            .await
            .map_err(retry)?;
        if outcome.is_some() {
            let next = NewJob::new(
                Queue::Default,
                SUGGEST_CATEGORY,
                serde_json::json!({ "site_id": p.site_id }),
            )
            .idempotency_key(format!("{SUGGEST_CATEGORY}:{}", p.site_id));
            village_jobs::enqueue(self.sql, self.cache, now, next)
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
        }
        village_platform::log::event(
            "INFO",
            "site fetched",
            serde_json::json!({ "job": FETCH_SITE, "site_id": p.site_id, "outcome": outcome }),
        );
        Ok(())
    }
}

const SYSTEM: &str = "You file websites into a web directory. Reply with exactly one category \
    slug from the list you are given, and nothing else.";

/// The prompt for site `id`, from what the submitter typed and the page
/// said. Site text is quoted as data, never as instructions.
pub fn prompt_for(
    categories: &[(String, String)],
    url: &str,
    title: &str,
    description: &str,
    page_title: Option<&str>,
) -> String {
    let mut p = String::from("Categories (slug: name):\n");
    for (slug, name) in categories {
        p.push_str(&format!("{slug}: {name}\n"));
    }
    let site = serde_json::json!({
        "url": url, "title": title, "description": description, "page_title": page_title,
    });
    p.push_str(&format!(
        "\nThe site, as JSON data: {site}\n\nWhich slug fits it best?"
    ));
    p
}

/// The slug in an answer, if it is one of `known`.
pub fn parse_answer<'a>(text: &str, known: &'a [(String, String)]) -> Option<&'a str> {
    let word = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find(|w| !w.is_empty())?
        .to_ascii_lowercase();
    known
        .iter()
        .find(|(slug, _)| *slug == word)
        .map(|(slug, _)| slug.as_str())
}

/// Asks the model for site `id`'s category, if the budget allows.
pub async fn suggest(
    sql: &impl Sql,
    http: &impl HttpClient,
    config: &AiConfig,
    id: i64,
    now: DateTime<Utc>,
) -> Result<&'static str, JobError> {
    let retry = |e: SqlError| JobError::Retry(e.to_string());
    let Some(row) = sql
        .query_opt(
            "SELECT url, title, description, fetched_title FROM directory_sites \
             WHERE id = $1 AND status = 'pending' AND suggested_category_id IS NULL",
            &[SqlValue::Int64(id)],
        )
        .await
        .map_err(retry)?
    else {
        return Ok("not_pending");
    };
    let current = budget::current(sql, now, config.default_limit_cents)
        .await
        .map_err(retry)?;
    match budget::allowance(current.level(), Priority::NonCritical, now) {
        // A suggestion is a convenience for moderators: past 90 % of the
        // budget it is skipped, not postponed (they file the site by hand).
        Allowance::Stop | Allowance::Defer { .. } => return Ok("budget"),
        Allowance::Proceed { .. } => {}
    }
    let known: Vec<(String, String)> = categories::all(sql)
        .await
        .map_err(retry)?
        .into_iter()
        .filter(|c| c.parent_id.is_some())
        .map(|c| (c.slug, c.name))
        .collect();
    let get = |name: &str| {
        row.get::<Option<String>>(name)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    let user = prompt_for(
        &known,
        &get("url"),
        &get("title"),
        &get("description"),
        row.get::<Option<String>>("fetched_title")
            .ok()
            .flatten()
            .as_deref(),
    );
    let prompt = Prompt {
        purpose: PURPOSE,
        system: SYSTEM,
        user: &user,
        max_tokens: 20,
        items: 1,
    };
    let completion = match messages::complete(sql, http, config, &prompt, now).await {
        Ok(c) => c,
        Err(AiError::NotConfigured(_)) => return Ok("not_configured"),
        Err(e) => return Err(JobError::Retry(e.to_string())),
    };
    let Some(slug) = parse_answer(&completion.text, &known) else {
        return Ok("unusable_answer");
    };
    sql.execute(
        "UPDATE directory_sites SET suggested_category_id = \
             (SELECT id FROM directory_categories WHERE slug = $2) \
         WHERE id = $1",
        &[SqlValue::Int64(id), SqlValue::Text(slug.to_owned())],
    )
    .await
    .map_err(retry)?;
    Ok("suggested")
}

/// The handler of `directory.suggest_category`.
pub struct SuggestCategory<'a, S, H, K> {
    pub sql: &'a S,
    /// The model's client (its own, longer timeout).
    pub http: &'a H,
    pub clock: &'a K,
    pub config: &'a AiConfig,
}

impl<S: Sql, H: HttpClient, K: Clock> JobHandler for SuggestCategory<'_, S, H, K> {
    fn name(&self) -> &'static str {
        SUGGEST_CATEGORY
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let p: Payload =
            serde_json::from_value(job.payload.clone()).map_err(JobError::malformed)?;
        let outcome = suggest(
            self.sql,
            self.http,
            self.config,
            p.site_id,
            self.clock.now(),
        )
        .await?;
        village_platform::log::event(
            "INFO",
            "category suggestion",
            serde_json::json!({ "job": SUGGEST_CATEGORY, "site_id": p.site_id, "outcome": outcome }),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_title_and_description_of_a_page() {
        let html = b"<!doctype html><html><head><title>\n  The  Village\tGarden </title>\
            <meta name=\"description\" content=\"Seeds &amp; tips\"></head><body>x</body></html>";
        assert_eq!(
            page_info(html),
            PageInfo {
                title: Some("The Village Garden".into()),
                description: Some("Seeds & tips".into()),
            }
        );
        let og =
            b"<html><head><meta property=\"og:description\" content=\"From OG\"></head></html>";
        assert_eq!(page_info(og).description.as_deref(), Some("From OG"));
        assert_eq!(page_info(b"not html at all"), PageInfo::default());
    }

    #[test]
    fn only_a_known_slug_is_taken_from_an_answer() {
        let known = vec![
            ("gardening".to_owned(), "Gardening".to_owned()),
            ("music".to_owned(), "Music".to_owned()),
        ];
        assert_eq!(parse_answer("gardening", &known), Some("gardening"));
        assert_eq!(parse_answer(" Music.\n", &known), Some("music"));
        assert_eq!(parse_answer("weapons", &known), None);
        assert_eq!(parse_answer("", &known), None);
    }
}
