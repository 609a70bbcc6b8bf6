//! Versions and the capture log against a real Postgres: numbering, the one
//! current version per URL (also when captures race), failures, the log's
//! retention; and what `enqueue` refuses.

use chrono::{Duration, Utc};
use village_platform::native::test_ports;
use village_platform::sql::{Sql, SqlValue};
use village_screenshots::versions::{self, Failure, Image, NewVersion};

fn new_version(url: &str, n: u32) -> NewVersion {
    let (full, thumb) = versions::image_keys(url, uuid::Uuid::new_v4());
    NewVersion {
        url: url.into(),
        site_id: None,
        final_url: format!("{url}#{n}"),
        full: Image {
            key: full,
            width: 1280,
            height: 800,
            bytes: 1000 + n,
        },
        thumb: Image {
            key: thumb,
            width: 320,
            height: 200,
            bytes: 100 + n,
        },
        capture_ms: 900,
        job_id: None,
        attempt: 1,
        captured_at: Utc::now(),
    }
}

#[tokio::test]
async fn each_capture_is_a_new_current_version_and_none_is_deleted() {
    let db = village_migrate::testing::fresh_database()
        .await
        .expect("db");
    let (sql, _) = test_ports(&db).await;
    let url = "https://example.org/";
    // The Good Sites entry the captures are for (versions name it).
    let site: i64 = sql
        .query(
            "INSERT INTO directory_sites (url, url_key, host, title, category_id, created_at, \
                 updated_at) \
             SELECT $1, 'example.org', 'example.org', 'Example', id, now(), now() \
             FROM directory_categories WHERE slug = 'music' RETURNING id",
            &[SqlValue::Text(url.into())],
        )
        .await
        .expect("site")[0]
        .get("id")
        .expect("id");
    for n in 1..=3 {
        let v = versions::record_version(
            &sql,
            &NewVersion {
                site_id: Some(site),
                ..new_version(url, n)
            },
        )
        .await
        .expect("recorded");
        assert_eq!((v.version, v.is_current), (n as i32, true));
        assert_eq!(v.full.bytes, 1000 + n);
    }
    // Another URL numbers from 1.
    let other = versions::record_version(&sql, &new_version("https://example.com/", 9))
        .await
        .expect("recorded");
    assert_eq!(other.version, 1);
    let history = versions::history(&sql, url).await.expect("history");
    assert_eq!(
        history
            .iter()
            .map(|v| (v.version, v.is_current))
            .collect::<Vec<_>>(),
        vec![(3, true), (2, false), (1, false)]
    );
    let found = versions::find(&sql, history[1].id).await.expect("find");
    assert_eq!(found.as_ref().map(|v| v.version), Some(2));
    assert_eq!(found.map(|v| v.site_id), Some(Some(site)));
    assert_eq!(
        versions::of_site(&sql, site)
            .await
            .expect("of site")
            .iter()
            .map(|v| v.version)
            .collect::<Vec<_>>(),
        vec![3, 2, 1],
        "a site's history, newest first"
    );
}

#[tokio::test]
async fn racing_captures_of_one_url_still_leave_one_current_version() {
    let db = village_migrate::testing::fresh_database()
        .await
        .expect("db");
    let url = "https://race.example.org/";
    let mut tasks = Vec::new();
    for n in 0..6 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            // Each on its own connection, as two hosts would be.
            let (sql, _) = test_ports(&db).await;
            versions::record_version(&sql, &new_version(url, n))
                .await
                .map(|v| v.version)
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.expect("joined").expect("recorded despite the race"));
    }
    numbers.sort();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5, 6]);
    let (sql, _) = test_ports(&db).await;
    let current = sql
        .query_opt(
            "SELECT count(*) AS n, max(version) AS v FROM directory_screenshot_versions \
             WHERE url = $1 AND is_current",
            &[SqlValue::Text(url.into())],
        )
        .await
        .expect("count")
        .expect("row");
    assert_eq!(current.get::<i64>("n").expect("n"), 1);
    assert_eq!(
        current.get::<i32>("v").expect("v"),
        6,
        "the newest is current"
    );
}

#[tokio::test]
async fn failures_are_logged_beside_captures_and_the_log_expires() {
    let db = village_migrate::testing::fresh_database()
        .await
        .expect("db");
    let (sql, _) = test_ports(&db).await;
    let url = "https://broken.example.org/";
    let old = Utc::now() - Duration::days(100);
    versions::record_failure(
        &sql,
        &Failure {
            url: url.into(),
            site_id: None,
            job_id: Some(41),
            attempt: 1,
            reason: "TLS error (net::ERR_CERT_DATE_INVALID)".into(),
            final_url: None,
            capture_ms: 120,
            finished_at: old,
        },
    )
    .await
    .expect("logged");
    versions::record_failure(
        &sql,
        &Failure {
            url: url.into(),
            site_id: None,
            job_id: Some(42),
            attempt: 2,
            reason: "unreachable (net::ERR_CONNECTION_REFUSED)".into(),
            final_url: None,
            capture_ms: 80,
            finished_at: Utc::now(),
        },
    )
    .await
    .expect("logged");
    versions::record_version(&sql, &new_version("https://fine.example.org/", 1))
        .await
        .expect("recorded");
    let recent = versions::recent(&sql, 10).await.expect("recent");
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[0].outcome, "captured");
    assert!(recent[0].version.is_some());
    assert_eq!(recent[1].outcome, "failed");
    assert_eq!(recent[1].job_id, Some(42));
    assert!(recent[1].version.is_none());
    assert_eq!(
        versions::outcome_counts(&sql, Utc::now() - Duration::days(1))
            .await
            .expect("counts"),
        (1, 1)
    );
    let purged = versions::purge_log(&sql, Utc::now() - Duration::days(90))
        .await
        .expect("purged");
    assert_eq!(purged, 1, "only the 100-day-old row");
    assert_eq!(versions::recent(&sql, 10).await.expect("recent").len(), 2);
}

#[tokio::test]
async fn only_public_http_urls_are_queued() {
    let db = village_migrate::testing::fresh_database()
        .await
        .expect("db");
    let (sql, cache) = test_ports(&db).await;
    for bad in [
        "http://127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "ftp://example.org/",
        "https://user:pw@example.org/",
        "not a url",
    ] {
        assert!(
            village_screenshots::enqueue(&sql, &cache, bad, None, &[], Utc::now())
                .await
                .is_err(),
            "{bad}"
        );
    }
    let (id, url) = village_screenshots::enqueue(
        &sql,
        &cache,
        "https://Example.org",
        Some(3),
        &[],
        Utc::now(),
    )
    .await
    .expect("queued");
    assert_eq!(url.as_str(), "https://example.org/");
    let job = village_jobs::find(&sql, id)
        .await
        .expect("find")
        .expect("the job");
    assert_eq!(job.queue, village_jobs::Queue::Screenshot);
    assert_eq!(job.handler, village_screenshots::CAPTURE_HANDLER);
    assert_eq!(job.payload["url"], "https://example.org/");
    assert_eq!(job.payload["site_id"], 3);
    assert_eq!(job.max_attempts, village_screenshots::MAX_ATTEMPTS);
}
