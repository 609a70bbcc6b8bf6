//! Identity end to end: sign-in with each provider against a local OIDC
//! provider that signs real tokens, the attacks the flow must refuse (each
//! leaving its audit row), sessions and refresh-token reuse, the consented
//! merge, `/bootstrap`, roles and impersonation.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use village_e2e::oidc::{APPLE_KEY_ID, APPLE_TEAM, CLIENT_SECRET, Misbehaviour, Provider};
use village_e2e::{TestApp, spawn_app_with};
use village_platform::session::{SigningKey, issue_access, verify_access};

/// The site's public origin as the provider sees it; the test, playing the
/// browser, resolves it to the app's real address.
const PUBLIC: &str = "http://village.test";

async fn app_with(provider: &Provider) -> TestApp {
    let origin = provider.origin();
    let apple_key = provider.apple_private_key_pem.clone();
    spawn_app_with(move |o| {
        let v = &mut o.variables;
        v.insert("public_base_url".into(), PUBLIC.into());
        v.insert("cookie_secure".into(), "false".into());
        for p in ["google", "facebook", "apple"] {
            v.insert(format!("{p}_client_id"), format!("{p}-client"));
        }
        v.insert("google_client_secret".into(), CLIENT_SECRET.into());
        v.insert("facebook_client_secret".into(), CLIENT_SECRET.into());
        v.insert("apple_team_id".into(), APPLE_TEAM.into());
        v.insert("apple_key_id".into(), APPLE_KEY_ID.into());
        v.insert("apple_private_key".into(), apple_key);
        for name in [
            "google_accounts_origin",
            "google_oauth2_origin",
            "google_certs_origin",
            "facebook_www_origin",
            "facebook_graph_origin",
            "apple_origin",
        ] {
            v.insert(name.into(), origin.clone());
        }
    })
    .await
}

/// A browser's cookies for the app.
#[derive(Default, Clone)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn take(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let pair = village_e2e::cookie_pair(v.to_str().unwrap_or_default());
            if let Some((k, val)) = pair.split_once('=') {
                if val.is_empty() {
                    self.0.remove(k);
                } else {
                    self.0.insert(k.to_owned(), val.to_owned());
                }
            }
        }
    }
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn local(app: &TestApp, url: &str) -> String {
    url.replace(PUBLIC, &format!("http://{}", app.addr))
}

/// Walks the browser through `/auth/<p>/login` → provider → callback and
/// returns the callback's answer.
async fn sign_in(app: &TestApp, provider: &str, jar: &mut Jar) -> reqwest::Response {
    let start = app
        .client
        .get(app.url(&format!("/auth/{provider}/login")))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("login");
    assert_eq!(start.status(), 303, "login redirects to the provider");
    jar.take(&start);
    assert!(
        jar.0.contains_key("vu_login"),
        "{:?} {:?}",
        start.headers(),
        jar.0
    );
    let at_provider = app
        .client
        .get(location(&start))
        .send()
        .await
        .expect("authorize");
    if provider == "apple" {
        // form_post: the provider's page posts code and state back.
        let html = at_provider.text().await.expect("form");
        let field = |name: &str| {
            let marker = format!("name=\"{name}\" value=\"");
            let start = html.find(&marker).expect("field") + marker.len();
            html[start..start + html[start..].find('"').expect("end")].to_owned()
        };
        let callback = app
            .client
            .post(app.url("/auth/apple/callback"))
            .header("cookie", jar.header())
            .form(&[("code", field("code")), ("state", field("state"))])
            .send()
            .await
            .expect("callback");
        jar.take(&callback);
        return callback;
    }
    assert_eq!(
        at_provider.status(),
        302,
        "the provider sends the browser back"
    );
    let callback = app
        .client
        .get(local(app, &location(&at_provider)))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("callback");
    jar.take(&callback);
    callback
}

/// The signed-in user's id, as `/auth/session` reports it.
async fn user_id(app: &TestApp, jar: &Jar) -> String {
    session(app, jar).await["user_id"]
        .as_str()
        .expect("signed in")
        .to_owned()
}

/// The merge consent page: its HTML and the offer id in its form.
async fn merge_page(app: &TestApp, jar: &Jar) -> (String, String) {
    let html = app
        .client
        .get(app.url("/auth/merge"))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("merge page")
        .text()
        .await
        .expect("html");
    let marker = "name=\"offer\" value=\"";
    let start = html.find(marker).expect("offer") + marker.len();
    let offer = html[start..start + 36].to_owned();
    (html, offer)
}

/// Answers the merge offer (`accept` or `decline`); the jar takes the
/// answer's cookies.
async fn decide_merge(app: &TestApp, jar: &mut Jar, offer: &str, decision: &str) -> u16 {
    let r = app
        .client
        .post(app.url("/auth/merge"))
        .header("cookie", jar.header())
        .form(&[("offer", offer), ("decision", decision)])
        .send()
        .await
        .expect("decision");
    jar.take(&r);
    r.status().as_u16()
}

async fn session(app: &TestApp, jar: &Jar) -> Value {
    app.client
        .get(app.url("/auth/session"))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("json")
}

async fn audit_reasons(app: &TestApp, action: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(&app.db_url, tokio_postgres::NoTls)
        .await
        .expect("db");
    tokio::spawn(conn);
    client
        .query(
            "SELECT coalesce(reason, '') FROM audit_log WHERE action = $1 ORDER BY id",
            &[&action],
        )
        .await
        .expect("audit")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn each_provider_signs_a_visitor_in_and_out() {
    let provider = Provider::start().await;
    let app = app_with(&provider).await;
    for (i, p) in ["google", "facebook", "apple"].into_iter().enumerate() {
        provider.set_person(&format!("{p}-sub"), &format!("user{i}@example.org"), "Ada");
        let mut jar = Jar::default();
        let done = sign_in(&app, p, &mut jar).await;
        assert_eq!(done.status(), 303, "{p}: {:?}", done.text().await);
        assert!(
            jar.0.contains_key("vu_access") && jar.0.contains_key("vu_refresh"),
            "{p}"
        );
        let s = session(&app, &jar).await;
        assert_eq!(s["signed_in"], true, "{p}");
        // Signing in again finds the same account.
        let again = sign_in(&app, p, &mut Jar::default()).await;
        assert_eq!(again.status(), 303);
        let logout = app
            .client
            .post(app.url("/auth/logout"))
            .header("cookie", jar.header())
            .send()
            .await
            .expect("logout");
        assert_eq!(logout.status(), 303);
        // The old access token no longer works: its session is revoked.
        assert_eq!(session(&app, &jar).await["signed_in"], false, "{p}");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE NOT is_anonymous")
            .await,
        3
    );
    assert_eq!(app.count("SELECT count(*) FROM user_identities").await, 3);
    assert_eq!(audit_reasons(&app, "auth.sign_in").await.len(), 6);
    app.stop().await;
}

#[tokio::test]
async fn forged_replayed_and_mismatched_sign_ins_are_refused_and_audited() {
    let provider = Provider::start().await;
    let app = app_with(&provider).await;

    // Wrong state: the callback's state is not this browser's.
    let mut jar = Jar::default();
    let start = app.get("/auth/google/login", None).await;
    jar.take(&start);
    jar.0
        .insert("vu_login".into(), "somebody-elses-state".into());
    let back = app
        .client
        .get(location(&start))
        .send()
        .await
        .expect("authorize");
    let cb = app
        .client
        .get(local(&app, &location(&back)))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("callback");
    assert_eq!(cb.status(), 400);

    // Replayed callback: the same code and state a second time.
    let mut jar = Jar::default();
    let start = app.get("/auth/google/login", None).await;
    jar.take(&start);
    let back = app
        .client
        .get(location(&start))
        .send()
        .await
        .expect("authorize");
    let url = local(&app, &location(&back));
    let first = app
        .client
        .get(&url)
        .header("cookie", jar.header())
        .send()
        .await
        .expect("cb");
    assert_eq!(first.status(), 303);
    let replay = app
        .client
        .get(&url)
        .header("cookie", jar.header())
        .send()
        .await
        .expect("cb");
    assert_eq!(
        replay.status(),
        400,
        "a used sign-in attempt cannot be replayed"
    );

    for m in [
        Misbehaviour::WrongNonce,
        Misbehaviour::WrongAudience,
        Misbehaviour::Expired,
        Misbehaviour::Forged,
    ] {
        provider.misbehave(m);
        let resp = sign_in(&app, "google", &mut Jar::default()).await;
        assert_eq!(resp.status(), 400, "{m:?} must be refused");
    }
    provider.misbehave(Misbehaviour::None);
    assert_eq!(
        audit_reasons(&app, "auth.sign_in_failed").await,
        [
            "state_mismatch",
            "state_mismatch",
            "nonce_mismatch",
            "invalid_id_token",
            "invalid_id_token",
            "invalid_id_token"
        ]
    );
    assert_eq!(
        app.count("SELECT count(*) FROM sessions").await,
        1,
        "only the one honest sign-in opened a session"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_provider_that_does_not_answer_fails_the_sign_in_at_the_timeout() {
    let provider = Provider::start().await;
    let app = app_with(&provider).await;
    provider.misbehave(Misbehaviour::Hang);
    // The provider would answer (correctly) after 30 s; outbound requests
    // give up after 3 s, so the sign-in fails rather than hangs.
    let resp = sign_in(&app, "google", &mut Jar::default()).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(
        audit_reasons(&app, "auth.sign_in_failed").await,
        ["provider_unreachable"]
    );
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn tampered_tokens_and_reused_refresh_tokens_are_refused() {
    let provider = Provider::start().await;
    let app = app_with(&provider).await;
    let mut jar = Jar::default();
    sign_in(&app, "google", &mut jar).await;

    // A tampered access token: 401 for the API, audited.
    let mut forged = jar.clone();
    let token = forged.0["vu_access"].clone();
    let mut parts: Vec<&str> = token.split('.').collect();
    let payload_swap = format!("{}x", parts[2]);
    parts[2] = &payload_swap;
    forged.0.insert("vu_access".into(), parts.join("."));
    let r = app.get("/api/preferences", Some(&forged.header())).await;
    assert_eq!(r.status(), 401);
    assert_eq!(audit_reasons(&app, "auth.token_rejected").await.len(), 1);

    // An expired access token: a page visit goes through /auth/refresh and
    // back with a fresh token; an API call gets 401 and an audit row.
    let key = SigningKey::try_from(village_e2e::TEST_SIGNING_KEY).expect("key");
    let claims = verify_access(&key, &jar.0["vu_access"], Utc::now()).expect("valid");
    let mut stale = jar.clone();
    stale.0.insert(
        "vu_access".into(),
        issue_access(
            &key,
            claims.sub,
            claims.sid,
            None,
            Utc::now() - Duration::hours(1),
        )
        .expect("sign"),
    );
    let r = app.get("/api/preferences", Some(&stale.header())).await;
    assert_eq!(r.status(), 401);
    let reasons = audit_reasons(&app, "auth.token_rejected").await;
    assert!(
        reasons.len() == 2 && reasons[0].contains("InvalidSignature") && reasons[1] == "expired",
        "{reasons:?}"
    );
    let page = app.get("/?tab=news", Some(&stale.header())).await;
    assert_eq!(page.status(), 303);
    assert_eq!(location(&page), "/auth/refresh?return_to=%2F%3Ftab%3Dnews");
    let refreshed = app
        .client
        .get(app.url(&location(&page)))
        .header("cookie", stale.header())
        .send()
        .await
        .expect("refresh");
    assert_eq!(refreshed.status(), 303);
    assert_eq!(location(&refreshed), "/?tab=news");
    stale.take(&refreshed);
    assert_eq!(session(&app, &stale).await["signed_in"], true);
    jar = stale;

    // Refresh rotates. Two tabs refreshing with the same cookie at once
    // both succeed, with the same successor (the grace window).
    let spent = jar.clone();
    let refresh_with = |cookie: String| {
        app.client
            .post(app.url("/auth/refresh"))
            .header("cookie", cookie)
            .send()
    };
    let (a, b) = tokio::join!(refresh_with(jar.header()), refresh_with(jar.header()));
    let (a, b) = (a.expect("refresh"), b.expect("refresh"));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let mut twin = jar.clone();
    jar.take(&a);
    twin.take(&b);
    assert_ne!(jar.0["vu_refresh"], spent.0["vu_refresh"]);
    assert_eq!(jar.0["vu_refresh"], twin.0["vu_refresh"], "one successor");
    assert_eq!(session(&app, &twin).await["signed_in"], true);
    assert!(audit_reasons(&app, "auth.refresh_reuse").await.is_empty());
    // Once the chain has moved on, the first token is reuse: the family is
    // revoked.
    let next = refresh_with(jar.header()).await.expect("refresh");
    assert_eq!(next.status(), 200);
    jar.take(&next);
    let reuse = refresh_with(spent.header()).await.expect("refresh");
    assert_eq!(reuse.status(), 401);
    assert_eq!(audit_reasons(&app, "auth.refresh_reuse").await.len(), 1);
    assert_eq!(
        session(&app, &jar).await["signed_in"],
        false,
        "the whole family is revoked, including the newest token"
    );
    app.stop().await;
}

#[tokio::test]
async fn anonymous_layout_merges_into_the_account_only_with_consent() {
    let provider = Provider::start().await;
    let app = app_with(&provider).await;
    let mut jar = Jar::default();
    let layout = json!({"schema_version": 1, "layout": {"columns": 1, "widgets": [
        {"id": "w1", "type": "weather", "column": 0, "position": 0, "size": "small"}]},
        "settings": {"theme": "system", "units": "metric"}});
    // The first PUT mints the visitor's anonymous cookie and saves under it.
    let put = app
        .put_json("/api/preferences", layout.to_string(), None)
        .await;
    jar.take(&put);
    assert_eq!(put.status(), 200, "{:?}", put.text().await);

    // The visitor also watches a symbol (the stocks widget's watchlist).
    app.execute("INSERT INTO stock_symbols (symbol, name) VALUES ('IBM', 'International Business Machines Corp')")
        .await;
    app.execute("INSERT INTO stock_watchlists (user_id, symbol, position) SELECT id, 'IBM', 0 FROM users WHERE is_anonymous")
        .await;

    let done = sign_in(&app, "google", &mut jar).await;
    assert_eq!(location(&done), "/auth/merge");
    let (html, offer) = merge_page(&app, &jar).await;
    assert!(html.contains("1 widget"), "{html}");
    let old_anon = jar.0["vu_anon_id"].clone();
    assert_eq!(decide_merge(&app, &mut jar, &offer, "accept").await, 303);
    assert_ne!(
        jar.0["vu_anon_id"], old_anon,
        "the anonymous cookie is rotated"
    );
    let prefs: Value = app
        .get("/api/preferences", Some(&jar.header()))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        prefs["layout"]["widgets"][0]["id"], "w1",
        "the account has the layout"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM account_merge_audit WHERE decision = 'accepted' AND consent_version <> '' AND ip IS NOT NULL").await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE is_anonymous")
            .await,
        0,
        "the merged anonymous visitor is gone"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM stock_watchlists w JOIN users u ON u.id = w.user_id WHERE NOT u.is_anonymous AND w.symbol = 'IBM'")
            .await,
        1,
        "the watchlist moved to the account"
    );

    // A second visitor declines: the account starts clean, and the anonymous
    // data stays where it was, left to expire.
    provider.set_person("second-person", "two@example.test", "Two");
    let mut other = Jar::default();
    let put = app
        .put_json("/api/preferences", layout.to_string(), None)
        .await;
    other.take(&put);
    assert_eq!(put.status(), 200);
    let done = sign_in(&app, "google", &mut other).await;
    assert_eq!(location(&done), "/auth/merge");
    let (_, offer) = merge_page(&app, &other).await;
    assert_eq!(decide_merge(&app, &mut other, &offer, "decline").await, 303);
    let prefs: Value = app
        .get("/api/preferences", Some(&other.header()))
        .await
        .json()
        .await
        .expect("json");
    assert!(
        prefs["layout"]["widgets"]
            .as_array()
            .is_none_or(|w| w.iter().all(|w| w["id"] != "w1")),
        "a declined merge leaves the account clean: {prefs}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM account_merge_audit WHERE decision = 'declined'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM users u JOIN user_preferences p ON p.user_id = u.id WHERE u.is_anonymous")
            .await,
        1,
        "the declined visitor's anonymous layout is left to expire"
    );
    app.stop().await;
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    body: Value,
) -> (u16, Value, Option<String>) {
    let r = app
        .client
        .request(method, app.url(path))
        .header("cookie", cookie)
        .json(&body)
        .send()
        .await
        .expect("answered");
    let set = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(village_e2e::cookie_pair);
    (
        r.status().as_u16(),
        r.json().await.unwrap_or(Value::Null),
        set,
    )
}

#[tokio::test]
async fn bootstrap_roles_and_impersonation_are_guarded_and_audited() {
    let provider = Provider::start().await;
    let app = app_with(&provider).await;
    let mut first = Jar::default();
    provider.set_person("first", "first@example.org", "First");
    sign_in(&app, "google", &mut first).await;
    let mut second = Jar::default();
    provider.set_person("second", "second@example.org", "Second");
    sign_in(&app, "google", &mut second).await;
    let second_id = user_id(&app, &second).await;

    let boot = |jar: &Jar| {
        app.client
            .post(app.url("/bootstrap"))
            .header("cookie", jar.header())
            .send()
    };
    assert_eq!(boot(&first).await.expect("boot").status(), 200);
    assert_eq!(
        boot(&second).await.expect("boot").status(),
        403,
        "bootstrap works once"
    );
    assert_eq!(audit_reasons(&app, "bootstrap.grant").await.len(), 1);
    assert_eq!(audit_reasons(&app, "bootstrap.refused").await.len(), 1);

    // A non-admin cannot grant themselves a role.
    let (code, _, _) = call(
        &app,
        reqwest::Method::POST,
        &format!("/admin/api/users/{second_id}/roles"),
        &second.header(),
        json!({"role": "super_admin", "reason": "promote me"}),
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        audit_reasons(&app, "permission.denied").await,
        ["needs manage_users"]
    );

    // The super_admin makes the second user support, with a reason.
    let (code, body, _) = call(
        &app,
        reqwest::Method::POST,
        &format!("/admin/api/users/{second_id}/roles"),
        &first.header(),
        json!({"role": "support"}),
    )
    .await;
    assert_eq!(
        (code, body["errors"][0]["field"].clone()),
        (400, json!("reason"))
    );
    let (code, body, _) = call(
        &app,
        reqwest::Method::POST,
        &format!("/admin/api/users/{second_id}/roles"),
        &first.header(),
        json!({"role": "support", "reason": "joins the support rota"}),
    )
    .await;
    assert_eq!((code, body["roles"].clone()), (200, json!(["support"])));

    // Support may not impersonate an admin …
    let first_id = user_id(&app, &first).await;
    let (code, _, _) = call(
        &app,
        reqwest::Method::POST,
        "/admin/api/impersonation",
        &second.header(),
        json!({"user_id": first_id, "reason": "curious"}),
    )
    .await;
    assert_eq!(code, 403);
    // … but may impersonate a plain user, and then may not change roles.
    let mut plain = Jar::default();
    provider.set_person("third", "third@example.org", "Third");
    sign_in(&app, "google", &mut plain).await;
    let plain_id = user_id(&app, &plain).await;
    let (code, _, cookie) = call(
        &app,
        reqwest::Method::POST,
        "/admin/api/impersonation",
        &second.header(),
        json!({"user_id": plain_id, "reason": "ticket 42: layout looks broken"}),
    )
    .await;
    assert_eq!(code, 200);
    let (k, v) = cookie
        .expect("new access cookie")
        .split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .expect("pair");
    second.0.insert(k, v);
    let s = session(&app, &second).await;
    assert_eq!(s["user_id"], json!(plain_id));
    let home = app
        .get("/", Some(&second.header()))
        .await
        .text()
        .await
        .expect("html");
    assert!(home.contains("impersonation-banner"), "pages show a banner");
    let (code, _, _) = call(
        &app,
        reqwest::Method::POST,
        &format!("/admin/api/users/{plain_id}/roles"),
        &second.header(),
        json!({"role": "ops", "reason": "sneaky"}),
    )
    .await;
    assert_eq!(code, 403, "no admin power while impersonating");
    let (code, _, _) = call(
        &app,
        reqwest::Method::DELETE,
        "/admin/api/impersonation",
        &second.header(),
        json!({}),
    )
    .await;
    assert_eq!(code, 200);
    for action in [
        "impersonation.start",
        "impersonation.refused",
        "impersonation.stop",
    ] {
        assert!(
            !audit_reasons(&app, action).await.is_empty(),
            "{action} audited"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'impersonation.start' AND ip IS NOT NULL AND user_agent IS NOT NULL").await,
        1
    );

    // The audit log is readable with view_audit, filtered.
    let r = app
        .client
        .get(app.url("/admin/api/audit?action=role.grant"))
        .header("cookie", first.header())
        .send()
        .await
        .expect("audit");
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["entries"][0]["reason"], "joins the support rota");
    app.stop().await;
}

/// The visitor's answers for the `probe_*` flags.
async fn probes(app: &TestApp, jar: &Jar) -> BTreeMap<String, bool> {
    let flags: Value = app
        .get("/api/flags", Some(&jar.header()))
        .await
        .json()
        .await
        .expect("json");
    flags["flags"]
        .as_object()
        .expect("flags")
        .iter()
        .filter(|(k, _)| k.starts_with("probe_"))
        .map(|(k, v)| (k.clone(), v.as_bool().expect("bool")))
        .collect()
}

#[tokio::test]
async fn feature_flag_cohorts_survive_sign_in_and_the_merge() {
    let provider = Provider::start().await;
    let app = app_with(&provider).await;
    let (_, ops) = app.signed_in_as(&["ops"]).await;
    // Twenty half-rolled-out flags: a visitor keeps the same 20 answers only
    // if their cohort key does not change (by chance: 1 in a million).
    for i in 0..20 {
        let (code, body, _) = call(
            &app,
            reqwest::Method::POST,
            "/admin/api/flags",
            &ops,
            json!({"key": format!("probe_{i:02}"), "enabled": true, "rollout_percent": 50,
                   "reason": "cohort probe"}),
        )
        .await;
        assert_eq!(code, 201, "{body}");
    }
    let mut jar = Jar::default();
    let layout = json!({"schema_version": 1, "layout": {"columns": 1, "widgets": [
        {"id": "w1", "type": "news", "column": 0, "position": 0, "size": "small"}]},
        "settings": {"theme": "system", "units": "metric"}});
    let put = app
        .put_json("/api/preferences", layout.to_string(), None)
        .await;
    jar.take(&put);
    let anonymous = probes(&app, &jar).await;
    assert_eq!(anonymous.len(), 20);
    assert!(
        anonymous.values().any(|on| *on) && anonymous.values().any(|on| !*on),
        "half-rolled-out flags split a visitor's answers: {anonymous:?}"
    );

    let done = sign_in(&app, "google", &mut jar).await;
    assert_eq!(location(&done), "/auth/merge");
    assert_eq!(probes(&app, &jar).await, anonymous, "unchanged by sign-in");

    let (_, offer) = merge_page(&app, &jar).await;
    let old_anon = jar.0["vu_anon_id"].clone();
    assert_eq!(decide_merge(&app, &mut jar, &offer, "accept").await, 303);
    assert_ne!(
        jar.0["vu_anon_id"], old_anon,
        "the anonymous id was rotated"
    );
    assert_eq!(
        probes(&app, &jar).await,
        anonymous,
        "unchanged by the merge and the new anonymous id"
    );
    app.stop().await;
}
