//! The drain loop a worker component runs when woken.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use village_platform::cache::Cache;
use village_platform::clock::Clock;
use village_platform::sql::{Sql, SqlError};

use crate::handlers::{JobError, Registry};
use crate::metrics::{HandlerStats, record};
use crate::policy::random_unit;
use crate::{JobStatus, Queue, RetryPolicy, claim, complete, fail, release, start};

/// What one drain did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DrainReport {
    pub claimed: usize,
    pub succeeded: usize,
    pub retried: usize,
    pub dead: usize,
    /// Put off to a later time ([`JobError::Defer`]), attempt given back.
    pub deferred: usize,
    /// Claimed but handed back unstarted when the time budget ran out.
    pub released: usize,
    /// Jobs this worker had lost (rescued elsewhere) by the time it finished.
    pub lost: usize,
    /// How long each claim statement took (for the benchmark and diagnostics).
    pub claim_latencies: Vec<Duration>,
}

/// Jobs claimed per round trip: big enough to amortise the claim, small
/// enough that a worker out of time hands back little.
pub const DEFAULT_BATCH: i64 = 50;

/// Claims and runs due jobs of `queue` (and the queues it yields to, see
/// [`Queue::drain_order`]) in batches, until none are due or `budget` is
/// spent. Successes of a batch are recorded in one statement.
#[allow(clippy::too_many_arguments)] // the ports, plus what makes this worker this worker
pub async fn drain(
    sql: &impl Sql,
    cache: &impl Cache,
    clock: &impl Clock,
    registry: &Registry<'_>,
    queue: Queue,
    worker: &str,
    budget: Duration,
    batch: i64,
) -> Result<DrainReport, SqlError> {
    let started = Instant::now();
    let mut report = DrainReport::default();
    let mut stats: BTreeMap<String, HandlerStats> = BTreeMap::new();
    // A worker's commits (each job's start, completions, failures, what its
    // handlers write) do not wait for the WAL flush. A Postgres crash may
    // lose the last fraction of a second of them — a suffix, in order, so
    // the state stays consistent — and delivery is at least once: those
    // jobs run again. Without it the per-job `start` costs a flush each.
    // The setting is the connection's session's; Spin and `village` reset
    // a pooled connection (`RESET ALL`) before another instance gets it.
    sql.execute("SET synchronous_commit = off", &[]).await?;
    'batches: while started.elapsed() < budget {
        let claim_started = Instant::now();
        let jobs = claim(sql, queue.drain_order(), worker, batch, clock.now()).await?;
        report.claim_latencies.push(claim_started.elapsed());
        if jobs.is_empty() {
            break;
        }
        report.claimed += jobs.len();
        // The claim just stamped every lock: renewal starts from here.
        let mut last_renewal = Instant::now();
        let mut done = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            if started.elapsed() >= budget {
                let rest: Vec<i64> = jobs[i..].iter().map(|j| j.id).collect();
                report.released += release(sql, &rest, worker).await? as usize;
                report.lost += complete_batch(sql, &done, worker, clock, &mut report).await?;
                break 'batches;
            }
            // The attempt counts from here, and only for this job: should
            // it kill the worker, the rest of the batch is not charged.
            let renew = last_renewal.elapsed() >= crate::store::RENEW_EVERY;
            if renew {
                last_renewal = Instant::now();
            }
            let Some(attempt) = start(sql, job.id, worker, clock.now(), renew).await? else {
                report.lost += 1;
                continue;
            };
            let job = &crate::Job {
                attempts: attempt,
                ..job.clone()
            };
            let t = Instant::now();
            let outcome = registry.run(job).await;
            let elapsed = t.elapsed();
            let entry = stats.entry(job.handler.clone()).or_default();
            entry.runs += 1;
            entry.micros += elapsed.as_micros() as u64;
            match outcome {
                Ok(()) => done.push(job.id),
                Err(JobError::Defer { until, reason }) => {
                    match crate::store::defer(sql, job.id, worker, until, &reason, clock.now())
                        .await?
                    {
                        true => report.deferred += 1,
                        false => report.lost += 1,
                    }
                }
                Err(err) => {
                    entry.failures += 1;
                    let policy = registry.policy(&job.handler).unwrap_or_default();
                    let retry_at = retry_time(&err, &policy, job.attempts, job.max_attempts, clock);
                    let text = format!(
                        "{}: {err}",
                        if matches!(err, JobError::Permanent(_)) {
                            "permanent"
                        } else {
                            "retryable"
                        }
                    );
                    match fail(sql, job, worker, &text, retry_at, clock.now()).await? {
                        Some(JobStatus::Dead) => report.dead += 1,
                        Some(_) => report.retried += 1,
                        None => report.lost += 1,
                    }
                    log_failure(job, &text, retry_at.is_none());
                }
            }
        }
        report.lost += complete_batch(sql, &done, worker, clock, &mut report).await?;
    }
    if !stats.is_empty()
        && let Err(e) = record(cache, &stats).await
    {
        village_platform::log::event(
            "WARNING",
            &format!("job metrics not recorded: {e}"),
            serde_json::json!({}),
        );
    }
    Ok(report)
}

/// Completes a batch; returns how many this worker no longer held.
async fn complete_batch(
    sql: &impl Sql,
    done: &[i64],
    worker: &str,
    clock: &impl Clock,
    report: &mut DrainReport,
) -> Result<usize, SqlError> {
    let n = complete(sql, done, worker, clock.now()).await? as usize;
    report.succeeded += n;
    Ok(done.len() - n)
}

fn retry_time(
    err: &JobError,
    policy: &RetryPolicy,
    attempts: i32,
    max_attempts: i32,
    clock: &impl Clock,
) -> Option<chrono::DateTime<chrono::Utc>> {
    match err {
        JobError::Permanent(_) => None,
        // Handled before a failure is recorded; a deferral is never one.
        JobError::Defer { until, .. } => Some(*until),
        JobError::Retry(_) if attempts >= max_attempts => None,
        JobError::Retry(_) => {
            let delay = policy.backoff(attempts, random_unit());
            chrono::Duration::from_std(delay)
                .ok()
                .map(|d| clock.now() + d)
        }
    }
}

/// One JSON line per failed attempt, carrying the trace id of whatever
/// enqueued the job (from its `traceparent` metadata) so the failure joins
/// the originating request's trace.
fn log_failure(job: &crate::Job, error: &str, dead: bool) {
    let trace_id = job
        .metadata
        .get("traceparent")
        .and_then(|v| v.as_str())
        .and_then(|tp| tp.split('-').nth(1))
        .map(str::to_owned);
    village_platform::log::event(
        if dead { "ERROR" } else { "WARNING" },
        error,
        serde_json::json!({
            "trace_id": trace_id,
            "job_id": job.id,
            "queue": job.queue.as_str(),
            "handler": job.handler,
            "attempt": job.attempts,
            "dead_lettered": dead,
        }),
    );
}
