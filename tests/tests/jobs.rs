//! The job system end to end: jobs enqueued against a test database wake the
//! real worker components over Redis; the ops API drives queues, with its
//! guard and its audit trail.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use village_e2e::{TestApp, spawn_app};
use village_jobs::{NewJob, Queue, enqueue};
use village_platform::native::{NativeCache, NativeSql};
use village_platform::sql::{Sql, SqlValue};

async fn ports(app: &TestApp) -> (NativeSql, NativeCache) {
    (
        NativeSql::connect(&app.db_url).await.expect("sql"),
        NativeCache::connect("redis://127.0.0.1:6379")
            .await
            .expect("redis"),
    )
}

async fn status(sql: &NativeSql, id: i64) -> String {
    sql.query_opt(
        "SELECT status FROM delayed_jobs WHERE id = $1",
        &[SqlValue::Int64(id)],
    )
    .await
    .expect("query")
    .expect("job")
    .get("status")
    .expect("status")
}

async fn wait_for_status(sql: &NativeSql, id: i64, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = status(sql, id).await;
        if s == want || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    cookie: Option<&str>,
) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("answered");
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

/// An `ops` user's cookie: `manage_system` is what the queue API needs.
async fn ops(app: &TestApp) -> String {
    app.signed_in_as(&["ops"]).await.1
}

#[tokio::test]
async fn an_enqueued_job_wakes_its_worker_component_and_runs() {
    let app = spawn_app().await;
    let (sql, cache) = ports(&app).await;
    let id = enqueue(
        &sql,
        &cache,
        chrono::Utc::now(),
        NewJob::new(Queue::Default, "jobs.noop", json!({})),
    )
    .await
    .expect("enqueue");
    assert_eq!(wait_for_status(&sql, id, "succeeded").await, "succeeded");
    let bulk = enqueue(
        &sql,
        &cache,
        chrono::Utc::now(),
        NewJob::new(Queue::Bulk, "jobs.noop", json!({})),
    )
    .await
    .expect("enqueue");
    assert_eq!(
        wait_for_status(&sql, bulk, "succeeded").await,
        "succeeded",
        "the BULK worker ran too"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_job_for_an_unknown_handler_is_dead_lettered_by_the_worker() {
    let app = spawn_app().await;
    let (sql, cache) = ports(&app).await;
    let id = enqueue(
        &sql,
        &cache,
        chrono::Utc::now(),
        NewJob::new(Queue::High, "nobody.home", json!({})),
    )
    .await
    .expect("enqueue");
    assert_eq!(wait_for_status(&sql, id, "dead").await, "dead");
    app.stop().await;
}

#[tokio::test]
async fn the_queue_api_needs_a_signed_in_user_with_manage_system() {
    let app = spawn_app().await;
    assert_eq!(
        admin(&app, reqwest::Method::GET, "/admin/api/queues", None, None)
            .await
            .0,
        401
    );
    let (_, read_only) = app.signed_in_as(&["read_only"]).await;
    let (code, body) = admin(
        &app,
        reqwest::Method::POST,
        "/admin/api/queues/DEFAULT/pause",
        Some(json!({"reason": "trying my luck"})),
        Some(&read_only),
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(body["status"], 403);
    let (sql, _) = ports(&app).await;
    let denials: i64 = sql
        .query(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'permission.denied'",
            &[],
        )
        .await
        .expect("q")[0]
        .get("n")
        .expect("n");
    assert_eq!(denials, 2, "both refusals are audited");
    let paused: i64 = sql
        .query("SELECT count(*) AS n FROM job_queue_controls", &[])
        .await
        .expect("q")[0]
        .get("n")
        .expect("n");
    assert_eq!(paused, 0, "refused calls change nothing");
    let (code, _) = admin(
        &app,
        reqwest::Method::GET,
        "/admin/api/queues",
        None,
        Some(&ops(&app).await),
    )
    .await;
    assert_eq!(code, 200);
    app.stop().await;
}

#[tokio::test]
async fn ops_pause_a_queue_and_resume_it_with_an_audited_reason() {
    let app = spawn_app().await;
    let (ops_user, token) = app.signed_in_as(&["ops"]).await;
    let label = format!("user:{ops_user}");
    let (sql, cache) = ports(&app).await;
    let (code, body) = admin(
        &app,
        reqwest::Method::POST,
        "/admin/api/queues/DEFAULT/pause",
        Some(json!({})),
        Some(&token),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(body["errors"][0]["field"], "reason");

    let (code, _) = admin(
        &app,
        reqwest::Method::POST,
        "/admin/api/queues/DEFAULT/pause",
        Some(json!({"reason": "database failover drill"})),
        Some(&token),
    )
    .await;
    assert_eq!(code, 200);
    let id = enqueue(
        &sql,
        &cache,
        chrono::Utc::now(),
        NewJob::new(Queue::Default, "jobs.noop", json!({})),
    )
    .await
    .expect("enqueue");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        status(&sql, id).await,
        "pending",
        "a paused queue is not drained"
    );

    let (_, listing) = admin(
        &app,
        reqwest::Method::GET,
        "/admin/api/queues",
        None,
        Some(&token),
    )
    .await;
    let default = listing["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["queue"] == "DEFAULT")
        .expect("DEFAULT")
        .clone();
    assert_eq!(default["pending"], 1);
    assert_eq!(default["paused"]["reason"], "database failover drill");

    let (code, _) = admin(
        &app,
        reqwest::Method::POST,
        "/admin/api/queues/DEFAULT/resume",
        Some(json!({"reason": "drill over"})),
        Some(&token),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        wait_for_status(&sql, id, "succeeded").await,
        "succeeded",
        "resume wakes the workers"
    );

    let rows = sql
        .query(
            "SELECT action, actor_label, reason FROM audit_log ORDER BY id",
            &[],
        )
        .await
        .expect("audit");
    let trail: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get("action").expect("a"),
                r.get("actor_label").expect("b"),
                r.get("reason").expect("c"),
            )
        })
        .collect();
    assert_eq!(
        trail,
        vec![
            (
                "queue.pause".into(),
                label.clone(),
                "database failover drill".into()
            ),
            ("queue.resume".into(), label.clone(), "drill over".into()),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn ops_see_failures_and_requeue_or_delete_jobs() {
    let app = spawn_app().await;
    let token = ops(&app).await;
    let (sql, cache) = ports(&app).await;
    let dead = enqueue(
        &sql,
        &cache,
        chrono::Utc::now(),
        NewJob::new(Queue::Default, "gone.handler", json!({"x": 1})),
    )
    .await
    .expect("enqueue");
    assert_eq!(wait_for_status(&sql, dead, "dead").await, "dead");
    let (code, failures) = admin(
        &app,
        reqwest::Method::GET,
        "/admin/api/queues/failures?queue=DEFAULT",
        None,
        Some(&token),
    )
    .await;
    assert_eq!(code, 200);
    let first = &failures["failures"][0];
    assert_eq!(first["id"], dead);
    assert!(
        first["last_error"]
            .as_str()
            .expect("reason")
            .contains("no handler named `gone.handler`")
    );

    // Point the job at a handler that exists (as a fix would), then requeue it.
    sql.execute(
        "UPDATE delayed_jobs SET handler = 'jobs.noop' WHERE id = $1",
        &[SqlValue::Int64(dead)],
    )
    .await
    .expect("fix");
    let (code, _) = admin(
        &app,
        reqwest::Method::POST,
        &format!("/admin/api/queues/jobs/{dead}/requeue"),
        Some(json!({"reason": "handler deployed"})),
        Some(&token),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(wait_for_status(&sql, dead, "succeeded").await, "succeeded");

    let later = enqueue(
        &sql,
        &cache,
        chrono::Utc::now(),
        NewJob::new(Queue::Low, "jobs.noop", json!({}))
            .run_at(chrono::Utc::now() + chrono::Duration::hours(1)),
    )
    .await
    .expect("enqueue");
    let (code, _) = admin(
        &app,
        reqwest::Method::POST,
        &format!("/admin/api/queues/jobs/{later}/delete"),
        Some(json!({"reason": "scheduled by mistake"})),
        Some(&token),
    )
    .await;
    assert_eq!(code, 200);
    let left: i64 = sql
        .query(
            "SELECT count(*) AS n FROM delayed_jobs WHERE id = $1",
            &[SqlValue::Int64(later)],
        )
        .await
        .expect("q")[0]
        .get("n")
        .expect("n");
    assert_eq!(left, 0);
    let (code, _) = admin(
        &app,
        reqwest::Method::POST,
        &format!("/admin/api/queues/jobs/{later}/requeue"),
        Some(json!({"reason": "again"})),
        Some(&token),
    )
    .await;
    assert_eq!(code, 404);
    let actions: Vec<String> = sql
        .query(
            "SELECT action FROM audit_log WHERE target_type = 'job' ORDER BY id",
            &[],
        )
        .await
        .expect("audit")
        .iter()
        .map(|r| r.get("action").expect("action"))
        .collect();
    assert_eq!(actions, vec!["job.requeue", "job.delete"]);
    app.stop().await;
}

#[tokio::test]
async fn job_metrics_show_queue_depth_and_handler_runs() {
    let app = spawn_app().await;
    let (sql, cache) = ports(&app).await;
    let id = enqueue(
        &sql,
        &cache,
        chrono::Utc::now(),
        NewJob::new(Queue::Default, "jobs.noop", json!({})),
    )
    .await
    .expect("enqueue");
    assert_eq!(wait_for_status(&sql, id, "succeeded").await, "succeeded");
    enqueue(
        &sql,
        &cache,
        chrono::Utc::now(),
        NewJob::new(Queue::Low, "jobs.noop", json!({}))
            .run_at(chrono::Utc::now() + chrono::Duration::hours(1)),
    )
    .await
    .expect("enqueue");
    let text = app
        .get("/q/metrics", None)
        .await
        .text()
        .await
        .expect("body");
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let value = |metric: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        value(
            "village_job_queue_depth",
            &[("queue", "DEFAULT"), ("status", "succeeded")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            "village_job_queue_depth",
            &[("queue", "LOW"), ("status", "pending")]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        value("village_job_runs_total", &[("handler", "jobs.noop")]).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    app.stop().await;
}
