//! What the news widget shows: the newest articles of a visitor's feeds,
//! optionally those with one tag, each with its sources, time and tags; the
//! tags in use (for the filter); and every feed's health, so a failing or
//! stale feed says so rather than vanishing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::subscriptions::{self, FeedStatus};

/// Articles the widget shows at most.
pub const WIDGET_ITEMS: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewsItem {
    pub id: i64,
    pub title: String,
    /// An http(s) link (the parser keeps no other), or `None`.
    pub link: Option<String>,
    /// Sanitised when stored (see [`crate::parse`]).
    pub summary_html: String,
    pub at: DateTime<Utc>,
    /// The visitor's feeds that carry it, by name.
    pub sources: Vec<String>,
    pub tags: Vec<String>,
    /// `false` until the model has tagged it (the "untagged" badge).
    pub tagged: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct News {
    pub feeds: Vec<FeedStatus>,
    pub items: Vec<NewsItem>,
    /// Tags on the visitor's recent articles, most used first.
    pub tags: Vec<String>,
    pub tag: Option<String>,
    /// The visitor's articles opened by the most visitors over the
    /// popularity window (`link_popularity`, kept by `clicks.maintain`).
    pub most_read: Vec<PopularItem>,
}

/// An article and how often it was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PopularItem {
    pub id: i64,
    pub title: String,
    pub link: Option<String>,
    /// Visitors who opened it over the window.
    pub clicks: i64,
}

/// How many "most read" articles the widget shows.
pub const MOST_READ: i64 = 3;

/// The news for `user` (`None`: the default set), newest first.
pub async fn news_for(
    sql: &impl Sql,
    user: Option<Uuid>,
    tag: Option<&str>,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<News, SqlError> {
    let feeds = subscriptions::feeds_of(sql, user, now).await?;
    let ids: Vec<i64> = feeds.iter().map(|f| f.id).collect();
    let tag = tag
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase);
    let rows = sql
        .query(
            "SELECT i.id, i.title, i.link, i.summary_html, i.tag_state, to_jsonb(i.tags) AS tags, \
                    coalesce(i.published_at, i.first_seen_at) AS at, \
                    (SELECT jsonb_agg(coalesce(nullif(f.title, ''), f.url) ORDER BY f.title) \
                     FROM feed_item_sources s JOIN feeds f ON f.id = s.feed_id \
                     WHERE s.item_id = i.id AND s.feed_id = ANY($1)) AS sources \
             FROM feed_items i \
             WHERE EXISTS (SELECT 1 FROM feed_item_sources s \
                           WHERE s.item_id = i.id AND s.feed_id = ANY($1)) \
               AND ($2::text IS NULL OR $2::text = ANY(i.tags)) \
             ORDER BY at DESC, i.id DESC LIMIT $3",
            &[
                SqlValue::Int64Array(ids.clone()),
                tag.clone().map_or(SqlValue::Null, SqlValue::Text),
                SqlValue::Int64(limit),
            ],
        )
        .await?;
    let strings = |v: Option<serde_json::Value>| -> Vec<String> {
        v.and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    };
    let items = rows
        .iter()
        .map(|r| {
            let state: String = r.get("tag_state")?;
            Ok(NewsItem {
                id: r.get("id")?,
                title: r.get("title")?,
                link: r.get("link")?,
                summary_html: r.get("summary_html")?,
                at: r.get("at")?,
                sources: strings(r.get("sources")?),
                tags: strings(r.get("tags")?),
                tagged: state == "tagged",
            })
        })
        .collect::<Result<Vec<_>, SqlError>>()?;
    let tags = sql
        .query(
            "SELECT t AS tag, count(*) AS n FROM ( \
                 SELECT i.tags FROM feed_items i \
                 WHERE EXISTS (SELECT 1 FROM feed_item_sources s \
                               WHERE s.item_id = i.id AND s.feed_id = ANY($1)) \
                 ORDER BY coalesce(i.published_at, i.first_seen_at) DESC LIMIT 200) recent, \
                 unnest(recent.tags) AS t \
             GROUP BY t ORDER BY n DESC, t LIMIT 20",
            &[SqlValue::Int64Array(ids.clone())],
        )
        .await?
        .iter()
        .map(|r| r.get::<String>("tag"))
        .collect::<Result<Vec<_>, SqlError>>()?;
    let most_read = sql
        .query(
            "SELECT i.id, i.title, i.link, p.visitors AS clicks FROM link_popularity p \
             JOIN feed_items i ON i.id = p.link_id \
             WHERE p.link_kind = 'article' \
               AND EXISTS (SELECT 1 FROM feed_item_sources s \
                           WHERE s.item_id = i.id AND s.feed_id = ANY($1)) \
             ORDER BY p.visitors DESC, i.id DESC LIMIT $2",
            &[SqlValue::Int64Array(ids), SqlValue::Int64(MOST_READ)],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(PopularItem {
                id: r.get("id")?,
                title: r.get("title")?,
                link: r.get("link")?,
                clicks: r.get("clicks")?,
            })
        })
        .collect::<Result<Vec<_>, SqlError>>()?;
    Ok(News {
        feeds,
        items,
        tags,
        tag,
        most_read,
    })
}
