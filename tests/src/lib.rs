//! The end-to-end harness: `spawn_app()` starts the project's real
//! `spin.toml` on an ephemeral loopback port, against a fresh migrated
//! database, and returns a typed client.
//!
//! The runtime is `village`, in-process, unless `VILLAGE_E2E_RUNTIME=spin`
//! says the real Spin CLI ([`spin`]): the same tests run on both, and
//! `scripts/test` runs them on both.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use village_runtime::{Options, Running};

/// The access-token signing key every test app runs with.
pub const TEST_SIGNING_KEY: &str = "test-signing-key-0123456789abcdef-0123456789";

pub mod oidc;
pub mod s3;
pub mod spin;
pub mod stripe;
pub mod stub;

/// What a test may set before its app starts: application variables, and
/// which components run (all when empty; `-c` under both runtimes).
#[derive(Debug, Default)]
pub struct AppOptions {
    pub variables: BTreeMap<String, String>,
    pub components: Vec<String>,
    /// Start the guarded fetch service (`fetch/spin.toml`) beside the app,
    /// with these `block_networks` (empty: the tests' loopback feed servers
    /// are reachable), and point `fetch_service_url` at it.
    pub fetch_service: Option<Vec<String>>,
}

/// The components with an HTTP route: the experience app production runs
/// apart from the workers and crons.
pub fn http_components() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("spin.toml")).expect("spin.toml");
    let doc: toml::Table = text.parse().expect("spin.toml parses");
    let mut ids: Vec<String> = doc
        .get("trigger")
        .and_then(|t| t.get("http"))
        .and_then(|h| h.as_array())
        .into_iter()
        .flatten()
        .filter_map(|t| {
            t.get("component")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The runtime serving a test app.
enum Server {
    Village(Running),
    Spin(spin::SpinProcess),
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The test's own database.
    pub db_url: String,
    pub client: reqwest::Client,
    /// The loopback address `client` connects from: one of its own per app,
    /// so per-IP counters in the shared Redis never leak between tests or
    /// between runs.
    pub client_ip: IpAddr,
    variables: BTreeMap<String, String>,
    server: Server,
    fetch: Option<Server>,
}

/// A random source address in 127.0.0.0/8 (every one of them is local on
/// Linux), away from 127.0.0.1 which people use by hand.
fn random_loopback() -> IpAddr {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    IpAddr::V4(std::net::Ipv4Addr::new(
        127,
        rng.gen_range(1..=254),
        rng.gen_range(0..=255),
        rng.gen_range(1..=254),
    ))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Starts the application with defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the application, letting the test adjust options first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut AppOptions)) -> TestApp {
    let db_url = village_migrate::testing::fresh_database()
        .await
        .expect("a fresh test database");
    let db_name = village_migrate::testing::database_name(&db_url).to_owned();
    let mut options = AppOptions::default();
    let vars = &mut options.variables;
    vars.insert("db_name".into(), db_name);
    // The local cluster's certificate is self-signed: plain text here.
    vars.insert("db_sslmode".into(), "disable".into());
    vars.insert("session_signing_key".into(), TEST_SIGNING_KEY.into());
    if let Ok(pw) = std::env::var("VILLAGE_PG_PASSWORD") {
        vars.insert("db_password".into(), pw);
    }
    configure(&mut options);
    // The default feeds (migration V15) are real sites this machine cannot
    // reach: without this, every test app's cron would queue fetches that
    // fail. News tests add their own feeds from a local feed server.
    {
        let (client, conn) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client
            .execute("DELETE FROM feeds WHERE is_default", &[])
            .await
            .expect("default feeds removed");
    }
    let fetch = match &options.fetch_service {
        Some(blocked) => {
            let (server, addr) = serve_fetch(blocked).await;
            options
                .variables
                .insert("fetch_service_url".into(), format!("http://{addr}"));
            Some(server)
        }
        None => None,
    };
    let (server, addr) = serve(
        &repo_root().join("spin.toml"),
        &options.variables,
        &options.components,
    )
    .await;
    let client_ip = random_loopback();
    TestApp {
        addr,
        db_url,
        client_ip,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(client_ip)
            // Browsers always send one; audit rows record it.
            .user_agent("village-e2e")
            .build()
            .expect("client"),
        variables: options.variables,
        server,
        fetch,
    }
}

/// The guarded fetch service on the selected runtime, its runtime config
/// blocking `blocked` networks.
async fn serve_fetch(blocked: &[String]) -> (Server, SocketAddr) {
    let manifest = repo_root().join("fetch/spin.toml");
    if spin::selected() {
        let config = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .expect("a runtime-config file");
        let list = blocked
            .iter()
            .map(|b| format!("{b:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            config.path(),
            format!("[outbound_networking]\nblock_networks = [{list}]\n"),
        )
        .expect("runtime config written");
        let (process, addr) = spin::up_with(
            &manifest,
            &BTreeMap::new(),
            &[],
            &[
                "--runtime-config-file".into(),
                config.path().display().to_string(),
            ],
        )
        .await;
        // Spin has read it by the time it serves.
        drop(config);
        (Server::Spin(process), addr)
    } else {
        let mut runtime = Options::new(manifest);
        runtime.env_lookup = std::sync::Arc::new(|_| None);
        runtime.blocked_networks =
            village_runtime::blocked_networks::BlockedNetworks::parse(blocked)
                .expect("block_networks parse");
        let running = village_runtime::start(runtime, "127.0.0.1:0".parse().expect("address"))
            .await
            .expect("the fetch service starts (was safe-fetch built? run scripts/test)");
        let addr = running.addr;
        (Server::Village(running), addr)
    }
}

/// Serves a manifest with these application variables on the selected
/// runtime: `village` in-process, or `spin up` ([`spin::selected`]).
async fn serve(
    manifest: &Path,
    variables: &BTreeMap<String, String>,
    components: &[String],
) -> (Server, SocketAddr) {
    if spin::selected() {
        let (process, addr) = spin::up(manifest, variables, components).await;
        (Server::Spin(process), addr)
    } else {
        let mut runtime = Options::new(manifest.to_path_buf());
        runtime.components = components.to_vec();
        // Tests never read SPIN_VARIABLE_* from the developer's shell.
        runtime.env_lookup = std::sync::Arc::new(|_| None);
        runtime.variables = variables.clone();
        let running = village_runtime::start(runtime, "127.0.0.1:0".parse().expect("address"))
            .await
            .expect("the application starts (were the components built? run scripts/test)");
        let addr = running.addr;
        (Server::Village(running), addr)
    }
}

/// The runtime's fixture application (`runtime/fixtures/spin.toml`) on the
/// selected runtime: its components exercise each host interface, so a test
/// can hold `village` and Spin to the same answers.
pub struct FixtureApp {
    pub addr: SocketAddr,
    /// Kept alive for the app's lifetime; stopped when dropped.
    _server: Server,
}

impl FixtureApp {
    pub async fn start(variables: BTreeMap<String, String>) -> FixtureApp {
        let manifest = repo_root().join("runtime/fixtures/spin.toml");
        let (server, addr) = serve(&manifest, &variables, &[]).await;
        FixtureApp {
            addr,
            _server: server,
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A JSON exchange: `method path` with `cookie` and an optional JSON
    /// body; the status and the answer's JSON (`Null` when it is not).
    pub async fn call_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        cookie: &str,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header("cookie", cookie);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("answered");
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(self.url(path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.expect("GET answered")
    }

    pub async fn put_json(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        cookie: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .put(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.expect("PUT answered")
    }

    /// Runs a query against the test's database and returns the first column
    /// of the first row as i64.
    pub async fn count(&self, sql: &str) -> i64 {
        let (client, conn) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client.query_one(sql, &[]).await.expect("query").get(0)
    }

    /// Runs a statement against the test's database; returns rows affected.
    pub async fn execute(&self, sql: &str) -> u64 {
        let (client, conn) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client.execute(sql, &[]).await.expect("statement")
    }

    /// A signed-in account holding `roles`, set up directly in the database
    /// (a user, its roles, a live session) with an access token signed by the
    /// app's key: for tests of what admins may do. The sign-in flow itself
    /// is tested end to end in `tests/identity.rs`.
    pub async fn signed_in_as(&self, roles: &[&str]) -> (uuid::Uuid, String) {
        let (client, conn) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        let user: uuid::Uuid = client
            .query_one(
                "INSERT INTO users (is_anonymous, display_name) VALUES (false, 'Test admin') RETURNING id",
                &[],
            )
            .await
            .expect("user")
            .get(0);
        for role in roles {
            client
                .execute(
                    "INSERT INTO user_roles (user_id, role, reason) VALUES ($1, $2, 'test setup')",
                    &[&user, role],
                )
                .await
                .expect("role");
        }
        let session: uuid::Uuid = client
            .query_one(
                "INSERT INTO sessions (user_id, expires_at) VALUES ($1, now() + interval '1 day') RETURNING id",
                &[&user],
            )
            .await
            .expect("session")
            .get(0);
        let key = village_platform::session::SigningKey::try_from(TEST_SIGNING_KEY).expect("key");
        let token =
            village_platform::session::issue_access(&key, user, session, None, chrono::Utc::now())
                .expect("token");
        (user, format!("vu_access={token}"))
    }

    /// Runs a cron component now, as its trigger would (tests do not wait
    /// for the schedule). Under Spin, through Spin's cron trigger
    /// ([`spin::fire_cron`]).
    pub async fn fire_cron(&self, component: &str) {
        match &self.server {
            Server::Village(running) => {
                let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default();
                running
                    .app
                    .invoke_cron(component, now)
                    .await
                    .unwrap_or_else(|e| panic!("cron {component} failed: {e:#}"));
            }
            Server::Spin(_) => spin::fire_cron(&repo_root(), component, &self.variables).await,
        }
    }

    /// Whether this app runs on the real Spin CLI.
    pub fn on_spin(&self) -> bool {
        matches!(self.server, Server::Spin(_))
    }

    pub async fn stop(self) {
        for server in std::iter::once(self.server).chain(self.fetch) {
            match server {
                Server::Village(running) => running.stop().await,
                Server::Spin(mut process) => process.kill(),
            }
        }
    }
}

/// How the tests run Chromium: headless, without a sandbox (containers),
/// GPU, first-run UI or background traffic.
pub const HEADLESS: [&str; 6] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
];

/// The DOM after headless Chromium loaded `url` (`--dump-dom`: after
/// parsing, layout and scripts): the page as a browser renders it.
pub async fn chromium_dom(url: &str) -> String {
    let browser = chromium();
    let profile = tempfile::tempdir().expect("profile dir");
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let url = url.to_owned();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(browser)
                .args(HEADLESS)
                .arg("--dump-dom")
                .arg(&profile_arg)
                .arg(&url)
                .output()
        }),
    )
    .await
    .expect("Chromium finished within a minute")
    .expect("join")
    .expect("Chromium ran");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The installed Chromium (`scripts/test` installs the `chromium` package).
pub fn chromium() -> &'static str {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("Chromium is installed (scripts/test installs the `chromium` package)")
}

/// The `name=value` part of a `Set-Cookie` header, ready to send back.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}
