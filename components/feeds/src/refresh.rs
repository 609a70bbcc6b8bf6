//! Refreshing one feed: a conditional GET (`If-None-Match`,
//! `If-Modified-Since`), the items stored once per article, and the feed's
//! state updated — including, for a failing feed, its error and a backoff
//! that doubles per consecutive failure up to a day.
//!
//! The HTTP client passed in carries the timeout (at most 3 s: the issue's
//! bound for every outbound request).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use village_platform::http_client::{HttpClient, HttpError};
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::parse::{self, Item};
use village_platform::address::{self, PublicUrl as FeedUrl};

/// The longest a failing feed waits between attempts.
pub const MAX_BACKOFF_SECS: i64 = 86_400;
/// Redirects followed per fetch (http → https, moved feeds).
pub const MAX_REDIRECTS: usize = 3;
/// The largest feed body read.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
const USER_AGENT: &str = "VillageHomepage/0.1 (+https://village.example/feeds)";

/// A feed as the refresher needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub id: i64,
    pub url: String,
    pub refresh_interval_seconds: i32,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub consecutive_failures: i32,
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Refreshed {
    /// `304 Not Modified`.
    Unchanged,
    Updated {
        new_items: i64,
        seen_items: i64,
    },
    /// Recorded on the feed; retried after `retry_at`.
    Failed {
        error: String,
        retry_at: DateTime<Utc>,
    },
}

pub async fn load(sql: &impl Sql, feed_id: i64) -> Result<Option<Feed>, SqlError> {
    let Some(r) = sql
        .query_opt(
            "SELECT id, url, refresh_interval_seconds, etag, last_modified, consecutive_failures \
             FROM feeds WHERE id = $1",
            &[SqlValue::Int64(feed_id)],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Feed {
        id: r.get("id")?,
        url: r.get("url")?,
        refresh_interval_seconds: r.get("refresh_interval_seconds")?,
        etag: r.get("etag")?,
        last_modified: r.get("last_modified")?,
        consecutive_failures: r.get("consecutive_failures")?,
    }))
}

/// Fetches `feed` and records the result. `allowed_hosts` is the test
/// allow-list of [`address::check`]. Only a database error is an `Err`:
/// everything the feed does wrong is recorded on it.
pub async fn refresh(
    sql: &impl Sql,
    http: &impl HttpClient,
    feed: &Feed,
    allowed_hosts: &[String],
    now: DateTime<Utc>,
) -> Result<Refreshed, SqlError> {
    let url = match address::check(&feed.url, allowed_hosts) {
        Ok(u) => u,
        Err(e) => return failed(sql, feed, &e.to_string(), now).await,
    };
    let (response, url) = match get(http, feed, url, allowed_hosts).await {
        Ok(r) => r,
        Err(e) => return failed(sql, feed, &e, now).await,
    };
    let status = response.status();
    if status == http::StatusCode::NOT_MODIFIED {
        succeeded(sql, feed, None, None, None, now).await?;
        return Ok(Refreshed::Unchanged);
    }
    if !status.is_success() {
        return failed(sql, feed, &format!("the feed answered {status}"), now).await;
    }
    if response.body().len() > MAX_BODY_BYTES {
        return failed(sql, feed, "could not fetch the feed (too large)", now).await;
    }
    let header = |name: http::header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (etag, last_modified) = (
        header(http::header::ETAG),
        header(http::header::LAST_MODIFIED),
    );
    let parsed = match parse::parse(response.body(), url.as_str()) {
        Ok(p) => p,
        Err(e) => return failed(sql, feed, &e.to_string(), now).await,
    };
    let (new_items, seen_items) = match store_items(sql, feed.id, &parsed.items, now).await {
        Ok(counts) => counts,
        // Postgres refused what the feed carried: recorded on the feed with
        // its backoff (retrying the job would only fail the same way).
        Err(SqlError::Query { code, message }) => {
            village_platform::log::event(
                "WARNING",
                "feed items not stored",
                serde_json::json!({ "feed_id": feed.id, "code": code, "error": message }),
            );
            return failed(sql, feed, "its items could not be stored", now).await;
        }
        Err(e) => return Err(e),
    };
    succeeded(
        sql,
        feed,
        Some(&parsed.title),
        etag.as_deref(),
        last_modified.as_deref(),
        now,
    )
    .await?;
    Ok(Refreshed::Updated {
        new_items,
        seen_items,
    })
}

/// GETs `url` with the feed's validators, following up to
/// [`MAX_REDIRECTS`] redirects through [`address::follow`] (each target
/// checked as the feed's own address is). Returns the answer and the URL
/// that gave it (the base for its links).
async fn get(
    http: &impl HttpClient,
    feed: &Feed,
    first: FeedUrl,
    allowed_hosts: &[String],
) -> Result<(http::Response<Vec<u8>>, FeedUrl), String> {
    let followed = address::follow(http, first.clone(), allowed_hosts, MAX_REDIRECTS, |url| {
        let mut request = http::Request::get(url.as_str())
            .header(http::header::USER_AGENT, USER_AGENT)
            .header(
                http::header::ACCEPT,
                "application/rss+xml, application/atom+xml, application/feed+json, \
                 application/xml;q=0.9, */*;q=0.5",
            );
        if let Some(etag) = &feed.etag {
            request = request.header(http::header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &feed.last_modified {
            request = request.header(http::header::IF_MODIFIED_SINCE, lm);
        }
        request
    })
    .await
    .map_err(|e| match e {
        address::FollowError::Http(e) => unreachable(&first, e),
        address::FollowError::Refused(e) => {
            format!("the feed redirected to a refused address: {e}")
        }
        address::FollowError::BadLocation => "the feed redirected to an invalid address".to_owned(),
        address::FollowError::NoLocation(status) => {
            format!("the feed answered {status} without a Location")
        }
        address::FollowError::TooManyRedirects(n) => format!("more than {n} redirects"),
    })?;
    Ok((followed.response, followed.url))
}

/// What readers are told when the fetch failed — the widget shows it:
/// "could not fetch" and a category, never the transport's own words
/// (those would tell a port scanner which ports answered). The detail goes
/// to the log.
fn unreachable(url: &FeedUrl, e: HttpError) -> String {
    village_platform::log::event(
        "WARNING",
        &format!("feed fetch failed: {e}"),
        serde_json::json!({ "url": url.as_str() }),
    );
    format!("could not fetch the feed ({})", e.category())
}

/// Stores `items` for `feed_id` in one statement: an article already known
/// (same content hash, from any feed) is not stored again, only linked to
/// this feed. Returns `(new articles, articles this fetch carried)`.
pub async fn store_items(
    sql: &impl Sql,
    feed_id: i64,
    items: &[Item],
    now: DateTime<Utc>,
) -> Result<(i64, i64), SqlError> {
    let mut seen = std::collections::BTreeSet::new();
    let input: Vec<serde_json::Value> = items
        .iter()
        .filter(|i| seen.insert(i.content_hash.clone()))
        .map(|i| {
            serde_json::json!({
                "content_hash": i.content_hash, "guid": i.guid, "title": i.title,
                "link": i.link, "summary_html": i.summary_html, "published_at": i.published,
            })
        })
        .collect();
    if input.is_empty() {
        return Ok((0, 0));
    }
    let row = sql
        .query_opt(
            "WITH input AS ( \
                 SELECT * FROM jsonb_to_recordset($2::jsonb) AS x(content_hash text, guid text, \
                     title text, link text, summary_html text, published_at timestamp)), \
             ins AS ( \
                 INSERT INTO feed_items (content_hash, title, link, summary_html, published_at, \
                                         first_seen_at) \
                 SELECT content_hash, title, link, summary_html, published_at, $3 FROM input \
                 ON CONFLICT (content_hash) DO NOTHING RETURNING id, content_hash), \
             known AS ( \
                 SELECT id, content_hash FROM ins \
                 UNION ALL \
                 SELECT f.id, f.content_hash FROM feed_items f JOIN input USING (content_hash)), \
             linked AS ( \
                 INSERT INTO feed_item_sources (feed_id, item_id, guid, seen_at) \
                 SELECT $1, k.id, i.guid, $3 FROM known k JOIN input i USING (content_hash) \
                 ON CONFLICT (feed_id, item_id) DO UPDATE SET seen_at = EXCLUDED.seen_at \
                 RETURNING item_id) \
             SELECT (SELECT count(*) FROM ins) AS new_items, \
                    (SELECT count(*) FROM linked) AS seen_items",
            &[
                SqlValue::Int64(feed_id),
                SqlValue::Json(serde_json::Value::Array(input)),
                SqlValue::Timestamp(now),
            ],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("store returned no row".into()))?;
    Ok((row.get("new_items")?, row.get("seen_items")?))
}

async fn succeeded(
    sql: &impl Sql,
    feed: &Feed,
    title: Option<&str>,
    etag: Option<&str>,
    last_modified: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    let text = |v: Option<&str>| v.map_or(SqlValue::Null, |s| SqlValue::Text(s.to_owned()));
    let next = now + Duration::seconds(i64::from(feed.refresh_interval_seconds));
    sql.execute(
        "UPDATE feeds SET title = coalesce(nullif($2, ''), title), \
             etag = coalesce($3, etag), last_modified = coalesce($4, last_modified), \
             last_fetched_at = $5, last_success_at = $5, next_fetch_at = $6, \
             last_error = NULL, consecutive_failures = 0 \
         WHERE id = $1",
        &[
            SqlValue::Int64(feed.id),
            text(title),
            text(etag),
            text(last_modified),
            SqlValue::Timestamp(now),
            SqlValue::Timestamp(next),
        ],
    )
    .await?;
    Ok(())
}

/// When a feed that has failed `failures` times in a row is tried next:
/// its interval doubled per failure, at most a day.
pub fn backoff(interval_secs: i32, failures: i32) -> Duration {
    let factor = 1i64 << failures.clamp(0, 20);
    Duration::seconds(
        i64::from(interval_secs)
            .saturating_mul(factor)
            .min(MAX_BACKOFF_SECS),
    )
}

async fn failed(
    sql: &impl Sql,
    feed: &Feed,
    error: &str,
    now: DateTime<Utc>,
) -> Result<Refreshed, SqlError> {
    let failures = feed.consecutive_failures + 1;
    let retry_at = now + backoff(feed.refresh_interval_seconds, failures);
    sql.execute(
        "UPDATE feeds SET last_fetched_at = $2, next_fetch_at = $3, last_error = $4, \
             consecutive_failures = $5 WHERE id = $1",
        &[
            SqlValue::Int64(feed.id),
            SqlValue::Timestamp(now),
            SqlValue::Timestamp(retry_at),
            SqlValue::Text(error.to_owned()),
            SqlValue::Int32(failures),
        ],
    )
    .await?;
    Ok(Refreshed::Failed {
        error: error.to_owned(),
        retry_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_are_told_a_category_never_the_transport_detail() {
        let url = address::check("https://news.example.org/rss", &[]).expect("url");
        let refused = HttpError::from_transport("ErrorCode::ConnectionRefused".into());
        let dns = HttpError::from_transport("ErrorCode::DnsError(..)".into());
        // A closed port and an unknown name read the same: nothing to scan.
        assert_eq!(
            unreachable(&url, refused),
            "could not fetch the feed (connection failed)"
        );
        assert_eq!(
            unreachable(&url, dns),
            "could not fetch the feed (connection failed)"
        );
        let blocked = HttpError::from_transport("ErrorCode::DestinationIpProhibited".into());
        assert_eq!(
            unreachable(&url, blocked),
            "could not fetch the feed (address not allowed)"
        );
        let big = HttpError::TooLarge {
            limit: MAX_BODY_BYTES,
        };
        assert_eq!(
            unreachable(&url, big),
            "could not fetch the feed (too large)"
        );
        let slow = HttpError::Timeout(std::time::Duration::from_secs(3));
        assert_eq!(
            unreachable(&url, slow),
            "could not fetch the feed (timed out)"
        );
    }

    #[test]
    fn a_failing_feed_backs_off_doubling_up_to_a_day() {
        assert_eq!(backoff(300, 1), Duration::seconds(600));
        assert_eq!(backoff(300, 2), Duration::seconds(1200));
        assert_eq!(backoff(300, 9), Duration::seconds(MAX_BACKOFF_SECS));
        assert_eq!(backoff(300, 1_000), Duration::seconds(MAX_BACKOFF_SECS));
    }
}
