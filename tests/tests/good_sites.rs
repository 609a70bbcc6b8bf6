//! Good Sites end to end, on village and on Spin: a signed-in user submits
//! a site; the worker fetches its page through the guarded fetch service
//! and asks the model (a local Messages API) for a category; a moderator
//! approves it; `screenshot-host` captures it with real Chromium; the
//! site's page shows the screenshot and its history; a visitor's click
//! goes through `/track/click`, is recorded and redirected, while altered
//! links get 400. Then the pages as Chromium renders them.

use std::time::Duration;

use screenshot_host::{Config, HostThread};
use serde_json::json;
use village_e2e::stub::{Reply, StubServer};
use village_e2e::{chromium, chromium_dom, spawn_app_with};

const PAGE: &str = "<!doctype html><html><head><title>Vale Seed Library</title>\
    <meta name=\"description\" content=\"Swap seeds with neighbours\"></head>\
    <body style=\"background:#264;font:32px sans-serif;color:#fff\"><h1>Seed library</h1>\
    <div style=\"width:600px;height:300px;background:linear-gradient(90deg,#fa0,#06f)\"></div></body></html>";
const API_KEY: &str = "sk-ant-test-key";

/// Anthropic's Messages API as the category suggestion uses it: checks the
/// key and version headers, answers `gardening`.
async fn messages_api() -> StubServer {
    StubServer::start(|r| {
        if r.method != "POST"
            || r.path != "/v1/messages"
            || r.header("x-api-key") != Some(API_KEY)
            || r.header("anthropic-version") != Some("2023-06-01")
        {
            return Reply::json(
                401,
                &json!({"type": "error", "error": {"type": "authentication_error", "message": "bad"}}),
            );
        }
        Reply::json(
            200,
            &json!({
                "id": "msg_01Suggest", "type": "message", "role": "assistant",
                "model": "claude-sonnet-4-20250514",
                "content": [{ "type": "text", "text": "gardening" }],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": { "input_tokens": 300, "output_tokens": 3 }
            }),
        )
    })
    .await
}

async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within a minute"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_site_goes_from_submission_to_a_screenshot_and_its_clicks_are_counted() {
    let site = StubServer::start(|_| Reply::new(200, "text/html; charset=utf-8", PAGE)).await;
    let model = messages_api().await;
    let app = spawn_app_with(|o| {
        for (k, v) in [
            ("directory_allowed_hosts", site.host()),
            ("anthropic_base_url", model.url()),
            ("anthropic_api_key", API_KEY.to_owned()),
            (
                "click_signing_keys",
                "e2e=0123456789abcdef0123456789abcdef-e2e".to_owned(),
            ),
        ] {
            o.variables.insert(k.into(), v);
        }
        o.fetch_service = Some(Vec::new());
    })
    .await;
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let (_, member) = app.signed_in_as(&[]).await;
    let (_, support) = app.signed_in_as(&["support"]).await;
    let (_, voter) = app.signed_in_as(&[]).await;

    // Anonymous visitors cannot submit; bad fields are named.
    let (code, _) = app
        .call_json(post.clone(), "/api/good-sites/sites", Some(json!({})), "")
        .await;
    assert_eq!(code, 401);
    let (code, refused) = app
        .call_json(
            post.clone(),
            "/api/good-sites/sites",
            Some(json!({"url": "http://10.0.0.7/", "title": "", "category": "nope"})),
            &member,
        )
        .await;
    assert_eq!(code, 400, "{refused}");
    let fields: Vec<&str> = refused["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["url", "title", "category"], "{refused}");

    // Submit.
    let url = format!("{}/", site.url());
    let (code, submitted) = app
        .call_json(
            post.clone(),
            "/api/good-sites/sites",
            Some(
                json!({"url": url, "title": "Seed library", "description": "Swap seeds",
                    "category": "community"}),
            ),
            &member,
        )
        .await;
    assert_eq!(code, 201, "{submitted}");
    let id = submitted["site"]["id"].as_i64().expect("an id");
    assert_eq!(submitted["site"]["status"], "pending");
    // The same site without its trailing slash is the same entry.
    let (code, dup) = app
        .call_json(
            post.clone(),
            "/api/good-sites/sites",
            Some(json!({"url": site.url(), "title": "Again", "category": "community"})),
            &member,
        )
        .await;
    assert_eq!(code, 400, "{dup}");
    assert!(
        dup["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("already"),
        "{dup}"
    );

    // The worker fetches the page (through the fetch service) and the
    // model suggests a category.
    let fetched = until("the fetch and the suggestion", async || {
        let (_, got) = app
            .call_json(
                get.clone(),
                &format!("/api/good-sites/sites/{id}"),
                None,
                &support,
            )
            .await;
        (got["site"]["fetch_state"] == "fetched" && got["site"]["suggested_category"].is_string())
            .then_some(got)
    })
    .await;
    assert_eq!(fetched["site"]["fetched_title"], "Vale Seed Library");
    assert_eq!(
        fetched["site"]["fetched_description"],
        "Swap seeds with neighbours"
    );
    assert_eq!(fetched["site"]["suggested_category"], "gardening");
    assert!(!model.requests().is_empty(), "the model was asked");
    assert_eq!(
        app.count("SELECT count(*) FROM ai_usage WHERE purpose = 'directory_categorisation'")
            .await,
        1
    );
    // Pending sites are for their submitter and moderators only.
    let (code, _) = app
        .call_json(
            get.clone(),
            &format!("/api/good-sites/sites/{id}"),
            None,
            &voter,
        )
        .await;
    assert_eq!(code, 404);
    let (code, _) = app
        .call_json(
            post.clone(),
            &format!("/api/good-sites/sites/{id}/approve"),
            Some(json!({})),
            &member,
        )
        .await;
    assert_eq!(code, 403, "a member does not moderate");

    // A moderator approves it, into the suggested category.
    let (code, approved) = app
        .call_json(
            post.clone(),
            &format!("/api/good-sites/sites/{id}/approve"),
            Some(json!({"category": "gardening"})),
            &support,
        )
        .await;
    assert_eq!(code, 200, "{approved}");
    assert_eq!(approved["site"]["status"], "approved");
    assert_eq!(approved["site"]["category_slug"], "gardening");

    // screenshot-host captures it.
    let mut config = Config::for_database(&app.db_url, village_platform::native::TEST_REDIS);
    config.chromium = chromium().into();
    config.contexts = 1;
    config.poll_secs = 1;
    config.allowed_hosts = vec![site.host()];
    let host = tokio::task::spawn_blocking(move || HostThread::start(config))
        .await
        .expect("joined")
        .expect("the host starts");
    let shown = until("the screenshot", async || {
        let (_, got) = app
            .call_json(
                get.clone(),
                &format!("/api/good-sites/sites/{id}"),
                None,
                "",
            )
            .await;
        got["site"]["screenshot"].is_i64().then_some(got)
    })
    .await;
    tokio::task::spawn_blocking(move || host.stop())
        .await
        .expect("joined")
        .expect("the host stopped");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM directory_screenshot_versions WHERE site_id = {id} AND is_current"
        ))
        .await,
        1
    );
    let thumb = shown["screenshots"][0]["thumb"]
        .as_str()
        .expect("a thumbnail");
    let image = app.get(thumb, None).await;
    assert_eq!(
        image.status(),
        200,
        "an approved site's screenshot is public"
    );
    assert_eq!(
        image.headers()["cache-control"],
        "public, max-age=3600",
        "shared caches keep it, and drop a removed site's soon"
    );
    let bytes = image.bytes().await.expect("bytes");
    assert_eq!(&bytes[8..12], b"WEBP");

    // Votes.
    let (code, tally) = app
        .call_json(
            post.clone(),
            &format!("/api/good-sites/sites/{id}/vote"),
            Some(json!({"vote": "up"})),
            &voter,
        )
        .await;
    assert_eq!(code, 200, "{tally}");
    assert_eq!(
        (tally["upvotes"].as_i64(), tally["vote"].as_i64()),
        (Some(1), Some(1))
    );
    let (code, _) = app
        .call_json(
            post.clone(),
            &format!("/api/good-sites/sites/{id}/vote"),
            Some(json!({"vote": "sideways"})),
            &voter,
        )
        .await;
    assert_eq!(code, 400);
    let (_, me) = app
        .call_json(get.clone(), "/api/good-sites/me", None, &member)
        .await;
    assert_eq!(me["karma"]["total"], 6, "approval 5 + one upvote: {me}");

    // The site's page links out through /track/click.
    let page = app.get(&format!("/good-sites/sites/{id}"), None).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("Seed library"), "{html}");
    assert!(
        html.contains(&format!("src=\"{thumb}\"")),
        "the screenshot is shown"
    );
    let start = html.find("href=\"/track/click?").expect("a tracked link") + 6;
    let end = start + html[start..].find('"').expect("end of href");
    // askama escapes `&` in attributes as `&#38;`.
    let tracked = html[start..end].replace("&#38;", "&").replace("&amp;", "&");
    let click = app.get(&tracked, None).await;
    assert_eq!(click.status(), 302);
    assert_eq!(click.headers()["location"], url.as_str());
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM link_clicks WHERE link_kind = 'site' AND link_id = {id} \
             AND source = 'directory_site'"
        ))
        .await,
        1
    );
    for altered in [
        tracked.replace("127.0.0.1", "127.0.0.2"),
        tracked.split("&sig=").next().expect("unsigned").to_owned(),
        "/track/click?u=https%3A%2F%2Fevil.example%2F".to_owned(),
    ] {
        let refused = app.get(&altered, None).await;
        assert_eq!(refused.status(), 400, "{altered}");
        assert!(refused.headers().get("location").is_none());
        let body = refused.text().await.expect("page");
        assert!(body.contains("<html"), "a readable page: {body}");
    }
    assert_eq!(app.count("SELECT count(*) FROM link_clicks").await, 1);

    // The homepage's widget lists it, tracked.
    let home = app.get("/", None).await.text().await.expect("home");
    assert!(home.contains("good-sites-widget"), "the widget renders");
    assert!(home.contains("src=good_sites_widget"), "{home}");

    // The pages as a browser renders them.
    let index = chromium_dom(&app.url("/good-sites")).await;
    assert!(index.contains("Seed library"), "{index}");
    assert!(index.contains("/track/click?"), "{index}");
    let detail = chromium_dom(&app.url(&format!("/good-sites/sites/{id}"))).await;
    assert!(detail.contains("Screenshot of Seed library"), "{detail}");
    let search = chromium_dom(&app.url("/good-sites/search?q=seed")).await;
    assert!(
        search.contains("Seed library"),
        "full-text search finds it: {search}"
    );
    let category = chromium_dom(&app.url("/good-sites/c/home")).await;
    assert!(
        category.contains("Seed library"),
        "a section lists its categories' sites"
    );
    app.stop().await;
}

#[tokio::test]
async fn submitting_through_the_form_keeps_what_was_typed_on_an_error() {
    let app = spawn_app_with(|_| {}).await;
    let (_, member) = app.signed_in_as(&[]).await;
    let form = app.get("/good-sites/submit", Some(&member)).await;
    assert_eq!(form.status(), 200);
    let resp = app
        .client
        .post(app.url("/good-sites/submit"))
        .header("cookie", &member)
        .form(&[
            ("url", "http://192.168.1.1/router"),
            ("title", "My <b>router</b>"),
            ("description", "kept"),
            ("category", "diy"),
        ])
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.expect("page");
    assert!(html.contains("not on the public internet"), "{html}");
    assert!(
        html.contains("value=\"My &#60;b&#62;router&#60;/b&#62;\""),
        "escaped and kept: {html}"
    );
    assert!(html.contains("<option value=\"diy\" selected>"), "{html}");
    assert_eq!(app.count("SELECT count(*) FROM directory_sites").await, 0);
    // Moderation is closed to those who moderate nothing.
    assert_eq!(
        app.get("/good-sites/moderation", Some(&member))
            .await
            .status(),
        403
    );
    assert_eq!(app.get("/good-sites/submit", None).await.status(), 401);
    app.stop().await;
}
