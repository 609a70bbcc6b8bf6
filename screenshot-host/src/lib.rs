//! `screenshot-host`: the native service that captures web pages for Good
//! Sites (issue #16). It consumes the SCREENSHOT job queue, drives a bounded
//! pool of headless Chromium over the DevTools protocol (`chromiumoxide`),
//! and keeps each capture as WebP images in blob storage and a version row
//! in Postgres.
//!
//! - [`browser`]: the pool — one Chromium, N contexts, recycled when it
//!   dies, hangs or grows past its memory limit.
//! - [`proxy`]: the guarded path every request of a page takes; private,
//!   loopback and link-local addresses are refused at connect time.
//! - [`capture`]: one page, start to pictures, bounded in time and size.
//! - [`runner`]: the job loop, and what each outcome does to its job.
//! - [`metrics`] and the small HTTP server here: `/healthz`, `/readyz`,
//!   `/metrics`.
//!
//! Everything runs on one thread (a tokio `LocalSet`): the work is
//! Chromium's, in its own processes; this process waits on sockets.

pub mod browser;
pub mod capture;
pub mod config;
#[cfg(feature = "corpus")]
pub mod corpus;
pub mod metrics;
pub mod proxy;
pub mod runner;

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;
use village_jobs::{Queue, RENEW_EVERY, renew};
use village_platform::native::{NativeHttp, NativeSql};
use village_platform::sql::{Sql, SqlValue};

pub use config::Config;

use browser::{Pool, PoolConfig};
use capture::CaptureSettings;
use metrics::{Gauges, Metrics};
use runner::Runner;

/// The capture log is kept this long (versions forever).
const CAPTURE_LOG_DAYS: i64 = 90;

/// A running host: where its HTTP endpoints are, and its parts (tests look
/// inside: the browser's pid, the metrics).
pub struct Host {
    pub addr: SocketAddr,
    pub runner: Rc<Runner>,
}

impl Host {
    pub fn pool(&self) -> &Rc<Pool> {
        &self.runner.pool
    }
}

/// Starts the host on the current `LocalSet`: connects, launches the
/// browser, serves its endpoints and consumes the queue until `shutdown`
/// resolves; then stops claiming, gives captures under way the grace period,
/// hands back what is left and closes the browser. `started` receives the
/// host once it serves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    started: impl FnOnce(&Host),
) -> anyhow::Result<()> {
    let sql = NativeSql::connect(&config.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("postgres: {e}"))?;
    let store = config.object_store()?;
    let pool = Pool::new(PoolConfig {
        chromium: config.chromium.clone(),
        contexts: config.contexts,
        memory_limit_bytes: config.browser_memory_bytes(),
        navigation_timeout: config.navigation_timeout(),
    });
    pool.warm().await?;
    let runner = Rc::new(Runner {
        sql,
        pool: pool.clone(),
        metrics: Rc::new(Metrics::default()),
        settings: CaptureSettings {
            navigation_timeout: config.navigation_timeout(),
            capture_timeout: config.capture_timeout(),
            max_page_bytes: config.max_page_bytes(),
            settle: Duration::from_millis(config.settle_ms),
            allowed_hosts: config.allowed_hosts(),
        },
        store,
        http: NativeHttp::new(Duration::from_secs(30)),
        worker: config.worker(),
        running: RefCell::new(Default::default()),
        wake: Notify::new(),
        stopping: Cell::new(false),
    });
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let background = [
        tokio::task::spawn_local(pool.clone().watch()),
        tokio::task::spawn_local(serve(listener, runner.clone())),
        tokio::task::spawn_local(wake_ups(config.redis_url.clone(), runner.clone())),
        tokio::task::spawn_local(housekeeping(runner.clone())),
    ];
    tracing::info!(%addr, worker = %runner.worker, contexts = pool.capacity(), "screenshot-host serving");
    started(&Host {
        addr,
        runner: runner.clone(),
    });
    let poll = Duration::from_secs(config.poll_secs.max(1));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        match runner.claim_and_start().await {
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "claiming failed; retrying at the next poll"),
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = runner.wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
    runner.stopping.set(true);
    tracing::info!(in_flight = runner.running.borrow().len(), "shutting down");
    let grace = tokio::time::Instant::now() + Duration::from_secs(config.shutdown_grace_secs);
    while !runner.running.borrow().is_empty() && tokio::time::Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match runner.hand_back_all().await {
        Ok(n) if n > 0 => tracing::info!(jobs = n, "handed back to the queue"),
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "handing jobs back failed; the sweeper will rescue them")
        }
    }
    for task in background {
        task.abort();
    }
    pool.close();
    Ok(())
}

/// Wake-ups from the queue's Redis channel (what `village_jobs::enqueue`
/// publishes); reconnects after a lost connection. The poll covers gaps.
async fn wake_ups(redis_url: String, runner: Rc<Runner>) {
    let channel = village_jobs::wake_channel(Queue::Screenshot);
    loop {
        let subscribed = async {
            let client = redis::Client::open(redis_url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            let mut messages = pubsub.on_message();
            while messages.next().await.is_some() {
                runner.wake.notify_one();
            }
            Ok::<(), redis::RedisError>(())
        }
        .await;
        if let Err(e) = subscribed {
            tracing::warn!(error = %e, "wake-up channel lost; polling meanwhile");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Renews the locks of the jobs held (every [`RENEW_EVERY`]) and purges
/// the capture log past its retention (hourly).
async fn housekeeping(runner: Rc<Runner>) {
    let mut ticks: u64 = 0;
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let held: Vec<i64> = runner.running.borrow().keys().copied().collect();
        if let Err(e) = renew(&runner.sql, &held, &runner.worker, Utc::now()).await {
            tracing::warn!(error = %e, "renewing job locks failed");
        }
        if ticks.is_multiple_of(360) {
            let before = Utc::now() - chrono::Duration::days(CAPTURE_LOG_DAYS);
            if let Err(e) = village_screenshots::versions::purge_log(&runner.sql, before).await {
                tracing::warn!(error = %e, "purging the capture log failed");
            }
        }
        ticks += 1;
    }
}

async fn serve(listener: tokio::net::TcpListener, runner: Rc<Runner>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let runner = runner.clone();
        tokio::task::spawn_local(async move {
            let service = service_fn(move |req| endpoint(req, runner.clone()));
            let _ = tokio::time::timeout(
                Duration::from_secs(30),
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            )
            .await;
        });
    }
}

async fn endpoint(
    req: http::Request<hyper::body::Incoming>,
    runner: Rc<Runner>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let respond = |status: http::StatusCode, content_type: &'static str, body: String| {
        let mut r = http::Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        r
    };
    Ok(match (req.method(), req.uri().path()) {
        (&http::Method::GET, "/healthz") => {
            respond(http::StatusCode::OK, "text/plain", "ok\n".into())
        }
        (&http::Method::GET, "/readyz") => {
            let db =
                tokio::time::timeout(Duration::from_secs(2), runner.sql.query("SELECT 1", &[]))
                    .await
                    .is_ok_and(|r| r.is_ok());
            let browser = runner.pool.ready();
            let status = if db && browser && !runner.stopping.get() {
                http::StatusCode::OK
            } else {
                http::StatusCode::SERVICE_UNAVAILABLE
            };
            respond(
                status,
                "application/json",
                serde_json::json!({ "database": db, "browser": browser, "stopping": runner.stopping.get() })
                    .to_string(),
            )
        }
        (&http::Method::GET, "/metrics") => {
            let (pending, lag) = queue_lag(&runner.sql).await.unwrap_or((0, 0.0));
            let pool = &runner.pool;
            let gauges = Gauges {
                contexts: pool.capacity(),
                in_use: pool.in_use(),
                rss_bytes: pool.rss_bytes.get(),
                peak_rss_bytes: pool.peak_rss_bytes.get(),
                memory_limit_bytes: pool.memory_limit(),
                recycled_for_memory: pool.recycled_for_memory.get(),
                recycled_for_health: pool.recycled_for_health.get(),
                queue_pending: pending,
                queue_lag_seconds: lag,
            };
            respond(
                http::StatusCode::OK,
                "text/plain; version=0.0.4",
                runner.metrics.render(&gauges),
            )
        }
        _ => respond(
            http::StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".into(),
        ),
    })
}

/// Due SCREENSHOT jobs waiting, and how long the oldest has.
async fn queue_lag(sql: &NativeSql) -> Result<(i64, f64), village_platform::sql::SqlError> {
    let row = sql
        .query_opt(
            "SELECT count(*) AS pending, \
                 COALESCE(EXTRACT(EPOCH FROM ($2::timestamp - min(run_at)))::float8, 0) AS lag \
             FROM delayed_jobs WHERE queue = $1 AND status = 'pending' AND run_at <= $2::timestamp",
            &[
                SqlValue::Text(Queue::Screenshot.as_str().into()),
                SqlValue::Timestamp(Utc::now()),
            ],
        )
        .await?;
    Ok(match row {
        Some(r) => (r.get("pending")?, r.get("lag")?),
        None => (0, 0.0),
    })
}

/// A host on a thread of its own (its own single-threaded runtime), for
/// callers on another runtime: the end-to-end tests and the benchmark.
pub struct HostThread {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl HostThread {
    /// Starts a host and waits until it serves.
    pub fn start(config: Config) -> anyhow::Result<HostThread> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let started = tx.clone();
            let result = tokio::task::LocalSet::new().block_on(
                &runtime,
                run(
                    config,
                    async move {
                        let _ = stopped.await;
                    },
                    move |host| {
                        let _ = started.send(Ok(host.addr));
                    },
                ),
            );
            if let Err(e) = &result {
                let _ = tx.send(Err(e.to_string()));
            }
            result
        });
        let addr = rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the host thread ended before serving"))?
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(HostThread {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Shuts the host down (as SIGTERM would) and waits for it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the host thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for HostThread {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
