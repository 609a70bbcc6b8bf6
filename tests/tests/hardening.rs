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

/// A chunked body (no `Content-Length`) over the limit is a 413, refused
/// while reading — not a 500.
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_a_413() {
    let app = spawn_app().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let (mut rx, mut tx) = s.into_split();
    // Read while writing: the answer comes as soon as the limit is passed.
    let reader = tokio::spawn(async move {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = rx.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        answer
    });
    let head = format!(
        "PUT /api/preferences HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        app.addr
    );
    tx.write_all(head.as_bytes()).await.expect("head");
    // 17 chunks of 64 KiB: just over the 1 MiB a function reads.
    let chunk = format!("{:x}\r\n{}\r\n", 64 << 10, " ".repeat(64 << 10));
    for _ in 0..17 {
        if tx.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = tx.write_all(b"0\r\n\r\n").await;
    let answer = reader.await.expect("reader");
    let status_line = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let r = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .expect("a status line");
    assert_eq!(r, 413, "{status_line}");
    app.stop().await;
}

/// A page on another site may send the browser to `/auth/refresh`, but the
/// refresh token is spent only on a same-origin request: the cross-site GET
/// gets a one-click page (a same-origin POST form) and no new cookies.
#[tokio::test]
async fn a_cross_site_refresh_asks_for_a_same_origin_click() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/auth/refresh?return_to=%2F"))
        .header("sec-fetch-site", "cross-site")
        .header("cookie", "vu_refresh=some-token")
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    for cookie in r.headers().get_all("set-cookie") {
        let c = cookie.to_str().unwrap_or_default();
        assert!(
            !c.starts_with("vu_refresh") && !c.starts_with("vu_access"),
            "no session cookie: {c}"
        );
    }
    let html = r.text().await.expect("html");
    assert!(
        html.contains(r#"<form method="post" action="/auth/refresh?return_to=/">"#),
        "{html}"
    );
    app.stop().await;
}

async fn bootstrap_statuses(app: &village_e2e::TestApp, forwarded: &[&str]) -> Vec<u16> {
    let mut out = Vec::new();
    for xff in forwarded {
        let r = app
            .client
            .post(app.url("/bootstrap"))
            .header("x-forwarded-for", *xff)
            .send()
            .await
            .expect("answered");
        out.push(r.status().as_u16());
    }
    out
}

/// Per-IP limits behind the ingress: with the proxy trusted, each client
/// (its `X-Forwarded-For` hop) has its own count; without, the header is
/// ignored — a client cannot pick a fresh address to dodge its limit.
#[tokio::test]
async fn forwarded_for_counts_per_client_only_behind_a_trusted_proxy() {
    let limit = "UPDATE rate_limit_rules SET limit_count = 2 WHERE action = 'bootstrap'";
    // The test client connects from 127.x.y.z: the "ingress" here.
    let behind = village_e2e::spawn_app_with(|o| {
        o.variables
            .insert("trusted_proxies".into(), "127.0.0.0/8".into());
    })
    .await;
    behind.execute(limit).await;
    let one = bootstrap_statuses(&behind, &["203.0.113.1", "203.0.113.1", "203.0.113.1"]).await;
    assert_eq!(one[2], 429, "{one:?}");
    let other = bootstrap_statuses(&behind, &["198.51.100.7"]).await;
    assert_ne!(other[0], 429, "another client has its own count");
    behind.stop().await;

    let direct = spawn_app().await;
    direct.execute(limit).await;
    let dodging = bootstrap_statuses(&direct, &["203.0.113.1", "203.0.113.2", "203.0.113.3"]).await;
    assert_eq!(dodging[2], 429, "the header is ignored: {dodging:?}");
    direct.stop().await;
}
