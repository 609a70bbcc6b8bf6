//! `/api/preferences` end to end: the round trip and every rejection.

use serde_json::{Value, json};
use village_e2e::{TestApp, cookie_pair, spawn_app};

const COOKIE: &str = "vu_anon_id=0b5c2e57-3f0e-4c61-9e2a-54a1f2e8c9d0";

fn valid() -> Value {
    json!({
        "schema_version": 1,
        "layout": {"columns": 2, "widgets": [
            {"id": "n", "type": "news", "column": 0, "position": 0, "size": "large", "settings": {"feeds": ["local"]}},
            {"id": "w", "type": "weather", "column": 1, "position": 0, "size": "small"}
        ]},
        "settings": {"theme": "light", "units": "imperial"}
    })
}

async fn problem(app: &TestApp, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = app.put_json("/api/preferences", body, Some(COOKIE)).await;
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    (status, resp.json().await.expect("problem json"))
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_visitor_gets_defaults_then_what_they_saved() {
    let app = spawn_app().await;
    let first = app.get("/api/preferences", None).await;
    assert_eq!(first.status(), 200);
    let cookie = cookie_pair(first.headers()["set-cookie"].to_str().expect("ascii"));
    let defaults: Value = first.json().await.expect("json");
    assert_eq!(defaults["layout"]["columns"], 3);
    assert_eq!(
        app.count("SELECT count(*) FROM users").await,
        0,
        "reading creates nothing"
    );

    let saved = app
        .put_json("/api/preferences", valid().to_string(), Some(&cookie))
        .await;
    assert_eq!(saved.status(), 200);
    let back: Value = app
        .get("/api/preferences", Some(&cookie))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(back["settings"], valid()["settings"]);
    assert_eq!(
        back["layout"]["widgets"][0]["settings"]["feeds"][0],
        "local"
    );
    assert_eq!(back["layout"]["widgets"][1]["id"], "w");
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE is_anonymous AND anon_id IS NOT NULL")
            .await,
        1,
        "the first write created exactly one anonymous user"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_put_without_a_cookie_sets_one_and_stores_under_it() {
    let app = spawn_app().await;
    let resp = app
        .put_json("/api/preferences", valid().to_string(), None)
        .await;
    assert_eq!(resp.status(), 200);
    let cookie = cookie_pair(resp.headers()["set-cookie"].to_str().expect("ascii"));
    let back: Value = app
        .get("/api/preferences", Some(&cookie))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(back["settings"]["units"], "imperial");
    app.stop().await;
}

#[tokio::test]
async fn each_invalid_field_is_named_and_nothing_is_stored() {
    let app = spawn_app().await;
    let mut bad = valid();
    bad["layout"]["widgets"][0]["type"] = json!("horoscope");
    bad["layout"]["widgets"][1]["column"] = json!(7);
    bad["settings"]["theme"] = json!("neon");
    bad["extra"] = json!(true);
    let (status, p) = problem(&app, bad.to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(p["status"], 400);
    let f = fields(&p);
    for want in [
        "layout.widgets[0].type",
        "layout.widgets[1].column",
        "settings.theme",
        "extra",
    ] {
        assert!(f.contains(&want.to_owned()), "{want} not named in {f:?}");
    }
    assert_eq!(app.count("SELECT count(*) FROM users").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM user_preferences").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn malformed_json_is_a_400_naming_the_body() {
    let app = spawn_app().await;
    let (status, p) = problem(&app, "{\"schema_version\": 1, ").await;
    assert_eq!(status, 400);
    assert_eq!(fields(&p), vec!["body"]);
    assert_eq!(app.count("SELECT count(*) FROM user_preferences").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_layout_is_refused() {
    let app = spawn_app().await;
    let widgets: Vec<Value> = (0..30)
        .map(|i| json!({"id": format!("w{i}"), "type": "news", "column": 0, "position": i, "size": "small"}))
        .collect();
    let mut too_many = valid();
    too_many["layout"]["widgets"] = json!(widgets);
    let (status, p) = problem(&app, too_many.to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(fields(&p), vec!["layout.widgets"]);

    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    let (status, _) = problem(&app, huge).await;
    assert_eq!(status, 413);
    assert_eq!(app.count("SELECT count(*) FROM user_preferences").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_update_keeps_the_previous_preferences() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_json("/api/preferences", valid().to_string(), Some(COOKIE))
            .await
            .status(),
        200
    );
    let mut bad = valid();
    bad["layout"]["columns"] = json!(0);
    let (status, _) = problem(&app, bad.to_string()).await;
    assert_eq!(status, 400);
    let back: Value = app
        .get("/api/preferences", Some(COOKIE))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        back["layout"]["columns"], 2,
        "the stored layout is untouched"
    );
    app.stop().await;
}

#[tokio::test]
async fn unsupported_methods_answer_405_problem_json() {
    let app = spawn_app().await;
    let resp = app
        .client
        .delete(app.url("/api/preferences"))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(resp.headers()["allow"], "GET, PUT");
    app.stop().await;
}

#[tokio::test]
async fn deeply_nested_json_is_a_400_not_a_crash() {
    // Components run on a 256 KiB stack; serde_json's recursion limit must
    // stop hostile nesting long before it.
    let app = spawn_app().await;
    let hostile = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)); // under the 64 KiB limit
    let (status, p) = problem(&app, hostile).await;
    assert_eq!(status, 400);
    assert_eq!(fields(&p), vec!["body"]);
    let nested_settings = json!({
        "schema_version": 1,
        "layout": {"columns": 1, "widgets": [
            {"id": "n", "type": "news", "column": 0, "position": 0, "size": "large",
             "settings": serde_json::from_str::<Value>(&format!("{}1{}", "{\"a\":".repeat(100), "}".repeat(100))).expect("json")}
        ]},
        "settings": {"theme": "light", "units": "metric"}
    });
    assert_eq!(
        app.put_json(
            "/api/preferences",
            nested_settings.to_string(),
            Some(COOKIE)
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        app.get("/", Some(COOKIE)).await.status(),
        200,
        "the page renders stored nested settings"
    );
    app.stop().await;
}
