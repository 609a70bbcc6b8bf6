//! Feature flags and rate limits end to end: the real components in the
//! runtime against real Postgres and Redis.

use serde_json::{Value, json};
use village_e2e::{TestApp, spawn_app, spawn_app_with};
use village_platform::cache::namespace_of;
use village_platform::native::{NativeCache, NativeSql};

/// What the `flags-flush` cron does every minute — the app's buffered flag
/// evaluations to Postgres — until `rows` evaluations are written. (A
/// request appends its entry just after answering, so the last one may
/// still be on its way when the test flushes.)
async fn flush_evaluations(app: &TestApp, rows: i64) {
    let sql = NativeSql::connect(&app.db_url).await.expect("db");
    let cache =
        NativeCache::connect_namespaced("redis://127.0.0.1:6379", &namespace_of(&app.db_url))
            .await
            .expect("redis");
    for _ in 0..100 {
        village_flags::evaluation_log::flush(&sql, &cache)
            .await
            .expect("flush");
        if app
            .count("SELECT count(*) FROM feature_flag_evaluations")
            .await
            >= rows
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    cookie: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.expect("answered")
}

#[tokio::test]
async fn a_flag_change_by_ops_shows_the_widget_at_once_and_is_audited() {
    let app = spawn_app().await;
    let home = app.get("/", None).await.text().await.expect("html");
    assert!(!home.contains("id=\"widget-stocks\""), "stocks starts off");
    let flags: Value = app
        .get("/api/flags", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(flags["flags"]["stocks_widget"], false);
    assert_eq!(flags["flags"]["news_widget"], true);

    // Somebody without manage_flags is refused, and that is audited.
    let (_, support) = app.signed_in_as(&["support"]).await;
    let r = send(
        &app,
        reqwest::Method::PATCH,
        "/admin/api/flags/stocks_widget",
        Some(&support),
        Some(json!({"enabled": true, "rollout_percent": 100, "reason": "why not"})),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'permission.denied'")
            .await,
        1
    );

    let (ops_id, ops) = app.signed_in_as(&["ops"]).await;
    let r = send(
        &app,
        reqwest::Method::PATCH,
        "/admin/api/flags/stocks_widget",
        Some(&ops),
        Some(json!({"enabled": true, "rollout_percent": 100})),
    )
    .await;
    assert_eq!(r.status(), 400, "a reason is required");
    let problem: Value = r.json().await.expect("problem");
    assert_eq!(problem["errors"][0]["field"], "reason");
    let r = send(
        &app,
        reqwest::Method::PATCH,
        "/admin/api/flags/stocks_widget",
        Some(&ops),
        Some(json!({"enabled": true, "rollout_percent": 100, "reason": "quotes are stable"})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let home = app.get("/", None).await.text().await.expect("html");
    assert!(home.contains("id=\"widget-stocks\""), "shown at once");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM audit_log WHERE action = 'flag.update' \
             AND actor_user_id = '{ops_id}' AND before->>'enabled' = 'false' \
             AND after->>'enabled' = 'true' AND reason = 'quotes are stable'"
        ))
        .await,
        1
    );
    let list: Value = send(
        &app,
        reqwest::Method::GET,
        "/admin/api/flags",
        Some(&ops),
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    assert!(
        list["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["key"] == "promoted_listings"))
    );
    app.stop().await;
}

#[tokio::test]
async fn evaluations_name_a_user_only_with_consent_and_withdrawal_purges_them() {
    let app = spawn_app().await;
    let (user, cookie) = app.signed_in_as(&[]).await;
    let named = format!("SELECT count(*) FROM feature_flag_evaluations WHERE user_id = '{user}'");
    let rows = "SELECT count(*) FROM feature_flag_evaluations";
    let flags: Value = app
        .get("/api/flags", Some(&cookie))
        .await
        .json()
        .await
        .expect("json");
    let per_call = flags["flags"].as_object().map_or(0, |f| f.len()) as i64;
    assert!(per_call >= 9, "the baseline flags: {flags}");

    let r = send(
        &app,
        reqwest::Method::PUT,
        "/api/consent",
        Some(&cookie),
        Some(json!({"analytics": true})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let consent: Value = r.json().await.expect("json");
    assert_eq!(consent["analytics"], true);
    // Evaluations are buffered in Redis after each answer and written to
    // Postgres by the flush.
    for _ in 0..3 {
        app.get("/api/flags", Some(&cookie)).await;
    }
    flush_evaluations(&app, 4 * per_call).await;
    assert_eq!(app.count(rows).await, 4 * per_call);
    assert_eq!(
        app.count(&named).await,
        3 * per_call,
        "every call but the first (before consent) names the user"
    );

    let r = send(
        &app,
        reqwest::Method::PUT,
        "/api/consent",
        Some(&cookie),
        Some(json!({"analytics": false})),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.count(&named).await, 0, "withdrawal purges at once");
    assert_eq!(
        app.count(rows).await,
        per_call,
        "the anonymous statistics stay"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'consent.analytics'")
            .await,
        2
    );
    let r = send(
        &app,
        reqwest::Method::PUT,
        "/api/consent",
        None,
        Some(json!({"analytics": true})),
    )
    .await;
    assert_eq!(r.status(), 401, "consent is a signed-in user's own");
    app.stop().await;
}

#[tokio::test]
async fn over_the_limit_answers_429_with_headers_and_records_the_violation() {
    let app = spawn_app().await;
    let (_, ops) = app.signed_in_as(&["ops"]).await;
    let r = send(
        &app,
        reqwest::Method::PUT,
        "/admin/api/rate-limits/rules/api/ip",
        Some(&ops),
        Some(
            json!({"limit_count": 3, "window_seconds": 60, "fail_mode": "open",
                    "reason": "load test"}),
        ),
    )
    .await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    // The new rule counts from the next request on: three pass, the fourth
    // is refused.
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..4 {
        let r = app.get("/api/preferences", None).await;
        statuses.push(r.status().as_u16());
        last = Some(r);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let refused = last.expect("answer");
    let h = |n: &str| {
        refused
            .headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(h("ratelimit-limit"), "3");
    assert_eq!(h("ratelimit-remaining"), "0");
    assert_eq!(h("ratelimit-policy"), "3;w=60");
    let retry: u64 = h("retry-after").parse().expect("retry-after");
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM rate_limit_violations WHERE action = 'api'")
            .await,
        1
    );
    // Static files are not counted.
    assert_eq!(app.get("/static/site.css", None).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn with_redis_down_sign_in_and_bootstrap_fail_closed_and_reads_stay_open() {
    // A port nothing listens on: every Redis call fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    // The pages and APIs alone, as production's experience app runs them:
    // a Redis trigger cannot start without Redis (Spin stops the whole app).
    let app = spawn_app_with(|o| {
        o.variables.insert("redis_host".into(), closed.to_string());
        o.components = village_e2e::http_components();
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/preferences", None).await.status(), 200);
        let boot = send(&app, reqwest::Method::POST, "/bootstrap", None, None).await;
        assert_eq!(boot.status(), 503, "bootstrap fails closed");
        let login = app.get("/auth/google/login", None).await;
        assert_eq!(login.status(), 503, "sign-in fails closed");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM rate_limit_outage_notices")
            .await,
        3,
        "api, bootstrap, sign_in: announced once each"
    );
    app.stop().await;
}

/// A Redis that accepts connections and never answers, counting the
/// commands it is sent.
async fn hung_redis() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let commands = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = commands.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    // Each RESP command starts with `*` at the start of a line.
                    let text = &buf[..n];
                    let starts = text
                        .iter()
                        .enumerate()
                        .filter(|(i, b)| **b == b'*' && (*i == 0 || text[i - 1] == b'\n'))
                        .count();
                    counter.fetch_add(starts, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    (addr, commands)
}

/// A hung Redis used to add seconds to every request: each call waited out
/// its timeout. Now the first failure opens the circuit breaker and the
/// requests after it do not send Redis anything at all (reads fail open as
/// before), until the breaker's window ends.
#[tokio::test]
async fn a_hung_redis_opens_the_breaker_and_later_requests_skip_it() {
    let (hung, commands) = hung_redis().await;
    let app = spawn_app_with(|o| {
        o.variables.insert("redis_host".into(), hung.to_string());
        o.components = village_e2e::http_components();
    })
    .await;
    if app.on_spin() {
        // Spin 3.6.3 sets no timeout on Redis calls: a call to a hung Redis
        // never returns, so nothing can learn from it (runtime/README.md).
        eprintln!("skipped on spin: its Redis calls have no timeout");
        app.stop().await;
        return;
    }
    // The first requests wait out their Redis calls; two failures in a row
    // (some after the answer: metrics) open the breaker.
    for _ in 0..3 {
        assert_eq!(
            app.get("/api/preferences", None).await.status(),
            200,
            "reads fail open"
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let sent = commands.load(std::sync::atomic::Ordering::SeqCst);
    assert!(sent >= 1, "the first requests tried Redis");
    for _ in 0..10 {
        assert_eq!(app.get("/api/preferences", None).await.status(), 200);
    }
    assert_eq!(
        commands.load(std::sync::atomic::Ordering::SeqCst),
        sent,
        "while the breaker is open nothing is sent to Redis"
    );
    // After the window, one request probes (and opens it again).
    tokio::time::sleep(village_platform::breaker::OPEN_FOR).await;
    assert_eq!(app.get("/api/preferences", None).await.status(), 200);
    assert!(
        commands.load(std::sync::atomic::Ordering::SeqCst) > sent,
        "a probe"
    );
    app.stop().await;
}
