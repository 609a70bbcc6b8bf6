//! Click tracking against a real Postgres: the redirect and its durable
//! record, refusals, daily partitions and their retention, rollups and the
//! check that they agree with the raw clicks.

use chrono::{Duration, NaiveDate, Utc};
use village_clicks::maintain::{self, PARTITIONS_AHEAD, RAW_DAYS};
use village_clicks::{Link, LinkKind, LinkSigner, record};
use village_platform::RequestContext;
use village_platform::native::NativeSql;
use village_platform::sql::{Sql, SqlValue};

async fn db() -> NativeSql {
    let url = village_migrate::testing::fresh_database()
        .await
        .expect("test database");
    NativeSql::connect(&url).await.expect("connect")
}

/// An approved (or not) Good Sites entry for `url`.
async fn site(sql: &NativeSql, url: &str, status: &str) -> i64 {
    sql.query(
        "INSERT INTO directory_sites (url, url_key, host, title, category_id, status, created_at, \
             updated_at) \
         SELECT $1, $1, 'example.org', 'Example', id, $2, now(), now() \
         FROM directory_categories WHERE slug = 'music' RETURNING id",
        &[SqlValue::Text(url.into()), SqlValue::Text(status.into())],
    )
    .await
    .expect("site")[0]
        .get("id")
        .expect("id")
}

async fn count(sql: &NativeSql, statement: &str) -> i64 {
    sql.query(statement, &[]).await.expect("count")[0]
        .get::<i64>("n")
        .expect("n")
}

fn signer() -> LinkSigner {
    LinkSigner::from_settings("k1=0123456789abcdef0123456789abcdef-k1", None, Utc::now())
        .expect("valid")
        .expect("a signer")
}

fn ctx() -> RequestContext {
    RequestContext::from_headers(&http::HeaderMap::new(), "track-click")
}

fn signed_in(user: uuid::Uuid, analytics_consent: bool) -> RequestContext {
    let mut c = ctx();
    c.principal = Some(village_platform::session::Principal {
        user_id: user,
        session_id: uuid::Uuid::new_v4(),
        impersonator: None,
        cohort_key: uuid::Uuid::new_v4(),
        analytics_consent,
    });
    c
}

async fn click_at(sql: &NativeSql, at: chrono::DateTime<Utc>, kind: &str, id: i64, source: &str) {
    sql.execute(
        "INSERT INTO link_clicks (clicked_at, link_kind, link_id, target_url, source, category_id, \
                                  visitor) \
         VALUES ($1, $2, $3, 'https://example.org/', $4, 7, \
                 CASE WHEN $4 = 'repeat' THEN 'the same one' ELSE gen_random_uuid()::text END)",
        &[
            SqlValue::Timestamp(at),
            SqlValue::Text(kind.into()),
            SqlValue::Int64(id),
            SqlValue::Text(source.into()),
        ],
    )
    .await
    .expect("click");
}

async fn partitions(sql: &NativeSql) -> Vec<String> {
    sql.query(
        "SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'link_clicks' ORDER BY 1",
        &[],
    )
    .await
    .expect("partitions")
    .iter()
    .map(|r| r.get("name").expect("name"))
    .collect()
}

fn partition_of(day: NaiveDate) -> String {
    format!("link_clicks_p{}", day.format("%Y%m%d"))
}

#[tokio::test]
async fn a_signed_link_is_recorded_before_the_redirect_is_answered() {
    let sql = db().await;
    let s = signer();
    let id = site(&sql, "https://example.org/garden?a=1", "approved").await;
    let link = Link::to(
        "https://example.org/garden?a=1",
        LinkKind::Site,
        id,
        "directory_top",
    )
    .at(2)
    .in_category(9);
    let href = s.href(&link);
    let query = href.split_once('?').expect("query").1;
    let now = Utc::now();
    let user = uuid::Uuid::new_v4();
    let context = signed_in(user, true);
    let answer = record::handle(&sql, Some(&s), &http::Method::GET, query, &context, now)
        .await
        .expect("redirected");
    assert_eq!(answer.status(), 302);
    assert_eq!(
        answer.headers()["location"],
        "https://example.org/garden?a=1"
    );
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let rows = sql
        .query(
            "SELECT link_kind, link_id, target_url, source, position, category_id, anon_id, visitor \
             FROM link_clicks",
            &[],
        )
        .await
        .expect("clicks");
    assert_eq!(
        rows.len(),
        1,
        "the click was on disk when the 302 was returned"
    );
    let r = &rows[0];
    assert_eq!(r.get::<String>("link_kind").expect("kind"), "site");
    assert_eq!(r.get::<i64>("link_id").expect("id"), id);
    assert_eq!(r.get::<String>("source").expect("source"), "directory_top");
    assert_eq!(r.get::<i32>("position").expect("pos"), 2);
    assert_eq!(r.get::<i64>("category_id").expect("cat"), 9);
    let visitor: String = r.get("visitor").expect("visitor");
    assert_eq!(visitor.len(), 24, "a hash, not the address: {visitor}");
    assert_eq!(
        r.get::<uuid::Uuid>("anon_id").expect("anon"),
        context.anon_id.as_uuid(),
        "a consenting user's click names them"
    );
    // The same visitor again today: another click, the same visitor.
    record::handle(&sql, Some(&s), &http::Method::GET, query, &context, now)
        .await
        .expect("redirected");
    assert_eq!(
        count(&sql, "SELECT count(DISTINCT visitor) AS n FROM link_clicks").await,
        1
    );
    // A HEAD is answered, not recorded.
    let head = record::handle(&sql, Some(&s), &http::Method::HEAD, query, &ctx(), now)
        .await
        .expect("answered");
    assert_eq!(head.status(), 302);
    // Without consent (or signed out) the click is counted, naming no one.
    for other in [signed_in(uuid::Uuid::new_v4(), false), ctx()] {
        record::handle(&sql, Some(&s), &http::Method::GET, query, &other, now)
            .await
            .expect("redirected");
    }
    assert_eq!(
        count(
            &sql,
            "SELECT count(*) AS n FROM link_clicks WHERE anon_id IS NULL AND user_id IS NULL"
        )
        .await,
        2
    );
    // Withdrawing consent forgets who clicked.
    assert_eq!(record::forget_user(&sql, user).await.expect("forgotten"), 2);
    assert_eq!(
        count(
            &sql,
            "SELECT count(*) AS n FROM link_clicks WHERE anon_id IS NOT NULL"
        )
        .await,
        0
    );
    // They landed in today's partition, not the default one.
    let today = partition_of(now.date_naive());
    assert_eq!(
        count(&sql, &format!("SELECT count(*) AS n FROM {today}")).await,
        4
    );
}

#[tokio::test]
async fn a_link_whose_target_no_longer_stands_is_not_a_redirect() {
    let sql = db().await;
    let s = signer();
    let now = Utc::now();
    let follow = async |link: Link| {
        let href = s.href(&link);
        let query = href.split_once('?').expect("query").1.to_owned();
        record::handle(&sql, Some(&s), &http::Method::GET, &query, &ctx(), now).await
    };
    // A site that is not (or no longer) approved.
    for status in ["pending", "rejected"] {
        let id = site(&sql, &format!("https://{status}.example.org/"), status).await;
        let gone = follow(Link::to(
            format!("https://{status}.example.org/"),
            LinkKind::Site,
            id,
            "directory_site",
        ))
        .await
        .expect_err("no redirect");
        assert_eq!(gone.status(), 404, "{status}");
    }
    // An approved site is reached at its stored address, whatever the link says.
    let id = site(&sql, "https://kept.example.org/", "approved").await;
    let answer = follow(Link::to(
        "https://elsewhere.example/",
        LinkKind::Site,
        id,
        "directory_top",
    ))
    .await
    .expect("redirected");
    assert_eq!(answer.headers()["location"], "https://kept.example.org/");
    // An article must still carry the link.
    let article: i64 = sql
        .query(
            "INSERT INTO feed_items (content_hash, title, link, summary_html, first_seen_at) \
             VALUES ('h1', 'Bridge', 'https://news.example.org/bridge', '', now()) RETURNING id",
            &[],
        )
        .await
        .expect("article")[0]
        .get("id")
        .expect("id");
    let ok = follow(Link::to(
        "https://news.example.org/bridge",
        LinkKind::Article,
        article,
        "news_widget",
    ))
    .await
    .expect("redirected");
    assert_eq!(ok.status(), 302);
    let other = follow(Link::to(
        "https://phish.example/",
        LinkKind::Article,
        article,
        "news_widget",
    ))
    .await
    .expect_err("not the article's link");
    assert_eq!(other.status(), 404);
    // A listing that does not exist (or is not public).
    let listing = follow(Link::to(
        "https://shop.example/",
        LinkKind::Listing,
        999_999,
        "listing_body",
    ))
    .await
    .expect_err("no such listing");
    assert_eq!(listing.status(), 404);
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM link_clicks").await,
        2
    );
}

#[tokio::test]
async fn unsigned_and_tampered_links_are_refused_and_nothing_is_recorded() {
    let sql = db().await;
    let s = signer();
    let href = s.href(&Link::to(
        "https://example.org/",
        LinkKind::Listing,
        0,
        "listing_body",
    ));
    let query = href.split_once('?').expect("query").1.to_owned();
    let evil = query.replace("example.org", "evil.example");
    let unsigned = query.split("&sig=").next().expect("before sig").to_owned();
    let other_key = LinkSigner::from_settings(
        "k1=another-key-that-is-long-enough-000000",
        None,
        Utc::now(),
    )
    .expect("valid")
    .expect("signer")
    .href(&Link::to(
        "https://evil.example/",
        LinkKind::Listing,
        0,
        "listing_body",
    ));
    for q in [
        evil.as_str(),
        unsigned.as_str(),
        "u=https%3A%2F%2Fevil.example%2F",
        "",
        other_key.split_once('?').expect("query").1,
    ] {
        let refused = record::handle(&sql, Some(&s), &http::Method::GET, q, &ctx(), Utc::now())
            .await
            .expect_err("refused");
        assert_eq!(refused.status(), 400, "{q}");
    }
    let no_keys = record::handle(&sql, None, &http::Method::GET, &query, &ctx(), Utc::now())
        .await
        .expect_err("refused without keys");
    assert_eq!(no_keys.status(), 400);
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM link_clicks").await,
        0
    );
}

#[tokio::test]
async fn partitions_are_made_sixty_days_ahead_and_dropped_after_ninety_days() {
    let sql = db().await;
    let now = Utc::now();
    let today = now.date_naive();
    // Clicks 91 and 89 days old, each in its own day's partition.
    for age in [RAW_DAYS + 1, RAW_DAYS - 1] {
        let day = today - Duration::days(age);
        maintain::ensure_partition(&sql, day)
            .await
            .expect("partition");
        click_at(&sql, now - Duration::days(age), "site", 1, "directory_top").await;
    }
    let report = maintain::run(&sql, now).await.expect("maintained");
    let names = partitions(&sql).await;
    for offset in -1..=PARTITIONS_AHEAD {
        let day = today + Duration::days(offset);
        assert!(
            names.contains(&partition_of(day)),
            "{day} has its partition"
        );
    }
    assert!(report.partitions_created >= 50, "{report:?}");
    assert_eq!(report.partitions_dropped, 1, "{report:?}");
    assert!(!names.contains(&partition_of(today - Duration::days(RAW_DAYS + 1))));
    assert!(names.contains(&partition_of(today - Duration::days(RAW_DAYS - 1))));
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM link_clicks").await,
        1
    );
    // A second run has nothing to make or drop.
    let again = maintain::run(&sql, now).await.expect("maintained");
    assert_eq!((again.partitions_created, again.partitions_dropped), (0, 0));
}

#[tokio::test]
async fn a_click_on_a_day_without_a_partition_is_kept_and_moved_into_it_later() {
    let sql = db().await;
    let later = Utc::now() + Duration::days(PARTITIONS_AHEAD + 30);
    click_at(&sql, later, "article", 5, "news_widget").await;
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM link_clicks_default").await,
        1,
        "the default partition caught it"
    );
    assert!(
        maintain::ensure_partition(&sql, later.date_naive())
            .await
            .expect("made")
    );
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM link_clicks_default").await,
        0
    );
    assert_eq!(
        count(
            &sql,
            &format!(
                "SELECT count(*) AS n FROM {}",
                partition_of(later.date_naive())
            )
        )
        .await,
        1,
        "moved into its day's partition"
    );
}

#[tokio::test]
async fn rollups_agree_with_the_raw_clicks_and_a_disagreement_is_caught() {
    let sql = db().await;
    let now = Utc::now();
    let yesterday = now - Duration::days(1);
    for (kind, id, source, n) in [
        ("site", 1, "directory_top", 3),
        ("site", 1, "good_sites_widget", 2),
        ("site", 2, "directory_top", 1),
        ("article", 7, "news_widget", 4),
        ("article", 7, "repeat", 2),
    ] {
        for _ in 0..n {
            click_at(&sql, yesterday, kind, id, source).await;
        }
    }
    // Today's clicks are not rolled up until the day is over.
    click_at(&sql, now, "site", 1, "directory_top").await;
    let report = maintain::run(&sql, now).await.expect("maintained");
    let day = yesterday.date_naive();
    let checked = report
        .rollups
        .iter()
        .find(|r| r.day == day)
        .expect("yesterday rolled up");
    assert_eq!(
        (checked.raw_clicks, checked.rolled_up, checked.agreed),
        (12, 12, true)
    );
    let rows = sql
        .query(
            "SELECT link_kind, link_id, source, category_id, clicks FROM link_click_rollups \
             WHERE day = $1::text::date ORDER BY 1, 2, 3",
            &[SqlValue::Text(day.to_string())],
        )
        .await
        .expect("rollups");
    let got: Vec<(String, i64, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.get("link_kind").expect("kind"),
                r.get("link_id").expect("id"),
                r.get("source").expect("source"),
                r.get("clicks").expect("clicks"),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("article".into(), 7, "news_widget".into(), 4),
            ("article".into(), 7, "repeat".into(), 2),
            ("site".into(), 1, "directory_top".into(), 3),
            ("site".into(), 1, "good_sites_widget".into(), 2),
            ("site".into(), 2, "directory_top".into(), 1),
        ]
    );
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM link_click_rollups WHERE day = (now() AT TIME ZONE 'UTC')::date").await,
        0
    );
    // A late click for yesterday: the check sees the gap, the next run closes it.
    click_at(&sql, yesterday, "site", 2, "directory_top").await;
    let gap = maintain::check(&sql, day, now).await.expect("checked");
    assert_eq!((gap.raw_clicks, gap.rolled_up, gap.agreed), (13, 12, false));
    let rerun = maintain::run(&sql, now).await.expect("maintained");
    let fixed = rerun
        .rollups
        .iter()
        .find(|r| r.day == day)
        .expect("re-rolled");
    assert_eq!(
        (fixed.raw_clicks, fixed.rolled_up, fixed.agreed),
        (13, 13, true)
    );
    // Popularity counts visitors: the two clicks of one visitor count once.
    let popular: Vec<(String, i64, i64, i64)> = sql
        .query(
            "SELECT link_kind, link_id, visitors, clicks FROM link_popularity ORDER BY 1, 2",
            &[],
        )
        .await
        .expect("popularity")
        .iter()
        .map(|r| {
            (
                r.get("link_kind").expect("kind"),
                r.get("link_id").expect("id"),
                r.get("visitors").expect("visitors"),
                r.get("clicks").expect("clicks"),
            )
        })
        .collect();
    assert_eq!(
        popular,
        vec![
            ("article".into(), 7, 5, 6),
            ("site".into(), 1, 5, 5),
            ("site".into(), 2, 2, 2),
        ]
    );
    assert_eq!(
        count(
            &sql,
            "SELECT count(*) AS n FROM link_click_rollup_runs WHERE NOT agreed"
        )
        .await,
        1,
        "the disagreement was recorded"
    );
}

#[tokio::test]
async fn rollups_are_kept_two_years() {
    let sql = db().await;
    let now = Utc::now();
    for age in [729, 731] {
        sql.execute(
            "INSERT INTO link_click_rollups (day, link_kind, link_id, source, category_id, clicks, \
                                             visitors) \
             VALUES ($1::text::date, 'site', 1, 'directory_top', 0, 5, 5)",
            &[SqlValue::Text(
                (now.date_naive() - Duration::days(age)).to_string(),
            )],
        )
        .await
        .expect("rollup");
    }
    let report = maintain::run(&sql, now).await.expect("maintained");
    assert_eq!(report.rollups_pruned, 1);
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM link_click_rollups").await,
        1
    );
}
