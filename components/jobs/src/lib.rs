//! Delayed and scheduled jobs, with Postgres as the queue.
//!
//! One table (`delayed_jobs`) holds every job: handler name, JSON payload,
//! queue, priority, when it may run, attempts, idempotency key, lock and
//! errors. Workers claim due jobs with `FOR UPDATE SKIP LOCKED`, so any
//! number of them can drain a queue without two taking the same job; a
//! failure backs off exponentially with jitter and, after the handler's
//! maximum attempts, the job is dead-lettered with its payload and errors
//! kept. Queues can be paused; a lock held by a worker that died is rescued.
//! Enqueueing publishes a wake-up on Redis, and a sweep every minute catches
//! what a lost wake-up missed, so Redis is never the only record of work.
//!
//! Delivery is at least once: a worker that dies after a handler's effect but
//! before recording success causes one more run. Handlers are therefore
//! written to be idempotent, and enqueueing with an idempotency key makes
//! double scheduling (two cron fires of one slot) create one job.

pub mod handlers;
mod job;
pub mod metrics;
pub mod ops;
mod policy;
mod queue;
#[cfg(feature = "spin")]
pub mod spin_components;
mod store;
mod worker;

pub use handlers::{JobError, JobHandler, Registry};
pub use job::{Job, JobId, JobStatus, NewJob};
pub use policy::RetryPolicy;
pub use queue::Queue;
pub use store::{
    JobsError, QueueStats, RENEW_EVERY, claim, complete, delete, due_queues, enqueue, enqueue_many,
    fail, find, hand_back, pause, purge_finished, queue_stats, recent_failures, release,
    release_lapsed_claims, renew, requeue, rescue_stale, resume, start, wake,
};
pub use worker::{DEFAULT_BATCH, DrainReport, drain};

/// The Redis channel a queue's worker component listens on for wake-ups.
pub fn wake_channel(queue: Queue) -> String {
    format!("village-jobs-{}", queue.as_str().to_ascii_lowercase())
}
