//! Rate limiting against the real Postgres and Redis: each test in a fresh
//! database with its own Redis namespace; the Redis outage is a private
//! redis-server, killed.

use chrono::Utc;
use uuid::Uuid;
use village_platform::RequestContext;
use village_platform::cache::{Cache, namespace_of};
use village_platform::native::{NativeCache, NativeSql, PrivateRedis, test_ports};
use village_platform::sql::{Sql, SqlValue};
use village_ratelimit::admin::{RateLimitsRequest, handle};
use village_ratelimit::{Decision, Subjects, check};

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

async fn admin(w: &World, method: http::Method, path: &str, body: serde_json::Value) -> u16 {
    let body = body.to_string();
    handle(
        RateLimitsRequest {
            method: &method,
            path,
            query: "",
            body: body.as_bytes(),
        },
        &w.sql,
        &w.cache,
        &RequestContext::from_headers(&http::HeaderMap::new(), "test"),
        None,
    )
    .await
    .map(|r| r.status().as_u16())
    .unwrap_or_else(|e| e.status().as_u16())
}

/// Sets `action`'s rule for scope `ip` through the admin API.
async fn rule(w: &World, action: &str, body: serde_json::Value) {
    let status = admin(
        w,
        http::Method::PUT,
        &format!("/admin/api/rate-limits/rules/{action}/ip"),
        body,
    )
    .await;
    assert_eq!(status, 200);
}

fn ip(addr: &str) -> Subjects {
    Subjects {
        ip: Some(addr.into()),
        user: None,
        anon: Some(Uuid::new_v4()),
    }
}

async fn count(sql: &NativeSql, statement: &str) -> i64 {
    sql.query(statement, &[]).await.expect("count")[0]
        .get::<i64>("n")
        .expect("n")
}

#[tokio::test]
async fn the_limit_is_exact_at_the_boundary_under_concurrent_requests() {
    let w = world().await;
    rule(
        &w,
        "t_exact",
        serde_json::json!({"limit_count": 10, "window_seconds": 60, "fail_mode": "open",
                           "reason": "test"}),
    )
    .await;
    // 40 callers at once, each on its own connection, as pods would be.
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let url = w.url.clone();
        tasks.push(tokio::spawn(async move {
            let (sql, cache) = test_ports(&url).await;
            check(&sql, &cache, "t_exact", &ip("10.0.0.1"), Utc::now())
                .await
                .expect("check")
        }));
    }
    let mut allowed = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.expect("task") {
            Decision::Allowed { .. } => allowed += 1,
            Decision::Limited {
                retry_after_secs, ..
            } => {
                assert!((1..=6).contains(&retry_after_secs), "{retry_after_secs}");
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((allowed, limited), (10, 30));
    // Another address has its own budget.
    assert!(matches!(
        check(&w.sql, &w.cache, "t_exact", &ip("10.0.0.2"), Utc::now())
            .await
            .expect("check"),
        Decision::Allowed { remaining: 9, .. }
    ));
}

#[tokio::test]
async fn allowed_and_refused_answers_carry_the_ratelimit_headers() {
    let w = world().await;
    rule(
        &w,
        "t_headers",
        serde_json::json!({"limit_count": 2, "window_seconds": 10, "fail_mode": "open",
                           "reason": "test"}),
    )
    .await;
    let subject = ip("10.0.0.3");
    let first = check(&w.sql, &w.cache, "t_headers", &subject, Utc::now())
        .await
        .expect("check")
        .verdict();
    let get = |v: &village_platform::guard::Verdict, name: &str| {
        v.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.to_str().unwrap_or_default().to_owned())
    };
    assert!(first.refusal.is_none());
    assert_eq!(get(&first, "ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(get(&first, "ratelimit-remaining").as_deref(), Some("1"));
    assert_eq!(get(&first, "ratelimit-policy").as_deref(), Some("2;w=10"));
    let reset: u64 = get(&first, "ratelimit-reset")
        .and_then(|v| v.parse().ok())
        .expect("reset");
    assert!(
        (1..=5).contains(&reset),
        "one of two used: back in ≤5 s, got {reset}"
    );
    check(&w.sql, &w.cache, "t_headers", &subject, Utc::now())
        .await
        .expect("check");
    let third = check(&w.sql, &w.cache, "t_headers", &subject, Utc::now())
        .await
        .expect("check")
        .verdict();
    assert_eq!(get(&third, "ratelimit-remaining").as_deref(), Some("0"));
    match third.refusal {
        Some(village_platform::AppError::TooManyRequests { retry_after_secs }) => {
            assert!((1..=5).contains(&retry_after_secs), "{retry_after_secs}")
        }
        other => panic!("refused with 429, got {other:?}"),
    }
    assert_eq!(
        count(&w.sql, "SELECT count(*) AS n FROM rate_limit_violations").await,
        1,
        "the violation is recorded"
    );
}

#[tokio::test]
async fn repeated_violations_earn_a_ban_that_expires_or_is_lifted() {
    let w = world().await;
    rule(
        &w,
        "t_ban",
        serde_json::json!({"limit_count": 1, "window_seconds": 60, "fail_mode": "open",
                           "ban_after_violations": 3, "ban_seconds": 2, "reason": "test"}),
    )
    .await;
    let subject = ip("10.0.0.4");
    let run = async || {
        check(&w.sql, &w.cache, "t_ban", &subject, Utc::now())
            .await
            .expect("check")
    };
    assert!(matches!(run().await, Decision::Allowed { .. }));
    assert!(matches!(
        run().await,
        Decision::Limited {
            violations: 1,
            banned_now: false,
            ..
        }
    ));
    assert!(matches!(
        run().await,
        Decision::Limited {
            violations: 2,
            banned_now: false,
            ..
        }
    ));
    assert!(matches!(
        run().await,
        Decision::Limited {
            violations: 3,
            banned_now: true,
            ..
        }
    ));
    assert!(matches!(
        run().await,
        Decision::Banned {
            retry_after_secs: 1..=2,
            ..
        }
    ));
    let bans = w
        .sql
        .query(
            "SELECT id, subject, expires_at > created_at AS has_expiry FROM rate_limit_bans",
            &[],
        )
        .await
        .expect("bans");
    assert_eq!(bans.len(), 1, "the ban is a row");
    assert_eq!(bans[0].get::<String>("subject").expect("s"), "10.0.0.4");
    assert!(bans[0].get::<bool>("has_expiry").expect("e"));
    assert_eq!(
        count(&w.sql, "SELECT count(*) AS n FROM rate_limit_violations").await,
        2,
        "the first refusal and the one that earned the ban"
    );
    // The ban expires by itself…
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(
        matches!(run().await, Decision::Limited { violations: 1, .. }),
        "banned no more, but still over the limit"
    );
    // … or is lifted by an admin, with a reason, audited.
    for _ in 0..2 {
        run().await;
    }
    assert!(matches!(run().await, Decision::Banned { .. }));
    let id: i64 = w
        .sql
        .query(
            "SELECT max(id) AS id FROM rate_limit_bans WHERE lifted_at IS NULL",
            &[],
        )
        .await
        .expect("ban")[0]
        .get("id")
        .expect("id");
    let path = format!("/admin/api/rate-limits/bans/{id}");
    assert_eq!(
        admin(&w, http::Method::DELETE, &path, serde_json::json!({})).await,
        400,
        "a reason is required"
    );
    assert_eq!(
        admin(
            &w,
            http::Method::DELETE,
            &path,
            serde_json::json!({"reason": "a shared office NAT"})
        )
        .await,
        200
    );
    assert!(matches!(
        run().await,
        Decision::Limited { violations: 1, .. }
    ));
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) AS n FROM audit_log WHERE action = 'rate_limit.ban_lift' \
             AND reason = 'a shared office NAT'"
        )
        .await,
        1
    );
    assert_eq!(
        admin(
            &w,
            http::Method::DELETE,
            &path,
            serde_json::json!({"reason": "again"})
        )
        .await,
        404,
        "a lifted ban cannot be lifted twice"
    );
}

#[tokio::test]
async fn bans_outlive_a_redis_restart() {
    let w = world().await;
    rule(
        &w,
        "t_restart",
        serde_json::json!({"limit_count": 1, "window_seconds": 60, "fail_mode": "open",
                           "ban_after_violations": 1, "ban_seconds": 600, "reason": "test"}),
    )
    .await;
    let subject = ip("10.0.0.5");
    check(&w.sql, &w.cache, "t_restart", &subject, Utc::now())
        .await
        .expect("check");
    check(&w.sql, &w.cache, "t_restart", &subject, Utc::now())
        .await
        .expect("check");
    // Redis forgets everything this deployment had…
    let keys = w
        .cache
        .execute("KEYS", &[w.cache.key("*").into()])
        .await
        .expect("keys");
    for k in keys {
        if let Some(k) = k.as_text() {
            w.cache.execute("DEL", &[k.into()]).await.expect("del");
        }
    }
    // … and the next check, refilling the rule cache, puts the ban back.
    assert!(matches!(
        check(&w.sql, &w.cache, "t_restart", &subject, Utc::now())
            .await
            .expect("check"),
        Decision::Banned { .. }
    ));
}

#[tokio::test]
async fn with_redis_down_each_rule_fails_open_or_closed_and_says_so_once() {
    let w = world().await;
    // Warm nothing: the private Redis dies before it caches anything.
    let mut private = PrivateRedis::start().await.expect("redis-server");
    let down = NativeCache::connect_namespaced(&private.url, &namespace_of(&w.url))
        .await
        .expect("connect");
    private.stop();
    let subject = ip("10.0.0.6");
    for _ in 0..5 {
        assert_eq!(
            check(&w.sql, &down, "bootstrap", &subject, Utc::now())
                .await
                .expect("check"),
            Decision::Degraded { refused: true },
            "bootstrap fails closed"
        );
        assert_eq!(
            check(&w.sql, &down, "api", &subject, Utc::now())
                .await
                .expect("check"),
            Decision::Degraded { refused: false },
            "the API fails open"
        );
    }
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) AS n FROM rate_limit_outage_notices"
        )
        .await,
        2,
        "one notice per action, not one per request"
    );
    // A ban in Postgres is enforced even while Redis is down.
    w.sql
        .execute(
            "INSERT INTO rate_limit_bans (action, scope, subject, reason, created_at, expires_at) \
             VALUES ('api', 'ip', $1, 'test', now(), now() + interval '1 hour')",
            &[SqlValue::Text("10.0.0.6".into())],
        )
        .await
        .expect("ban");
    assert!(matches!(
        check(&w.sql, &down, "api", &subject, Utc::now())
            .await
            .expect("check"),
        Decision::Banned { .. }
    ));
}

#[tokio::test]
async fn rule_changes_are_validated_audited_and_seen_at_once() {
    let w = world().await;
    let subject = ip("10.0.0.7");
    assert!(matches!(
        check(&w.sql, &w.cache, "t_change", &subject, Utc::now())
            .await
            .expect("check"),
        Decision::Unlimited
    ));
    assert_eq!(
        admin(
            &w,
            http::Method::PUT,
            "/admin/api/rate-limits/rules/t_change/ip",
            serde_json::json!({"limit_count": -1, "window_seconds": 60, "fail_mode": "open"}),
        )
        .await,
        400
    );
    rule(
        &w,
        "t_change",
        serde_json::json!({"limit_count": 1, "window_seconds": 60, "fail_mode": "open",
                           "reason": "spam wave"}),
    )
    .await;
    check(&w.sql, &w.cache, "t_change", &subject, Utc::now())
        .await
        .expect("check");
    assert!(matches!(
        check(&w.sql, &w.cache, "t_change", &subject, Utc::now())
            .await
            .expect("check"),
        Decision::Limited { .. }
    ));
    let audit = w
        .sql
        .query(
            "SELECT before IS NULL AS created, after->>'limit_count' AS lim FROM audit_log \
             WHERE action = 'rate_limit.rule_set' AND target_id = 't_change/ip' \
             AND reason = 'spam wave'",
            &[],
        )
        .await
        .expect("audit");
    assert_eq!(audit.len(), 1);
    assert!(audit[0].get::<bool>("created").expect("c"));
    assert_eq!(audit[0].get::<String>("lim").expect("l"), "1");
}
