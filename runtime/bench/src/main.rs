//! `village-bench runtime`: how close the runtime comes to a native server.
//! (`village-bench jobs` is in `jobs.rs`, `village-bench guards` in
//! `guards.rs`, `village-bench clicks` in `clicks.rs`, `village-bench widgets` in
//! `widgets.rs`.)
//!
//! In one run, on one machine, it drives (1) a trivial Spin component
//! (`hello-fixture`, path `/hello`) served by the runtime and (2) a
//! native hyper "hello" server — the ceiling — with the same concurrent
//! keep-alive load, and prints requests/s and p50/p99 latency for both and
//! their ratio. It also prints the median and p99 time to instantiate a
//! component, and the process's resident memory after loading every
//! component of the project's own spin.toml.
//!
//! The load generator runs in the same process as the servers; on a 2-core
//! machine both sides compete for the same cores, equally for both servers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
/// mimalloc: the runtime allocates and frees many small objects per
/// request (stores, resource tables, headers); measured faster than glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

mod clicks;
mod guards;
mod jobs;
mod marketplace;
mod screenshots;
mod widgets;
use http_body_util::{BodyExt, Empty, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
#[command(about = "Village Homepage benchmarks")]
enum Bench {
    /// Runtime throughput, latency, instantiation and memory, against a native ceiling.
    Runtime(Args),
    /// The job queue: enqueue and drain no-op jobs through Postgres.
    Jobs(jobs::JobsArgs),
    /// One flag evaluation + one rate-limit check per request, beside an empty request.
    Guards(guards::GuardsArgs),
    /// Radius search at a million listings: the function beside its bare SQL.
    Marketplace(marketplace::MarketplaceArgs),
    /// The screenshot host: captures per minute with 1, 2, 4 contexts, beside a process per page.
    Screenshots(screenshots::ScreenshotsArgs),
    /// `/track/click` under load: redirects/s and p99, then the recorded clicks counted.
    Clicks(clicks::ClicksArgs),
    /// The homepage with all seven widgets and every provider down, beside four provider-free widgets.
    Widgets(widgets::WidgetsArgs),
}

#[derive(clap::Args)]
struct Args {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds of load per server per round.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Rounds, alternating runtime and native; medians are reported, because
    /// a 2-core VM's throughput drifts between runs.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Instantiations to time.
    #[arg(long, default_value_t = 2000)]
    instantiations: usize,
    /// Measure the runtime only (for profiling it alone).
    #[arg(long)]
    skip_native: bool,
}

/// The project's `spin.toml`, serving `components` against the test
/// database at `database_url` (plain text to the local cluster), with no
/// `SPIN_VARIABLE_*` from this process's environment.
fn project_options(database_url: &str, components: &[&str]) -> village_runtime::Options {
    let mut options = village_runtime::Options::new(repo().join("spin.toml"));
    options.env_lookup = Arc::new(|_| None);
    options.components = components.iter().map(|c| (*c).to_owned()).collect();
    let db_name = village_migrate::testing::database_name(database_url).to_owned();
    options.variables.insert("db_name".into(), db_name);
    options
        .variables
        .insert("db_sslmode".into(), "disable".into());
    if let Ok(pw) = std::env::var("VILLAGE_PG_PASSWORD") {
        options.variables.insert("db_password".into(), pw);
    }
    options
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct LoadResult {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    errors: usize,
}

impl LoadResult {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `connections` tasks, each sending requests back to back on one
/// keep-alive connection for `seconds`.
async fn load(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<LoadResult> {
    load_expecting(
        addr,
        |_| (path.to_owned(), None),
        connections,
        seconds,
        |s| s.is_success(),
    )
    .await
}

/// [`load`], connection `i` asking for `request(i)` (a path, and a
/// `Cookie` header to send with it, as a returning browser does), an
/// answer counted as an error unless `ok` says its status is expected.
async fn load_expecting(
    addr: SocketAddr,
    request: impl Fn(usize) -> (String, Option<String>),
    connections: usize,
    seconds: u64,
    ok: fn(http::StatusCode) -> bool,
) -> anyhow::Result<LoadResult> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..connections {
        let (path, cookie) = request(i);
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let mut req = http::Request::get(&path).header("host", addr.to_string());
                if let Some(c) = &cookie {
                    req = req.header("cookie", c);
                }
                let req = req.body(Empty::<Bytes>::new())?;
                let t = Instant::now();
                let resp = sender.send_request(req).await?;
                let ok = ok(resp.status());
                resp.into_body().collect().await?;
                latencies.push(t.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await??;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(LoadResult {
        requests: latencies.len(),
        elapsed,
        latencies,
        errors,
    })
}

async fn native_hello() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if stream.set_nodelay(true).is_err() {
                continue;
            }
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                        b"hello",
                    ))))
                });
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    eprintln!("native connection: {e}");
                }
            });
        }
    });
    Ok(addr)
}

fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// A memory line of `/proc/self/status` (`VmRSS:`, `VmHWM:`...), in MiB.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn row(name: &str, r: &LoadResult) {
    println!(
        "{name:<22} {:>10.0} req/s   p50 {:>8.1} µs   p99 {:>8.1} µs   ({} requests, {} errors)",
        r.rps(),
        r.percentile(0.50).as_secs_f64() * 1e6,
        r.percentile(0.99).as_secs_f64() * 1e6,
        r.requests,
        r.errors
    );
}

fn main() -> anyhow::Result<()> {
    match Bench::parse() {
        Bench::Runtime(args) => tokio::runtime::Runtime::new()?.block_on(runtime(args)),
        Bench::Jobs(args) => jobs::run(args),
        Bench::Guards(args) => guards::run(args),
        Bench::Marketplace(args) => marketplace::run(args),
        Bench::Screenshots(args) => screenshots::run(args),
        Bench::Clicks(args) => clicks::run(args),
        Bench::Widgets(args) => widgets::run(args),
    }
}

async fn runtime(args: Args) -> anyhow::Result<()> {
    println!(
        "village-bench runtime: {} connections, {} s per server, {} cores",
        args.connections,
        args.seconds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // Memory first, in a clean process: every component of the project.
    let before = rss_mib();
    let mut project = village_runtime::Options::new(repo().join("spin.toml"));
    project.env_lookup = Arc::new(|_| None);
    let app = village_runtime::App::load(project).await?;
    let loaded = app.components.len();
    let after = rss_mib();
    println!(
        "memory: {after:.1} MiB resident with all {loaded} project components loaded ({before:.1} MiB before loading)"
    );
    drop(app);

    let mut options = village_runtime::Options::new(repo().join("runtime/fixtures/spin.toml"));
    options.components = vec!["hello-fixture".into()];
    options.env_lookup = Arc::new(|_| None);
    let running = village_runtime::start(options, "127.0.0.1:0".parse()?).await?;

    let mut inst = Vec::with_capacity(args.instantiations);
    for _ in 0..args.instantiations {
        inst.push(running.app.time_instantiation("hello-fixture").await?);
    }
    inst.sort();
    println!(
        "instantiation: median {:.1} µs, p99 {:.1} µs over {} instances",
        percentile(&inst, 0.5).as_secs_f64() * 1e6,
        percentile(&inst, 0.99).as_secs_f64() * 1e6,
        inst.len()
    );

    // Warm both servers, then alternate them so drift hits both alike.
    let native_addr = native_hello().await?;
    load(running.addr, "/hello", 4, 1).await?;
    load(native_addr, "/", 4, 1).await?;
    let mut runtime_rounds = Vec::new();
    let mut native_rounds = Vec::new();
    for _ in 0..args.rounds.max(1) {
        runtime_rounds.push(load(running.addr, "/hello", args.connections, args.seconds).await?);
        if !args.skip_native {
            native_rounds.push(load(native_addr, "/", args.connections, args.seconds).await?);
        }
    }
    let median = |rounds: &mut Vec<LoadResult>| -> LoadResult {
        rounds.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
        rounds.remove(rounds.len() / 2)
    };
    let runtime = median(&mut runtime_rounds);
    if native_rounds.is_empty() {
        row("village runtime", &runtime);
        running.stop().await;
        return Ok(());
    }
    let native = median(&mut native_rounds);
    println!(
        "median of {} alternating rounds of {} s:",
        args.rounds.max(1),
        args.seconds
    );
    row("native hyper (ceiling)", &native);
    row("village runtime", &runtime);
    println!(
        "ratio: runtime throughput is {:.1}% of native",
        100.0 * runtime.rps() / native.rps()
    );
    running.stop().await;
    Ok(())
}
