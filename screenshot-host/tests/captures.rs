//! The host against real Chromium, Postgres, Redis and an S3 server
//! (s3s-fs), capturing a local site corpus: every case ends recorded, the
//! good ones as decodable WebP files of the right size; a browser killed
//! or frozen mid-capture loses no job; a bloated browser is replaced between
//! captures; shutdown hands claimed jobs back.

use std::rc::Rc;
use std::time::Duration;

use screenshot_host::corpus::Corpus;
use screenshot_host::runner::Runner;
use screenshot_host::{Config, run};
use tokio::sync::oneshot;
use village_e2e::s3::S3Server;
use village_platform::cache::namespace_of;
use village_platform::native::{NativeCache, NativeSql, TEST_REDIS};
use village_platform::sql::{Sql, SqlValue};

struct Running {
    addr: std::net::SocketAddr,
    runner: Rc<Runner>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.done
            .await
            .expect("joined")
            .expect("the host stopped cleanly");
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .expect("the host answers");
        (r.status().as_u16(), r.text().await.expect("body"))
    }
}

/// What each test runs against: the corpus, an S3 server, its own
/// database.
struct World {
    corpus: Corpus,
    s3: S3Server,
    db: String,
    sql: NativeSql,
}

async fn world() -> World {
    let corpus = Corpus::start().await;
    let s3 = S3Server::start().await;
    let db = village_migrate::testing::fresh_database()
        .await
        .expect("db");
    let sql = NativeSql::connect(&db).await.expect("sql");
    World {
        corpus,
        s3,
        db,
        sql,
    }
}

impl World {
    /// The host's settings for the tests: short timeouts, the corpus
    /// allowed, this world's bucket.
    fn config(&self) -> Config {
        config(&self.db, &self.corpus, &self.s3)
    }

    async fn enqueue(&self, url: &str) -> i64 {
        enqueue(&self.db, &self.corpus, url).await
    }

    async fn wait_started(&self, id: i64) {
        wait_for(
            &self.sql,
            "SELECT count(*) AS n FROM delayed_jobs WHERE id = $1 AND started_at IS NOT NULL",
            &[SqlValue::Int64(id)],
            1,
            30,
        )
        .await;
    }
}

fn config(db: &str, corpus: &Corpus, s3: &S3Server) -> Config {
    let mut c = Config::for_database(db, TEST_REDIS);
    c.chromium = village_e2e::chromium().into();
    c.contexts = 2;
    c.navigation_timeout_secs = 5;
    c.capture_timeout_secs = 20;
    c.max_page_mb = 4;
    c.settle_ms = 200;
    c.poll_secs = 1;
    c.shutdown_grace_secs = 0;
    c.allowed_hosts = corpus.allowed_hosts();
    let s3 = s3.config();
    c.object_store_endpoint = s3.endpoint;
    c.object_store_bucket = s3.bucket;
    c.object_store_region = s3.region;
    c.object_store_access_key = s3.access_key;
    c.object_store_secret_key = s3.secret_key;
    c
}

async fn start(config: Config) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let (tx, rx) = oneshot::channel();
    let done = tokio::task::spawn_local(run(
        config,
        async move {
            let _ = stopped.await;
        },
        move |host| {
            let _ = tx.send((host.addr, host.runner.clone()));
        },
    ));
    let (addr, runner) = rx.await.expect("the host started");
    Running {
        addr,
        runner,
        stop: Some(stop),
        done,
    }
}

async fn enqueue(db: &str, corpus: &Corpus, url: &str) -> i64 {
    let sql = NativeSql::connect(db).await.expect("sql");
    let cache = NativeCache::connect_namespaced(TEST_REDIS, &namespace_of(db))
        .await
        .expect("redis");
    village_screenshots::enqueue(
        &sql,
        &cache,
        url,
        None,
        &corpus.allowed_hosts(),
        chrono::Utc::now(),
    )
    .await
    .expect("queued")
    .0
}

/// Waits (up to `secs`) until `query` counts at least `n`.
async fn wait_for(sql: &NativeSql, query: &str, params: &[SqlValue], n: i64, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let count: i64 = sql
            .query_opt(query, params)
            .await
            .expect("count")
            .expect("a row")
            .get("n")
            .expect("n");
        if count >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {n} of `{query}` (have {count})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn local<F: Future<Output = ()>>(test: F) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tokio::task::LocalSet::new().block_on(&runtime, test);
}

/// The job's status and attempts.
async fn job(sql: &NativeSql, id: i64) -> (String, i32) {
    let row = sql
        .query_opt(
            "SELECT status, attempts FROM delayed_jobs WHERE id = $1",
            &[SqlValue::Int64(id)],
        )
        .await
        .expect("job")
        .expect("the job exists");
    (
        row.get("status").expect("status"),
        row.get("attempts").expect("attempts"),
    )
}

/// The recorded captures of `url`, oldest first: outcome and reason.
async fn captures(sql: &NativeSql, url: &str) -> Vec<(String, Option<String>)> {
    sql.query(
        "SELECT outcome, reason FROM screenshot_captures WHERE url = $1 ORDER BY id",
        &[SqlValue::Text(url.into())],
    )
    .await
    .expect("captures")
    .iter()
    .map(|r| {
        (
            r.get("outcome").expect("outcome"),
            r.get("reason").expect("reason"),
        )
    })
    .collect()
}

/// The last recorded capture of `url`.
async fn last_capture(sql: &NativeSql, url: &str) -> (String, Option<String>) {
    captures(sql, url)
        .await
        .pop()
        .unwrap_or_else(|| panic!("a capture of {url} is recorded"))
}

/// Starts a host, lets it begin a slow capture, does `interrupt` to its
/// browser (by pid), and checks the job was not lost: the interrupted
/// attempt recorded as `browser lost`, the retry captured on a new browser.
async fn interrupted_mid_capture(interrupt: impl FnOnce(u32)) -> (World, Running) {
    let w = world().await;
    let host = start(w.config()).await;
    let first_pid = host.runner.pool.browser_pid().expect("a browser");
    let url = w.corpus.url("/slower");
    let id = w.enqueue(&url).await;
    w.wait_started(id).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    interrupt(first_pid);
    wait_for(
        &w.sql,
        "SELECT count(*) AS n FROM delayed_jobs WHERE id = $1 AND status = 'succeeded'",
        &[SqlValue::Int64(id)],
        1,
        90,
    )
    .await;
    assert_eq!(
        job(&w.sql, id).await.1,
        2,
        "the interrupted attempt counted, then the retry worked at once"
    );
    let outcomes = captures(&w.sql, &url).await;
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert_eq!(outcomes[0].0, "failed");
    assert!(
        outcomes[0]
            .1
            .as_deref()
            .unwrap_or_default()
            .starts_with("browser lost"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1].0, "captured");
    assert_ne!(
        host.runner.pool.browser_pid(),
        Some(first_pid),
        "a new browser took over"
    );
    (w, host)
}

fn assert_webp(bytes: &[u8], width: u32, height: u32) {
    assert_eq!(&bytes[..4], b"RIFF", "a RIFF container");
    assert_eq!(&bytes[8..12], b"WEBP", "holding WebP");
    let image = image::load_from_memory_with_format(bytes, image::ImageFormat::WebP)
        .expect("the WebP decodes");
    assert_eq!((image.width(), image.height()), (width, height));
    // Not a blank picture: the corpus pages are colourful.
    let rgb = image.to_rgb8();
    let distinct: std::collections::BTreeSet<[u8; 3]> =
        rgb.pixels().step_by(97).map(|p| p.0).collect();
    assert!(
        distinct.len() > 8,
        "a real render, {} colours",
        distinct.len()
    );
}

#[test]
fn every_case_of_the_corpus_ends_recorded() {
    local(async {
        let w = world().await;
        let (corpus, s3, db, sql) = (&w.corpus, &w.s3, &w.db, &w.sql);
        let good = [
            corpus.url("/normal/1"),
            corpus.url("/normal/2"),
            corpus.url("/slow"),
            corpus.url("/popup"),
            corpus.url("/endless"),
            corpus.url("/embeds-private"),
        ];
        let bad = [
            (corpus.url("/huge"), "too large"),
            (corpus.url("/loop"), "redirect loop"),
            (corpus.url("/download"), "download"),
            (corpus.url("/to-private"), "refused: localhost is"),
            (format!("https://{}/", corpus.tls_addr), "TLS error"),
            (format!("http://{}/", corpus.closed_addr), "unreachable"),
        ];
        let mut jobs = Vec::new();
        for url in good.iter().chain(bad.iter().map(|(u, _)| u)) {
            jobs.push((url.clone(), w.enqueue(url).await));
        }
        // A job naming a private address outright (as if the check at
        // enqueue time had been skipped): the proxy refuses it too.
        let direct = format!("http://{}/", corpus.private_addr);
        let cache = NativeCache::connect_namespaced(TEST_REDIS, &namespace_of(db))
            .await
            .expect("redis");
        let job_id = village_jobs::enqueue(
            sql,
            &cache,
            chrono::Utc::now(),
            village_jobs::NewJob::new(
                village_jobs::Queue::Screenshot,
                village_screenshots::CAPTURE_HANDLER,
                serde_json::json!({ "url": direct }),
            ),
        )
        .await
        .expect("queued");
        jobs.push((direct.clone(), job_id));
        let bad: Vec<(String, &str)> = bad
            .into_iter()
            .chain([(direct, "refused: 127.0.0.1 is 127.0.0.1")])
            .collect();
        // A second capture of one page: a new version, the first kept.
        let again = w.enqueue(&good[0]).await;
        let host = start(w.config()).await;
        // The hardening flags reach Chromium as switches it knows.
        let pid = host.runner.pool.browser_pid().expect("a browser");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        for expected in [
            "--proxy-server=http://127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
            "--disable-background-networking",
            "--headless",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
        }
        assert!(!args.iter().any(|a| a.starts_with("---")), "{args:?}");
        wait_for(
            sql,
            "SELECT count(DISTINCT url) AS n FROM screenshot_captures",
            &[],
            (good.len() + bad.len()) as i64,
            180,
        )
        .await;
        wait_for(
            sql,
            "SELECT count(*) AS n FROM directory_screenshot_versions WHERE url = $1",
            &[SqlValue::Text(good[0].clone())],
            2,
            60,
        )
        .await;
        for url in &good {
            let (outcome, reason) = last_capture(sql, url).await;
            assert_eq!(outcome, "captured", "{url}: {reason:?}");
            let versions = village_screenshots::versions::history(sql, url)
                .await
                .expect("history");
            let current = versions
                .iter()
                .find(|v| v.is_current)
                .expect("a current version");
            assert_eq!(versions.iter().filter(|v| v.is_current).count(), 1);
            let store = village_platform::objects::S3Store::new(&s3.config(), &host.runner.http)
                .expect("store");
            for (image, (w, h)) in [(&current.full, (1280, 800)), (&current.thumb, (320, 200))] {
                assert_eq!((image.width, image.height), (w, h));
                let object = store
                    .get(&image.key, chrono::Utc::now())
                    .await
                    .expect("read back")
                    .unwrap_or_else(|| panic!("{} is in the bucket", image.key));
                assert_eq!(object.content_type.as_deref(), Some("image/webp"));
                assert_eq!(object.metadata.get("source-url"), Some(url));
                assert_eq!(
                    object.metadata.get("retention").map(String::as_str),
                    Some("keep")
                );
                assert_eq!(object.bytes.len() as u32, image.bytes);
                assert_webp(&object.bytes, w, h);
            }
        }
        let history = village_screenshots::versions::history(sql, &good[0])
            .await
            .expect("history");
        assert_eq!(
            history
                .iter()
                .map(|v| (v.version, v.is_current))
                .collect::<Vec<_>>(),
            vec![(2, true), (1, false)],
            "the newest version is current, the older one kept"
        );
        assert_ne!(history[0].full.key, history[1].full.key);
        for (url, expected) in &bad {
            let (outcome, reason) = last_capture(sql, url).await;
            assert_eq!(outcome, "failed", "{url}");
            let reason = reason.unwrap_or_default();
            assert!(
                reason.contains(expected),
                "{url}: `{reason}` should say `{expected}`"
            );
        }
        for (url, id) in jobs.iter().chain([(good[0].clone(), again)].iter()) {
            let (status, attempts) = job(sql, *id).await;
            if url.contains(&corpus.closed_addr.to_string()) {
                // Unreachable may be passing: it backs off and runs again.
                assert_eq!((status.as_str(), attempts), ("pending", 1), "{url}");
            } else {
                // The page's own faults are recorded, not retried.
                assert_eq!((status.as_str(), attempts), ("succeeded", 1), "{url}");
            }
        }
        assert_eq!(
            corpus
                .private_hits
                .load(std::sync::atomic::Ordering::SeqCst),
            0,
            "nothing reached the private address"
        );
        let (status, metrics) = host.get("/metrics").await;
        assert_eq!(status, 200);
        assert!(
            metrics.contains("village_screenshot_captures_total{outcome=\"captured\"} 7\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("village_screenshot_capture_seconds_count 14\n"),
            "{metrics}"
        );
        assert!(metrics.contains("village_screenshot_pool_contexts 2\n"));
        assert_eq!(host.get("/healthz").await.0, 200);
        let (ready, body) = host.get("/readyz").await;
        assert_eq!(ready, 200, "{body}");
        host.stop().await;
    });
}

#[test]
fn a_browser_killed_mid_capture_loses_no_job() {
    local(async {
        let (_w, host) = interrupted_mid_capture(screenshot_host::browser::kill_tree).await;
        assert!(
            host.get("/metrics")
                .await
                .1
                .contains("village_screenshot_captures_total{outcome=\"failed_browser\"} 1\n")
        );
        host.stop().await;
    });
}

#[test]
fn a_browser_that_hangs_mid_capture_is_replaced_and_the_job_retried() {
    let frozen = std::cell::Cell::new(0);
    local(async {
        // Frozen, not dead: the browser's processes stop answering.
        let (_w, host) = interrupted_mid_capture(|pid| {
            frozen.set(pid);
            for p in screenshot_host::browser::process_tree(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p as i32),
                    nix::sys::signal::Signal::SIGSTOP,
                );
            }
        })
        .await;
        let pid = frozen.get();
        assert!(
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |s| s.contains(") Z")),
            "the frozen browser was killed"
        );
        host.stop().await;
    });
}

#[test]
fn a_browser_over_its_memory_limit_is_replaced_between_captures() {
    local(async {
        let w = world().await;
        let mut c = w.config();
        // Any browser is over 1 MB: replaced as soon as the watchdog looks.
        c.browser_memory_mb = 1;
        let host = start(c).await;
        let first_pid = host.runner.pool.browser_pid().expect("a browser");
        let mut ids = Vec::new();
        for n in 20..24 {
            ids.push(w.enqueue(&w.corpus.url(&format!("/normal/{n}"))).await);
        }
        wait_for(
            &w.sql,
            "SELECT count(*) AS n FROM delayed_jobs WHERE id = ANY($1) AND status = 'succeeded'",
            &[SqlValue::Int64Array(ids.clone())],
            4,
            120,
        )
        .await;
        for id in ids {
            assert_eq!(
                job(&w.sql, id).await,
                ("succeeded".into(), 1),
                "no capture was harmed"
            );
        }
        assert!(host.runner.pool.recycled_for_memory.get() >= 1);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = host.runner.pool.warm().await;
        assert_ne!(host.runner.pool.browser_pid(), Some(first_pid));
        host.stop().await;
    });
}

#[test]
fn shutdown_hands_claimed_jobs_back_unharmed() {
    local(async {
        let w = world().await;
        let host = start(w.config()).await;
        let id = w.enqueue(&w.corpus.url("/slower")).await;
        w.wait_started(id).await;
        host.stop().await;
        assert_eq!(
            job(&w.sql, id).await,
            ("pending".into(), 0),
            "back in the queue, its attempt refunded"
        );
    });
}

#[test]
fn a_host_without_a_browser_takes_no_job() {
    local(async {
        let w = world().await;
        let id = w.enqueue(&w.corpus.url("/normal/1")).await;
        let mut c = w.config();
        c.chromium = "/nonexistent/chromium".into();
        let outcome = run(c, std::future::pending(), |_| {}).await;
        let error = outcome.expect_err("no browser, no host").to_string();
        assert!(error.contains("Chromium did not start"), "{error}");
        assert_eq!(
            job(&w.sql, id).await,
            ("pending".into(), 0),
            "the job is untouched"
        );
    });
}
