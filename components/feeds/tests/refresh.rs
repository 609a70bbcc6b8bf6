//! Refreshing feeds against a local feed server (RSS with ETag/304, a
//! broken feed, garbage, a silent one) and the real Postgres.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use village_feeds::refresh::{self, Refreshed};
use village_platform::native::{NativeHttp, NativeSql};
use village_platform::sql::{Sql, SqlValue};

const RSS: &str = r#"<?xml version="1.0"?><rss version="2.0"><channel><title>Vale News</title>
<item><title>Bridge reopens</title><link>https://news.example.org/bridge</link><guid>b1</guid>
<description>Open &lt;b&gt;again&lt;/b&gt;</description></item>
<item><title>Fete on Saturday</title><link>https://news.example.org/fete</link><guid>f1</guid>
<description>Cakes</description></item></channel></rss>"#;

const ATOM: &str = r#"<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">
<title>Other Paper</title><id>urn:other</id><updated>2026-11-27T09:00:00Z</updated>
<entry><title>Bridge reopens</title><id>urn:other:1</id>
<link href="https://news.example.org/bridge/"/><updated>2026-11-27T09:00:00Z</updated></entry>
</feed>"#;

/// A JSON Feed whose title carries a NUL (`\u0000`): Postgres cannot store it.
const NUL_FEED: &str = r#"{"version": "https://jsonfeed.org/version/1.1", "title": "Nul",
"items": [{"id": "n1", "url": "https://news.example.org/nul", "title": "Null\u0000 island"}]}"#;

/// A feed server: `/rss` (ETag "v1", 304 on a match), `/atom`, `/broken`
/// (500), `/garbage` (HTML), `/silent` (never answers). Counts requests.
async fn feed_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, headers, body) = match path.as_str() {
                    "/rss" if req.contains("if-none-match: \"v1\"") => {
                        ("304 Not Modified", "etag: \"v1\"\r\n", String::new())
                    }
                    "/rss" => (
                        "200 OK",
                        "etag: \"v1\"\r\ncontent-type: application/rss+xml\r\n",
                        RSS.to_owned(),
                    ),
                    "/atom" => ("200 OK", "", ATOM.to_owned()),
                    "/broken" => ("500 Internal Server Error", "", "oops".to_owned()),
                    "/garbage" => ("200 OK", "", "<html>not a feed</html>".to_owned()),
                    "/moved" => ("301 Moved Permanently", "location: /rss\r\n", String::new()),
                    "/to-private" => (
                        "302 Found",
                        "location: http://10.0.0.1/feed\r\n",
                        String::new(),
                    ),
                    "/loop" => ("302 Found", "location: /loop\r\n", String::new()),
                    "/silent" => {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        return;
                    }
                    "/huge" => {
                        // 400 MB, no length announced: only a bound enforced
                        // while reading stops it.
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n<rss>")
                            .await;
                        let chunk = vec![b' '; 1 << 20];
                        for _ in 0..400 {
                            if s.write_all(&chunk).await.is_err() {
                                return;
                            }
                        }
                        return;
                    }
                    "/nul" => ("200 OK", "", NUL_FEED.to_owned()),
                    _ => ("404 Not Found", "", String::new()),
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, hits)
}

async fn db() -> NativeSql {
    let url = village_migrate::testing::fresh_database()
        .await
        .expect("test database");
    let sql = NativeSql::connect(&url).await.expect("connect");
    // Only this test's feeds: not the default set migration V15 seeds.
    sql.execute("DELETE FROM feeds", &[]).await.expect("clear");
    sql
}

async fn add_feed(sql: &NativeSql, url: &str) -> refresh::Feed {
    let id: i64 = sql
        .query(
            "INSERT INTO feeds (url, refresh_interval_seconds) VALUES ($1, 300) RETURNING id",
            &[SqlValue::Text(url.to_owned())],
        )
        .await
        .expect("feed")[0]
        .get("id")
        .expect("id");
    refresh::load(sql, id).await.expect("load").expect("feed")
}

async fn count(sql: &NativeSql, statement: &str) -> i64 {
    sql.query(statement, &[]).await.expect("count")[0]
        .get::<i64>("n")
        .expect("n")
}

fn http() -> NativeHttp {
    NativeHttp::new(Duration::from_millis(500))
}

#[tokio::test]
async fn a_feed_is_stored_then_revalidated_with_its_etag() {
    let sql = db().await;
    let (addr, _) = feed_server().await;
    let allowed = vec![addr.clone()];
    let feed = add_feed(&sql, &format!("http://{addr}/rss")).await;
    let now = Utc::now();
    let first = refresh::refresh(&sql, &http(), &feed, &allowed, now)
        .await
        .expect("refresh");
    assert_eq!(
        first,
        Refreshed::Updated {
            new_items: 2,
            seen_items: 2
        }
    );
    let row = sql
        .query(
            "SELECT title, etag, consecutive_failures AS f, \
                    next_fetch_at = last_fetched_at + interval '300 seconds' AS on_time \
             FROM feeds",
            &[],
        )
        .await
        .expect("feed")
        .remove(0);
    assert_eq!(row.get::<String>("title").expect("t"), "Vale News");
    assert_eq!(row.get::<String>("etag").expect("e"), "\"v1\"");
    assert!(row.get::<bool>("on_time").expect("next"));
    assert_eq!(
        count(
            &sql,
            "SELECT count(*) AS n FROM feed_items WHERE summary_html = 'Open <b>again</b>'"
        )
        .await,
        1,
        "summaries are kept as sanitised HTML"
    );

    let again = refresh::load(&sql, feed.id)
        .await
        .expect("load")
        .expect("feed");
    let second = refresh::refresh(&sql, &http(), &again, &allowed, now)
        .await
        .expect("refresh");
    assert_eq!(second, Refreshed::Unchanged, "If-None-Match got a 304");
    assert_eq!(count(&sql, "SELECT count(*) AS n FROM feed_items").await, 2);
}

#[tokio::test]
async fn the_same_article_from_two_feeds_is_stored_once() {
    let sql = db().await;
    let (addr, _) = feed_server().await;
    let allowed = vec![addr.clone()];
    let rss = add_feed(&sql, &format!("http://{addr}/rss")).await;
    let atom = add_feed(&sql, &format!("http://{addr}/atom")).await;
    let now = Utc::now();
    refresh::refresh(&sql, &http(), &rss, &allowed, now)
        .await
        .expect("rss");
    let second = refresh::refresh(&sql, &http(), &atom, &allowed, now)
        .await
        .expect("atom");
    assert_eq!(
        second,
        Refreshed::Updated {
            new_items: 0,
            seen_items: 1
        }
    );
    assert_eq!(count(&sql, "SELECT count(*) AS n FROM feed_items").await, 2);
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM feed_item_sources").await,
        3,
        "the bridge article is carried by both feeds"
    );
}

#[tokio::test]
async fn broken_slow_and_unparsable_feeds_are_marked_and_back_off() {
    let sql = db().await;
    let (addr, _) = feed_server().await;
    let allowed = vec![addr.clone()];
    let now = Utc::now();
    for (path, expect) in [
        ("/broken", "500"),
        ("/garbage", "not a feed"),
        ("/silent", "could not fetch the feed (timed out)"),
        ("/huge", "could not fetch the feed (too large)"),
    ] {
        let feed = add_feed(&sql, &format!("http://{addr}{path}")).await;
        let Refreshed::Failed { error, retry_at } =
            refresh::refresh(&sql, &http(), &feed, &allowed, now)
                .await
                .expect("refresh")
        else {
            panic!("{path} must fail");
        };
        assert!(error.contains(expect), "{path}: {error}");
        assert_eq!(retry_at, now + chrono::Duration::seconds(600), "{path}");
        // A second failure doubles the wait.
        let again = refresh::load(&sql, feed.id)
            .await
            .expect("load")
            .expect("feed");
        assert_eq!(again.consecutive_failures, 1);
        if path != "/silent" {
            let Refreshed::Failed { retry_at, .. } =
                refresh::refresh(&sql, &http(), &again, &allowed, now)
                    .await
                    .expect("refresh")
            else {
                panic!("{path} must fail again");
            };
            assert_eq!(retry_at, now + chrono::Duration::seconds(1200));
        }
    }
    assert_eq!(
        count(
            &sql,
            "SELECT count(*) AS n FROM feeds WHERE last_error IS NOT NULL"
        )
        .await,
        4
    );
}

#[tokio::test]
async fn a_private_address_is_never_requested() {
    let sql = db().await;
    let (addr, hits) = feed_server().await;
    let feed = add_feed(&sql, &format!("http://{addr}/rss")).await;
    let result = refresh::refresh(&sql, &http(), &feed, &[], Utc::now())
        .await
        .expect("refresh");
    assert!(
        matches!(&result, Refreshed::Failed { error, .. } if error.contains("public internet")),
        "{result:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no request left our side");
}

#[tokio::test]
async fn redirects_are_followed_only_to_addresses_that_pass_the_check() {
    let sql = db().await;
    let (addr, hits) = feed_server().await;
    let allowed = vec![addr.clone()];
    let now = Utc::now();
    let moved = add_feed(&sql, &format!("http://{addr}/moved")).await;
    assert_eq!(
        refresh::refresh(&sql, &http(), &moved, &allowed, now)
            .await
            .expect("refresh"),
        Refreshed::Updated {
            new_items: 2,
            seen_items: 2
        }
    );
    let private = add_feed(&sql, &format!("http://{addr}/to-private")).await;
    let before = hits.load(Ordering::SeqCst);
    match refresh::refresh(&sql, &http(), &private, &allowed, now)
        .await
        .expect("refresh")
    {
        Refreshed::Failed { error, .. } => assert!(error.contains("refused address"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before + 1,
        "10.0.0.1 never asked"
    );
    let looping = add_feed(&sql, &format!("http://{addr}/loop")).await;
    match refresh::refresh(&sql, &http(), &looping, &allowed, now)
        .await
        .expect("refresh")
    {
        Refreshed::Failed { error, .. } => {
            assert!(error.contains("more than 3 redirects"), "{error}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_nul_character_in_a_feed_item_is_dropped_not_fatal() {
    let sql = db().await;
    let (addr, _) = feed_server().await;
    let feed = add_feed(&sql, &format!("http://{addr}/nul")).await;
    let result = refresh::refresh(&sql, &http(), &feed, &[addr], Utc::now())
        .await
        .expect("refresh");
    assert_eq!(
        result,
        Refreshed::Updated {
            new_items: 1,
            seen_items: 1
        }
    );
    let row = sql
        .query_opt("SELECT title FROM feed_items", &[])
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(row.get::<String>("title").expect("title"), "Null island");
}
