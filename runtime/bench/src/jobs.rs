//! `village-bench jobs`: the job queue end to end through Postgres.
//!
//! For 1, 2 and 4 workers: as many producers enqueue `--jobs` no-op jobs in
//! batches of `--enqueue-batch` (`enqueue_many`, Redis wake-up included)
//! while the workers drain them with the real `drain` loop, each on its own
//! connection. Prints jobs/s over the whole run, the p50/p99 of the claim
//! statement, and how many jobs were lost (never ran) or duplicated (ran
//! twice) — both must be 0. A last line gives the rate of one-at-a-time
//! `enqueue` (one commit per job), what a request handler does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use village_jobs::{
    DEFAULT_BATCH, Job, JobError, JobHandler, NewJob, Queue, Registry, drain, enqueue, enqueue_many,
};
use village_platform::clock::SystemClock;
use village_platform::native::{NativeCache, NativeSql};

#[derive(clap::Args)]
pub struct JobsArgs {
    /// Jobs per worker count.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Worker counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    workers: Vec<usize>,
    /// Jobs per `enqueue_many` call.
    #[arg(long, default_value_t = 100)]
    enqueue_batch: usize,
}

/// Counts how often each job ran.
struct Count(Rc<RefCell<HashMap<i64, u32>>>);

impl JobHandler for Count {
    fn name(&self) -> &'static str {
        "bench.noop"
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        *self.0.borrow_mut().entry(job.id).or_default() += 1;
        Ok(())
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e6
}

pub fn run(args: JobsArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        println!(
            "village-bench jobs: {} no-op jobs per run, enqueued in batches of {}, claimed in batches of {DEFAULT_BATCH}",
            args.jobs, args.enqueue_batch
        );
        for &workers in &args.workers {
            measure(args.jobs, workers, args.enqueue_batch).await?;
        }
        single_enqueue((args.jobs / 10).max(1000), 4).await

    })
}

async fn measure(total: usize, workers: usize, enqueue_batch: usize) -> anyhow::Result<()> {
    let url = village_migrate::testing::fresh_database().await?;
    let seen: Rc<RefCell<HashMap<i64, u32>>> = Rc::default();
    let produced: Rc<RefCell<Vec<i64>>> = Rc::default();
    let producing = Rc::new(RefCell::new(workers));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..workers {
        let (url, produced, producing) = (url.clone(), produced.clone(), producing.clone());
        let share = total / workers + usize::from(p < total % workers);
        tasks.push(tokio::task::spawn_local(async move {
            let sql = NativeSql::connect(&url).await?;
            let cache = NativeCache::connect("redis://127.0.0.1:6379").await?;
            let mut left = share;
            while left > 0 {
                let n = left.min(enqueue_batch);
                let batch: Vec<NewJob> = (0..n)
                    .map(|_| NewJob::new(Queue::Default, "bench.noop", serde_json::json!({})))
                    .collect();
                let ids = enqueue_many(&sql, &cache, chrono::Utc::now(), &batch).await?;
                produced.borrow_mut().extend(ids);
                left -= n;
            }
            *producing.borrow_mut() -= 1;
            anyhow::Ok(Vec::new())
        }));
    }
    for w in 0..workers {
        let (url, seen, producing) = (url.clone(), seen.clone(), producing.clone());
        tasks.push(tokio::task::spawn_local(async move {
            let sql = NativeSql::connect(&url).await?;
            let cache = NativeCache::connect("redis://127.0.0.1:6379").await?;
            let registry = Registry::new().with(Count(seen));
            let mut claims = Vec::new();
            // Stop after finding nothing twice in a row once producers are done:
            // the second look catches a batch committed just as they finished.
            let mut idle_after_done = false;
            loop {
                let report = drain(
                    &sql,
                    &cache,
                    &SystemClock,
                    &registry,
                    Queue::Default,
                    &format!("bench-{w}"),
                    Duration::from_secs(60),
                    DEFAULT_BATCH,
                )
                .await?;
                claims.extend(report.claim_latencies);
                if report.claimed > 0 {
                    idle_after_done = false;
                } else if *producing.borrow() == 0 {
                    if idle_after_done {
                        break;
                    }
                    idle_after_done = true;
                } else {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            anyhow::Ok(claims)
        }));
    }
    let mut claims = Vec::new();
    for t in tasks {
        claims.extend(t.await??);
    }
    let elapsed = started.elapsed();
    claims.sort();
    let seen = seen.borrow();
    let lost = produced
        .borrow()
        .iter()
        .filter(|id| !seen.contains_key(id))
        .count();
    let duplicated = seen.values().filter(|&&n| n > 1).count();
    println!(
        "{workers} worker(s): {:>7.0} jobs/s end to end ({total} jobs in {:.2} s)   claim p50 {:>7.1} µs  p99 {:>7.1} µs   lost {lost}  duplicated {duplicated}",
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        pct(&claims, 0.5),
        pct(&claims, 0.99),
    );
    Ok(())
}

/// One-at-a-time `enqueue` from `producers` concurrent connections.
async fn single_enqueue(total: usize, producers: usize) -> anyhow::Result<()> {
    let url = village_migrate::testing::fresh_database().await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let url = url.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let sql = NativeSql::connect(&url).await?;
            let cache = NativeCache::connect("redis://127.0.0.1:6379").await?;
            for _ in 0..total / producers {
                enqueue(
                    &sql,
                    &cache,
                    chrono::Utc::now(),
                    NewJob::new(Queue::Default, "bench.noop", serde_json::json!({})),
                )
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let n = total / producers * producers;
    println!(
        "single enqueue: {:>7.0} jobs/s ({n} jobs, one commit each, {producers} connections)",
        n as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}
