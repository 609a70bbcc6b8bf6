//! Good Sites against a real Postgres and Redis, and a local site corpus:
//! submissions (normalised, deduplicated, address-checked), page fetches,
//! moderation and its scope, votes and karma, link health, recaptures.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;
use village_directory::health::{self, BROKEN_AFTER};
use village_directory::moderation::{self, Decision, Edits, Scope};
use village_directory::sites::{self, RawSubmission};
use village_directory::votes::{self, Tally, Vote};
use village_platform::native::{NativeCache, NativeHttp, NativeSql, test_ports};
use village_platform::session::Principal;
use village_platform::sql::{Sql, SqlValue};
use village_platform::{AppError, RequestContext};

const THRESHOLD: i64 = 50;

/// A local site corpus on 127.0.0.1: `/ok` (a page with a title and a
/// description), `/within` (301 to `/ok`), `/away` (301 to `elsewhere`'s
/// page), `/parked` (a for-sale page), `/gone` (404), `/error` (500),
/// `/to-private` (302 to 10.0.0.1), `/silent` (never answers).
async fn corpus(elsewhere: Option<String>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let elsewhere = elsewhere.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let html = "content-type: text/html; charset=utf-8\r\n";
                let away = format!("location: http://{}/ok\r\n", elsewhere.unwrap_or_default());
                let (status, headers, body): (&str, &str, &str) = match path.as_str() {
                    "/ok" | "/" => (
                        "200 OK",
                        html,
                        "<html><head><title>The Village Garden</title><meta name=\"description\" \
                         content=\"Seeds and tips\"></head><body>Grow</body></html>",
                    ),
                    "/within" => ("301 Moved Permanently", "location: /ok\r\n", ""),
                    "/away" => ("301 Moved Permanently", away.as_str(), ""),
                    "/parked" => (
                        "200 OK",
                        html,
                        "<html><body><h1>This domain is for sale!</h1></body></html>",
                    ),
                    "/error" => ("500 Internal Server Error", html, "oops"),
                    "/to-private" => ("302 Found", "location: http://10.0.0.1/\r\n", ""),
                    "/silent" => {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        return;
                    }
                    _ => ("404 Not Found", html, "gone"),
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

async fn ports() -> (NativeSql, NativeCache) {
    let url = village_migrate::testing::fresh_database()
        .await
        .expect("test database");
    test_ports(&url).await
}

fn http() -> NativeHttp {
    NativeHttp::new(Duration::from_millis(500))
}

async fn user(sql: &NativeSql, roles: &[&str]) -> Uuid {
    let id: Uuid = sql
        .query(
            "INSERT INTO users (is_anonymous, email) VALUES (false, $1) RETURNING id",
            &[SqlValue::Text(format!("{}@village.test", Uuid::new_v4()))],
        )
        .await
        .expect("user")[0]
        .get("id")
        .expect("id");
    for role in roles {
        sql.execute(
            "INSERT INTO user_roles (user_id, role, reason) VALUES ($1, $2, 'test')",
            &[SqlValue::Uuid(id), SqlValue::Text((*role).into())],
        )
        .await
        .expect("role");
    }
    id
}

fn as_user(id: Uuid) -> RequestContext {
    let mut ctx = RequestContext::from_headers(&http::HeaderMap::new(), "good-sites");
    ctx.principal = Some(Principal {
        user_id: id,
        session_id: Uuid::new_v4(),
        impersonator: None,
        cohort_key: Uuid::new_v4(),
        analytics_consent: false,
    });
    ctx
}

fn raw(url: &str, category: &str) -> RawSubmission {
    RawSubmission {
        url: Some(url.into()),
        title: Some("A good site".into()),
        description: Some("Worth a visit".into()),
        category: Some(category.into()),
    }
}

async fn submit(
    sql: &NativeSql,
    cache: &NativeCache,
    by: Uuid,
    url: &str,
    category: &str,
    hosts: &[String],
) -> Result<i64, AppError> {
    let checked = sites::check(sql, &raw(url, category), hosts)
        .await
        .map_err(AppError::Validation)?;
    sites::submit(sql, cache, by, &checked, Utc::now()).await
}

async fn one<T: village_platform::sql::FromSqlValue>(
    sql: &NativeSql,
    statement: &str,
    params: &[SqlValue],
) -> T {
    sql.query(statement, params).await.expect("query")[0]
        .get("v")
        .expect("v")
}

async fn karma(sql: &NativeSql, user: Uuid) -> i64 {
    moderation::karma_of(sql, user).await.expect("karma").total
}

fn decision<'a>(
    sql: &'a NativeSql,
    cache: &'a NativeCache,
    ctx: &'a RequestContext,
    hosts: &'a [String],
    now: DateTime<Utc>,
) -> Decision<'a, NativeSql, NativeCache> {
    Decision {
        sql,
        cache,
        ctx,
        threshold: THRESHOLD,
        screenshot_hosts: hosts,
        now,
    }
}

fn field_message(e: &AppError, field: &str) -> String {
    match e {
        AppError::Validation(errors) => errors
            .iter()
            .find(|f| f.field == field)
            .map(|f| f.message.clone())
            .unwrap_or_else(|| panic!("no {field} error in {errors:?}")),
        other => panic!("expected field errors, got {other:?}"),
    }
}

#[tokio::test]
async fn a_site_submitted_again_in_another_spelling_is_a_duplicate() {
    let (sql, cache) = ports().await;
    let alice = user(&sql, &[]).await;
    let bob = user(&sql, &[]).await;
    let id = submit(
        &sql,
        &cache,
        alice,
        "https://example.org/garden?utm_source=x",
        "gardening",
        &[],
    )
    .await
    .expect("submitted");
    let site = sites::get(&sql, id).await.expect("get").expect("site");
    assert_eq!(site.url, "https://example.org/garden");
    assert_eq!(
        (site.status.as_str(), site.host.as_str()),
        ("pending", "example.org")
    );
    let again = submit(
        &sql,
        &cache,
        bob,
        "http://WWW.example.org/garden/#top",
        "music",
        &[],
    )
    .await
    .expect_err("a duplicate");
    assert!(
        field_message(&again, "url").contains(&format!("/good-sites/sites/{id}")),
        "{again:?}"
    );
    // Its page fetch was queued once, for the first submission.
    let jobs: i64 = one(
        &sql,
        "SELECT count(*) AS v FROM delayed_jobs WHERE handler = 'directory.fetch_site'",
        &[],
    )
    .await;
    assert_eq!(jobs, 1);
    // A rejected site stays rejected: the same URL is not queued again.
    let admin = user(&sql, &["support"]).await;
    let ctx = as_user(admin);
    decision(&sql, &cache, &ctx, &[], Utc::now())
        .reject(id, "Not a garden")
        .await
        .expect("rejected");
    let after = submit(&sql, &cache, bob, "example.org/garden", "gardening", &[])
        .await
        .expect_err("still a duplicate");
    assert!(
        field_message(&after, "url").contains("not accepted"),
        "{after:?}"
    );
}

#[tokio::test]
async fn bad_submissions_get_an_error_per_field_and_store_nothing() {
    let (sql, cache) = ports().await;
    let alice = user(&sql, &[]).await;
    for (url, field) in [
        ("http://10.0.0.1/", "url"),
        ("http://localhost:6379/", "url"),
        ("http://169.254.169.254/latest/meta-data", "url"),
        ("file:///etc/passwd", "url"),
        ("", "url"),
    ] {
        let e = submit(&sql, &cache, alice, url, "gardening", &[])
            .await
            .expect_err("refused");
        field_message(&e, field);
    }
    let bad = RawSubmission {
        url: Some("https://example.org/".into()),
        title: Some("x".repeat(sites::MAX_TITLE + 1)),
        description: Some("nul\0byte".into()),
        category: Some("weapons".into()),
    };
    let errors = sites::check(&sql, &bad, &[]).await.expect_err("refused");
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["title", "description", "category"]);
    let stored: i64 = one(&sql, "SELECT count(*) AS v FROM directory_sites", &[]).await;
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn a_fetch_reads_the_page_and_never_follows_a_redirect_to_a_private_address() {
    let (sql, cache) = ports().await;
    let site = corpus(None).await;
    let hosts = vec![site.clone()];
    let alice = user(&sql, &[]).await;
    let ok = submit(
        &sql,
        &cache,
        alice,
        &format!("http://{site}/ok"),
        "gardening",
        &hosts,
    )
    .await
    .expect("submitted");
    let private = submit(
        &sql,
        &cache,
        alice,
        &format!("http://{site}/to-private"),
        "gardening",
        &hosts,
    )
    .await
    .expect("submitted");
    let gone = submit(
        &sql,
        &cache,
        alice,
        &format!("http://{site}/gone"),
        "gardening",
        &hosts,
    )
    .await
    .expect("submitted");
    let now = Utc::now();
    for id in [ok, private, gone] {
        village_directory::fetch::fetch_site(&sql, &http(), id, &hosts, now)
            .await
            .expect("fetched");
    }
    let ok = sites::get(&sql, ok).await.expect("get").expect("site");
    assert_eq!(ok.fetch_state, "fetched");
    assert_eq!(ok.fetch_status, Some(200));
    assert_eq!(ok.fetched_title.as_deref(), Some("The Village Garden"));
    assert_eq!(ok.fetched_description.as_deref(), Some("Seeds and tips"));
    let private = sites::get(&sql, private).await.expect("get").expect("site");
    assert_eq!(private.fetch_state, "failed");
    assert!(
        private
            .fetch_error
            .as_deref()
            .unwrap_or_default()
            .contains("refused address"),
        "{:?}",
        private.fetch_error
    );
    let gone = sites::get(&sql, gone).await.expect("get").expect("site");
    assert_eq!(
        (gone.fetch_state.as_str(), gone.fetch_status),
        ("fetched", Some(404))
    );
}

#[tokio::test]
async fn votes_move_the_tally_and_karma_by_the_rules() {
    let (sql, cache) = ports().await;
    let submitter = user(&sql, &[]).await;
    let voter = user(&sql, &[]).await;
    let admin = user(&sql, &["support"]).await;
    let id = submit(
        &sql,
        &cache,
        submitter,
        "https://example.org/",
        "music",
        &[],
    )
    .await
    .expect("submitted");
    let now = Utc::now();
    // Votes are for approved sites.
    assert_eq!(
        votes::cast(&sql, id, voter, Vote::Up, now)
            .await
            .expect("vote"),
        None
    );
    let ctx = as_user(admin);
    decision(&sql, &cache, &ctx, &[], now)
        .approve(id, &Edits::default())
        .await
        .expect("approved");
    assert_eq!(
        karma(&sql, submitter).await,
        moderation::APPROVED_KARMA as i64
    );
    let base = karma(&sql, submitter).await;
    let steps = [
        // (vote, tally, submitter's karma change from the base, voter's karma)
        (Vote::Up, (1, 0, 1), 1, 1),
        (Vote::Up, (1, 0, 1), 1, 1),
        (Vote::Down, (0, 1, -1), -1, 1),
        (Vote::None, (0, 0, 0), 0, 0),
        (Vote::Down, (0, 1, -1), -1, 1),
    ];
    for (vote, (up, down, mine), submitter_delta, voter_karma) in steps {
        let tally = votes::cast(&sql, id, voter, vote, now)
            .await
            .expect("vote")
            .expect("approved");
        assert_eq!(
            tally,
            Tally {
                upvotes: up,
                downvotes: down,
                vote: mine
            },
            "{vote:?}"
        );
        assert_eq!(
            karma(&sql, submitter).await,
            base + submitter_delta,
            "{vote:?}"
        );
        assert_eq!(karma(&sql, voter).await, voter_karma, "{vote:?}");
    }
    // Voting on one's own site counts, but earns nothing.
    let before = karma(&sql, submitter).await;
    let own = votes::cast(&sql, id, submitter, Vote::Up, now)
        .await
        .expect("vote")
        .expect("approved");
    assert_eq!((own.upvotes, own.downvotes), (1, 1));
    assert_eq!(karma(&sql, submitter).await, before);
    // Every adjustment is a row with its cause.
    let causes: Vec<String> = sql
        .query(
            "SELECT cause || ' ' || delta AS v FROM directory_karma WHERE user_id = $1 ORDER BY id",
            &[SqlValue::Uuid(submitter)],
        )
        .await
        .expect("karma rows")
        .iter()
        .map(|r| r.get("v").expect("v"))
        .collect();
    assert_eq!(
        causes,
        [
            "submission_approved 5",
            "vote_received 1",
            "vote_received -2",
            "vote_received 1",
            "vote_received -1",
        ]
    );
}

#[tokio::test]
async fn moderators_act_only_in_their_categories() {
    let (sql, cache) = ports().await;
    let now = Utc::now();
    let admin = user(&sql, &["support"]).await;
    let appointed = user(&sql, &[]).await;
    let earner = user(&sql, &[]).await;
    let nobody = user(&sql, &[]).await;
    let submitter = user(&sql, &[]).await;
    let category = |slug: &str| {
        let sql = &sql;
        let slug = slug.to_owned();
        async move {
            village_directory::categories::by_slug(sql, &slug)
                .await
                .expect("category")
                .expect("seeded")
        }
    };
    // Appointed to the Home & Garden section: its categories are covered.
    let entry = village_platform::audit::AuditEntry::for_request(
        &as_user(admin),
        Some(admin),
        "directory.moderator.appoint",
    );
    assert!(
        moderation::appoint(&sql, &entry, admin, appointed, &category("home").await, now)
            .await
            .expect("appointed")
    );
    // Karma earned in Arts & Culture: 50 from approvals in `music`.
    sql.execute(
        "INSERT INTO directory_karma (user_id, delta, cause, category_id, created_at) \
         SELECT $1, 10, 'submission_approved', id, now() FROM directory_categories, \
                generate_series(1, 5) WHERE slug = 'music'",
        &[SqlValue::Uuid(earner)],
    )
    .await
    .expect("karma");
    let gardening = category("gardening").await;
    let books = category("books").await;
    let music = category("music").await;
    let scope = |id: Uuid| {
        let sql = &sql;
        async move {
            moderation::scope_of(sql, id, THRESHOLD)
                .await
                .expect("scope")
        }
    };
    assert_eq!(scope(admin).await, Scope::All);
    let a = scope(appointed).await;
    assert!(a.covers(gardening.id) && !a.covers(music.id), "{a:?}");
    let e = scope(earner).await;
    assert!(
        e.covers(books.id) && e.covers(music.id) && !e.covers(gardening.id),
        "{e:?}"
    );
    assert!(scope(nobody).await.is_empty());
    // Casting votes earns karma, not a moderator's rights.
    sql.execute(
        "INSERT INTO directory_karma (user_id, delta, cause, category_id, created_at) \
         SELECT $1, 1, 'vote_cast', id, now() FROM directory_categories, \
                generate_series(1, 80) WHERE slug = 'music'",
        &[SqlValue::Uuid(nobody)],
    )
    .await
    .expect("karma");
    assert!(
        scope(nobody).await.is_empty(),
        "votes alone make no moderator"
    );
    // One karma point short of the threshold is not enough.
    sql.execute(
        "INSERT INTO directory_karma (user_id, delta, cause, category_id, created_at) \
         SELECT $1, -1, 'submission_rejected', id, now() FROM directory_categories WHERE slug = 'music'",
        &[SqlValue::Uuid(earner)],
    )
    .await
    .expect("karma");
    assert!(scope(earner).await.is_empty());

    let in_garden = submit(
        &sql,
        &cache,
        submitter,
        "https://garden.example/",
        "gardening",
        &[],
    )
    .await
    .expect("submitted");
    let in_music = submit(
        &sql,
        &cache,
        submitter,
        "https://music.example/",
        "music",
        &[],
    )
    .await
    .expect("submitted");
    let appointed_ctx = as_user(appointed);
    let act = decision(&sql, &cache, &appointed_ctx, &[], now);
    let denied = act
        .approve(in_music, &Edits::default())
        .await
        .expect_err("not theirs");
    assert!(matches!(denied, AppError::Forbidden(_)), "{denied:?}");
    let moving = act
        .approve(
            in_garden,
            &Edits {
                category: Some("music".into()),
                ..Edits::default()
            },
        )
        .await
        .expect_err("not into a category they do not moderate");
    assert!(matches!(moving, AppError::Forbidden(_)), "{moving:?}");
    let nobody_ctx = as_user(nobody);
    let denied = decision(&sql, &cache, &nobody_ctx, &[], now)
        .reject(in_garden, "spam")
        .await
        .expect_err("not a moderator");
    assert!(matches!(denied, AppError::Forbidden(_)), "{denied:?}");
    let own = submit(
        &sql,
        &cache,
        appointed,
        "https://own.example/",
        "gardening",
        &[],
    )
    .await
    .expect("submitted");
    let denied = act
        .approve(own, &Edits::default())
        .await
        .expect_err("not their own");
    assert!(matches!(denied, AppError::Forbidden(_)), "{denied:?}");
    let anonymous = RequestContext::from_headers(&http::HeaderMap::new(), "good-sites");
    let denied = decision(&sql, &cache, &anonymous, &[], now)
        .reject(in_garden, "")
        .await
        .expect_err("signed out");
    assert!(matches!(denied, AppError::Unauthorized), "{denied:?}");
    act.approve(
        in_garden,
        &Edits {
            title: Some("The Garden".into()),
            ..Edits::default()
        },
    )
    .await
    .expect("approved in their category");
    let site = sites::get(&sql, in_garden)
        .await
        .expect("get")
        .expect("site");
    assert_eq!(
        (site.status.as_str(), site.title.as_str()),
        ("approved", "The Garden")
    );
    // The approval queued a screenshot of the site and was audited.
    let captures: i64 = one(
        &sql,
        "SELECT count(*) AS v FROM delayed_jobs WHERE handler = 'screenshot.capture' \
         AND queue = 'SCREENSHOT' AND (payload->>'site_id')::bigint = $1",
        &[SqlValue::Int64(in_garden)],
    )
    .await;
    assert_eq!(captures, 1);
    let audited: i64 = one(
        &sql,
        "SELECT count(*) AS v FROM audit_log WHERE action = 'directory.approve' \
         AND target_id = $1 AND after->>'title' = 'The Garden' AND before->>'status' = 'pending'",
        &[SqlValue::Text(in_garden.to_string())],
    )
    .await;
    assert_eq!(audited, 1);
    let appointments: i64 = one(
        &sql,
        "SELECT count(*) AS v FROM audit_log WHERE action = 'directory.moderator.appoint'",
        &[],
    )
    .await;
    assert_eq!(appointments, 1);
    // A rejection needs a reason, and the submitter loses karma.
    let no_reason = decision(&sql, &cache, &as_user(admin), &[], now)
        .reject(in_music, "  ")
        .await
        .expect_err("a reason is required");
    field_message(&no_reason, "reason");
    let before = karma(&sql, submitter).await;
    decision(&sql, &cache, &as_user(admin), &[], now)
        .reject(in_music, "Not about music")
        .await
        .expect("rejected");
    assert_eq!(
        karma(&sql, submitter).await,
        before + moderation::REJECTED_KARMA as i64
    );
}

#[tokio::test]
async fn link_health_marks_broken_redirected_and_parked_sites_with_what_it_saw() {
    let (sql, cache) = ports().await;
    let other = corpus(None).await;
    let site = corpus(Some(other.clone())).await;
    let hosts = vec![site.clone(), other.clone()];
    let submitter = user(&sql, &[]).await;
    let admin = user(&sql, &["support"]).await;
    let ctx = as_user(admin);
    let now = Utc::now();
    let mut ids = Vec::new();
    for path in [
        "ok",
        "within",
        "away",
        "parked",
        "gone",
        "error",
        "to-private",
        "silent",
    ] {
        let id = submit(
            &sql,
            &cache,
            submitter,
            &format!("http://{site}/{path}"),
            "gardening",
            &hosts,
        )
        .await
        .expect("submitted");
        decision(&sql, &cache, &ctx, &hosts, now)
            .approve(id, &Edits::default())
            .await
            .expect("approved");
        ids.push((path, id));
    }
    let health_of = |id: i64| {
        let sql = &sql;
        async move { sites::get(sql, id).await.expect("get").expect("site") }
    };
    // Checks are due at approval; each run claims a batch.
    let mut at = now;
    let mut rounds = 0;
    loop {
        let (checked, more) = health::check_due(&sql, &http(), &hosts, at)
            .await
            .expect("checked");
        rounds += 1;
        if !more || checked == 0 {
            break;
        }
        assert!(rounds < 10, "the checks finish");
    }
    for (path, id) in &ids {
        let site = health_of(*id).await;
        let expected = match *path {
            "ok" | "within" => "ok",
            "away" => "redirected",
            "parked" => "parked",
            _ => "unknown",
        };
        assert_eq!(site.health, expected, "{path}: {:?}", site.health_detail);
        assert!(site.health_checked_at.is_some(), "{path}");
    }
    let away = health_of(ids[2].1).await;
    let detail = away.health_detail.expect("detail");
    assert_eq!(detail["final_url"], format!("http://{other}/ok"));
    assert_eq!(detail["status"], 200);
    // Failing sites are retried sooner (an hour), and broken after three.
    for _ in 1..BROKEN_AFTER {
        at += chrono::Duration::hours(9);
        while health::check_due(&sql, &http(), &hosts, at)
            .await
            .expect("checked")
            .1
        {}
    }
    for (path, id) in &ids {
        let site = health_of(*id).await;
        let expected = match *path {
            "ok" | "within" => "ok",
            "away" => "redirected",
            "parked" => "parked",
            _ => "broken",
        };
        assert_eq!(site.health, expected, "{path}: {:?}", site.health_detail);
    }
    let gone = health_of(ids[4].1).await.health_detail.expect("detail");
    assert_eq!(gone["reason"], "answered 404 Not Found");
    let private = health_of(ids[6].1).await.health_detail.expect("detail");
    assert!(
        private["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("refused"),
        "{private}"
    );
    // The flagged ones are in the moderators' queue; healthy ones are not.
    let queue: Vec<i64> = sites::needing_moderation(&sql, None)
        .await
        .expect("queue")
        .iter()
        .map(|s| s.id)
        .collect();
    for (path, id) in &ids {
        assert_eq!(
            queue.contains(id),
            !matches!(*path, "ok" | "within"),
            "{path}"
        );
    }
    assert_eq!(health::next_check(0, now), now + chrono::Duration::days(7));
    assert_eq!(health::next_check(1, now), now + chrono::Duration::hours(1));
    assert_eq!(health::next_check(3, now), now + chrono::Duration::hours(4));
    assert_eq!(health::next_check(20, now), now + chrono::Duration::days(7));
}

#[tokio::test]
async fn screenshots_older_than_a_month_are_queued_again_once() {
    let (sql, cache) = ports().await;
    let submitter = user(&sql, &[]).await;
    let admin = user(&sql, &["support"]).await;
    let now = Utc::now();
    let id = submit(
        &sql,
        &cache,
        submitter,
        "https://example.org/",
        "music",
        &[],
    )
    .await
    .expect("submitted");
    decision(&sql, &cache, &as_user(admin), &[], now)
        .approve(id, &Edits::default())
        .await
        .expect("approved");
    let captures = || {
        let sql = &sql;
        async move {
            one::<i64>(
                sql,
                "SELECT count(*) AS v FROM delayed_jobs WHERE handler = 'screenshot.capture'",
                &[],
            )
            .await
        }
    };
    assert_eq!(captures().await, 1, "the approval's capture");
    let run = |at: DateTime<Utc>| {
        let (sql, cache) = (&sql, &cache);
        async move {
            village_directory::recapture::queue_due(sql, cache, &[], at)
                .await
                .expect("queued")
        }
    };
    // Asked for at approval: not again this month, however often it runs.
    assert_eq!(run(now).await, 0);
    assert_eq!(run(now + chrono::Duration::days(10)).await, 0);
    // A month on (even with no picture: a page that cannot be captured is
    // asked for monthly, not daily), once.
    let later = now + chrono::Duration::days(40);
    assert_eq!(run(later).await, 1);
    assert_eq!(run(later).await, 0);
    assert_eq!(captures().await, 2);
    let (full, thumb) =
        village_screenshots::versions::image_keys("https://example.org/", Uuid::new_v4());
    let image = |key: String| village_screenshots::versions::Image {
        key,
        width: 1,
        height: 1,
        bytes: 1,
    };
    village_screenshots::versions::record_version(
        &sql,
        &village_screenshots::versions::NewVersion {
            url: "https://example.org/".into(),
            site_id: Some(id),
            final_url: "https://example.org/".into(),
            full: image(full),
            thumb: image(thumb),
            capture_ms: 1,
            job_id: None,
            attempt: 1,
            captured_at: later,
        },
    )
    .await
    .expect("version");
    assert_eq!(run(later + chrono::Duration::days(10)).await, 0);
    assert_eq!(
        run(later + chrono::Duration::days(35)).await,
        1,
        "stale again"
    );
}
