//! Whose feeds, when they are fetched, what the widget reads and what is
//! pruned — against the real Postgres and Redis.

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;
use village_feeds::subscriptions::{self, Health};
use village_feeds::{retention, schedule, view};
use village_platform::AppError;
use village_platform::native::{NativeCache, NativeSql, test_ports};
use village_platform::sql::{Sql, SqlValue};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0)
        .single()
        .expect("time")
}

async fn ports() -> (NativeSql, NativeCache) {
    let url = village_migrate::testing::fresh_database()
        .await
        .expect("database");
    test_ports(&url).await
}

async fn user(sql: &NativeSql) -> Uuid {
    sql.query_opt(
        "INSERT INTO users (is_anonymous, display_name) VALUES (false, 'Reader') RETURNING id",
        &[],
    )
    .await
    .expect("user")
    .expect("row")
    .get("id")
    .expect("id")
}

async fn n(sql: &NativeSql, q: &str) -> i64 {
    sql.query_opt(q, &[])
        .await
        .expect("query")
        .expect("row")
        .get("n")
        .expect("n")
}

fn urls(feeds: &[subscriptions::FeedStatus]) -> Vec<String> {
    let mut u: Vec<String> = feeds.iter().map(|f| f.url.clone()).collect();
    u.sort();
    u
}

#[tokio::test]
async fn a_user_reads_the_defaults_until_they_choose_and_their_choice_sticks() {
    let (sql, cache) = ports().await;
    let defaults = subscriptions::feeds_of(&sql, None, now())
        .await
        .expect("defaults");
    assert_eq!(defaults.len(), 4, "migration V15's default set");
    assert!(
        defaults
            .iter()
            .all(|f| f.is_default && f.health == Health::Waiting)
    );

    let reader = user(&sql).await;
    assert_eq!(
        urls(
            &subscriptions::feeds_of(&sql, Some(reader), now())
                .await
                .expect("feeds")
        ),
        urls(&defaults)
    );

    // Removing a default copies the others into the reader's own list.
    let bbc = defaults
        .iter()
        .find(|f| f.url.contains("bbci"))
        .expect("bbc")
        .id;
    assert!(
        subscriptions::remove(&sql, reader, bbc, now())
            .await
            .expect("remove")
    );
    let mine = subscriptions::feeds_of(&sql, Some(reader), now())
        .await
        .expect("feeds");
    assert_eq!(mine.len(), 3);
    assert!(!mine.iter().any(|f| f.id == bbc));
    assert!(
        !subscriptions::remove(&sql, reader, bbc, now())
            .await
            .expect("again")
    );
    assert_eq!(
        subscriptions::feeds_of(&sql, None, now())
            .await
            .expect("anon")
            .len(),
        4
    );

    // Adding: a new feed, fetched at once; the same URL twice is one feed.
    let added = subscriptions::add(
        &sql,
        &cache,
        reader,
        "https://parish.example.org/feed.xml",
        &[],
        now(),
    )
    .await
    .expect("add");
    assert_eq!(added.health, Health::Waiting);
    let other = user(&sql).await;
    let again = subscriptions::add(
        &sql,
        &cache,
        other,
        "https://parish.example.org/feed.xml",
        &[],
        now(),
    )
    .await
    .expect("add");
    assert_eq!(again.id, added.id);
    assert_eq!(
        subscriptions::feeds_of(&sql, Some(other), now())
            .await
            .expect("feeds")
            .len(),
        5,
        "the defaults plus the new one"
    );
    assert_eq!(
        n(
            &sql,
            "SELECT count(*) AS n FROM delayed_jobs WHERE handler = 'feeds.refresh'"
        )
        .await,
        1,
        "one first fetch, however many add it"
    );

    // Refused addresses are field errors and change nothing.
    for bad in [
        "http://127.0.0.1/feed",
        "gopher://example.org/",
        "not a url",
    ] {
        match subscriptions::add(&sql, &cache, reader, bad, &[], now()).await {
            Err(AppError::Validation(errors)) => assert_eq!(errors[0].field, "url"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert_eq!(
        subscriptions::feeds_of(&sql, Some(reader), now())
            .await
            .expect("feeds")
            .len(),
        4
    );
}

#[tokio::test]
async fn the_scheduler_enqueues_each_due_slot_once_and_only_read_feeds() {
    let (sql, cache) = ports().await;
    // The four defaults are due; an orphan feed nobody reads is not fetched.
    sql.execute(
        "INSERT INTO feeds (url, next_fetch_at) VALUES ('https://orphan.example.org/rss', $1)",
        &[SqlValue::Timestamp(now() - Duration::hours(1))],
    )
    .await
    .expect("orphan");
    sql.execute(
        "UPDATE feeds SET next_fetch_at = $1",
        &[SqlValue::Timestamp(now() - Duration::minutes(1))],
    )
    .await
    .expect("due");
    assert_eq!(
        schedule::enqueue_due(&sql, &cache, now())
            .await
            .expect("first"),
        4
    );
    assert_eq!(
        schedule::enqueue_due(&sql, &cache, now())
            .await
            .expect("again"),
        0,
        "same slots"
    );
    // A breaking-news feed's next slot (5 minutes on) is a new job.
    sql.execute(
        "UPDATE feeds SET next_fetch_at = $1 WHERE refresh_interval_seconds = 300",
        &[SqlValue::Timestamp(now() + Duration::minutes(4))],
    )
    .await
    .expect("next slot");
    assert_eq!(
        schedule::enqueue_due(&sql, &cache, now() + Duration::minutes(5))
            .await
            .expect("later"),
        2,
        "BBC and NPR refresh every 5 minutes"
    );
    assert_eq!(
        n(
            &sql,
            "SELECT count(*) AS n FROM delayed_jobs WHERE payload->>'feed_id' = \
                 (SELECT id::text FROM feeds WHERE url LIKE '%orphan%')"
        )
        .await,
        0
    );
}

async fn item(
    sql: &NativeSql,
    feed: i64,
    hash: &str,
    title: &str,
    at: DateTime<Utc>,
    tags: &[&str],
) {
    sql.execute(
        "WITH i AS (INSERT INTO feed_items (content_hash, title, summary_html, published_at, \
                     first_seen_at, tags, tag_state) \
                 VALUES ($2, $3, '', $4, $4, ARRAY(SELECT jsonb_array_elements_text($5)), \
                         CASE WHEN jsonb_array_length($5) > 0 THEN 'tagged' ELSE 'pending' END) \
                 RETURNING id) \
         INSERT INTO feed_item_sources (feed_id, item_id, guid, seen_at) SELECT $1, id, $2, $4 FROM i",
        &[
            SqlValue::Int64(feed),
            SqlValue::Text(hash.into()),
            SqlValue::Text(title.into()),
            SqlValue::Timestamp(at),
            SqlValue::Json(serde_json::json!(tags)),
        ],
    )
    .await
    .expect("item");
}

#[tokio::test]
async fn the_widget_reads_newest_first_by_tag_and_old_articles_are_pruned() {
    let (sql, _) = ports().await;
    let feed: i64 = n(&sql, "SELECT id AS n FROM feeds WHERE url LIKE '%npr%'").await;
    let hidden: i64 = n(&sql, "SELECT id AS n FROM feeds WHERE url LIKE '%bbci%'").await;
    sql.execute(
        "UPDATE feeds SET is_default = false WHERE id = $1",
        &[SqlValue::Int64(hidden)],
    )
    .await
    .expect("not default");
    item(
        &sql,
        feed,
        "a",
        "Older",
        now() - Duration::hours(3),
        &["politics"],
    )
    .await;
    item(
        &sql,
        feed,
        "b",
        "Newer",
        now() - Duration::hours(1),
        &["weather", "politics"],
    )
    .await;
    item(&sql, feed, "c", "Untagged", now() - Duration::hours(2), &[]).await;
    item(&sql, hidden, "d", "Not yours", now(), &["politics"]).await;
    item(
        &sql,
        feed,
        "e",
        "Ancient",
        now() - Duration::days(31),
        &["politics"],
    )
    .await;

    let news = view::news_for(&sql, None, None, 30, now())
        .await
        .expect("news");
    let titles: Vec<&str> = news.items.iter().map(|i| i.title.as_str()).collect();
    assert_eq!(titles, ["Newer", "Untagged", "Older", "Ancient"]);
    assert!(!news.items[1].tagged);
    assert_eq!(news.items[0].sources, ["NPR News"]);
    assert_eq!(news.tags[0], "politics", "most used first");

    let politics = view::news_for(&sql, None, Some(" Politics "), 30, now())
        .await
        .expect("news");
    let titles: Vec<&str> = politics.items.iter().map(|i| i.title.as_str()).collect();
    assert_eq!(titles, ["Newer", "Older", "Ancient"]);

    // Daily retention: past 30 days, gone; and so is a feed nobody reads.
    sql.execute(
        "UPDATE feeds SET created_at = $1",
        &[SqlValue::Timestamp(now() - Duration::days(2))],
    )
    .await
    .expect("age");
    let pruned = retention::prune(&sql, now()).await.expect("prune");
    assert_eq!(
        (pruned.items, pruned.feeds),
        (2, 1),
        "Not yours went with its feed"
    );
    assert_eq!(n(&sql, "SELECT count(*) AS n FROM feed_items").await, 3);
    let titles: Vec<String> = view::news_for(&sql, None, None, 30, now())
        .await
        .expect("news")
        .items
        .into_iter()
        .map(|i| i.title)
        .collect();
    assert_eq!(titles, ["Newer", "Untagged", "Older"]);
}
