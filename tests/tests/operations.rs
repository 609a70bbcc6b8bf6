//! Probes and metrics end to end.

use village_e2e::{spawn_app, spawn_app_with};

#[tokio::test]
async fn liveness_and_readiness_answer_when_everything_is_up() {
    let app = spawn_app().await;
    let live = app.get("/healthz", None).await;
    assert_eq!(live.status(), 200);
    assert!(live.headers().get("set-cookie").is_none());
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    app.stop().await;
}

#[tokio::test]
async fn readiness_turns_503_and_names_postgres_when_it_is_unreachable() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let app = spawn_app_with(|o| {
        o.variables.insert("db_host".into(), "127.0.0.1:1".into());
    })
    .await;
    let resp = app.get("/readyz", None).await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["failing"], serde_json::json!(["postgres"]));
    assert_eq!(
        app.get("/healthz", None).await.status(),
        200,
        "liveness does not depend on Postgres"
    );
    app.stop().await;
}

#[tokio::test]
async fn readiness_names_redis_when_it_is_unreachable() {
    // The HTTP components alone (production's experience app): with no
    // Redis, an app with Redis triggers does not start at all, under Spin
    // and `village` alike (runtime: start-up fails naming the address).
    let app = spawn_app_with(|o| {
        o.variables
            .insert("redis_host".into(), "127.0.0.1:1".into());
        o.components = village_e2e::http_components();
    })
    .await;
    let resp = app.get("/readyz", None).await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["failing"], serde_json::json!(["redis"]));
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_valid_prometheus_exposition_counting_requests() {
    let app = spawn_app().await;
    for _ in 0..3 {
        assert_eq!(app.get("/", None).await.status(), 200);
    }
    assert_eq!(
        app.client
            .delete(app.url("/api/preferences"))
            .send()
            .await
            .expect("ok")
            .status(),
        405
    );
    let resp = app.get("/q/metrics", None).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.expect("body");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("parses as Prometheus text");
    let count = |component: &str, status: &str| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "village_http_requests_total")
            .filter(|s| {
                s.labels.get("component") == Some(component)
                    && s.labels.get("status") == Some(status)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    // Redis is shared by concurrently running tests: counts only grow.
    assert!(count("homepage", "200") >= 3.0, "{text}");
    assert!(count("preferences-api", "405") >= 1.0, "{text}");
    let has_histogram = scrape.samples.iter().any(|s| {
        s.metric == "village_http_request_duration_seconds"
            && s.labels.get("component") == Some("homepage")
    });
    assert!(has_histogram, "latency histogram present: {text}");
    app.stop().await;
}
