//! `village-bench guards`: what a function pays per request for one feature
//! flag evaluation and one rate-limit check, through the runtime, against
//! the real Postgres and Redis.
//!
//! In one run it serves `guards-fixture` (see its docs) from a fresh
//! database with a `bench_flag` (50 % rollout) and a `bench` rule too
//! generous to refuse, then alternates rounds of sequential requests to
//! `/bench/empty` (the baseline: the same `serve` wrapper, nothing else) and
//! `/bench/guarded`, and prints p50/p99 of each and the difference.

use std::sync::Arc;

use village_flags::evaluation_log;
use village_platform::cache::{Cache, CacheValue, namespace_of};
use village_platform::native::NativeCache;

use crate::{LoadResult, load, repo};

#[derive(clap::Args)]
pub struct GuardsArgs {
    /// Concurrent keep-alive connections (1: pure latency).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Seconds per path per round.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Rounds, alternating the two paths; medians are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

fn us(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn run(args: GuardsArgs) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(measure(args))
}

async fn measure(args: GuardsArgs) -> anyhow::Result<()> {
    let url = village_migrate::testing::fresh_database().await?;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(
            "INSERT INTO feature_flags (key, description, enabled, rollout_percent) \
                 VALUES ('bench_flag', 'village-bench guards', true, 50); \
             INSERT INTO rate_limit_rules (action, scope, limit_count, window_seconds, fail_mode) \
                 VALUES ('bench', 'ip', 1000000000, 1, 'open');",
        )
        .await?;

    let mut options = village_runtime::Options::new(repo().join("runtime/fixtures/guards.toml"));
    options.env_lookup = Arc::new(|_| None);
    options.variables.insert("database_url".into(), url.clone());
    let running = village_runtime::start(options, "127.0.0.1:0".parse()?).await?;
    println!(
        "village-bench guards: {} connection(s), {} s per path per round, {} rounds, {} cores",
        args.connections,
        args.seconds,
        args.rounds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // Warm both paths (component compiled, connections and caches filled).
    load(running.addr, "/bench/empty", 1, 1).await?;
    load(running.addr, "/bench/guarded", 1, 1).await?;
    let mut empty = Vec::new();
    let mut guarded = Vec::new();
    let mut flag = Vec::new();
    let mut limit = Vec::new();
    for _ in 0..args.rounds.max(1) {
        let (c, s) = (args.connections, args.seconds);
        empty.push(load(running.addr, "/bench/empty", c, s).await?);
        guarded.push(load(running.addr, "/bench/guarded", c, s).await?);
        flag.push(load(running.addr, "/bench/flag", c, s).await?);
        limit.push(load(running.addr, "/bench/limit", c, s).await?);
    }
    let median = |rounds: &mut Vec<LoadResult>| -> LoadResult {
        rounds.sort_by_key(|a| a.percentile(0.5));
        rounds.remove(rounds.len() / 2)
    };
    let empty = median(&mut empty);
    let guarded = median(&mut guarded);
    let flag = median(&mut flag);
    let limit = median(&mut limit);
    // Evaluations are appended after each answer to the Redis buffer the
    // `flags-flush` cron drains (not running here): count them there.
    let cache =
        NativeCache::connect_namespaced("redis://127.0.0.1:6379", &namespace_of(&url)).await?;
    let logged = match cache
        .execute("LLEN", &[cache.key(evaluation_log::BUFFER_KEY).into()])
        .await?
        .first()
    {
        Some(CacheValue::Int(n)) => *n,
        _ => 0,
    };
    println!("median round (by p50):");
    crate::row("empty request", &empty);
    crate::row("flag alone", &flag);
    crate::row("rate limit alone", &limit);
    crate::row("flag + rate limit", &guarded);
    let p50 = us(guarded.percentile(0.5)) - us(empty.percentile(0.5));
    let p99 = us(guarded.percentile(0.99)) - us(empty.percentile(0.99));
    println!(
        "added by one flag evaluation + one rate-limit check: p50 {p50:.0} µs, p99 {p99:.0} µs (target: p99 under 1000 µs)"
    );
    println!(
        "({logged} evaluation entries buffered for the log; {} refused)",
        guarded.errors + empty.errors + flag.errors + limit.errors
    );
    running.stop().await;
    Ok(())
}
