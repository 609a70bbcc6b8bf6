//! Who moderates what, and what moderators do.
//!
//! A user moderates a category when
//! - they hold `moderate_content` (support, super admins): every category;
//! - an admin appointed them to it or to its section
//!   (`directory_moderators`, `/admin/api/good-sites/moderators`); or
//! - their karma earned in its section (the sum of their
//!   `directory_karma` rows for sites there, except the +1s for casting
//!   votes: voting is not a way to become a moderator) is at least the
//!   threshold (`directory_moderator_karma`, default
//!   [`DEFAULT_KARMA_THRESHOLD`]).
//!
//! Nobody but a `moderate_content` holder decides on their own submission.
//!
//! Approving, editing and rejecting each write the change, the karma it
//! earns and the audit row in one statement. Admin power is not used while
//! impersonating.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use village_accounts::roles::{Permission, grants};
use village_platform::audit::AuditEntry;
use village_platform::cache::Cache;
use village_platform::error::FieldError;
use village_platform::sql::{Sql, SqlError, SqlValue};
use village_platform::{AppError, RequestContext};

use crate::categories::{self, Category};
use crate::sites;

/// Karma in a section that makes its moderator.
pub const DEFAULT_KARMA_THRESHOLD: i64 = 50;
/// Karma a submitter earns when a submission is approved.
pub const APPROVED_KARMA: i32 = 5;
/// Karma a submitter loses when a submission is rejected (or removed).
pub const REJECTED_KARMA: i32 = -2;
pub const MAX_REASON: usize = 500;

/// The categories a user moderates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Categories(Vec<i64>),
}

impl Scope {
    pub fn covers(&self, category_id: i64) -> bool {
        match self {
            Scope::All => true,
            Scope::Categories(ids) => ids.contains(&category_id),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Scope::Categories(ids) if ids.is_empty())
    }
}

/// The scope of `user` (see the module doc); `threshold` is the karma a
/// section asks.
pub async fn scope_of(sql: &impl Sql, user: Uuid, threshold: i64) -> Result<Scope, SqlError> {
    let roles = village_accounts::authz::roles_of(sql, user).await?;
    if grants(&roles, Permission::ModerateContent) {
        return Ok(Scope::All);
    }
    let rows = sql
        .query(
            "SELECT c.id FROM directory_categories c \
             WHERE EXISTS (SELECT 1 FROM directory_moderators m \
                           WHERE m.user_id = $1 AND m.category_id IN (c.id, c.parent_id)) \
                OR coalesce(c.parent_id, c.id) IN ( \
                       SELECT coalesce(kc.parent_id, kc.id) FROM directory_karma k \
                       JOIN directory_categories kc ON kc.id = k.category_id \
                       WHERE k.user_id = $1 AND k.cause <> 'vote_cast' \
                       GROUP BY 1 HAVING sum(k.delta) >= $2) \
             ORDER BY c.id",
            &[SqlValue::Uuid(user), SqlValue::Int64(threshold)],
        )
        .await?;
    Ok(Scope::Categories(
        rows.iter().map(|r| r.get("id")).collect::<Result<_, _>>()?,
    ))
}

/// The caller's scope: nothing while anonymous or impersonating.
pub async fn scope_for(
    sql: &impl Sql,
    ctx: &RequestContext,
    threshold: i64,
) -> Result<Scope, SqlError> {
    match &ctx.principal {
        Some(p) if p.impersonator.is_none() => scope_of(sql, p.user_id, threshold).await,
        _ => Ok(Scope::Categories(Vec::new())),
    }
}

/// A user's karma: in total, and per section (`slug`, karma).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Karma {
    pub total: i64,
    pub sections: Vec<(String, i64)>,
}

pub async fn karma_of(sql: &impl Sql, user: Uuid) -> Result<Karma, SqlError> {
    let rows = sql
        .query(
            "SELECT p.slug, sum(k.delta)::bigint AS karma FROM directory_karma k \
             JOIN directory_categories kc ON kc.id = k.category_id \
             JOIN directory_categories p ON p.id = coalesce(kc.parent_id, kc.id) \
             WHERE k.user_id = $1 GROUP BY p.slug ORDER BY p.slug",
            &[SqlValue::Uuid(user)],
        )
        .await?;
    let sections: Vec<(String, i64)> = rows
        .iter()
        .map(|r| Ok((r.get("slug")?, r.get("karma")?)))
        .collect::<Result<_, SqlError>>()?;
    let total = sql
        .query_opt(
            "SELECT coalesce(sum(delta), 0)::bigint AS karma FROM directory_karma WHERE user_id = $1",
            &[SqlValue::Uuid(user)],
        )
        .await?
        .map(|r| r.get("karma"))
        .transpose()?
        .unwrap_or(0);
    Ok(Karma { total, sections })
}

/// A moderator's changes to a site's text and category (`None`: keep).
#[derive(Debug, Clone, Default)]
pub struct Edits {
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
}

struct CheckedEdits {
    title: Option<String>,
    description: Option<String>,
    category: Option<Category>,
}

async fn check_edits(sql: &impl Sql, e: &Edits) -> Result<CheckedEdits, AppError> {
    let mut errors = Vec::new();
    let title = e
        .title
        .as_deref()
        .map(|t| sites::text_field(&mut errors, "title", Some(t), sites::MAX_TITLE, true));
    let description = e.description.as_deref().map(|d| {
        sites::text_field(
            &mut errors,
            "description",
            Some(d),
            sites::MAX_DESCRIPTION,
            false,
        )
    });
    let category = match e
        .category
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(slug) => match categories::by_slug(sql, slug).await? {
            Some(c) => Some(c),
            None => {
                errors.push(FieldError::new("category", "no such category"));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    Ok(CheckedEdits {
        title,
        description,
        category,
    })
}

/// The moderator acting, after checking they may act on `site` (and on
/// the category it is moved to). 404 for a site that does not exist; 403
/// outside the caller's scope.
async fn moderator_for(
    sql: &impl Sql,
    ctx: &RequestContext,
    threshold: i64,
    site: &sites::Site,
    moving_to: Option<&Category>,
) -> Result<Uuid, AppError> {
    let user = sites::user(ctx)?;
    village_accounts::authz::refuse_while_impersonating(sql, ctx, "moderating Good Sites").await?;
    let scope = scope_of(sql, user, threshold).await?;
    if !scope.covers(site.category_id) || moving_to.is_some_and(|c| !scope.covers(c.id)) {
        return Err(AppError::Forbidden(
            "you do not moderate this category".into(),
        ));
    }
    if site.submitted_by == Some(user) && scope != Scope::All {
        return Err(AppError::Forbidden(
            "another moderator decides on your own submissions".into(),
        ));
    }
    Ok(user)
}

fn audit_entry(
    ctx: &RequestContext,
    user: Uuid,
    action: &str,
    site: i64,
    reason: Option<&str>,
) -> SqlValue {
    AuditEntry {
        target_type: Some("directory_site".into()),
        target_id: Some(site.to_string()),
        reason: reason.map(str::to_owned),
        ..AuditEntry::for_request(ctx, Some(user), action)
    }
    .as_param()
}

/// What a decision needs besides the site.
pub struct Decision<'a, S, C> {
    pub sql: &'a S,
    pub cache: &'a C,
    pub ctx: &'a RequestContext,
    pub threshold: i64,
    /// Hosts the screenshot queue lets through (tests only).
    pub screenshot_hosts: &'a [String],
    pub now: DateTime<Utc>,
}

impl<S: Sql, C: Cache> Decision<'_, S, C> {
    /// The site, for a signed-in caller (401 before anything is looked up).
    async fn site(&self, id: i64) -> Result<sites::Site, AppError> {
        sites::user(self.ctx)?;
        sites::get(self.sql, id).await?.ok_or(AppError::NotFound)
    }

    /// Approves a pending submission (with any edits): the submitter earns
    /// karma, a screenshot is queued and link checks begin.
    pub async fn approve(&self, id: i64, edits: &Edits) -> Result<(), AppError> {
        let site = self.site(id).await?;
        let edits = check_edits(self.sql, edits).await?;
        let user = moderator_for(
            self.sql,
            self.ctx,
            self.threshold,
            &site,
            edits.category.as_ref(),
        )
        .await?;
        if site.status != "pending" {
            return Err(AppError::Conflict(format!(
                "the site is {}, not pending",
                site.status
            )));
        }
        let row = self
            .sql
            .query_opt(
                "WITH old AS ( \
                     SELECT id, status, title, description, category_id FROM directory_sites \
                     WHERE id = $1 AND status = 'pending' FOR UPDATE), \
                 changed AS ( \
                     UPDATE directory_sites s SET status = 'approved', \
                         title = coalesce($2, s.title), description = coalesce($3, s.description), \
                         category_id = coalesce($4, s.category_id), moderation_reason = NULL, \
                         moderated_by = $5, moderated_at = $6, approved_at = $6, updated_at = $6, \
                         health_next_at = $6, screenshot_requested_at = $6 \
                     FROM old WHERE s.id = old.id \
                     RETURNING s.id, s.url, s.submitted_by, s.category_id, s.title, s.description), \
                 karma AS ( \
                     INSERT INTO directory_karma (user_id, delta, cause, site_id, category_id, actor_id, created_at) \
                     SELECT submitted_by, $7, 'submission_approved', id, category_id, $5, $6 FROM changed \
                     WHERE submitted_by IS NOT NULL AND submitted_by <> $5), \
                 audit AS ( \
                     SELECT audit_record($8, \
                         (SELECT jsonb_build_object('status', status, 'title', title, \
                             'description', description, 'category_id', category_id) FROM old), \
                         jsonb_build_object('status', 'approved', 'title', c.title, \
                             'description', c.description, 'category_id', c.category_id)) AS id \
                     FROM changed c) \
                 SELECT c.url, (SELECT count(*) FROM audit) AS audited FROM changed c",
                &[
                    SqlValue::Int64(id),
                    edits.title.map_or(SqlValue::Null, SqlValue::Text),
                    edits.description.map_or(SqlValue::Null, SqlValue::Text),
                    edits.category.map_or(SqlValue::Null, |c| SqlValue::Int64(c.id)),
                    SqlValue::Uuid(user),
                    SqlValue::Timestamp(self.now),
                    SqlValue::Int32(APPROVED_KARMA),
                    audit_entry(self.ctx, user, "directory.approve", id, None),
                ],
            )
            .await?
            .ok_or_else(|| AppError::Conflict("the site was decided meanwhile".into()))?;
        let url: String = row.get("url")?;
        // The approval stands even if the queue is down: the daily
        // recapture run picks up approved sites without a screenshot.
        if let Err(e) = village_screenshots::enqueue(
            self.sql,
            self.cache,
            &url,
            Some(id),
            self.screenshot_hosts,
            self.now,
        )
        .await
        {
            village_platform::log::event(
                "ERROR",
                &format!("screenshot not queued: {e}"),
                serde_json::json!({ "site_id": id }),
            );
        }
        Ok(())
    }

    /// Rejects a pending submission, or removes an approved site, with a
    /// reason the submitter sees. The submitter loses karma.
    pub async fn reject(&self, id: i64, reason: &str) -> Result<(), AppError> {
        let site = self.site(id).await?;
        let user = moderator_for(self.sql, self.ctx, self.threshold, &site, None).await?;
        let mut errors = Vec::new();
        let reason = sites::text_field(&mut errors, "reason", Some(reason), MAX_REASON, true);
        if !errors.is_empty() {
            return Err(AppError::Validation(errors));
        }
        if site.status == "rejected" {
            return Err(AppError::Conflict("the site is already rejected".into()));
        }
        self.sql
            .query_opt(
                "WITH old AS ( \
                     SELECT id, status FROM directory_sites \
                     WHERE id = $1 AND status IN ('pending', 'approved') FOR UPDATE), \
                 changed AS ( \
                     UPDATE directory_sites s SET status = 'rejected', moderation_reason = $2, \
                         moderated_by = $3, moderated_at = $4, updated_at = $4, health_next_at = NULL \
                     FROM old WHERE s.id = old.id \
                     RETURNING s.id, s.submitted_by, s.category_id), \
                 karma AS ( \
                     INSERT INTO directory_karma (user_id, delta, cause, site_id, category_id, actor_id, created_at) \
                     SELECT submitted_by, $5, 'submission_rejected', id, category_id, $3, $4 FROM changed \
                     WHERE submitted_by IS NOT NULL AND submitted_by <> $3), \
                 audit AS ( \
                     SELECT audit_record($6, (SELECT jsonb_build_object('status', status) FROM old), \
                                         jsonb_build_object('status', 'rejected')) AS id \
                     FROM changed) \
                 SELECT c.id, (SELECT count(*) FROM audit) AS audited FROM changed c",
                &[
                    SqlValue::Int64(id),
                    SqlValue::Text(reason.clone()),
                    SqlValue::Uuid(user),
                    SqlValue::Timestamp(self.now),
                    SqlValue::Int32(REJECTED_KARMA),
                    audit_entry(self.ctx, user, "directory.reject", id, Some(&reason)),
                ],
            )
            .await?
            .ok_or_else(|| AppError::Conflict("the site was decided meanwhile".into()))?;
        Ok(())
    }

    /// Changes a site's title, description or category; a flagged site's
    /// health can be marked seen (`ok`) at the same time.
    pub async fn edit(&self, id: i64, edits: &Edits, clear_health: bool) -> Result<(), AppError> {
        let site = self.site(id).await?;
        let edits = check_edits(self.sql, edits).await?;
        let user = moderator_for(
            self.sql,
            self.ctx,
            self.threshold,
            &site,
            edits.category.as_ref(),
        )
        .await?;
        self.sql
            .query_opt(
                "WITH old AS ( \
                     SELECT id, title, description, category_id, health FROM directory_sites \
                     WHERE id = $1 FOR UPDATE), \
                 changed AS ( \
                     UPDATE directory_sites s SET title = coalesce($2, s.title), \
                         description = coalesce($3, s.description), \
                         category_id = coalesce($4, s.category_id), \
                         health = CASE WHEN $7 THEN 'ok' ELSE s.health END, \
                         health_failures = CASE WHEN $7 THEN 0 ELSE s.health_failures END, \
                         moderated_by = $5, moderated_at = $6, updated_at = $6 \
                     FROM old WHERE s.id = old.id \
                     RETURNING s.id, s.title, s.description, s.category_id, s.health), \
                 audit AS ( \
                     SELECT audit_record($8, \
                         (SELECT jsonb_build_object('title', title, 'description', description, \
                              'category_id', category_id, 'health', health) FROM old), \
                         jsonb_build_object('title', c.title, 'description', c.description, \
                              'category_id', c.category_id, 'health', c.health)) AS id \
                     FROM changed c) \
                 SELECT c.id, (SELECT count(*) FROM audit) AS audited FROM changed c",
                &[
                    SqlValue::Int64(id),
                    edits.title.map_or(SqlValue::Null, SqlValue::Text),
                    edits.description.map_or(SqlValue::Null, SqlValue::Text),
                    edits
                        .category
                        .map_or(SqlValue::Null, |c| SqlValue::Int64(c.id)),
                    SqlValue::Uuid(user),
                    SqlValue::Timestamp(self.now),
                    SqlValue::Bool(clear_health),
                    audit_entry(self.ctx, user, "directory.edit", id, None),
                ],
            )
            .await?
            .ok_or(AppError::NotFound)?;
        Ok(())
    }
}

/// An appointed moderator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Appointment {
    pub user_id: Uuid,
    pub category: String,
    pub granted_by: Option<Uuid>,
    pub granted_at: DateTime<Utc>,
}

pub async fn appointments(sql: &impl Sql) -> Result<Vec<Appointment>, SqlError> {
    sql.query(
        "SELECT m.user_id, c.slug, m.granted_by, m.granted_at FROM directory_moderators m \
         JOIN directory_categories c ON c.id = m.category_id ORDER BY c.slug, m.granted_at",
        &[],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Appointment {
            user_id: r.get("user_id")?,
            category: r.get("slug")?,
            granted_by: r.get("granted_by")?,
            granted_at: r.get("granted_at")?,
        })
    })
    .collect()
}

/// Appoints `user` moderator of `category` (audited, with the change).
/// Returns false when they already were.
pub async fn appoint(
    sql: &impl Sql,
    entry: &AuditEntry,
    admin: Uuid,
    user: Uuid,
    category: &Category,
    now: DateTime<Utc>,
) -> Result<bool, SqlError> {
    let row = sql
        .query_opt(
            "WITH added AS ( \
                 INSERT INTO directory_moderators (user_id, category_id, granted_by, granted_at) \
                 SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1) \
                 ON CONFLICT DO NOTHING RETURNING user_id), \
             audit AS ( \
                 SELECT audit_record($5, NULL, jsonb_build_object('category', $6::text)) AS id \
                 FROM added) \
             SELECT (SELECT count(*) FROM added) AS added, (SELECT count(*) FROM audit) AS audited",
            &[
                SqlValue::Uuid(user),
                SqlValue::Int64(category.id),
                SqlValue::Uuid(admin),
                SqlValue::Timestamp(now),
                entry.as_param(),
                SqlValue::Text(category.slug.clone()),
            ],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("no answer".into()))?;
    Ok(row.get::<i64>("added")? == 1)
}

/// Removes an appointment (audited). Returns false when there was none.
pub async fn dismiss(
    sql: &impl Sql,
    entry: &AuditEntry,
    user: Uuid,
    category: &Category,
) -> Result<bool, SqlError> {
    let row = sql
        .query_opt(
            "WITH gone AS ( \
                 DELETE FROM directory_moderators WHERE user_id = $1 AND category_id = $2 \
                 RETURNING user_id), \
             audit AS ( \
                 SELECT audit_record($3, jsonb_build_object('category', $4::text), NULL) AS id \
                 FROM gone) \
             SELECT (SELECT count(*) FROM gone) AS gone, (SELECT count(*) FROM audit) AS audited",
            &[
                SqlValue::Uuid(user),
                SqlValue::Int64(category.id),
                entry.as_param(),
                SqlValue::Text(category.slug.clone()),
            ],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("no answer".into()))?;
    Ok(row.get::<i64>("gone")? == 1)
}
