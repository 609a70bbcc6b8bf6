//! The anonymous homepage end to end.

use village_e2e::{cookie_pair, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_first_visit_gets_a_secure_httponly_lax_cookie_for_30_days() {
    let app = spawn_app().await;
    let resp = app.get("/", None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.starts_with("vu_anon_id="), "{cookie}");
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Max-Age=2592000",
        "Path=/",
    ] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    let html = resp.text().await.expect("body");
    assert!(html.contains("Village Homepage"));
    assert_eq!(
        html.matches("<section class=\"widget").count(),
        4,
        "the default layout's widgets, less stocks (its flag starts off)"
    );
    assert!(!html.contains("id=\"widget-stocks\""));
    app.stop().await;
}

#[tokio::test]
async fn the_secure_attribute_can_be_switched_off_for_local_http() {
    let app = spawn_app_with(|o| {
        o.variables.insert("cookie_secure".into(), "false".into());
    })
    .await;
    let resp = app.get("/", None).await;
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    app.stop().await;
}

#[tokio::test]
async fn page_views_never_create_users() {
    let app = spawn_app().await;
    let first = app.get("/", None).await;
    let cookie = cookie_pair(first.headers()["set-cookie"].to_str().expect("ascii"));
    for _ in 0..3 {
        assert_eq!(app.get("/", Some(&cookie)).await.status(), 200);
        assert_eq!(app.get("/", None).await.status(), 200);
    }
    assert_eq!(app.count("SELECT count(*) FROM users").await, 0);
    let again = app.get("/", Some(&cookie)).await;
    assert!(
        again.headers().get("set-cookie").is_none(),
        "a known visitor keeps their cookie"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_homepage_shows_the_saved_layout() {
    let app = spawn_app().await;
    let cookie = "vu_anon_id=6f1c2b4e-8a8e-4d2b-9c1a-0b8f6a1e2d3c";
    let body = r#"{"schema_version":1,"settings":{"theme":"dark","units":"metric"},
        "layout":{"columns":2,"widgets":[
          {"id":"quick","type":"quick_links","column":0,"position":0,"size":"small"},
          {"id":"feed","type":"good_sites","column":1,"position":0,"size":"large"}]}}"#;
    assert_eq!(
        app.put_json("/api/preferences", body, Some(cookie))
            .await
            .status(),
        200
    );
    let html = app.get("/", Some(cookie)).await.text().await.expect("body");
    assert!(html.contains("data-theme=\"dark\""), "theme applied");
    assert!(html.contains("id=\"widget-quick\"") && html.contains("id=\"widget-feed\""));
    assert!(
        !html.contains("id=\"widget-weather\""),
        "only the saved widgets"
    );
    assert!(html.contains("grid-cols-2"));
    app.stop().await;
}

#[tokio::test]
async fn the_stylesheet_is_served_with_cache_headers_and_revalidates() {
    let app = spawn_app().await;
    let resp = app.get("/static/site.css", None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/css; charset=utf-8");
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("max-age=")
    );
    assert!(
        resp.headers().get("set-cookie").is_none(),
        "assets set no cookie"
    );
    let etag = resp.headers()["etag"].to_str().expect("ascii").to_owned();
    let again = app
        .client
        .get(app.url("/static/site.css"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("answered");
    assert_eq!(again.status(), 304);
    assert_eq!(app.get("/static/nope.css", None).await.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn other_methods_on_the_homepage_are_refused_with_a_page() {
    let app = spawn_app().await;
    let resp = app
        .client
        .delete(app.url("/"))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
    assert!(
        resp.text()
            .await
            .expect("body")
            .contains("<h1>Method not allowed</h1>")
    );
    app.stop().await;
}
