//! `village-bench screenshots`: the screenshot host's throughput.
//!
//! Serves the local corpus's ordinary pages on loopback, then, in one run:
//!
//! - the baseline: what capturing costs without the host — a fresh
//!   `chromium --headless --screenshot` process per page, one after another
//!   (PNG, no queue, no proxy, no storage);
//! - the host with 1, 2 and 4 browser contexts: `--jobs` capture jobs of
//!   distinct pages queued at once on a warm host (browser started), timed
//!   from the enqueue to the last job settled, through everything —
//!   claim, guarded proxy, Chromium, WebP, blob storage (embedded), version
//!   rows.
//!
//! It prints captures per minute, p50/p95 capture time, the success rate on
//! these normal pages (target ≥ 99 %, issue #16) and the browsers' peak
//! memory (all their processes, PSS) for each setting. The host waits
//! `--settle-ms` after `load` before its pictures (late fonts, lazy images);
//! the baseline's `--screenshot` does not wait.

use std::time::{Duration, Instant};

use screenshot_host::corpus::Corpus;
use screenshot_host::{Config, HostThread};
use village_jobs::{NewJob, Queue, enqueue_many};
use village_platform::cache::namespace_of;
use village_platform::native::{NativeCache, NativeSql, TEST_REDIS};
use village_platform::sql::Sql;

use crate::percentile;

#[derive(clap::Args)]
pub struct ScreenshotsArgs {
    /// Capture jobs per setting.
    #[arg(long, default_value_t = 40)]
    jobs: usize,
    /// Captures for the one-process-per-page baseline.
    #[arg(long, default_value_t = 8)]
    baseline: usize,
    /// The Chromium binary.
    #[arg(long, default_value = "chromium")]
    chromium: String,
    /// How long each page may settle after `load` (the host's
    /// `--settle-ms`; production's default).
    #[arg(long, default_value_t = 500)]
    settle_ms: u64,
    /// Context counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    contexts: Vec<usize>,
}

pub fn run(args: ScreenshotsArgs) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(measure(args))
}

async fn measure(args: ScreenshotsArgs) -> anyhow::Result<()> {
    let corpus = Corpus::start().await;
    let db = village_migrate::testing::fresh_database().await?;
    let sql = NativeSql::connect(&db).await?;
    let cache = NativeCache::connect_namespaced(TEST_REDIS, &namespace_of(&db)).await?;
    println!(
        "village-bench screenshots: {} jobs per setting, pages 1280×800, settle {} ms, {} cores",
        args.jobs,
        args.settle_ms,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "{:<34} {:>12} {:>9} {:>9} {:>9} {:>15}",
        "", "captures/min", "p50 s", "p95 s", "success", "peak PSS (MiB)"
    );
    baseline(&args, &corpus).await?;
    let mut page = 0;
    for contexts in &args.contexts {
        sql.execute(
            "TRUNCATE screenshot_captures, directory_screenshot_versions, delayed_jobs, blobs",
            &[],
        )
        .await?;
        let mut config = Config::for_database(&db, TEST_REDIS);
        config.chromium = args.chromium.clone().into();
        config.contexts = *contexts;
        config.allowed_hosts = corpus.allowed_hosts();
        config.poll_secs = 1;
        config.settle_ms = args.settle_ms;
        let host = tokio::task::spawn_blocking(move || HostThread::start(config)).await??;
        let jobs: Vec<NewJob> = (0..args.jobs)
            .map(|_| {
                page += 1;
                NewJob::new(
                    Queue::Screenshot,
                    village_screenshots::CAPTURE_HANDLER,
                    serde_json::json!({ "url": corpus.url(&format!("/normal/{page}")) }),
                )
            })
            .collect();
        let started = Instant::now();
        enqueue_many(&sql, &cache, chrono::Utc::now(), &jobs).await?;
        loop {
            let settled: i64 = sql
                .query_opt(
                    "SELECT count(*) AS n FROM delayed_jobs WHERE status IN ('succeeded', 'dead') \
                        OR (status = 'pending' AND attempts > 0)",
                    &[],
                )
                .await?
                .map(|r| r.get("n"))
                .transpose()?
                .unwrap_or(0);
            if settled as usize >= args.jobs {
                break;
            }
            if started.elapsed() > Duration::from_secs(900) {
                anyhow::bail!("{} of {} jobs settled in 15 minutes", settled, args.jobs);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let elapsed = started.elapsed();
        let rows = sql
            .query(
                "SELECT outcome, capture_ms FROM screenshot_captures ORDER BY capture_ms",
                &[],
            )
            .await?;
        let times: Vec<Duration> = rows
            .iter()
            .filter_map(|r| r.get::<i32>("capture_ms").ok())
            .map(|ms| Duration::from_millis(ms as u64))
            .collect();
        let captured = rows
            .iter()
            .filter(|r| r.get::<String>("outcome").is_ok_and(|o| o == "captured"))
            .count();
        let metrics = get_text(host.addr, "/metrics").await?;
        let peak = metrics
            .lines()
            .find_map(|l| l.strip_prefix("village_screenshot_browser_peak_rss_bytes "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        tokio::task::spawn_blocking(move || host.stop()).await??;
        row(
            &format!("host, {contexts} context(s)"),
            args.jobs as f64 / elapsed.as_secs_f64() * 60.0,
            &times,
            captured as f64 / args.jobs as f64,
            peak / f64::from(1 << 20),
        );
    }
    println!(
        "(host process, peak: {:.0} MiB — the bench's own process, corpus server included)",
        crate::status_mib("VmHWM:")
    );
    Ok(())
}

fn row(name: &str, per_minute: f64, times: &[Duration], success: f64, peak_mib: f64) {
    println!(
        "{name:<34} {per_minute:>12.1} {:>9.2} {:>9.2} {:>8.1}% {:>15.0}",
        percentile(times, 0.50).as_secs_f64(),
        percentile(times, 0.95).as_secs_f64(),
        success * 100.0,
        peak_mib
    );
}

/// A cold Chromium process per page, one after another.
async fn baseline(args: &ScreenshotsArgs, corpus: &Corpus) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut times = Vec::new();
    let mut ok = 0;
    let mut peak: u64 = 0;
    let started = Instant::now();
    for i in 0..args.baseline {
        let out = dir.path().join(format!("{i}.png"));
        let profile = dir.path().join(format!("profile-{i}"));
        let t = Instant::now();
        let mut child = tokio::process::Command::new(&args.chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1280,800",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--screenshot={}", out.display()))
            .arg(corpus.url(&format!("/normal/{}", 10_000 + i)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let pid = child.id().unwrap_or(0);
        let waited = loop {
            peak = peak.max(screenshot_host::browser::tree_rss(pid));
            tokio::select! {
                status = child.wait() => break status?,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        };
        times.push(t.elapsed());
        if waited.success() && out.exists() {
            ok += 1;
        }
    }
    let elapsed = started.elapsed();
    times.sort();
    row(
        "baseline: a chromium process each",
        args.baseline as f64 / elapsed.as_secs_f64() * 60.0,
        &times,
        ok as f64 / args.baseline.max(1) as f64,
        peak as f64 / f64::from(1 << 20),
    );
    Ok(())
}

/// One GET over a plain connection, the answer as text (the host's
/// `/metrics`).
async fn get_text(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text)
}
