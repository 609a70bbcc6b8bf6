//! The runtime end to end: real `spin-sdk` fixture components (built by the
//! test command before this suite runs) served by the runtime in-process,
//! against the real Postgres and Redis on this machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use village_runtime::manifest::Manifest;
use village_runtime::{Options, Running, start};

const REDIS_URL: &str = "redis://127.0.0.1:6379";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn require_built() {
    for wasm in ["http_fixture", "redis_fixture", "cron_fixture"] {
        let path = fixtures().join(format!("../../target/wasm32-wasip2/release/{wasm}.wasm"));
        assert!(
            path.exists(),
            "{} is missing: run the test command from the README (scripts/test), which builds the Wasm fixtures first",
            path.display()
        );
    }
}

async fn start_fixture(components: &[&str], configure: impl FnOnce(&mut Options)) -> Running {
    require_built();
    let mut options = Options::new(fixtures().join("spin.toml"));
    options.components = components.iter().map(|c| (*c).to_owned()).collect();
    // Tests never read SPIN_VARIABLE_* from the developer's shell.
    options.env_lookup = std::sync::Arc::new(|_| None);
    // The test command exports the server it prepared (with its password).
    if let Ok(url) = std::env::var("VILLAGE_TEST_PG") {
        options.variables.insert("db_url".into(), url);
    }
    configure(&mut options);
    start(options, "127.0.0.1:0".parse().expect("valid address"))
        .await
        .expect("fixture application starts")
}

async fn get_json(running: &Running, path: &str) -> serde_json::Value {
    let url = format!("http://{}{path}", running.addr);
    let resp = reqwest::get(&url).await.expect("request is answered");
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.json().await.expect("JSON body")
}

async fn status_of(running: &Running, path: &str) -> u16 {
    reqwest::get(format!("http://{}{path}", running.addr))
        .await
        .expect("request is answered")
        .status()
        .as_u16()
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS_URL)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis is running on 127.0.0.1:6379")
}

#[tokio::test]
async fn sets_spins_request_headers_for_wildcard_routes() {
    let app = start_fixture(&["http-fixture"], |_| {}).await;
    let h = get_json(&app, "/fixture/headers?x=1").await;
    let addr = app.addr;
    assert_eq!(
        h["spin-full-url"],
        format!("http://{addr}/fixture/headers?x=1")
    );
    assert_eq!(h["spin-path-info"], "/headers");
    assert_eq!(h["spin-matched-route"], "/fixture/...");
    assert_eq!(h["spin-component-route"], "/fixture");
    assert_eq!(h["spin-raw-component-route"], "/fixture/...");
    assert_eq!(h["spin-base-path"], "/");
    let client = h["spin-client-addr"].as_str().expect("client addr");
    assert!(client.starts_with("127.0.0.1:"), "{client}");
    app.stop().await;
}

#[tokio::test]
async fn passes_path_parameters_as_headers() {
    let app = start_fixture(&["http-fixture"], |_| {}).await;
    let h = get_json(&app, "/items/42/detail").await;
    assert_eq!(h["spin-path-match-id"], "42");
    assert_eq!(h["spin-path-info"], "");
    assert_eq!(h["spin-matched-route"], "/items/:id/detail");
    app.stop().await;
}

#[tokio::test]
async fn answers_404_where_no_route_matches() {
    let app = start_fixture(&["http-fixture"], |_| {}).await;
    assert_eq!(status_of(&app, "/nothing").await, 404);
    assert_eq!(status_of(&app, "/items/42").await, 404);
    // As Spin: an empty body, no content type.
    let resp = reqwest::get(format!("http://{}/nothing", app.addr))
        .await
        .expect("answered");
    assert!(resp.headers().get("content-type").is_none());
    assert!(resp.bytes().await.expect("body").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn routes_doubled_slashes_and_answers_spins_health_check_as_spin_does() {
    let app = start_fixture(&["http-fixture"], |_| {}).await;
    // Leading and trailing slashes are ignored, inner ones are kept.
    let h = get_json(&app, "//items/42/detail/").await;
    assert_eq!(h["spin-path-match-id"], "42");
    assert_eq!(
        status_of(&app, "/items//detail").await,
        200,
        "an empty parameter"
    );
    assert_eq!(status_of(&app, "/items/42//detail").await, 404);
    let health = reqwest::get(format!("http://{}/.well-known/spin/health", app.addr))
        .await
        .expect("answered");
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.expect("body"), "OK");
    assert_eq!(status_of(&app, "/.well-known/spin/other").await, 404);
    app.stop().await;
}

#[tokio::test]
async fn refuses_bodies_over_the_limit() {
    let app = start_fixture(&["http-fixture"], |o| o.max_request_body = 1024).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/fixture/echo", app.addr);
    let ok = client
        .post(&url)
        .body(vec![b'a'; 1000])
        .send()
        .await
        .expect("answered");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.bytes().await.expect("body").len(), 1000);
    let big = client
        .post(&url)
        .body(vec![b'a'; 4096])
        .send()
        .await
        .expect("answered");
    assert_eq!(big.status(), 413);
    app.stop().await;
}

#[tokio::test]
async fn round_trips_every_postgres_type_the_components_use() {
    let app = start_fixture(&["http-fixture"], |_| {}).await;
    let v = get_json(&app, "/fixture/pg-types").await;
    assert_eq!(v["inserted"], 1);
    assert_eq!(v["b"], true);
    assert_eq!(v["i2"], -7);
    assert_eq!(v["i4"], 2_000_000_000);
    assert_eq!(v["i8"], 9_000_000_000_000_i64);
    assert_eq!(v["f4"], 1.5);
    assert_eq!(v["f8"], -2.25);
    assert_eq!(v["n"], "12345.6789");
    assert_eq!(v["s"], "héllo");
    assert_eq!(v["v"], "short");
    assert_eq!(v["by"], serde_json::json!([0, 1, 255]));
    assert_eq!(v["d"], "2026-11-27");
    assert_eq!(v["ts"], "2026-11-27 13:45:30");
    assert_eq!(v["tsn"], "2026-01-02 03:04:05");
    assert_eq!(v["u"], "67e55044-10b1-426f-9247-bb680e5fe0c8");
    assert_eq!(v["j"], serde_json::json!({"a": [1, 2]}));
    assert_eq!(v["ai"], serde_json::json!([1, null, 3]));
    assert_eq!(v["at"], serde_json::json!(["x", null]));
    assert_eq!(v["nul"], serde_json::Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn refuses_postgres_outside_the_allow_list_without_leaking_credentials() {
    let app = start_fixture(&["http-fixture"], |o| {
        o.variables.insert(
            "denied_db_url".into(),
            "postgres://admin:hunter2@127.0.0.2:5432/db".into(),
        );
    })
    .await;
    let v = get_json(&app, "/fixture/pg-open?var=denied_db_url").await;
    assert_eq!(v["opened"], false);
    let error = v["error"].as_str().expect("error text");
    assert!(
        error.contains("address postgres://127.0.0.2:5432 is not permitted"),
        "Spin's words: {error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
    app.stop().await;
}

#[tokio::test]
async fn runs_every_redis_operation_against_the_real_server() {
    let app = start_fixture(&["http-fixture"], |_| {}).await;
    let prefix = format!("rt-test-{}:", uuid::Uuid::new_v4());
    let v = get_json(&app, &format!("/fixture/redis-ops?prefix={prefix}")).await;
    assert_eq!(v["got"], "value");
    assert_eq!(v["incr"], serde_json::json!([1, 2]));
    assert_eq!(v["sadd"], 3);
    assert_eq!(v["srem"], 1);
    assert_eq!(v["members"], serde_json::json!(["a", "c"]));
    assert_eq!(v["del"], 1);
    assert_eq!(v["after_delete"], true);
    assert_eq!(v["hset"], "[RedisResult::Int64(1)]");
    assert_eq!(
        v["hget"], "[RedisResult::Binary([52, 50])]",
        "HGET returns the stored bytes \"42\""
    );
    let mut r = redis().await;
    let counter: i64 = redis::cmd("GET")
        .arg(format!("{prefix}counter"))
        .query_async(&mut r)
        .await
        .expect("counter readable");
    assert_eq!(counter, 2, "the guest's writes are real");
    app.stop().await;
}

#[tokio::test]
async fn refuses_redis_outside_the_allow_list() {
    let app = start_fixture(&["http-fixture"], |_| {}).await;
    let v = get_json(&app, "/fixture/redis-open?var=denied_redis_url").await;
    assert_eq!(v["opened"], false);
    // Spin's answer for an address the component may not reach.
    assert!(
        v["error"]
            .as_str()
            .expect("error")
            .to_ascii_lowercase()
            .replace(['-', '_', ' '], "")
            .contains("invalidaddress"),
        "{v}"
    );
    app.stop().await;
}

/// A one-shot HTTP server: answers every connection with `body`, counts them.
async fn tiny_server(
    body: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _read = stream.read(&mut buf).await;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(reply.as_bytes()).await.is_err() {
                continue;
            }
        }
    });
    (addr, hits)
}

#[tokio::test]
async fn allows_outbound_http_only_to_listed_hosts() {
    let (allowed, allowed_hits) = tiny_server("upstream says hi").await;
    let (other, other_hits) = tiny_server("should never be reached").await;
    let app = start_fixture(&["http-fixture"], |o| {
        o.variables.insert("upstream".into(), allowed.clone());
    })
    .await;
    let v = get_json(&app, &format!("/fixture/outbound?url=http://{allowed}/x")).await;
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["body"], "upstream says hi");
    let v = get_json(&app, &format!("/fixture/outbound?url=http://{other}/x")).await;
    assert!(
        v["error"]
            .as_str()
            .expect("error")
            .contains("HttpRequestDenied"),
        "{v}"
    );
    assert_eq!(allowed_hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        other_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a denied request opens no socket"
    );
    app.stop().await;
}

#[tokio::test]
async fn chains_to_private_components_in_process() {
    let app = start_fixture(&["http-fixture", "chained"], |_| {}).await;
    let v = get_json(
        &app,
        "/fixture/outbound?url=http://chained.spin.internal/variable?name=anything",
    )
    .await;
    assert_eq!(v["status"], 200, "{v}");
    let body: serde_json::Value =
        serde_json::from_str(v["body"].as_str().expect("body")).expect("json");
    assert!(
        body["error"]
            .as_str()
            .expect("the chained component answered")
            .contains("chained"),
        "the request ran in the `chained` component: {body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn gives_components_their_variables_environment_and_files() {
    let app = start_fixture(&["http-fixture"], |o| {
        o.variables.insert("greeting".into(), "bonjour".into());
        o.env.push(("EXTRA".into(), "from-cli".into()));
    })
    .await;
    assert_eq!(
        get_json(&app, "/fixture/variable?name=message").await["value"],
        "bonjour, world"
    );
    let undefined = get_json(&app, "/fixture/variable?name=greeting").await;
    assert!(
        undefined["error"].is_string(),
        "application variables are not visible directly: {undefined}"
    );
    assert_eq!(
        get_json(&app, "/fixture/env?name=FIXTURE_MODE").await["value"],
        "test"
    );
    assert_eq!(
        get_json(&app, "/fixture/env?name=EXTRA").await["value"],
        "from-cli"
    );
    assert_eq!(
        get_json(&app, "/fixture/file?path=/assets/hello.txt").await["text"],
        "mounted file contents\n"
    );
    let outside = get_json(&app, "/fixture/file?path=/spin.toml").await;
    assert!(
        outside["error"].is_string(),
        "only listed files are mounted: {outside}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_trap_answers_500_and_the_next_request_is_served() {
    let app = start_fixture(&["http-fixture"], |_| {}).await;
    let trapped = reqwest::get(format!("http://{}/fixture/trap", app.addr))
        .await
        .expect("answered");
    assert_eq!(trapped.status(), 500);
    assert!(
        trapped.bytes().await.expect("body").is_empty(),
        "as Spin: no body"
    );
    assert_eq!(status_of(&app, "/fixture/headers").await, 200);
    assert_eq!(status_of(&app, "/fixture/trap").await, 500);
    assert_eq!(status_of(&app, "/fixture/headers").await, 200);
    app.stop().await;
}

#[tokio::test]
async fn interrupts_a_component_that_runs_past_its_time_limit() {
    let app = start_fixture(&["http-fixture"], |o| {
        o.timeout = Duration::from_millis(300)
    })
    .await;
    let started = Instant::now();
    assert_eq!(status_of(&app, "/fixture/spin").await, 500);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status_of(&app, "/fixture/headers").await, 200);
    app.stop().await;
}

#[tokio::test]
async fn stops_a_component_that_grows_past_its_memory_limit() {
    let app = start_fixture(&["http-fixture"], |o| o.max_instance_memory = 48 << 20).await;
    assert_eq!(status_of(&app, "/fixture/alloc?mb=8").await, 200);
    assert_eq!(status_of(&app, "/fixture/alloc?mb=96").await, 500);
    assert_eq!(status_of(&app, "/fixture/alloc?mb=8").await, 200);
    app.stop().await;
}

async fn wait_for_key(key: &str, within: Duration) -> Option<String> {
    let mut r = redis().await;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let v: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut r)
            .await
            .expect("GET");
        if v.is_some() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn delivers_redis_messages_to_the_subscribed_component() {
    let app = start_fixture(&["redis-fixture"], |_| {}).await;
    let message = format!("msg-{}", uuid::Uuid::new_v4());
    let mut r = redis().await;
    // The subscription is set up asynchronously; publish until it is heard.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut delivered = None;
    while delivered.is_none() && Instant::now() < deadline {
        let _listeners: i64 = redis::cmd("PUBLISH")
            .arg("village-fixture-messages")
            .arg(&message)
            .query_async(&mut r)
            .await
            .expect("PUBLISH");
        delivered = wait_for_key(&format!("received:{message}"), Duration::from_millis(500)).await;
    }
    assert_eq!(
        delivered.as_deref(),
        Some("1"),
        "the component recorded the message"
    );
    app.stop().await;
}

#[tokio::test]
async fn fires_cron_components_on_a_seconds_schedule() {
    let prefix = format!("cron-{}", uuid::Uuid::new_v4());
    let app = start_fixture(&["cron-fixture"], |o| {
        o.variables.insert("cron_prefix".into(), prefix.clone());
    })
    .await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    app.stop().await;
    let mut r = redis().await;
    let fired: i64 = redis::cmd("GET")
        .arg(format!("{prefix}:fired"))
        .query_async(&mut r)
        .await
        .expect("fired counter");
    assert!(
        (2..=5).contains(&fired),
        "fired {fired} times in 3.5 s on a 1 s schedule"
    );
    let last: String = redis::cmd("GET")
        .arg(format!("{prefix}:last"))
        .query_async(&mut r)
        .await
        .expect("last timestamp");
    let last: i64 = last.parse().expect("a number");
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now - 5..=now).contains(&last),
        "scheduled time {last} is recent (now {now})"
    );
}

#[tokio::test]
async fn start_up_fails_when_a_redis_trigger_cannot_connect_as_spin_does() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let mut options = Options::new(fixtures().join("spin.toml"));
    options.components = vec!["redis-fixture".into()];
    options.env_lookup = std::sync::Arc::new(|_| None);
    options
        .variables
        .insert("redis_url".into(), format!("redis://{closed}"));
    let err = start(options, "127.0.0.1:0".parse().expect("addr"))
        .await
        .err()
        .expect("start-up fails");
    let text = format!("{err:#}");
    assert!(
        text.contains(&format!(
            "Redis trigger failed to connect to redis://{closed}"
        )),
        "{text}"
    );
}

#[test]
fn village_build_runs_in_the_folder_of_a_bare_spin_toml() {
    // `village build` with no `-f` in the project root: the manifest's
    // parent is the empty path, which must mean "here", as for `spin build`.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"web\"\n[component.web]\nsource = \"web.wasm\"\n[component.web.build]\ncommand = \"touch built\"\n",
    )
    .expect("write manifest");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_village"))
        .arg("build")
        .current_dir(dir.path())
        .output()
        .expect("village runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.path().join("built").exists(),
        "the build command ran here"
    );
}

#[tokio::test]
async fn start_up_fails_naming_a_missing_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("missing.wat"),
        r#"(component (import "acme:missing/thing@1.0.0" (instance (export "f" (func)))))"#,
    )
    .expect("write wat");
    std::fs::write(
        dir.path().join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"broken\"\n[component.broken]\nsource = \"missing.wat\"\n",
    )
    .expect("write manifest");
    let err = start(
        Options::new(dir.path().join("spin.toml")),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .err()
    .expect("start-up fails");
    let text = format!("{err:#}");
    assert!(text.contains("component `broken`"), "{text}");
    assert!(text.contains("acme:missing/thing@1.0.0"), "{text}");
}

#[tokio::test]
async fn start_up_names_a_missing_required_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[variables]\nstripe_key = { required = true, secret = true }\n",
    )
    .expect("write manifest");
    let mut options = Options::new(dir.path().join("spin.toml"));
    options.env_lookup = std::sync::Arc::new(|_| None);
    let err = start(options, "127.0.0.1:0".parse().expect("addr"))
        .await
        .err()
        .expect("fails");
    assert!(
        format!("{err:#}").contains("required variable `stripe_key` has no value"),
        "{err:#}"
    );
}

/// Each `tests/manifests/<case>.toml` fails to load with exactly the message
/// in `<case>.expected` (regenerate with UPDATE_GOLDEN=1 and review the diff).
#[test]
fn manifest_errors_match_their_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).expect("manifests dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        cases += 1;
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("read case");
        let err = Manifest::parse(Path::new(&name), &text)
            .err()
            .unwrap_or_else(|| panic!("{name} should fail to load"))
            .to_string();
        let golden = path.with_extension("expected");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, format!("{err}\n")).expect("write golden");
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("{} is missing", golden.display()));
        assert_eq!(err.trim_end(), want.trim_end(), "{name}");
    }
    assert!(cases >= 10, "found only {cases} cases");
}

#[test]
fn the_projects_own_manifest_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml");
    Manifest::load(&root).expect("spin.toml is a valid manifest");
}

#[tokio::test]
async fn client_supplied_spin_headers_are_dropped() {
    let app = start_fixture(&["http-fixture"], |_| {}).await;
    let client = reqwest::Client::new();
    let h: serde_json::Value = client
        .get(format!("http://{}/fixture/headers", app.addr))
        .header("spin-path-match-id", "forged")
        .header("spin-full-url", "http://evil.example/")
        .header("spin-client-addr", "10.0.0.1:1")
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert!(
        h.get("spin-path-match-id").is_none(),
        "a forged parameter header reached the component: {h}"
    );
    assert_eq!(
        h["spin-full-url"],
        format!("http://{}/fixture/headers", app.addr)
    );
    assert!(
        h["spin-client-addr"]
            .as_str()
            .expect("addr")
            .starts_with("127.0.0.1:")
    );
    app.stop().await;
}

/// `block_networks` (runtime config): a name that resolves into a blocked
/// network is refused at connect time — `localhost` is on the allow-list,
/// and a live server listens there, yet no connection is made.
#[tokio::test]
async fn block_networks_refuses_names_that_resolve_to_a_blocked_address() {
    let (server, hits) = tiny_server("internal secret").await;
    let port = server.rsplit(':').next().expect("port").to_owned();
    let upstream = format!("localhost:{port}");
    let app = start_fixture(&["http-fixture"], |o| {
        o.variables.insert("upstream".into(), upstream.clone());
        o.blocked_networks =
            village_runtime::blocked_networks::BlockedNetworks::parse(&["private".to_owned()])
                .expect("parses");
    })
    .await;
    let v = get_json(&app, &format!("/fixture/outbound?url=http://{upstream}/x")).await;
    assert!(
        v["error"]
            .as_str()
            .expect("error")
            .contains("DestinationIpProhibited"),
        "{v}"
    );
    assert_eq!(v.get("body"), None, "{v}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    app.stop().await;
    // The same request without the block reaches the server.
    let open = start_fixture(&["http-fixture"], |o| {
        o.variables.insert("upstream".into(), upstream.clone());
    })
    .await;
    let v = get_json(&open, &format!("/fixture/outbound?url=http://{upstream}/x")).await;
    assert_eq!(v["body"], "internal secret", "{v}");
    open.stop().await;
}

/// Slow clients: half-sent requests are closed after the header timeout,
/// and holding every connection slot only queues new clients — they are
/// served as soon as a slot frees, and nothing spins or floods the log.
#[tokio::test]
async fn half_sent_requests_are_closed_and_a_full_server_still_serves() {
    let app = start_fixture(&["http-fixture"], |o| {
        o.header_read_timeout = Duration::from_secs(1);
        o.max_connections = 8;
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut s = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        s.write_all(b"GET /fixture/echo HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        slow.push(s);
    }
    // Every slot is held by a half-sent request; a real client still gets
    // its answer once the header timeout frees them.
    let started = std::time::Instant::now();
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        status_of(&app, "/.well-known/spin/health"),
    )
    .await
    .expect("served once the slow clients were dropped");
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "it had to wait for a slot"
    );
    for mut s in slow {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the server closed the connection");
        // Closed (0) or answered 408 and closed: never left open.
        let n = n.unwrap_or(0);
        assert!(
            n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"),
            "{:?}",
            &buf[..n]
        );
    }
    app.stop().await;
}
