//! The job system against the real Postgres and Redis, each test in a fresh
//! database, time controlled by a fixed clock where it matters.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use village_jobs::{
    Job, JobError, JobHandler, JobStatus, NewJob, Queue, Registry, RetryPolicy, claim, complete,
    drain, enqueue, pause, release_lapsed_claims, rescue_stale, resume, start,
};
use village_platform::clock::FixedClock;
use village_platform::native::{NativeCache, NativeSql};
use village_platform::sql::{Sql, SqlValue};

const REDIS: &str = "redis://127.0.0.1:6379";

async fn db() -> String {
    village_migrate::testing::fresh_database()
        .await
        .expect("test database")
}

async fn sql(url: &str) -> NativeSql {
    NativeSql::connect(url).await.expect("connect")
}

async fn cache() -> NativeCache {
    NativeCache::connect(REDIS).await.expect("redis")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// Drains `queue` once as worker `w` at time `at` (10 s budget, batches of 10).
async fn drain_at(
    sql: &NativeSql,
    redis: &NativeCache,
    at: DateTime<Utc>,
    registry: &Registry<'_>,
    queue: Queue,
) -> village_jobs::DrainReport {
    drain(
        sql,
        redis,
        &FixedClock(at),
        registry,
        queue,
        "w",
        Duration::from_secs(10),
        10,
    )
    .await
    .expect("drain")
}

/// Enqueues a job with an empty payload at `at`.
async fn job(sql: &NativeSql, redis: &NativeCache, at: DateTime<Utc>, new: NewJob) -> i64 {
    enqueue(sql, redis, at, new).await.expect("enqueue")
}

/// A handler that records which jobs it ran and answers with `outcome`.
struct Recorder {
    name: &'static str,
    seen: Rc<RefCell<Vec<i64>>>,
    outcome: fn(&Job) -> Result<(), JobError>,
    policy: RetryPolicy,
}

impl Recorder {
    fn new(name: &'static str, outcome: fn(&Job) -> Result<(), JobError>) -> Self {
        Self {
            name,
            seen: Rc::default(),
            outcome,
            policy: RetryPolicy::default(),
        }
    }
}

impl JobHandler for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn policy(&self) -> RetryPolicy {
        self.policy
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        self.seen.borrow_mut().push(job.id);
        (self.outcome)(job)
    }
}

async fn status_of(sql: &NativeSql, id: i64) -> (String, i32, DateTime<Utc>, serde_json::Value) {
    let row = sql
        .query_opt(
            "SELECT status, attempts, run_at, error_chain FROM delayed_jobs WHERE id = $1",
            &[SqlValue::Int64(id)],
        )
        .await
        .expect("query")
        .expect("job exists");
    (
        row.get("status").expect("status"),
        row.get("attempts").expect("attempts"),
        row.get("run_at").expect("run_at"),
        row.get("error_chain").expect("chain"),
    )
}

#[tokio::test]
async fn concurrent_workers_run_every_job_exactly_once() {
    let url = db().await;
    let setup = sql(&url).await;
    let redis = cache().await;
    let now = Utc::now();
    let mut ids = Vec::new();
    for i in 0..2000 {
        let queue = if i % 4 == 0 {
            Queue::High
        } else {
            Queue::Default
        };
        ids.push(
            enqueue(
                &setup,
                &redis,
                now,
                NewJob::new(queue, "count", serde_json::json!({ "n": i })),
            )
            .await
            .expect("enqueue"),
        );
    }
    let seen: Rc<RefCell<Vec<i64>>> = Rc::default();
    let mut workers = Vec::new();
    for w in 0..4 {
        let conn = sql(&url).await;
        let seen = seen.clone();
        workers.push(async move {
            let handler = Recorder {
                seen,
                ..Recorder::new("count", |_| Ok(()))
            };
            let registry = Registry::new().with(handler);
            let clock = village_platform::clock::SystemClock;
            let cache = cache().await;
            drain(
                &conn,
                &cache,
                &clock,
                &registry,
                Queue::Default,
                &format!("w{w}"),
                Duration::from_secs(120),
                50,
            )
            .await
            .expect("drain")
        });
    }
    let reports = futures::future::join_all(workers).await;
    let total: usize = reports.iter().map(|r| r.succeeded).sum();
    assert_eq!(total, 2000, "{reports:?}");
    assert!(
        reports.iter().filter(|r| r.succeeded > 0).count() >= 2,
        "the work was shared: {reports:?}"
    );
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for id in seen.borrow().iter() {
        *counts.entry(*id).or_default() += 1;
    }
    assert_eq!(counts.len(), ids.len(), "no job lost");
    assert!(counts.values().all(|&c| c == 1), "no job ran twice");
    let rows = setup
        .query(
            "SELECT count(*) AS n FROM delayed_jobs WHERE status <> 'succeeded'",
            &[],
        )
        .await
        .expect("count");
    assert_eq!(rows[0].get::<i64>("n").expect("n"), 0);
}

#[tokio::test]
async fn a_job_whose_worker_died_is_rescued_and_completed_once() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    let now = t0();
    let id = job(
        &sql,
        &redis,
        now,
        NewJob::new(Queue::Default, "work", serde_json::json!({})),
    )
    .await;
    // Worker A claims and starts the job, then dies without finishing.
    let claimed = claim(&sql, &[Queue::Default], "worker-a", 10, now)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        start(&sql, id, "worker-a", now, false)
            .await
            .expect("start"),
        Some(1)
    );
    // Nobody else can take it while the lock is fresh.
    assert!(
        claim(&sql, &[Queue::Default], "worker-b", 10, now)
            .await
            .expect("claim")
            .is_empty()
    );
    // Five minutes later the sweep rescues locks older than five minutes.
    let later = now + chrono::Duration::minutes(6);
    let rescued = rescue_stale(&sql, later - chrono::Duration::minutes(5), later)
        .await
        .expect("rescue");
    assert_eq!(rescued, vec![(id, JobStatus::Pending)]);
    let handler = Recorder::new("work", |_| Ok(()));
    let seen = handler.seen.clone();
    let registry = Registry::new().with(handler);
    let report = drain(
        &sql,
        &redis,
        &FixedClock(later),
        &registry,
        Queue::Default,
        "worker-b",
        Duration::from_secs(10),
        10,
    )
    .await
    .expect("drain");
    assert_eq!(report.succeeded, 1);
    assert_eq!(*seen.borrow(), vec![id]);
    // Worker A comes back from the dead: it no longer holds the job.
    assert_eq!(
        complete(&sql, &[id], "worker-a", later)
            .await
            .expect("complete"),
        0
    );
    let (status, attempts, _, chain) = status_of(&sql, id).await;
    assert_eq!(status, "succeeded");
    assert_eq!(attempts, 2, "the lost run counted as an attempt");
    assert_eq!(
        chain.as_array().map(Vec::len),
        Some(1),
        "the lost worker is in the error chain"
    );
}

/// A worker that dies inside one job (a trap: out of memory, a panic)
/// charges the attempt to that job alone; the rest of its batch goes back
/// to `pending` once its claim lapses — a lease, not the lock timeout — with
/// no attempt counted, and a poison job reaches the dead letter queue on
/// its own.
#[tokio::test]
async fn a_worker_dying_in_one_job_charges_only_that_job() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    let mut now = t0();
    let poison = job(
        &sql,
        &redis,
        now,
        NewJob::new(Queue::Default, "poison", serde_json::json!({}))
            .priority(-1)
            .max_attempts(3),
    )
    .await;
    let mut innocent = Vec::new();
    for i in 0..5 {
        innocent.push(
            job(
                &sql,
                &redis,
                now,
                NewJob::new(Queue::Default, "work", serde_json::json!({ "i": i })),
            )
            .await,
        );
    }
    let lease = chrono::Duration::seconds(60);
    let timeout = chrono::Duration::minutes(5);
    for round in 1..=3 {
        // A worker claims the whole batch, starts the poison job first, and
        // dies in it (nothing after `start` runs).
        let worker = format!("dies-{round}");
        let batch = claim(&sql, &[Queue::Default], &worker, 10, now)
            .await
            .expect("claim");
        assert_eq!(batch.first().map(|j| j.id), Some(poison), "round {round}");
        start(&sql, poison, &worker, now, true)
            .await
            .expect("start");
        // Within the lease nothing is handed back: the worker may be alive.
        let early = release_lapsed_claims(&sql, now - lease, now + chrono::Duration::seconds(30))
            .await
            .expect("release");
        assert!(early.is_empty(), "{early:?}");
        // A lease later the unstarted rest of the batch is free again.
        now += chrono::Duration::seconds(61);
        let mut freed = release_lapsed_claims(&sql, now - lease, now)
            .await
            .expect("release");
        freed.sort();
        assert_eq!(freed, innocent, "round {round}");
        for id in &innocent {
            let (status, attempts, _, _) = status_of(&sql, *id).await;
            assert_eq!((status.as_str(), attempts), ("pending", 0), "round {round}");
        }
        // The poison job is rescued after the lock timeout, its attempt
        // counted; on the third it is dead.
        now += timeout;
        let rescued = rescue_stale(&sql, now - timeout, now)
            .await
            .expect("rescue");
        assert_eq!(rescued.len(), 1, "only the job that was running");
        let (status, attempts, _, _) = status_of(&sql, poison).await;
        assert_eq!(attempts, round);
        assert_eq!(status, if round == 3 { "dead" } else { "pending" });
    }
    // The innocent jobs then run, each on its first attempt.
    let registry = Registry::new().with(Recorder::new("work", |_| Ok(())));
    let report = drain_at(&sql, &redis, now, &registry, Queue::Default).await;
    assert_eq!(report.succeeded, 5);
    for id in &innocent {
        let (status, attempts, _, _) = status_of(&sql, *id).await;
        assert_eq!((status.as_str(), attempts), ("succeeded", 1));
    }
}

#[tokio::test]
async fn failures_back_off_exponentially_with_jitter_then_dead_letter() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    let start = t0();
    let id = job(
        &sql,
        &redis,
        start,
        NewJob::new(Queue::Default, "flaky", serde_json::json!({"keep": "me"})).max_attempts(4),
    )
    .await;
    let mut handler = Recorder::new("flaky", |_| {
        Err(JobError::Retry("upstream said 503".into()))
    });
    handler.policy = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_secs(10),
        max_delay: Duration::from_secs(3600),
        jitter: 0.2,
    };
    let registry = Registry::new().with(handler);
    let mut now = start;
    for (attempt, base) in [(1, 10.0), (2, 20.0), (3, 40.0)] {
        let report = drain_at(&sql, &redis, now, &registry, Queue::Default).await;
        assert_eq!(report.retried, 1, "attempt {attempt}");
        let (status, attempts, run_at, _) = status_of(&sql, id).await;
        assert_eq!((status.as_str(), attempts), ("pending", attempt));
        let delay = (run_at - now).num_milliseconds() as f64 / 1000.0;
        assert!(
            (base * 0.8..=base * 1.2).contains(&delay),
            "attempt {attempt}: delay {delay}s, expected {base}s ± 20%"
        );
        // Not due yet: nothing to claim a moment before run_at.
        let early = drain_at(
            &sql,
            &redis,
            run_at - chrono::Duration::seconds(1),
            &registry,
            Queue::Default,
        )
        .await;
        assert_eq!(early.claimed, 0);
        now = run_at;
    }
    let last = drain_at(&sql, &redis, now, &registry, Queue::Default).await;
    assert_eq!(last.dead, 1);
    let (status, attempts, _, chain) = status_of(&sql, id).await;
    assert_eq!((status.as_str(), attempts), ("dead", 4));
    let chain = chain.as_array().expect("array").clone();
    assert_eq!(chain.len(), 4, "every attempt's error is kept");
    assert!(
        chain[3]["error"]
            .as_str()
            .expect("text")
            .contains("upstream said 503")
    );
    let payload: serde_json::Value = sql
        .query_opt(
            "SELECT payload FROM delayed_jobs WHERE id = $1",
            &[SqlValue::Int64(id)],
        )
        .await
        .expect("q")
        .expect("row")
        .get("payload")
        .expect("payload");
    assert_eq!(payload["keep"], "me", "the dead letter keeps its payload");
}

#[derive(serde::Deserialize)]
#[allow(dead_code)] // parsed only to prove the payload's shape
struct Greeting {
    name: String,
}

#[tokio::test]
async fn a_malformed_payload_is_dead_lettered_at_once_with_a_clear_error() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    let id = job(
        &sql,
        &redis,
        t0(),
        NewJob::new(Queue::Default, "greet", serde_json::json!({"nom": 1})),
    )
    .await;
    let handler = Recorder::new("greet", |job| {
        serde_json::from_value::<Greeting>(job.payload.clone())
            .map(drop)
            .map_err(JobError::malformed)
    });
    let registry = Registry::new().with(handler);
    let report = drain_at(&sql, &redis, t0(), &registry, Queue::Default).await;
    assert_eq!((report.dead, report.retried), (1, 0), "no retry loop");
    let (status, attempts, _, chain) = status_of(&sql, id).await;
    assert_eq!((status.as_str(), attempts), ("dead", 1));
    let error = chain[0]["error"].as_str().expect("text").to_owned();
    assert!(
        error.contains("malformed payload") && error.contains("name"),
        "{error}"
    );
}

#[tokio::test]
async fn a_job_naming_an_unknown_handler_is_dead_lettered() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    let id = job(
        &sql,
        &redis,
        t0(),
        NewJob::new(Queue::Low, "no.such.handler", serde_json::json!({})),
    )
    .await;
    let registry = Registry::new();
    drain_at(&sql, &redis, t0(), &registry, Queue::Low).await;
    let (status, _, _, chain) = status_of(&sql, id).await;
    assert_eq!(status, "dead");
    assert!(
        chain[0]["error"]
            .as_str()
            .expect("text")
            .contains("no handler named `no.such.handler`")
    );
}

#[tokio::test]
async fn a_paused_queue_is_not_claimed_until_resumed() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    job(
        &sql,
        &redis,
        t0(),
        NewJob::new(Queue::Default, "work", serde_json::json!({})),
    )
    .await;
    assert!(
        pause(&sql, Queue::Default, "ops", "database failover", t0())
            .await
            .expect("pause")
    );
    let registry = Registry::new().with(Recorder::new("work", |_| Ok(())));
    let paused = drain_at(&sql, &redis, t0(), &registry, Queue::Default).await;
    assert_eq!(paused.claimed, 0);
    assert!(
        village_jobs::due_queues(&sql, t0())
            .await
            .expect("due")
            .is_empty(),
        "the sweep does not wake a paused queue"
    );
    assert!(resume(&sql, Queue::Default).await.expect("resume"));
    let resumed = drain_at(&sql, &redis, t0(), &registry, Queue::Default).await;
    assert_eq!(resumed.succeeded, 1);
}

#[tokio::test]
async fn bulk_workers_take_high_and_default_work_first() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    let now = t0();
    let mut bulk = Vec::new();
    for _ in 0..5 {
        bulk.push(
            job(
                &sql,
                &redis,
                now,
                NewJob::new(Queue::Bulk, "w", serde_json::json!({})),
            )
            .await,
        );
    }
    let later = now + chrono::Duration::seconds(1);
    let mut high = Vec::new();
    for _ in 0..3 {
        high.push(
            job(
                &sql,
                &redis,
                later,
                NewJob::new(Queue::High, "w", serde_json::json!({})),
            )
            .await,
        );
    }
    let default = job(
        &sql,
        &redis,
        later,
        NewJob::new(Queue::Default, "w", serde_json::json!({})),
    )
    .await;
    let handler = Recorder::new("w", |_| Ok(()));
    let seen = handler.seen.clone();
    let registry = Registry::new().with(handler);
    drain(
        &sql,
        &redis,
        &FixedClock(later),
        &registry,
        Queue::Bulk,
        "bulk-worker",
        Duration::from_secs(10),
        2,
    )
    .await
    .expect("drain");
    let order = seen.borrow().clone();
    let mut expected = high.clone();
    expected.push(default);
    expected.extend(bulk);
    assert_eq!(
        order, expected,
        "HIGH, then DEFAULT, then BULK, though BULK was enqueued first"
    );
}

#[tokio::test]
async fn enqueueing_twice_with_one_idempotency_key_makes_one_job() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    let job = || {
        NewJob::new(Queue::Default, "feeds.refresh", serde_json::json!({}))
            .idempotency_key("feeds:2026-11-27T12:05")
    };
    let a = enqueue(&sql, &redis, t0(), job()).await.expect("first");
    let b = enqueue(&sql, &redis, t0(), job()).await.expect("second");
    assert_eq!(a, b);
    // Still one after it ran: a late double fire of the same slot is a no-op.
    let registry = Registry::new().with(Recorder::new("feeds.refresh", |_| Ok(())));
    drain_at(&sql, &redis, t0(), &registry, Queue::Default).await;
    let c = enqueue(&sql, &redis, t0(), job()).await.expect("third");
    assert_eq!(a, c);
    let rows = sql
        .query("SELECT count(*) AS n FROM delayed_jobs", &[])
        .await
        .expect("count");
    assert_eq!(rows[0].get::<i64>("n").expect("n"), 1);
}

#[tokio::test]
async fn enqueue_publishes_a_wake_up_for_the_queue() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    let client = redis::Client::open(REDIS).expect("client");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub
        .subscribe(village_jobs::wake_channel(Queue::Low))
        .await
        .expect("subscribe");
    let mut messages = pubsub.on_message();
    job(
        &sql,
        &redis,
        t0(),
        NewJob::new(Queue::Low, "w", serde_json::json!({})),
    )
    .await;
    let msg = tokio::time::timeout(Duration::from_secs(5), messages.next())
        .await
        .expect("a wake-up within 5 s")
        .expect("message");
    assert_eq!(msg.get_channel_name(), "village-jobs-low");
    assert_eq!(msg.get_payload_bytes(), b"LOW");
}

/// Sleeps `ms` milliseconds per job, to spend a worker's budget.
struct Slow(u64);

impl JobHandler for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }

    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(self.0)).await;
        Ok(())
    }
}

#[tokio::test]
async fn a_worker_out_of_time_hands_back_what_it_did_not_start() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    for _ in 0..10 {
        job(
            &sql,
            &redis,
            t0(),
            NewJob::new(Queue::Default, "slow", serde_json::json!({})),
        )
        .await;
    }
    let registry = Registry::new().with(Slow(40));
    let report = drain(
        &sql,
        &redis,
        &FixedClock(t0()),
        &registry,
        Queue::Default,
        "w",
        Duration::from_millis(130),
        10,
    )
    .await
    .expect("drain");
    assert!(report.succeeded >= 2 && report.succeeded <= 5, "{report:?}");
    assert_eq!(report.succeeded + report.released, 10, "{report:?}");
    let rows = sql
        .query(
            "SELECT count(*) AS n FROM delayed_jobs WHERE status = 'pending' AND attempts = 0",
            &[],
        )
        .await
        .expect("count");
    assert_eq!(
        rows[0].get::<i64>("n").expect("n") as usize,
        report.released,
        "released jobs lost no attempt"
    );
}

#[tokio::test]
async fn enqueue_many_inserts_in_one_go_and_respects_idempotency_keys() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    let held = job(
        &sql,
        &redis,
        t0(),
        NewJob::new(Queue::Low, "w", serde_json::json!({})).idempotency_key("k-1"),
    )
    .await;
    let batch: Vec<NewJob> = (0..10)
        .map(|i| {
            let job = NewJob::new(Queue::Bulk, "w", serde_json::json!({ "i": i })).priority(i);
            if i == 3 {
                job.idempotency_key("k-1")
            } else {
                job
            }
        })
        .collect();
    let ids = village_jobs::enqueue_many(&sql, &redis, t0(), &batch)
        .await
        .expect("enqueue many");
    assert_eq!(ids.len(), 9, "the job whose key is held was skipped");
    assert!(!ids.contains(&held));
    let rows = sql
        .query(
            "SELECT count(*) AS n FROM delayed_jobs WHERE queue = 'BULK' AND status = 'pending'",
            &[],
        )
        .await
        .expect("count");
    assert_eq!(rows[0].get::<i64>("n").expect("n"), 9);
    let handler = Recorder::new("w", |_| Ok(()));
    let seen = handler.seen.clone();
    let registry = Registry::new().with(handler);
    drain(
        &sql,
        &redis,
        &FixedClock(t0()),
        &registry,
        Queue::Bulk,
        "w",
        Duration::from_secs(5),
        50,
    )
    .await
    .expect("drain");
    let payload_order: Vec<i64> = {
        let mut v = Vec::new();
        let ran: Vec<i64> = seen
            .borrow()
            .iter()
            .copied()
            .filter(|id| ids.contains(id))
            .collect();
        for id in &ran {
            let row = sql
                .query_opt(
                    "SELECT payload FROM delayed_jobs WHERE id = $1",
                    &[SqlValue::Int64(*id)],
                )
                .await
                .expect("q")
                .expect("row");
            v.push(
                row.get::<serde_json::Value>("payload").expect("p")["i"]
                    .as_i64()
                    .expect("i"),
            );
        }
        v
    };
    assert_eq!(
        payload_order,
        vec![0, 1, 2, 4, 5, 6, 7, 8, 9],
        "fields (priority) were stored per job"
    );
}

#[tokio::test]
async fn retention_purges_old_finished_jobs_and_keeps_the_rest() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    let registry = Registry::new()
        .with(Recorder::new("ok", |_| Ok(())))
        .with(Recorder::new("bad", |_| {
            Err(JobError::Permanent("no".into()))
        }));
    let old = t0() - chrono::Duration::days(40);
    for handler in ["ok", "bad"] {
        job(
            &sql,
            &redis,
            old,
            NewJob::new(Queue::Default, handler, serde_json::json!({})),
        )
        .await;
    }
    drain_at(&sql, &redis, old, &registry, Queue::Default).await;
    let recent = t0() - chrono::Duration::days(10);
    for handler in ["ok", "bad"] {
        job(
            &sql,
            &redis,
            recent,
            NewJob::new(Queue::Default, handler, serde_json::json!({})),
        )
        .await;
    }
    drain_at(&sql, &redis, recent, &registry, Queue::Default).await;
    let waiting = job(
        &sql,
        &redis,
        old,
        NewJob::new(Queue::Low, "ok", serde_json::json!({}))
            .run_at(t0() + chrono::Duration::days(1)),
    )
    .await;
    // Succeeded kept 7 days, dead 30: at t0 the 40-day-old pair goes, and the
    // 10-day-old success, but not the 10-day-old dead job nor the pending one.
    let purged = village_jobs::purge_finished(
        &sql,
        t0() - chrono::Duration::days(7),
        t0() - chrono::Duration::days(30),
        100,
    )
    .await
    .expect("purge");
    assert_eq!(purged, 3);
    let left = sql
        .query("SELECT id, status FROM delayed_jobs ORDER BY id", &[])
        .await
        .expect("left");
    let left: Vec<(i64, String)> = left
        .iter()
        .map(|r| (r.get("id").expect("id"), r.get("status").expect("s")))
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&(waiting, "pending".to_owned())));
    assert!(left.iter().any(|(_, s)| s == "dead"));
}

#[tokio::test]
async fn the_sweep_wakes_only_queues_with_due_unpaused_work() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    job(
        &sql,
        &redis,
        t0(),
        NewJob::new(Queue::High, "w", serde_json::json!({})),
    )
    .await;
    job(
        &sql,
        &redis,
        t0(),
        NewJob::new(Queue::Low, "w", serde_json::json!({}))
            .run_at(t0() + chrono::Duration::hours(1)),
    )
    .await;
    job(
        &sql,
        &redis,
        t0(),
        NewJob::new(Queue::Bulk, "w", serde_json::json!({})),
    )
    .await;
    pause(&sql, Queue::Bulk, "ops", "budget", t0())
        .await
        .expect("pause");
    assert_eq!(
        village_jobs::due_queues(&sql, t0()).await.expect("due"),
        vec![Queue::High]
    );
    let mut later = village_jobs::due_queues(&sql, t0() + chrono::Duration::hours(2))
        .await
        .expect("due");
    later.sort();
    assert_eq!(later, vec![Queue::High, Queue::Low]);
}

#[tokio::test]
async fn requeueing_a_dead_job_whose_key_was_reused_is_refused() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    let registry = Registry::new().with(Recorder::new("bad", |_| {
        Err(JobError::Permanent("no".into()))
    }));
    let key = "report:2026-11";
    let dead = job(
        &sql,
        &redis,
        t0(),
        NewJob::new(Queue::Default, "bad", serde_json::json!({})).idempotency_key(key),
    )
    .await;
    drain_at(&sql, &redis, t0(), &registry, Queue::Default).await;
    let fresh = enqueue(
        &sql,
        &redis,
        t0(),
        NewJob::new(Queue::Default, "bad", serde_json::json!({})).idempotency_key(key),
    )
    .await
    .expect("a dead job frees its key");
    assert_ne!(fresh, dead);
    let err = village_jobs::requeue(&sql, dead, t0())
        .await
        .expect_err("conflict");
    assert!(matches!(err, village_jobs::JobsError::Conflict(_)), "{err}");
    assert!(matches!(
        village_jobs::requeue(&sql, 999_999, t0()).await,
        Err(village_jobs::JobsError::NotFound(999_999))
    ));
}

#[tokio::test]
async fn a_deferred_job_waits_without_spending_attempts_and_never_dead_letters() {
    let url = db().await;
    let sql = sql(&url).await;
    let redis = cache().await;
    let start = t0();
    let id = job(
        &sql,
        &redis,
        start,
        NewJob::new(Queue::Default, "quota", serde_json::json!({})).max_attempts(2),
    )
    .await;
    let registry = Registry::new().with(Recorder::new("quota", |job| {
        Err(JobError::Defer {
            until: job.run_at + chrono::Duration::minutes(1),
            reason: "quota spent".into(),
        })
    }));
    let mut now = start;
    // More deferrals than the job has attempts: it still waits.
    for round in 1..=3 {
        let report = drain_at(&sql, &redis, now, &registry, Queue::Default).await;
        assert_eq!((report.deferred, report.dead), (1, 0), "round {round}");
        let (status, attempts, run_at, _) = status_of(&sql, id).await;
        assert_eq!((status.as_str(), attempts), ("pending", 0), "round {round}");
        assert_eq!(run_at, now + chrono::Duration::minutes(1));
        let early = drain_at(
            &sql,
            &redis,
            run_at - chrono::Duration::seconds(1),
            &registry,
            Queue::Default,
        )
        .await;
        assert_eq!(early.claimed, 0, "not before its time");
        now = run_at;
    }
    let last_error: String = sql
        .query_opt(
            "SELECT last_error FROM delayed_jobs WHERE id = $1",
            &[SqlValue::Int64(id)],
        )
        .await
        .expect("q")
        .expect("row")
        .get("last_error")
        .expect("last_error");
    assert_eq!(last_error, "deferred: quota spent");
}
