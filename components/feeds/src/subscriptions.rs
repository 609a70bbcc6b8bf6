//! Whose feeds: anonymous visitors, and users who never chose, read the
//! default set (`feeds.is_default`); a user's first add or remove copies
//! the defaults into their own list (`feed_subscriptions`) and marks them
//! as having chosen (`users.feeds_chosen_at`), so removing a default
//! sticks. Each change is one statement.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;
use village_platform::AppError;
use village_platform::cache::Cache;
use village_platform::error::FieldError;
use village_platform::sql::{Row, Sql, SqlError, SqlValue};

use crate::schedule;
use village_platform::address;

/// The most feeds one user may follow.
pub const MAX_FEEDS: i64 = 50;

/// How a feed is doing, as the widget says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not fetched yet.
    Waiting,
    Ok,
    /// No successful fetch for three intervals (at least an hour).
    Stale,
    /// The last fetch failed; retried with backoff.
    Failing,
}

/// A feed a visitor reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedStatus {
    pub id: i64,
    pub url: String,
    pub title: String,
    pub is_default: bool,
    pub health: Health,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub next_fetch_at: DateTime<Utc>,
}

impl FeedStatus {
    /// The feed's title, or its address before the first fetch named it.
    pub fn name(&self) -> &str {
        if self.title.is_empty() {
            &self.url
        } else {
            &self.title
        }
    }
}

pub(crate) const COLUMNS: &str = "f.id, f.url, f.title, f.is_default, f.refresh_interval_seconds, \
     f.last_fetched_at, f.last_success_at, f.last_error, f.next_fetch_at";

pub(crate) fn status(r: &Row, now: DateTime<Utc>) -> Result<FeedStatus, SqlError> {
    let interval: i32 = r.get("refresh_interval_seconds")?;
    let fetched: Option<DateTime<Utc>> = r.get("last_fetched_at")?;
    let success: Option<DateTime<Utc>> = r.get("last_success_at")?;
    let error: Option<String> = r.get("last_error")?;
    let stale_after = Duration::seconds(i64::from(interval) * 3).max(Duration::hours(1));
    let health = match (fetched, success, &error) {
        (None, _, _) => Health::Waiting,
        (_, _, Some(_)) => Health::Failing,
        (_, Some(s), None) if now - s > stale_after => Health::Stale,
        _ => Health::Ok,
    };
    Ok(FeedStatus {
        id: r.get("id")?,
        url: r.get("url")?,
        title: r.get("title")?,
        is_default: r.get("is_default")?,
        health,
        last_success_at: success,
        last_error: error,
        next_fetch_at: r.get("next_fetch_at")?,
    })
}

/// The feeds `user` reads (the default set for `None`), by title.
pub async fn feeds_of(
    sql: &impl Sql,
    user: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Vec<FeedStatus>, SqlError> {
    let user = user.map_or(SqlValue::Null, SqlValue::Uuid);
    let rows = sql
        .query(
            &format!(
                "SELECT {COLUMNS} FROM feeds f \
                 WHERE CASE WHEN (SELECT feeds_chosen_at FROM users WHERE id = $1) IS NULL \
                            THEN f.is_default \
                            ELSE EXISTS (SELECT 1 FROM feed_subscriptions s \
                                         WHERE s.feed_id = f.id AND s.user_id = $1) END \
                 ORDER BY lower(coalesce(nullif(f.title, ''), f.url)), f.id"
            ),
            &[user],
        )
        .await?;
    rows.iter().map(|r| status(r, now)).collect()
}

/// Adds the feed at `url` to `user`'s list, creating the feed if nobody
/// had it, and schedules its first fetch. `allowed_hosts` is the test
/// allow-list of [`address::check`].
pub async fn add(
    sql: &impl Sql,
    cache: &impl Cache,
    user: Uuid,
    url: &str,
    allowed_hosts: &[String],
    now: DateTime<Utc>,
) -> Result<FeedStatus, AppError> {
    let checked = address::check(url, allowed_hosts)
        .map_err(|e| AppError::Validation(vec![FieldError::new("url", e.to_string())]))?;
    let row = sql
        .query_opt(
            &format!(
                "WITH feed AS ( \
                     INSERT INTO feeds (url, next_fetch_at) VALUES ($2, $3) \
                     ON CONFLICT (url) DO UPDATE SET url = EXCLUDED.url \
                     RETURNING *), \
                 chooser AS ( \
                     SELECT feeds_chosen_at IS NULL AS fresh FROM users WHERE id = $1 FOR UPDATE), \
                 mark AS ( \
                     UPDATE users SET feeds_chosen_at = $3 \
                     WHERE id = $1 AND feeds_chosen_at IS NULL), \
                 defaults AS ( \
                     INSERT INTO feed_subscriptions (user_id, feed_id, added_at) \
                     SELECT $1, d.id, $3 FROM feeds d, chooser \
                     WHERE chooser.fresh AND d.is_default AND d.id <> (SELECT id FROM feed) \
                     ON CONFLICT DO NOTHING), \
                 sub AS ( \
                     INSERT INTO feed_subscriptions (user_id, feed_id, added_at) \
                     SELECT $1, id, $3 FROM feed WHERE EXISTS (SELECT 1 FROM chooser) \
                       AND (SELECT count(*) FROM feed_subscriptions WHERE user_id = $1) < $4 \
                     ON CONFLICT DO NOTHING RETURNING feed_id) \
                 SELECT {COLUMNS}, EXISTS (SELECT 1 FROM chooser) AS user_exists, \
                        EXISTS (SELECT 1 FROM sub) OR EXISTS ( \
                            SELECT 1 FROM feed_subscriptions s \
                            WHERE s.user_id = $1 AND s.feed_id = f.id) AS subscribed \
                 FROM feed f"
            ),
            &[
                SqlValue::Uuid(user),
                SqlValue::Text(checked.as_str().to_owned()),
                SqlValue::Timestamp(now),
                SqlValue::Int64(MAX_FEEDS),
            ],
        )
        .await?
        .ok_or_else(|| AppError::Internal("feed upsert returned no row".into()))?;
    if !row.get::<bool>("user_exists")? {
        return Err(AppError::Unauthorized);
    }
    if !row.get::<bool>("subscribed")? {
        return Err(AppError::Validation(vec![FieldError::new(
            "url",
            format!("you already follow {MAX_FEEDS} feeds: remove one first"),
        )]));
    }
    let feed = status(&row, now)?;
    if feed.next_fetch_at <= now {
        // Fetched within seconds rather than at the next minute's sweep;
        // the same key as the scheduler's, so never twice.
        village_jobs::enqueue(
            sql,
            cache,
            now,
            schedule::refresh_job(feed.id, feed.next_fetch_at),
        )
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    }
    Ok(feed)
}

/// Removes a feed from `user`'s list. `false` when they did not read it.
pub async fn remove(
    sql: &impl Sql,
    user: Uuid,
    feed_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, SqlError> {
    let row = sql
        .query_opt(
            "WITH chooser AS ( \
                 SELECT feeds_chosen_at IS NULL AS fresh FROM users WHERE id = $1 FOR UPDATE), \
             mark AS ( \
                 UPDATE users SET feeds_chosen_at = $3 \
                 WHERE id = $1 AND feeds_chosen_at IS NULL \
                   AND EXISTS (SELECT 1 FROM feeds WHERE id = $2 AND is_default)), \
             defaults AS ( \
                 INSERT INTO feed_subscriptions (user_id, feed_id, added_at) \
                 SELECT $1, d.id, $3 FROM feeds d, chooser \
                 WHERE chooser.fresh AND d.is_default AND d.id <> $2 \
                   AND EXISTS (SELECT 1 FROM feeds WHERE id = $2 AND is_default) \
                 ON CONFLICT DO NOTHING), \
             del AS ( \
                 DELETE FROM feed_subscriptions WHERE user_id = $1 AND feed_id = $2 \
                 RETURNING feed_id) \
             SELECT EXISTS (SELECT 1 FROM del) \
                 OR ((SELECT fresh FROM chooser) \
                     AND EXISTS (SELECT 1 FROM feeds WHERE id = $2 AND is_default)) AS removed",
            &[
                SqlValue::Uuid(user),
                SqlValue::Int64(feed_id),
                SqlValue::Timestamp(now),
            ],
        )
        .await?;
    Ok(match row {
        Some(r) => r.get::<Option<bool>>("removed")?.unwrap_or(false),
        None => false,
    })
}
