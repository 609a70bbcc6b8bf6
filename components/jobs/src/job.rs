use chrono::{DateTime, Utc};
use serde::Serialize;
use village_platform::sql::{Row, SqlError};

use crate::Queue;

pub type JobId = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Running,
    Succeeded,
    Dead,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            JobStatus::Pending,
            JobStatus::Running,
            JobStatus::Succeeded,
            JobStatus::Dead,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: JobId,
    #[serde(serialize_with = "queue_name")]
    pub queue: Queue,
    pub handler: String,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub priority: i32,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub idempotency_key: Option<String>,
    pub status: JobStatus,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub error_chain: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

fn queue_name<S: serde::Serializer>(q: &Queue, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(q.as_str())
}

/// The columns every query selects to build a [`Job`].
pub(crate) const COLUMNS: &str = "id, queue, handler, payload, metadata, priority, run_at, attempts, \
     max_attempts, idempotency_key, status, locked_by, last_error, error_chain, created_at, finished_at";

impl TryFrom<&Row> for Job {
    type Error = SqlError;

    fn try_from(r: &Row) -> Result<Self, SqlError> {
        let queue: String = r.get("queue")?;
        let status: String = r.get("status")?;
        Ok(Job {
            id: r.get("id")?,
            queue: Queue::parse(&queue)
                .ok_or_else(|| SqlError::Decode(format!("unknown queue {queue}")))?,
            handler: r.get("handler")?,
            payload: r.get("payload")?,
            metadata: r.get("metadata")?,
            priority: r.get("priority")?,
            run_at: r.get("run_at")?,
            attempts: r.get("attempts")?,
            max_attempts: r.get("max_attempts")?,
            idempotency_key: r.get("idempotency_key")?,
            status: JobStatus::parse(&status)
                .ok_or_else(|| SqlError::Decode(format!("unknown status {status}")))?,
            locked_by: r.get("locked_by")?,
            last_error: r.get("last_error")?,
            error_chain: r.get("error_chain")?,
            created_at: r.get("created_at")?,
            finished_at: r.get("finished_at")?,
        })
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub queue: Queue,
    pub handler: String,
    pub payload: serde_json::Value,
    /// W3C `traceparent` of the request or job that enqueued this one.
    pub traceparent: Option<String>,
    /// `None`: as soon as possible.
    pub run_at: Option<DateTime<Utc>>,
    pub priority: i32,
    pub idempotency_key: Option<String>,
    pub max_attempts: i32,
}

impl NewJob {
    pub fn new(queue: Queue, handler: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            queue,
            handler: handler.into(),
            payload,
            traceparent: None,
            run_at: None,
            priority: 0,
            idempotency_key: None,
            max_attempts: crate::RetryPolicy::default().max_attempts,
        }
    }

    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    pub fn priority(mut self, p: i32) -> Self {
        self.priority = p;
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n;
        self
    }

    pub fn traceparent(mut self, tp: impl Into<String>) -> Self {
        self.traceparent = Some(tp.into());
        self
    }
}
