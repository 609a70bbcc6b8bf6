//! Handlers: a job names its handler; the registry maps names to code.
//!
//! Each handler lives in its own file in the crate that owns its domain,
//! with a `NAME` constant and a doc comment saying why it exists, and is
//! registered once, in `village_workers::run`, which every worker runs.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::{Job, RetryPolicy};

/// How a run failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth another try later (a dependency was down, a timeout).
    #[error("{0}")]
    Retry(String),
    /// Will never succeed (malformed payload, unknown handler): dead-letter now.
    #[error("{0}")]
    Permanent(String),
    /// Not now, through no fault of the job (a provider's quota is spent
    /// until `until`): back to `pending` at `until`, the attempt given back,
    /// so a deferred job is delayed, never dead-lettered.
    #[error("deferred until {until}: {reason}")]
    Defer {
        until: chrono::DateTime<chrono::Utc>,
        reason: String,
    },
}

impl JobError {
    /// A payload that does not parse as the handler expects.
    pub fn malformed(e: impl std::fmt::Display) -> Self {
        JobError::Permanent(format!("malformed payload: {e}"))
    }
}

#[allow(async_fn_in_trait)] // registered as `dyn` through `ErasedHandler` below
pub trait JobHandler {
    /// The name jobs use to call this handler.
    fn name(&self) -> &'static str;

    /// Backoff after failures; the attempt limit is the job's own.
    fn policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }

    async fn run(&self, job: &Job) -> Result<(), JobError>;
}

type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + 'a>>;

trait ErasedHandler {
    fn policy(&self) -> RetryPolicy;
    fn run<'a>(&'a self, job: &'a Job) -> RunFuture<'a>;
}

impl<H: JobHandler> ErasedHandler for H {
    fn policy(&self) -> RetryPolicy {
        JobHandler::policy(self)
    }

    fn run<'a>(&'a self, job: &'a Job) -> RunFuture<'a> {
        Box::pin(JobHandler::run(self, job))
    }
}

/// Handler name → handler.
#[derive(Default)]
pub struct Registry<'h> {
    handlers: BTreeMap<&'static str, Box<dyn ErasedHandler + 'h>>,
}

impl<'h> Registry<'h> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a handler; a second handler with the same name replaces the first.
    pub fn with(mut self, handler: impl JobHandler + 'h) -> Self {
        self.handlers.insert(handler.name(), Box::new(handler));
        self
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.keys().copied()
    }

    pub(crate) fn policy(&self, name: &str) -> Option<RetryPolicy> {
        self.handlers.get(name).map(|h| h.policy())
    }

    pub(crate) async fn run(&self, job: &Job) -> Result<(), JobError> {
        match self.handlers.get(job.handler.as_str()) {
            Some(h) => h.run(job).await,
            None => Err(JobError::Permanent(format!(
                "no handler named `{}` is registered",
                job.handler
            ))),
        }
    }
}

/// `jobs.noop`: does nothing, successfully. Smoke tests and the benchmark
/// use it to measure the queue itself.
pub struct Noop;

impl Noop {
    pub const NAME: &'static str = "jobs.noop";
}

impl JobHandler for Noop {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        Ok(())
    }
}
