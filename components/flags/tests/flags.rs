//! Feature flags against the real Postgres and Redis: each test in a fresh
//! database with its own Redis namespace; outages are real (a private
//! redis-server killed, a Postgres connection terminated).

use chrono::{Duration, Utc};
use uuid::Uuid;
use village_flags::admin::{FlagsRequest, handle};
use village_flags::store::{self, Source};
use village_flags::{Visitor, evaluation_log, flags_for, is_enabled, retention};
use village_platform::RequestContext;
use village_platform::cache::Cache;
use village_platform::native::{NativeCache, NativeSql, PrivateRedis, test_ports};
use village_platform::sql::{Sql, SqlValue};

struct World {
    url: String,
    sql: NativeSql,
    cache: NativeCache,
}

async fn world() -> World {
    let url = village_migrate::testing::fresh_database()
        .await
        .expect("test database");
    let (sql, cache) = test_ports(&url).await;
    World { url, sql, cache }
}

fn visitor(consent: bool, user: Option<Uuid>) -> Visitor {
    Visitor {
        cohort: Uuid::new_v4(),
        user_id: user,
        analytics_consent: consent,
        session_hash: "test-session".into(),
    }
}

fn ctx() -> RequestContext {
    RequestContext::from_headers(&http::HeaderMap::new(), "test")
}

async fn count(sql: &NativeSql, statement: &str, params: &[SqlValue]) -> i64 {
    sql.query(statement, params).await.expect("count")[0]
        .get::<i64>("n")
        .expect("n")
}

/// Calls the admin API as an already-authorised caller; the status.
async fn admin(
    w: &World,
    method: http::Method,
    path: &str,
    body: serde_json::Value,
) -> http::StatusCode {
    let body = body.to_string();
    handle(
        FlagsRequest {
            method: &method,
            path,
            body: body.as_bytes(),
        },
        &w.sql,
        &w.cache,
        &ctx(),
        None,
        Utc::now(),
    )
    .await
    .map(|r| r.status())
    .unwrap_or_else(|e| e.status())
}

async fn patch(w: &World, key: &str, body: serde_json::Value) -> http::StatusCode {
    admin(
        w,
        http::Method::PATCH,
        &format!("/admin/api/flags/{key}"),
        body,
    )
    .await
}

#[tokio::test]
async fn the_baseline_flags_exist_and_are_cached_until_a_change_invalidates_them() {
    let w = world().await;
    let first = store::definitions(&w.sql, &w.cache).await;
    assert_eq!(first.source, Source::Database);
    for key in [
        "stocks_widget",
        "social_integration",
        "promoted_listings",
        "news_widget",
    ] {
        assert!(first.get(key).is_some(), "{key} is a baseline flag");
    }
    assert!(!first.get("stocks_widget").expect("flag").enabled);
    let second = store::definitions(&w.sql, &w.cache).await;
    assert_eq!(second.source, Source::Cache, "the second read is Redis's");

    let v = visitor(false, None);
    assert!(!is_enabled(&w.sql, &w.cache, &v, "stocks_widget", Utc::now()).await);
    let status = patch(
        &w,
        "stocks_widget",
        serde_json::json!({"enabled": true, "rollout_percent": 100, "reason": "metrics are green"}),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK);
    assert!(
        is_enabled(&w.sql, &w.cache, &v, "stocks_widget", Utc::now()).await,
        "the change is seen at once: the cache was invalidated"
    );
    let audit = w
        .sql
        .query(
            "SELECT reason, before->>'enabled' AS was, after->>'enabled' AS now, \
                    after->>'rollout_percent' AS pct FROM audit_log \
             WHERE action = 'flag.update' AND target_id = 'stocks_widget'",
            &[],
        )
        .await
        .expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(
        audit[0].get::<String>("reason").expect("r"),
        "metrics are green"
    );
    assert_eq!(audit[0].get::<String>("was").expect("b"), "false");
    assert_eq!(audit[0].get::<String>("now").expect("a"), "true");
    assert_eq!(audit[0].get::<String>("pct").expect("p"), "100");

    // A change without a reason changes nothing and writes nothing.
    let status = patch(
        &w,
        "stocks_widget",
        serde_json::json!({"kill_switch": true}),
    )
    .await;
    assert_eq!(status, http::StatusCode::BAD_REQUEST);
    assert!(is_enabled(&w.sql, &w.cache, &v, "stocks_widget", Utc::now()).await);
    assert_eq!(
        count(&w.sql, "SELECT count(*) AS n FROM audit_log", &[]).await,
        1
    );
    let status = patch(&w, "no_such_flag", serde_json::json!({"reason": "x"})).await;
    assert_eq!(status, http::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn allow_list_and_kill_switch_take_precedence_through_the_store() {
    let w = world().await;
    let qa = Uuid::new_v4();
    let created = admin(
        &w,
        http::Method::POST,
        "/admin/api/flags",
        serde_json::json!({
            "key": "beta_feature", "description": "QA only", "enabled": false,
            "rollout_percent": 0, "allow_user_ids": [qa.to_string()], "reason": "QA pass"
        }),
    )
    .await;
    assert_eq!(created, http::StatusCode::CREATED);
    let now = Utc::now();
    assert!(
        is_enabled(
            &w.sql,
            &w.cache,
            &visitor(false, Some(qa)),
            "beta_feature",
            now
        )
        .await
    );
    assert!(
        !is_enabled(
            &w.sql,
            &w.cache,
            &visitor(false, Some(Uuid::new_v4())),
            "beta_feature",
            now
        )
        .await
    );
    patch(
        &w,
        "beta_feature",
        serde_json::json!({"kill_switch": true, "reason": "crashes on Safari"}),
    )
    .await;
    assert!(
        !is_enabled(
            &w.sql,
            &w.cache,
            &visitor(false, Some(qa)),
            "beta_feature",
            now
        )
        .await,
        "the kill switch wins over the allow-list"
    );
}

async fn consenting_user(sql: &NativeSql) -> Uuid {
    sql.query(
        "INSERT INTO users (is_anonymous, analytics_consent_at) VALUES (false, now()) RETURNING id",
        &[],
    )
    .await
    .expect("user")[0]
        .get("id")
        .expect("id")
}

#[tokio::test]
async fn evaluations_are_buffered_then_written_naming_the_user_only_with_consent() {
    let w = world().await;
    let user = consenting_user(&w.sql).await;
    let now = Utc::now();
    let without = flags_for(&w.sql, &w.cache, &visitor(false, Some(user)), now).await;
    assert!(without.is_on("news_widget") && !without.is_on("stocks_widget"));
    flags_for(&w.sql, &w.cache, &visitor(true, Some(user)), now).await;
    let rows = "SELECT count(*) AS n FROM feature_flag_evaluations";
    assert_eq!(count(&w.sql, rows, &[]).await, 0, "buffered in Redis");
    let flags = without.flags.len() as i64;
    assert_eq!(
        evaluation_log::flush(&w.sql, &w.cache)
            .await
            .expect("flush"),
        2 * flags as u64,
        "one row per flag per call"
    );
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) AS n FROM feature_flag_evaluations WHERE user_id = $1",
            &[SqlValue::Uuid(user)]
        )
        .await,
        flags,
        "only the consented call names the user"
    );
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) AS n FROM feature_flag_evaluations WHERE session_hash = 'test-session'",
            &[]
        )
        .await,
        2 * flags,
        "the session hash is always there"
    );
    assert_eq!(
        evaluation_log::flush(&w.sql, &w.cache)
            .await
            .expect("flush"),
        0,
        "a flush takes what it writes"
    );

    // Consent withdrawn after the evaluation but before the flush: the row
    // does not name the user. Rows already written are purged at once.
    flags_for(&w.sql, &w.cache, &visitor(true, Some(user)), now).await;
    w.sql
        .execute(
            "UPDATE users SET analytics_consent_at = NULL WHERE id = $1",
            &[SqlValue::Uuid(user)],
        )
        .await
        .expect("withdraw");
    assert_eq!(
        retention::purge_user(&w.sql, user).await.expect("purge"),
        flags as u64
    );
    evaluation_log::flush(&w.sql, &w.cache)
        .await
        .expect("flush");
    assert_eq!(count(&w.sql, rows, &[]).await, 3 * flags - flags);
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) AS n FROM feature_flag_evaluations WHERE user_id IS NOT NULL",
            &[]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_flush_writes_the_whole_buffer_in_batches() {
    let w = world().await;
    let v = visitor(false, None);
    let calls = evaluation_log::MAX_BATCH + 5;
    for _ in 0..calls {
        is_enabled(&w.sql, &w.cache, &v, "news_widget", Utc::now()).await;
    }
    let rows = "SELECT count(*) AS n FROM feature_flag_evaluations";
    assert_eq!(count(&w.sql, rows, &[]).await, 0, "buffered");
    assert_eq!(
        evaluation_log::flush(&w.sql, &w.cache)
            .await
            .expect("flush"),
        calls as u64
    );
    assert_eq!(count(&w.sql, rows, &[]).await, calls);
    let left = w
        .cache
        .execute("LLEN", &[w.cache.key(evaluation_log::BUFFER_KEY).into()])
        .await
        .expect("llen");
    assert_eq!(left, [village_platform::cache::CacheValue::Int(0)]);
}

#[tokio::test]
async fn partitions_are_kept_ahead_and_dropped_after_ninety_days() {
    let w = world().await;
    let later = Utc::now() + Duration::days(150);
    let done = retention::maintain(&w.sql, later).await.expect("maintain");
    let name =
        |at: chrono::DateTime<Utc>| format!("feature_flag_evaluations_{}", at.format("%Y_%m"));
    assert_eq!(done.ensured.len(), 3);
    assert_eq!(done.ensured[0], name(later));
    // The oldest partition the migration made: a calendar month back
    // (not 31 days: on 1 December that would be October).
    let month_ago = Utc::now()
        .checked_sub_months(chrono::Months::new(1))
        .expect("a month ago");
    assert!(done.dropped.contains(&name(month_ago)), "{done:?}");
    assert!(
        !done.dropped.contains(&name(later - Duration::days(31))),
        "last month is within 90 days: {done:?}"
    );
    // Rows for `later` now have a home.
    flags_for(&w.sql, &w.cache, &visitor(false, None), later).await;
    evaluation_log::flush(&w.sql, &w.cache)
        .await
        .expect("flush");
    assert!(
        count(
            &w.sql,
            "SELECT count(*) AS n FROM feature_flag_evaluations",
            &[]
        )
        .await
            > 0
    );
}

#[tokio::test]
async fn a_redis_outage_falls_back_to_postgres_and_a_postgres_outage_to_off() {
    let w = world().await;
    patch(
        &w,
        "promoted_listings",
        serde_json::json!({"enabled": true, "rollout_percent": 100, "reason": "launch"}),
    )
    .await;
    let mut private = PrivateRedis::start().await.expect("redis-server");
    let down = NativeCache::connect_namespaced(&private.url, "x")
        .await
        .expect("connect");
    private.stop();
    assert!(down.ping().await.is_err(), "Redis is really down");
    let defs = store::definitions(&w.sql, &down).await;
    assert_eq!(defs.source, Source::Database);
    let v = visitor(false, None);
    assert!(is_enabled(&w.sql, &down, &v, "promoted_listings", Utc::now()).await);

    // Postgres goes too: this connection is terminated by the server.
    let victim = NativeSql::connect(&w.url).await.expect("connect");
    let pid: i32 = victim
        .query("SELECT pg_backend_pid() AS pid", &[])
        .await
        .expect("pid")[0]
        .get("pid")
        .expect("pid");
    w.sql
        .query(
            "SELECT pg_terminate_backend($1) AS done",
            &[SqlValue::Int32(pid)],
        )
        .await
        .expect("terminate");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let defs = store::definitions(&victim, &down).await;
    assert_eq!(defs.source, Source::Unavailable);
    let set = flags_for(&victim, &down, &v, Utc::now()).await;
    assert!(set.flags.is_empty() && !set.is_on("news_widget"));
    assert!(!is_enabled(&victim, &down, &v, "promoted_listings", Utc::now()).await);

    // With Redis back (and the cache warm), Postgres is not needed.
    store::definitions(&w.sql, &w.cache).await;
    assert!(is_enabled(&victim, &w.cache, &v, "promoted_listings", Utc::now()).await);
}
