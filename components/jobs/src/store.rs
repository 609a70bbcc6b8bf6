//! Every state change of a job is one SQL statement, guarded by the lock
//! owner and status it expects, so a worker that lost its lock (rescued
//! after a stall) can no longer complete or fail the job behind the back of
//! the worker that took it over.

use chrono::{DateTime, Utc};
use serde::Serialize;
use village_platform::cache::Cache;
use village_platform::sql::{Row, Sql, SqlError, SqlValue};

use crate::job::COLUMNS;
use crate::{Job, JobId, JobStatus, NewJob, Queue};

/// Stored error texts are cut here: a stack is useful, a megabyte is not.
const MAX_ERROR_CHARS: usize = 4000;

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("no job {0}")]
    NotFound(JobId),
    #[error("{0}")]
    Conflict(String),
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

fn truncate(e: &str) -> String {
    e.chars().take(MAX_ERROR_CHARS).collect()
}

fn jobs(rows: Vec<Row>) -> Result<Vec<Job>, SqlError> {
    rows.iter().map(Job::try_from).collect()
}

/// Refuses a job no worker could run.
fn check(job: &NewJob) -> Result<(), JobsError> {
    if job.handler.is_empty() || job.max_attempts < 1 {
        return Err(JobsError::Conflict(
            "a job needs a handler and at least one attempt".into(),
        ));
    }
    Ok(())
}

/// The envelope stored beside the payload: the enqueuer's trace context.
fn metadata(job: &NewJob) -> serde_json::Value {
    match &job.traceparent {
        Some(tp) => serde_json::json!({ "traceparent": tp }),
        None => serde_json::json!({}),
    }
}

/// Enqueues a job and wakes its queue's worker. With an idempotency key
/// already held by a pending, running or succeeded job, returns that job's
/// id and enqueues nothing.
pub async fn enqueue(
    sql: &impl Sql,
    cache: &impl Cache,
    now: DateTime<Utc>,
    job: NewJob,
) -> Result<JobId, JobsError> {
    check(&job)?;
    let key = job
        .idempotency_key
        .clone()
        .map(SqlValue::Text)
        .unwrap_or(SqlValue::Null);
    let inserted = sql
        .query_opt(
            "INSERT INTO delayed_jobs (queue, handler, payload, metadata, priority, run_at, max_attempts, idempotency_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (idempotency_key) \
                 WHERE idempotency_key IS NOT NULL AND status IN ('pending', 'running', 'succeeded') \
             DO NOTHING \
             RETURNING id",
            &[
                text(job.queue.as_str()),
                text(&job.handler),
                SqlValue::Json(job.payload.clone()),
                SqlValue::Json(metadata(&job)),
                SqlValue::Int32(job.priority),
                SqlValue::Timestamp(job.run_at.unwrap_or(now)),
                SqlValue::Int32(job.max_attempts),
                key.clone(),
            ],
        )
        .await?;
    let id = match inserted {
        Some(row) => row.get::<i64>("id")?,
        None => sql
            .query_opt(
                "SELECT id FROM delayed_jobs WHERE idempotency_key = $1 \
                 AND status IN ('pending', 'running', 'succeeded')",
                &[key],
            )
            .await?
            .ok_or_else(|| {
                JobsError::Conflict(
                    "the job holding this idempotency key just changed; retry".into(),
                )
            })?
            .get("id")?,
    };
    wake_or_log(cache, job.queue).await;
    Ok(id)
}

/// Enqueues many jobs in one statement and one commit, then wakes each
/// queue once: for producers that create work in bulk (feed ingestion,
/// rollups). Jobs whose idempotency key is already held are skipped.
/// Returns the ids of the jobs created (in no particular order).
pub async fn enqueue_many(
    sql: &impl Sql,
    cache: &impl Cache,
    now: DateTime<Utc>,
    jobs: &[NewJob],
) -> Result<Vec<JobId>, JobsError> {
    jobs.iter().try_for_each(check)?;
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<serde_json::Value> = jobs
        .iter()
        .map(|j| {
            serde_json::json!({
                "queue": j.queue.as_str(),
                "handler": j.handler,
                "payload": j.payload,
                "metadata": metadata(j),
                "priority": j.priority,
                "run_at": j.run_at.unwrap_or(now),
                "max_attempts": j.max_attempts,
                "idempotency_key": j.idempotency_key,
            })
        })
        .collect();
    let inserted = sql
        .query(
            "INSERT INTO delayed_jobs (queue, handler, payload, metadata, priority, run_at, max_attempts, idempotency_key) \
             SELECT queue, handler, payload, metadata, priority, run_at, max_attempts, idempotency_key \
             FROM jsonb_to_recordset($1) AS x(queue text, handler text, payload jsonb, metadata jsonb, \
                 priority integer, run_at timestamp, max_attempts integer, idempotency_key text) \
             ON CONFLICT (idempotency_key) \
                 WHERE idempotency_key IS NOT NULL AND status IN ('pending', 'running', 'succeeded') \
             DO NOTHING \
             RETURNING id",
            &[SqlValue::Json(serde_json::Value::Array(rows))],
        )
        .await?;
    let ids = inserted
        .iter()
        .map(|r| r.get::<i64>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut queues: Vec<Queue> = jobs.iter().map(|j| j.queue).collect();
    queues.sort();
    queues.dedup();
    for q in queues {
        wake_or_log(cache, q).await;
    }
    Ok(ids)
}

/// Wakes a queue's workers after a change committed. A lost wake-up only
/// delays work until the minute sweep, so a Redis failure is logged, not
/// raised: callers' writes have already succeeded.
pub async fn wake_or_log(cache: &impl Cache, queue: Queue) {
    if let Err(e) = wake(cache, queue).await {
        village_platform::log::event(
            "WARNING",
            &format!("wake-up not published: {e}"),
            serde_json::json!({ "queue": queue.as_str() }),
        );
    }
}

/// Publishes a wake-up for a queue's worker, and for the workers that also
/// drain it (see [`Queue::drain_order`]).
pub async fn wake(
    cache: &impl Cache,
    queue: Queue,
) -> Result<(), village_platform::cache::CacheError> {
    cache
        .execute(
            "PUBLISH",
            &[crate::wake_channel(queue).into(), queue.as_str().into()],
        )
        .await?;
    Ok(())
}

/// Claims up to `limit` due jobs, taking the queues in the order given. A
/// claim is not an attempt: [`start`] counts it when the job runs.
pub async fn claim(
    sql: &impl Sql,
    queues: &[Queue],
    worker: &str,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Job>, SqlError> {
    let mut claimed = Vec::new();
    for queue in queues {
        let want = limit - claimed.len() as i64;
        if want <= 0 {
            break;
        }
        // One queue at a time keeps each claim an ordered walk of the partial
        // claim index, however many rows the table holds.
        let rows = sql
            .query(
                &format!(
                    "WITH picked AS ( \
                         SELECT id AS pid FROM delayed_jobs \
                         WHERE status = 'pending' AND queue = $1 AND run_at <= $2 \
                           AND NOT EXISTS (SELECT 1 FROM job_queue_controls c WHERE c.queue = $1) \
                         ORDER BY priority, run_at, id \
                         LIMIT $3 \
                         FOR UPDATE SKIP LOCKED) \
                     UPDATE delayed_jobs SET status = 'running', locked_by = $4, locked_at = $2, \
                         started_at = NULL, updated_at = $2 \
                     FROM picked WHERE id = picked.pid \
                     RETURNING {COLUMNS}"
                ),
                &[
                    text(queue.as_str()),
                    SqlValue::Timestamp(now),
                    SqlValue::Int64(want),
                    text(worker),
                ],
            )
            .await?;
        let mut batch = jobs(rows)?;
        batch.sort_by_key(|j| (j.priority, j.run_at, j.id));
        claimed.extend(batch);
    }
    Ok(claimed)
}

/// Marks jobs this worker holds as succeeded; returns how many it held.
pub async fn complete(
    sql: &impl Sql,
    ids: &[JobId],
    worker: &str,
    now: DateTime<Utc>,
) -> Result<u64, SqlError> {
    if ids.is_empty() {
        return Ok(0);
    }
    sql.execute(
        "UPDATE delayed_jobs SET status = 'succeeded', finished_at = $3, locked_by = NULL, locked_at = NULL, \
             updated_at = $3 \
         WHERE id = ANY($1) AND locked_by = $2 AND status = 'running'",
        &[SqlValue::Int64Array(ids.to_vec()), text(worker), SqlValue::Timestamp(now)],
    )
    .await
}

/// Records a failed attempt: back to `pending` at `retry_at`, or `dead`
/// when `retry_at` is `None`. Returns the new status, or `None` if this
/// worker no longer held the job.
pub async fn fail(
    sql: &impl Sql,
    job: &Job,
    worker: &str,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<JobStatus>, SqlError> {
    let status = if retry_at.is_some() {
        JobStatus::Pending
    } else {
        JobStatus::Dead
    };
    let n = sql
        .execute(
            "UPDATE delayed_jobs SET status = $3, run_at = $4, locked_by = NULL, locked_at = NULL, \
                 last_error = $5, \
                 error_chain = error_chain || jsonb_build_array(jsonb_build_object( \
                     'attempt', attempts, 'at', utc_text($6::timestamp), 'error', $5::text)), \
                 finished_at = CASE WHEN $3 = 'dead' THEN $6::timestamp END, updated_at = $6 \
             WHERE id = $1 AND locked_by = $2 AND status = 'running'",
            &[
                SqlValue::Int64(job.id),
                text(worker),
                text(status.as_str()),
                SqlValue::Timestamp(retry_at.unwrap_or(job.run_at)),
                SqlValue::Text(truncate(error)),
                SqlValue::Timestamp(now),
            ],
        )
        .await?;
    Ok((n == 1).then_some(status))
}

/// Marks `job` started by `worker`: its attempt counts from here. With
/// `renew`, the lock of everything else the worker holds is renewed too
/// (the worker is alive; see `release_lapsed_claims`) — the drain does that
/// only every [`RENEW_EVERY`], as it rewrites every row the worker holds.
/// Returns the job's attempt number, or `None` if the worker no longer
/// holds it (its claim lapsed and another worker has it).
pub async fn start(
    sql: &impl Sql,
    job: JobId,
    worker: &str,
    now: DateTime<Utc>,
    renew: bool,
) -> Result<Option<i32>, SqlError> {
    let params = [SqlValue::Int64(job), text(worker), SqlValue::Timestamp(now)];
    let row = if renew {
        sql.query_opt(
            "WITH held AS ( \
                 UPDATE delayed_jobs SET locked_at = $3, updated_at = $3, \
                     attempts = attempts + (id = $1)::int, \
                     started_at = CASE WHEN id = $1 THEN $3::timestamp ELSE started_at END \
                 WHERE locked_by = $2 AND status = 'running' \
                 RETURNING id, attempts) \
             SELECT attempts FROM held WHERE id = $1",
            &params,
        )
        .await?
    } else {
        sql.query_opt(
            "UPDATE delayed_jobs SET attempts = attempts + 1, started_at = $3, locked_at = $3, \
                 updated_at = $3 \
             WHERE id = $1 AND locked_by = $2 AND status = 'running' RETURNING attempts",
            &params,
        )
        .await?
    };
    row.map(|r| r.get("attempts")).transpose()
}

/// How often a draining worker renews the locks of the jobs it holds: well
/// inside the claim lease (`job_claim_lease_seconds`, 60 s by default).
pub const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Gives back claimed jobs this worker will not start (its time budget ran
/// out): they return to `pending`, no attempt counted.
pub async fn release(sql: &impl Sql, ids: &[JobId], worker: &str) -> Result<u64, SqlError> {
    if ids.is_empty() {
        return Ok(0);
    }
    sql.execute(
        "UPDATE delayed_jobs SET status = 'pending', locked_by = NULL, locked_at = NULL \
         WHERE id = ANY($1) AND locked_by = $2 AND status = 'running' AND started_at IS NULL",
        &[SqlValue::Int64Array(ids.to_vec()), text(worker)],
    )
    .await
}

/// Renews the locks of the jobs in `ids` that `worker` still holds (it is
/// alive and running them): what a long-running consumer (the screenshot
/// host, whose captures take seconds) calls every [`RENEW_EVERY`]. Only the
/// jobs it names: one it gave up on stays unrenewed, so the sweeper can
/// rescue it. Returns how many it held.
pub async fn renew(
    sql: &impl Sql,
    ids: &[JobId],
    worker: &str,
    now: DateTime<Utc>,
) -> Result<u64, SqlError> {
    if ids.is_empty() {
        return Ok(0);
    }
    sql.execute(
        "UPDATE delayed_jobs SET locked_at = $3 \
         WHERE id = ANY($1) AND locked_by = $2 AND status = 'running'",
        &[
            SqlValue::Int64Array(ids.to_vec()),
            text(worker),
            SqlValue::Timestamp(now),
        ],
    )
    .await
}

/// Hands jobs `worker` holds back to the queue, started or not, as if this
/// worker had never run them: `pending` now, and a started job's attempt
/// given back. For a consumer that stops (shuts down, loses its browser)
/// through no fault of the job. Returns how many it still held.
pub async fn hand_back(
    sql: &impl Sql,
    ids: &[JobId],
    worker: &str,
    now: DateTime<Utc>,
) -> Result<u64, SqlError> {
    if ids.is_empty() {
        return Ok(0);
    }
    sql.execute(
        "UPDATE delayed_jobs SET status = 'pending', run_at = $3, \
             attempts = attempts - (started_at IS NOT NULL)::int, started_at = NULL, \
             locked_by = NULL, locked_at = NULL, updated_at = $3 \
         WHERE id = ANY($1) AND locked_by = $2 AND status = 'running'",
        &[
            SqlValue::Int64Array(ids.to_vec()),
            text(worker),
            SqlValue::Timestamp(now),
        ],
    )
    .await
}

/// Puts off a job `worker` is running until `until` ([`JobError::Defer`]):
/// `pending` again with its attempt given back and the reason noted in
/// `last_error` (the ops view shows why it waits). Returns whether the
/// worker still held it.
///
/// [`JobError::Defer`]: crate::handlers::JobError::Defer
pub async fn defer(
    sql: &impl Sql,
    id: JobId,
    worker: &str,
    until: DateTime<Utc>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, SqlError> {
    let n = sql
        .execute(
            "UPDATE delayed_jobs SET status = 'pending', run_at = $3, \
                 attempts = greatest(attempts - 1, 0), started_at = NULL, \
                 locked_by = NULL, locked_at = NULL, last_error = $4, updated_at = $5 \
             WHERE id = $1 AND locked_by = $2 AND status = 'running'",
            &[
                SqlValue::Int64(id),
                text(worker),
                SqlValue::Timestamp(until),
                SqlValue::Text(truncate(&format!("deferred: {reason}"))),
                SqlValue::Timestamp(now),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Frees claimed jobs that never started and whose worker has not renewed
/// its lock since `cutoff` (it died — in another job, say): back to
/// `pending` at once, their attempts untouched. Returns their ids.
pub async fn release_lapsed_claims(
    sql: &impl Sql,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<JobId>, SqlError> {
    let rows = sql
        .query(
            "UPDATE delayed_jobs SET status = 'pending', locked_by = NULL, locked_at = NULL, \
                 updated_at = $2 \
             WHERE status = 'running' AND started_at IS NULL AND locked_at < $1 \
             RETURNING id",
            &[SqlValue::Timestamp(cutoff), SqlValue::Timestamp(now)],
        )
        .await?;
    rows.iter().map(|r| r.get("id")).collect()
}

/// Frees started jobs whose worker stopped holding them (locked before
/// `cutoff`): back to `pending` now, or `dead` if that was their last
/// attempt. (Claimed jobs that never started: [`release_lapsed_claims`].)
pub async fn rescue_stale(
    sql: &impl Sql,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<(JobId, JobStatus)>, SqlError> {
    let rows = sql
        .query(
            "UPDATE delayed_jobs SET \
                 status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END, \
                 last_error = 'the worker running this job stopped (lock held by ' || locked_by || ' since ' || utc_text(locked_at) || ')', \
                 error_chain = error_chain || jsonb_build_array(jsonb_build_object( \
                     'attempt', attempts, 'at', utc_text($2::timestamp), 'error', 'worker lost: ' || locked_by)), \
                 finished_at = CASE WHEN attempts >= max_attempts THEN $2::timestamp END, \
                 run_at = $2, locked_by = NULL, locked_at = NULL, updated_at = $2 \
             WHERE status = 'running' AND started_at IS NOT NULL AND locked_at < $1 \
             RETURNING id, status",
            &[SqlValue::Timestamp(cutoff), SqlValue::Timestamp(now)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let status: String = r.get("status")?;
            Ok((
                r.get("id")?,
                JobStatus::parse(&status).ok_or_else(|| SqlError::Decode(status.clone()))?,
            ))
        })
        .collect()
}

/// Queues with due, pending jobs that are not paused: what the sweep wakes.
pub async fn due_queues(sql: &impl Sql, now: DateTime<Utc>) -> Result<Vec<Queue>, SqlError> {
    let rows = sql
        .query(
            "SELECT DISTINCT queue FROM delayed_jobs j \
             WHERE status = 'pending' AND run_at <= $1 \
               AND NOT EXISTS (SELECT 1 FROM job_queue_controls c WHERE c.queue = j.queue)",
            &[SqlValue::Timestamp(now)],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get::<String>("queue").ok().and_then(|q| Queue::parse(&q)))
        .collect())
}

pub async fn pause(
    sql: &impl Sql,
    queue: Queue,
    actor: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, SqlError> {
    Ok(sql
        .execute(
            "INSERT INTO job_queue_controls (queue, paused_by, reason, paused_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (queue) DO NOTHING",
            &[text(queue.as_str()), text(actor), text(reason), SqlValue::Timestamp(now)],
        )
        .await?
        == 1)
}

pub async fn resume(sql: &impl Sql, queue: Queue) -> Result<bool, SqlError> {
    Ok(sql
        .execute(
            "DELETE FROM job_queue_controls WHERE queue = $1",
            &[text(queue.as_str())],
        )
        .await?
        == 1)
}

/// Ops: puts a dead (or waiting) job back in line to run now, with fresh attempts.
pub async fn requeue(sql: &impl Sql, id: JobId, now: DateTime<Utc>) -> Result<Job, JobsError> {
    let row = sql
        .query_opt(
            &format!(
                "UPDATE delayed_jobs SET status = 'pending', run_at = $2, attempts = 0, finished_at = NULL, \
                     updated_at = $2 \
                 WHERE id = $1 AND status IN ('dead', 'pending') \
                 RETURNING {COLUMNS}"
            ),
            &[SqlValue::Int64(id), SqlValue::Timestamp(now)],
        )
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                JobsError::Conflict("another live job holds this job's idempotency key".into())
            } else {
                JobsError::Sql(e)
            }
        })?;
    match row {
        Some(r) => Ok(Job::try_from(&r)?),
        None => Err(match find(sql, id).await? {
            Some(j) => JobsError::Conflict(format!(
                "job {id} is {}; only dead or pending jobs can be requeued",
                j.status.as_str()
            )),
            None => JobsError::NotFound(id),
        }),
    }
}

/// Ops: deletes a job that is not running.
pub async fn delete(sql: &impl Sql, id: JobId) -> Result<Job, JobsError> {
    let row = sql
        .query_opt(
            &format!(
                "DELETE FROM delayed_jobs WHERE id = $1 AND status <> 'running' RETURNING {COLUMNS}"
            ),
            &[SqlValue::Int64(id)],
        )
        .await?;
    match row {
        Some(r) => Ok(Job::try_from(&r)?),
        None => Err(match find(sql, id).await? {
            Some(_) => JobsError::Conflict(format!(
                "job {id} is running; wait for it or pause its queue"
            )),
            None => JobsError::NotFound(id),
        }),
    }
}

pub async fn find(sql: &impl Sql, id: JobId) -> Result<Option<Job>, SqlError> {
    sql.query_opt(
        &format!("SELECT {COLUMNS} FROM delayed_jobs WHERE id = $1"),
        &[SqlValue::Int64(id)],
    )
    .await?
    .map(|r| Job::try_from(&r))
    .transpose()
}

/// Retention: deletes succeeded jobs finished before `succeeded_before` and
/// dead jobs finished before `dead_before`, at most `limit` rows per call.
pub async fn purge_finished(
    sql: &impl Sql,
    succeeded_before: DateTime<Utc>,
    dead_before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, SqlError> {
    sql.execute(
        "DELETE FROM delayed_jobs WHERE id IN ( \
             SELECT id FROM delayed_jobs \
             WHERE (status = 'succeeded' AND finished_at < $1) OR (status = 'dead' AND finished_at < $2) \
             LIMIT $3)",
        &[SqlValue::Timestamp(succeeded_before), SqlValue::Timestamp(dead_before), SqlValue::Int64(limit)],
    )
    .await
}

/// One queue's state, for ops and metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStats {
    pub queue: String,
    pub pending: i64,
    pub due: i64,
    pub running: i64,
    pub succeeded: i64,
    pub dead: i64,
    pub oldest_due_at: Option<DateTime<Utc>>,
    pub last_finished_at: Option<DateTime<Utc>>,
    pub paused: Option<Paused>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paused {
    pub by: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

pub async fn queue_stats(sql: &impl Sql, now: DateTime<Utc>) -> Result<Vec<QueueStats>, SqlError> {
    let rows = sql
        .query(
            "SELECT q.queue, \
                 count(j.id) FILTER (WHERE j.status = 'pending') AS pending, \
                 count(j.id) FILTER (WHERE j.status = 'pending' AND j.run_at <= $1) AS due, \
                 count(j.id) FILTER (WHERE j.status = 'running') AS running, \
                 count(j.id) FILTER (WHERE j.status = 'succeeded') AS succeeded, \
                 count(j.id) FILTER (WHERE j.status = 'dead') AS dead, \
                 min(j.run_at) FILTER (WHERE j.status = 'pending' AND j.run_at <= $1) AS oldest_due_at, \
                 max(j.finished_at) AS last_finished_at, \
                 c.paused_by, c.reason, c.paused_at \
             FROM unnest(ARRAY['HIGH', 'DEFAULT', 'LOW', 'BULK', 'SCREENSHOT']) WITH ORDINALITY AS q(queue, n) \
             LEFT JOIN delayed_jobs j ON j.queue = q.queue \
             LEFT JOIN job_queue_controls c ON c.queue = q.queue \
             GROUP BY q.queue, q.n, c.paused_by, c.reason, c.paused_at \
             ORDER BY q.n",
            &[SqlValue::Timestamp(now)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let paused = match (
                r.get::<Option<String>>("paused_by")?,
                r.get::<Option<String>>("reason")?,
                r.get::<Option<DateTime<Utc>>>("paused_at")?,
            ) {
                (Some(by), Some(reason), Some(at)) => Some(Paused { by, reason, at }),
                _ => None,
            };
            Ok(QueueStats {
                queue: r.get("queue")?,
                pending: r.get("pending")?,
                due: r.get("due")?,
                running: r.get("running")?,
                succeeded: r.get("succeeded")?,
                dead: r.get("dead")?,
                oldest_due_at: r.get("oldest_due_at")?,
                last_finished_at: r.get("last_finished_at")?,
                paused,
            })
        })
        .collect()
}

/// The most recent failures: dead jobs and jobs waiting to retry.
pub async fn recent_failures(
    sql: &impl Sql,
    queue: Option<Queue>,
    limit: i64,
) -> Result<Vec<Job>, SqlError> {
    let rows = sql
        .query(
            &format!(
                "SELECT {COLUMNS} FROM delayed_jobs \
                 WHERE last_error IS NOT NULL AND status IN ('dead', 'pending') \
                   AND ($1::text IS NULL OR queue = $1) \
                 ORDER BY updated_at DESC LIMIT $2"
            ),
            &[
                queue.map(|q| text(q.as_str())).unwrap_or(SqlValue::Null),
                SqlValue::Int64(limit),
            ],
        )
        .await?;
    jobs(rows)
}
