//! The glue the job system's Spin components run: a queue's worker (Redis
//! trigger), the minute sweep and the retention purge (cron triggers).
//! Variables: `database_url`, `redis_url`, `worker_budget_ms`,
//! `job_lock_timeout_seconds`, `job_claim_lease_seconds`.

use std::time::Duration;

use village_platform::clock::Clock;
use village_platform::spin::Env;

use crate::{
    Queue, Registry, drain, due_queues, purge_finished, release_lapsed_claims, rescue_stale, store,
};

/// Frees the claimed, never-started jobs of workers that stopped renewing
/// their locks `job_claim_lease_seconds` ago (see `release_lapsed_claims`).
async fn release_lapsed(env: &Env) -> Result<usize, String> {
    let now = env.clock.now();
    let lease = i64::try_from(variable("job_claim_lease_seconds", 60)).unwrap_or(60);
    release_lapsed_claims(&env.sql, now - chrono::Duration::seconds(lease), now)
        .await
        .map(|ids| ids.len())
        .map_err(|e| format!("releasing lapsed claims failed: {e}"))
}

/// Finished jobs are kept this long for ops to look at, then purged.
const KEEP_SUCCEEDED_DAYS: i64 = 7;
const KEEP_DEAD_DAYS: i64 = 30;

fn variable(name: &str, default: u64) -> u64 {
    spin_sdk::variables::get(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn worker_id(component: &str) -> String {
    let mut bytes = [0u8; 6];
    let suffix = match getrandom::fill(&mut bytes) {
        Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        Err(_) => "unknown".into(),
    };
    format!("{component}:{suffix}")
}

/// A worker woke: drain its queue within the time budget, running jobs
/// with `registry` (the worker components build it with every domain's
/// handlers: `village_workers`).
pub async fn run_worker(
    component: &str,
    queue: Queue,
    env: &Env,
    registry: &Registry<'_>,
) -> Result<(), String> {
    let budget = Duration::from_millis(variable("worker_budget_ms", 25_000));
    let id = worker_id(component);
    // A worker that died in a job left the rest of its batch claimed: hand
    // it back before claiming, so it runs now rather than after a rescue.
    let freed = release_lapsed(env).await?;
    let report = drain(
        &env.sql,
        &env.cache,
        &env.clock,
        registry,
        queue,
        &id,
        budget,
        crate::DEFAULT_BATCH,
    )
    .await
    .map_err(|e| format!("drain of {queue} failed: {e}"))?;
    // Cache writes handlers put off (`Cache::defer`): a worker has no
    // answer to send first, so they run now.
    env.cache.run_deferred().await;
    village_platform::log::event(
        "INFO",
        "queue drained",
        serde_json::json!({
            "worker": id,
            "queue": queue.as_str(),
            "claimed": report.claimed,
            "succeeded": report.succeeded,
            "retried": report.retried,
            "dead": report.dead,
            "released": report.released,
            "lapsed_claims_freed": freed,
            "lost": report.lost,
        }),
    );
    Ok(())
}

/// Every minute: rescue locks held by workers that died, and wake every
/// queue with due work, so a lost wake-up only delays a job.
pub async fn sweep(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let now = env.clock.now();
    let timeout = i64::try_from(variable("job_lock_timeout_seconds", 300)).unwrap_or(300);
    let rescued = rescue_stale(&env.sql, now - chrono::Duration::seconds(timeout), now)
        .await
        .map_err(|e| format!("rescue failed: {e}"))?;
    let freed = release_lapsed(&env).await?;
    let due = due_queues(&env.sql, now)
        .await
        .map_err(|e| format!("due queues: {e}"))?;
    let mut woken = Vec::new();
    for q in due {
        match store::wake(&env.cache, q).await {
            Ok(()) => woken.push(q.as_str()),
            Err(e) => return Err(format!("wake-up of {q} failed: {e}")),
        }
    }
    village_platform::log::event(
        "INFO",
        "sweep done",
        serde_json::json!({
            "job": "jobs.sweep",
            "scheduled": scheduled,
            "rescued": rescued.len(),
            "lapsed_claims_freed": freed,
            "woken": woken,
        }),
    );
    Ok(())
}

/// Daily: purge succeeded jobs after 7 days and dead ones after 30.
pub async fn purge(scheduled: u64) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    let now = env.clock.now();
    let mut purged = 0;
    // In slices, so one run never holds a long transaction.
    for _ in 0..100 {
        let n = purge_finished(
            &env.sql,
            now - chrono::Duration::days(KEEP_SUCCEEDED_DAYS),
            now - chrono::Duration::days(KEEP_DEAD_DAYS),
            10_000,
        )
        .await
        .map_err(|e| format!("purge failed: {e}"))?;
        purged += n;
        if n < 10_000 {
            break;
        }
    }
    village_platform::log::event(
        "INFO",
        "retention purge done",
        serde_json::json!({
            "job": "jobs.retention",
            "scheduled": scheduled,
            "purged": purged,
        }),
    );
    Ok(())
}
