//! Sites: submissions and the lists the pages read.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use village_jobs::{NewJob, Queue};
use village_platform::cache::Cache;
use village_platform::error::FieldError;
use village_platform::sql::{Row, Sql, SqlError, SqlValue};
use village_platform::{AppError, RequestContext};

use crate::categories::{self, Category};
use crate::urls;

pub const MAX_TITLE: usize = 120;
pub const MAX_DESCRIPTION: usize = 500;
/// The longest search query.
pub const MAX_QUERY: usize = 200;
/// Sites per list page.
pub const PAGE_SIZE: i64 = 30;

/// A site as the pages and the API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    pub id: i64,
    pub url: String,
    pub host: String,
    pub title: String,
    pub description: String,
    pub category_id: i64,
    pub category_slug: String,
    pub category_name: String,
    pub submitted_by: Option<Uuid>,
    pub status: String,
    pub moderation_reason: Option<String>,
    pub fetch_state: String,
    pub fetch_status: Option<i32>,
    pub fetch_error: Option<String>,
    pub fetched_title: Option<String>,
    pub fetched_description: Option<String>,
    pub suggested_category: Option<String>,
    pub health: String,
    pub health_detail: Option<serde_json::Value>,
    pub health_checked_at: Option<DateTime<Utc>>,
    pub upvotes: i32,
    pub downvotes: i32,
    /// Visitors who clicked through over the popularity window (complete
    /// days; see `village_clicks::popularity`).
    pub clicks: i64,
    /// The current screenshot's version id, if one was captured.
    pub screenshot: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub approved_at: Option<DateTime<Utc>>,
}

impl Site {
    pub fn score(&self) -> i32 {
        self.upvotes - self.downvotes
    }
}

/// The columns [`Site`] maps from (`s` is `directory_sites`, `c` its
/// category, `p` its popularity).
const SELECT: &str = "SELECT s.id, s.url, s.host, s.title, s.description, s.category_id, \
        c.slug AS category_slug, c.name AS category_name, s.submitted_by, s.status, \
        s.moderation_reason, s.fetch_state, s.fetch_status, s.fetch_error, s.fetched_title, \
        s.fetched_description, (SELECT sc.slug FROM directory_categories sc \
                                WHERE sc.id = s.suggested_category_id) AS suggested_category, \
        s.health, s.health_detail, s.health_checked_at, s.upvotes, s.downvotes, \
        coalesce(p.visitors, 0) AS clicks, \
        (SELECT v.id FROM directory_screenshot_versions v WHERE v.site_id = s.id \
         ORDER BY v.captured_at DESC, v.id DESC LIMIT 1) AS screenshot, \
        s.created_at, s.approved_at \
    FROM directory_sites s JOIN directory_categories c ON c.id = s.category_id \
    LEFT JOIN link_popularity p ON p.link_kind = 'site' AND p.link_id = s.id";

impl TryFrom<&Row> for Site {
    type Error = SqlError;

    fn try_from(r: &Row) -> Result<Self, SqlError> {
        Ok(Site {
            id: r.get("id")?,
            url: r.get("url")?,
            host: r.get("host")?,
            title: r.get("title")?,
            description: r.get("description")?,
            category_id: r.get("category_id")?,
            category_slug: r.get("category_slug")?,
            category_name: r.get("category_name")?,
            submitted_by: r.get("submitted_by")?,
            status: r.get("status")?,
            moderation_reason: r.get("moderation_reason")?,
            fetch_state: r.get("fetch_state")?,
            fetch_status: r.get("fetch_status")?,
            fetch_error: r.get("fetch_error")?,
            fetched_title: r.get("fetched_title")?,
            fetched_description: r.get("fetched_description")?,
            suggested_category: r.get("suggested_category")?,
            health: r.get("health")?,
            health_detail: r.get("health_detail")?,
            health_checked_at: r.get("health_checked_at")?,
            upvotes: r.get("upvotes")?,
            downvotes: r.get("downvotes")?,
            clicks: r.get("clicks")?,
            screenshot: r.get("screenshot")?,
            created_at: r.get("created_at")?,
            approved_at: r.get("approved_at")?,
        })
    }
}

fn map(rows: Vec<Row>) -> Result<Vec<Site>, SqlError> {
    rows.iter().map(Site::try_from).collect()
}

/// One site, whatever its status.
pub async fn get(sql: &impl Sql, id: i64) -> Result<Option<Site>, SqlError> {
    sql.query_opt(&format!("{SELECT} WHERE s.id = $1"), &[SqlValue::Int64(id)])
        .await?
        .as_ref()
        .map(Site::try_from)
        .transpose()
}

/// How a list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Votes and clicks: a vote weighs as much as ten clicks.
    Top,
    /// Newest approved first.
    New,
}

impl Sort {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("new") => Sort::New,
            _ => Sort::Top,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Top => "top",
            Sort::New => "new",
        }
    }
}

/// Approved sites, optionally in `category` (a section includes its
/// categories), ordered by `sort`, a page at `offset`.
pub async fn approved(
    sql: &impl Sql,
    category: Option<&Category>,
    sort: Sort,
    limit: i64,
    offset: i64,
) -> Result<Vec<Site>, SqlError> {
    let order = match sort {
        Sort::Top => {
            "ORDER BY (s.upvotes - s.downvotes) * 10 + coalesce(p.visitors, 0) DESC, \
             s.approved_at DESC, s.id DESC"
        }
        Sort::New => "ORDER BY s.approved_at DESC, s.id DESC",
    };
    let category_id = category.map_or(SqlValue::Null, |c| SqlValue::Int64(c.id));
    sql.query(
        &format!(
            "{SELECT} WHERE s.status = 'approved' \
               AND ($1::bigint IS NULL OR c.id = $1 OR c.parent_id = $1) \
             {order} LIMIT $2 OFFSET $3"
        ),
        &[category_id, SqlValue::Int64(limit), SqlValue::Int64(offset)],
    )
    .await
    .and_then(map)
}

/// Full-text search over approved sites' titles, descriptions and hosts
/// (`websearch_to_tsquery`: words, "phrases", -exclusions), best first.
pub async fn search(sql: &impl Sql, query: &str, limit: i64) -> Result<Vec<Site>, SqlError> {
    sql.query(
        &format!(
            "{SELECT} CROSS JOIN websearch_to_tsquery('english', $1) q \
             WHERE s.status = 'approved' AND s.search @@ q \
             ORDER BY ts_rank(s.search, q) DESC, s.upvotes - s.downvotes DESC, s.id DESC \
             LIMIT $2"
        ),
        &[SqlValue::Text(query.to_owned()), SqlValue::Int64(limit)],
    )
    .await
    .and_then(map)
}

/// A user's own submissions, newest first.
pub async fn of_submitter(sql: &impl Sql, user: Uuid) -> Result<Vec<Site>, SqlError> {
    sql.query(
        &format!(
            "{SELECT} WHERE s.submitted_by = $1 ORDER BY s.created_at DESC, s.id DESC LIMIT 200"
        ),
        &[SqlValue::Uuid(user)],
    )
    .await
    .and_then(map)
}

/// The sites in `categories` waiting for a moderator: pending
/// submissions (oldest first), then approved sites the link check flagged.
pub async fn needing_moderation(
    sql: &impl Sql,
    categories: Option<&[i64]>,
) -> Result<Vec<Site>, SqlError> {
    let scope = categories.map_or(SqlValue::Null, |ids| SqlValue::Json(serde_json::json!(ids)));
    sql.query(
        &format!(
            "{SELECT} WHERE (s.status = 'pending' \
                   OR (s.status = 'approved' AND s.health IN ('broken', 'redirected', 'parked'))) \
               AND ($1::jsonb IS NULL OR $1::jsonb @> to_jsonb(s.category_id)) \
             ORDER BY s.status = 'approved', s.created_at, s.id LIMIT 200"
        ),
        &[scope],
    )
    .await
    .and_then(map)
}

/// What a submitter typed.
#[derive(Debug, Clone, Default)]
pub struct RawSubmission {
    pub url: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
}

/// A submission that passed its checks.
#[derive(Debug, Clone)]
pub struct Submission {
    pub url: urls::SiteUrl,
    pub title: String,
    pub description: String,
    pub category: Category,
}

/// Text a person typed for a field: trimmed, bounded, storable.
pub fn text_field(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Option<&str>,
    max: usize,
    required: bool,
) -> String {
    let value = value.unwrap_or_default().trim();
    if value.contains('\0') {
        errors.push(FieldError::new(field, "may not contain NUL characters"));
    } else if value.is_empty() && required {
        errors.push(FieldError::new(field, "required"));
    } else if value.chars().count() > max {
        errors.push(FieldError::new(field, format!("at most {max} characters")));
    }
    value.to_owned()
}

/// Checks a submission; every field's problem at once.
pub async fn check(
    sql: &impl Sql,
    raw: &RawSubmission,
    allowed_hosts: &[String],
) -> Result<Submission, Vec<FieldError>> {
    let mut errors = Vec::new();
    let url = match urls::normalise(raw.url.as_deref().unwrap_or_default(), allowed_hosts) {
        Ok(u) => Some(u),
        Err(e) => {
            errors.push(FieldError::new("url", e));
            None
        }
    };
    let title = text_field(&mut errors, "title", raw.title.as_deref(), MAX_TITLE, true);
    let description = text_field(
        &mut errors,
        "description",
        raw.description.as_deref(),
        MAX_DESCRIPTION,
        false,
    );
    let category = match raw
        .category
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => {
            errors.push(FieldError::new("category", "choose a category"));
            None
        }
        Some(slug) if slug.len() > 64 => {
            errors.push(FieldError::new("category", "no such category"));
            None
        }
        Some(slug) => match categories::by_slug(sql, slug).await {
            Ok(Some(c)) => Some(c),
            Ok(None) => {
                errors.push(FieldError::new("category", "no such category"));
                None
            }
            Err(e) => {
                errors.push(FieldError::new(
                    "category",
                    format!("could not be checked: {e}"),
                ));
                None
            }
        },
    };
    match (url, category) {
        (Some(url), Some(category)) if errors.is_empty() => Ok(Submission {
            url,
            title,
            description,
            category,
        }),
        _ => Err(errors),
    }
}

/// Records a submission as `pending` and queues its page fetch. A URL
/// already in the directory (in any spelling, whatever its status) is a
/// field error naming the existing entry.
pub async fn submit(
    sql: &impl Sql,
    cache: &impl Cache,
    user: Uuid,
    s: &Submission,
    now: DateTime<Utc>,
) -> Result<i64, AppError> {
    let inserted = sql
        .query_opt(
            "INSERT INTO directory_sites (url, url_key, host, title, description, category_id, \
                                          submitted_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (url_key) DO NOTHING RETURNING id",
            &[
                SqlValue::Text(s.url.as_str().to_owned()),
                SqlValue::Text(s.url.key().to_owned()),
                SqlValue::Text(s.url.host()),
                SqlValue::Text(s.title.clone()),
                SqlValue::Text(s.description.clone()),
                SqlValue::Int64(s.category.id),
                SqlValue::Uuid(user),
                SqlValue::Timestamp(now),
            ],
        )
        .await?;
    let Some(row) = inserted else {
        let existing = sql
            .query_opt(
                "SELECT id, status FROM directory_sites WHERE url_key = $1",
                &[SqlValue::Text(s.url.key().to_owned())],
            )
            .await?;
        let message = match existing {
            Some(r) if r.get::<String>("status")? == "rejected" => {
                "this site was submitted before and not accepted".to_owned()
            }
            Some(r) => format!(
                "this site is already in the directory (/good-sites/sites/{})",
                r.get::<i64>("id")?
            ),
            None => "this site was just submitted by someone else".to_owned(),
        };
        return Err(AppError::Validation(vec![FieldError::new("url", message)]));
    };
    let id: i64 = row.get("id")?;
    let job = NewJob::new(
        Queue::Default,
        crate::jobs::FETCH_SITE,
        serde_json::json!({ "site_id": id }),
    )
    .idempotency_key(format!("{}:{id}", crate::jobs::FETCH_SITE));
    if let Err(e) = village_jobs::enqueue(sql, cache, now, job).await {
        // The submission stands; a moderator sees "not fetched yet".
        village_platform::log::event(
            "ERROR",
            &format!("site fetch not queued: {e}"),
            serde_json::json!({ "site_id": id }),
        );
    }
    Ok(id)
}

/// The signed-in caller, or 401.
pub fn user(ctx: &RequestContext) -> Result<Uuid, AppError> {
    ctx.user_id().ok_or(AppError::Unauthorized)
}
