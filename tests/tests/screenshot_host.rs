//! Ops queue a capture through the app (`POST /admin/api/screenshots`, a
//! Wasm component, on village and on Spin), `screenshot-host` captures it
//! with real Chromium into the embedded blob store, and the app lists it
//! with links that serve the pictures.

use std::time::Duration;

use screenshot_host::{Config, HostThread};
use serde_json::json;
use village_e2e::stub::{Reply, StubServer};
use village_e2e::{chromium, spawn_app_with};

const PAGE: &str = "<!doctype html><html><body style=\"background:#2a6;font:32px sans-serif\">\
    <h1 style=\"color:#fff\">A village site</h1><div style=\"width:600px;height:300px;\
    background:linear-gradient(90deg,#f00,#00f)\"></div></body></html>";

#[tokio::test]
async fn ops_queue_a_capture_and_see_its_pictures() {
    let site = StubServer::start(|_| Reply::new(200, "text/html", PAGE)).await;
    let app = spawn_app_with(|o| {
        o.variables
            .insert("screenshot_allowed_hosts".into(), site.host());
    })
    .await;
    let (_, ops) = app.signed_in_as(&["ops"]).await;
    let (_, nobody) = app.signed_in_as(&[]).await;
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    let (code, _) = app
        .call_json(
            post.clone(),
            "/admin/api/screenshots",
            Some(json!({"url": "https://example.org/"})),
            &nobody,
        )
        .await;
    assert_eq!(code, 403, "manage_system is needed");
    for (body, field) in [
        (json!({}), "url"),
        (json!({"url": "http://10.1.2.3/"}), "url"),
        (json!({"url": "http://localhost:6379/"}), "url"),
        (json!({"url": "file:///etc/passwd"}), "url"),
        (
            json!({"url": "https://example.org/", "site_id": -1}),
            "site_id",
        ),
        (
            json!({"url": "https://example.org/", "colour": "red"}),
            "body",
        ),
    ] {
        let (code, answer) = app
            .call_json(
                post.clone(),
                "/admin/api/screenshots",
                Some(body.clone()),
                &ops,
            )
            .await;
        assert_eq!(code, 400, "{body}: {answer}");
        assert_eq!(answer["errors"][0]["field"], field, "{body}: {answer}");
    }
    let url = format!("{}/", site.url());
    let (code, queued) = app
        .call_json(
            post,
            "/admin/api/screenshots",
            Some(json!({"url": url})),
            &ops,
        )
        .await;
    assert_eq!(code, 202, "{queued}");
    let job_id = queued["job_id"].as_i64().expect("a job id");

    let mut config = Config::for_database(&app.db_url, village_platform::native::TEST_REDIS);
    config.chromium = chromium().into();
    config.contexts = 1;
    config.poll_secs = 1;
    config.allowed_hosts = vec![site.host()];
    let host = tokio::task::spawn_blocking(move || HostThread::start(config))
        .await
        .expect("joined")
        .expect("the host starts");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let (code, listed) = app
            .call_json(get.clone(), "/admin/api/screenshots", None, &ops)
            .await;
        assert_eq!(code, 200, "{listed}");
        if listed["captures"].as_array().is_some_and(|c| !c.is_empty()) {
            break listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no capture within a minute"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let capture = &listed["captures"][0];
    assert_eq!(capture["outcome"], "captured", "{capture}");
    assert_eq!(capture["url"], url.as_str());
    assert_eq!(capture["job_id"], job_id);
    let version = &capture["version"];
    assert_eq!(version["version"], 1);
    assert_eq!(version["is_current"], true);
    for (which, width, height) in [("full", 1280, 800), ("thumb", 320, 200)] {
        assert_eq!(version[which]["width"], width);
        assert_eq!(version[which]["height"], height);
        let href = version[which]["href"].as_str().expect("a link");
        let image = app.get(href, Some(&ops)).await;
        assert_eq!(image.status(), 200, "{href}");
        assert_eq!(
            image.headers()["content-type"].to_str().expect("type"),
            "image/webp"
        );
        let bytes = image.bytes().await.expect("bytes");
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(&bytes[8..12], b"WEBP");
        assert_eq!(
            bytes.len() as u64,
            version[which]["bytes"].as_u64().expect("size")
        );
        let (code, _) = app
            .call_json(reqwest::Method::GET, href, None, &nobody)
            .await;
        assert_eq!(code, 403, "only ops see the pictures here");
    }
    let (code, history) = app
        .call_json(
            get.clone(),
            &format!(
                "/admin/api/screenshots/history?url={}",
                url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
            ),
            None,
            &ops,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(history["versions"].as_array().map(Vec::len), Some(1));
    let (code, _) = app
        .call_json(
            get,
            "/admin/api/screenshots/versions/999999/full",
            None,
            &ops,
        )
        .await;
    assert_eq!(code, 404);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'screenshot.enqueue'")
            .await,
        1
    );
    assert!(
        site.requests().iter().any(|r| r.path == "/"),
        "the page was fetched from the site"
    );
    tokio::task::spawn_blocking(move || host.stop())
        .await
        .expect("joined")
        .expect("the host stopped");
    app.stop().await;
}
