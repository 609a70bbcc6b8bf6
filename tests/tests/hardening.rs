//! The findings of the adversarial review (#14), end to end through the real
//! components: each reproduces what the review did and checks it now holds.

use village_e2e::spawn_app;

/// NUL in any text input is a 400 naming the field, on every route — never
/// a 500 from Postgres (22P05).
#[tokio::test]
async fn nul_in_user_input_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    let (_, admin) = app.signed_in_as(&["super_admin"]).await;
    let prefs = app
        .put_json(
            "/api/preferences",
            r#"{"schema_version":1,"layout":{"columns":1,"widgets":[]},"settings":{"theme":"dark\u0000"}}"#,
            None,
        )
        .await;
    assert_eq!(prefs.status(), 400);
    let body: serde_json::Value = prefs.json().await.expect("problem");
    assert_eq!(body["errors"][0]["field"], "settings.theme", "{body}");
    for (path, field) in [
        ("/api/news?tag=%00", "tag"),
        ("/admin/api/users?q=%00", "q"),
        ("/admin/api/audit?action=a%00b", "action"),
    ] {
        let r = app.get(path, Some(&admin)).await;
        assert_eq!(r.status(), 400, "{path}");
        let body: serde_json::Value = r.json().await.expect("problem");
        assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
    }
    app.stop().await;
}

/// State-changing API calls must be JSON; cross-site writes are refused;
/// every answer carries the security headers.
#[tokio::test]
async fn api_writes_are_json_same_site_and_answers_carry_security_headers() {
    let app = spawn_app().await;
    let plain = app
        .client
        .put(app.url("/api/preferences"))
        .header("content-type", "text/plain")
        .body(r#"{"schema_version":1}"#)
        .send()
        .await
        .expect("answered");
    assert_eq!(plain.status(), 415);
    let cross = app
        .client
        .post(app.url("/auth/logout"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("answered");
    assert_eq!(cross.status(), 403);
    let page = app.get("/", None).await;
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.expect("html");
    assert!(
        !html.contains("onclick=") && !html.contains("style=\""),
        "no inline script or style"
    );
    app.stop().await;
}

/// A feed URL over 2,048 characters is a 400, not a 500 from the index.
#[tokio::test]
async fn an_overlong_feed_url_is_a_400() {
    let app = spawn_app().await;
    let (_, cookie) = app.signed_in_as(&[]).await;
    let url = format!("https://example.org/{}", "a".repeat(8_000));
    let r = app
        .client
        .post(app.url("/api/feeds"))
        .header("cookie", &cookie)
        .json(&serde_json::json!({ "url": url }))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("problem");
    assert_eq!(body["errors"][0]["field"], "url", "{body}");
    app.stop().await;
}

/// A trailing slash reaches the same handler, so it counts against the
/// same limit: `POST /bootstrap/` is limited like `POST /bootstrap`.
#[tokio::test]
async fn a_trailing_slash_does_not_escape_the_rate_limit() {
    let app = spawn_app().await;
    app.execute("UPDATE rate_limit_rules SET limit_count = 2 WHERE action = 'bootstrap'")
        .await;
    let mut statuses = Vec::new();
    for path in ["/bootstrap/", "/bootstrap/", "/bootstrap/", "/bootstrap"] {
        let r = app
            .client
            .post(app.url(path))
            .send()
            .await
            .expect("answered");
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[2..], &[429, 429], "{statuses:?}");
    app.stop().await;
}

/// A flood of garbage access cookies is refused by the rate limit before
/// anything is audited, and the rejections that pass are audited once per
/// client and reason, not once per request.
#[tokio::test]
async fn rejected_tokens_cannot_grow_the_audit_log() {
    let app = spawn_app().await;
    app.execute("UPDATE rate_limit_rules SET limit_count = 5 WHERE action = 'api'")
        .await;
    let mut refused = 0;
    for _ in 0..40 {
        let r = app
            .get(
                "/api/preferences",
                Some("vu_access=garbage.garbage.garbage"),
            )
            .await;
        if r.status() == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 30, "{refused}");
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'auth.token_rejected'")
            .await,
        1
    );
    app.stop().await;
}
