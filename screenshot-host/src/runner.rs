//! The job loop: claims SCREENSHOT jobs through `village-jobs` (the same
//! claim, attempt, backoff, dead letter, pause and rescue rules as the
//! Wasm workers), as many as there are free browser contexts, when woken
//! by the queue's Redis channel or every poll interval; renews the locks of
//! the jobs it holds; and records each capture.
//!
//! A capture's end, by cause:
//! - pictures: both images to blob storage, then the version (the job
//!   succeeds);
//! - the page's fault (TLS, refused address, too large, a download, a
//!   redirect loop): the failure is recorded and the job succeeds — it did
//!   its work, and retrying will not change the site;
//! - transient (unreachable, timed out) or storage trouble: recorded, and
//!   the job backs off and runs again until its attempts are spent;
//! - the browser died under it: recorded, and the job runs again at once
//!   on the next browser.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tracing::Instrument;
use village_jobs::{Job, JobId, Queue, RetryPolicy, claim, complete, fail, hand_back, start};
use village_platform::blob::{Blob, BlobStore, Blobs};
use village_platform::native::{NativeHttp, NativeSql};
use village_platform::objects::S3Config;
use village_screenshots::versions::{self, Failure, Image, NewVersion};
use village_screenshots::{CaptureRequest, FULL_HEIGHT, FULL_WIDTH, THUMB_HEIGHT, THUMB_WIDTH};

use crate::browser::Pool;
use crate::capture::{CaptureError, CaptureSettings, capture};
use crate::metrics::Metrics;

/// Backoff for transient failures: sites that are down tend to stay down
/// for minutes, not seconds.
const TRANSIENT: RetryPolicy = RetryPolicy {
    max_attempts: village_screenshots::MAX_ATTEMPTS,
    base_delay: Duration::from_secs(60),
    max_delay: Duration::from_secs(3600),
    jitter: 0.2,
};
/// The longest metadata value stored with a picture: S3 allows 2 KB of
/// user metadata per object, and a URL may be 2,048 characters. A longer
/// URL is left out of the metadata (the version row has it).
const METADATA_VALUE_MAX: usize = 512;
/// A browser lost under a job: the next browser is up in seconds.
const AFTER_BROWSER_LOST: Duration = Duration::from_secs(1);

pub struct Runner {
    pub sql: NativeSql,
    pub pool: Rc<Pool>,
    pub metrics: Rc<Metrics>,
    pub settings: CaptureSettings,
    pub store: Option<S3Config>,
    pub http: NativeHttp,
    pub worker: String,
    /// Jobs being captured now, and how to stop their tasks.
    pub running: RefCell<BTreeMap<JobId, tokio::task::AbortHandle>>,
    /// Something changed: a wake-up, a finished capture.
    pub wake: Notify,
    pub stopping: Cell<bool>,
}

impl Runner {
    /// Claims as many due jobs as there are free contexts and starts them;
    /// returns how many it started.
    pub async fn claim_and_start(self: &Rc<Self>) -> Result<usize, String> {
        if self.stopping.get() {
            return Ok(0);
        }
        // No browser, no claims: jobs wait in the queue, unharmed, rather
        // than spend their attempts on a browser that cannot start.
        if !self.pool.ready()
            && let Err(e) = self.pool.warm().await
        {
            tracing::error!(error = %e, "no browser; not claiming until one starts");
            return Ok(0);
        }
        let free = self
            .pool
            .capacity()
            .saturating_sub(self.running.borrow().len());
        if free == 0 {
            return Ok(0);
        }
        let jobs = claim(
            &self.sql,
            &[Queue::Screenshot],
            &self.worker,
            free as i64,
            Utc::now(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let n = jobs.len();
        for job in jobs {
            let me = self.clone();
            let id = job.id;
            let span = tracing::info_span!(
                "capture",
                job_id = id,
                attempt = tracing::field::Empty,
                url = tracing::field::Empty
            );
            let task = tokio::task::spawn_local(
                async move {
                    if let Err(e) = me.run(job).await {
                        // Its lock is no longer renewed: the sweeper
                        // rescues it.
                        tracing::error!(error = %e, "a capture's job could not be recorded");
                    }
                    me.running.borrow_mut().remove(&id);
                    me.wake.notify_one();
                }
                .instrument(span),
            );
            // The task has not run yet (this thread has not yielded).
            self.running.borrow_mut().insert(id, task.abort_handle());
        }
        Ok(n)
    }

    /// One job, start to record.
    async fn run(&self, job: Job) -> Result<(), String> {
        let e = |e: village_platform::sql::SqlError| e.to_string();
        let Some(attempt) = start(&self.sql, job.id, &self.worker, Utc::now(), false)
            .await
            .map_err(e)?
        else {
            return Ok(()); // rescued elsewhere meanwhile
        };
        let job = Job {
            attempts: attempt,
            ..job
        };
        let request: CaptureRequest = match serde_json::from_value(job.payload.clone()) {
            Ok(r) => r,
            Err(err) => {
                let text = format!("permanent: malformed payload: {err}");
                fail(&self.sql, &job, &self.worker, &text, None, Utc::now())
                    .await
                    .map_err(e)?;
                return Ok(());
            }
        };
        tracing::Span::current()
            .record("attempt", attempt)
            .record("url", request.url.as_str());
        let lease = match self.pool.lease().await {
            Ok(l) => l,
            Err(err) => {
                // Not the job's fault: back to the queue, attempt refunded.
                tracing::error!(error = %err, "no browser for the capture; handing it back");
                hand_back(&self.sql, &[job.id], &self.worker, Utc::now())
                    .await
                    .map_err(e)?;
                return Ok(());
            }
        };
        let started = std::time::Instant::now();
        let outcome = capture(&lease, &request.url, &self.settings).await;
        drop(lease);
        let elapsed = started.elapsed();
        self.metrics.observe(elapsed);
        let partial = outcome.as_ref().is_ok_and(|c| c.partial);
        match outcome {
            Ok(captured) => match self.store_pictures(&job, &request, captured, elapsed).await {
                Ok(version) => {
                    self.metrics.captured();
                    tracing::info!(
                        version = version.version,
                        ms = elapsed.as_millis() as u64,
                        partial,
                        "captured"
                    );
                    let held = complete(&self.sql, &[job.id], &self.worker, Utc::now())
                        .await
                        .map_err(e)?;
                    if held == 0 {
                        tracing::warn!("captured, but the job was no longer ours (rescued?)");
                    }
                    Ok(())
                }
                Err(err) => {
                    let ms = elapsed.as_millis() as u32;
                    self.failed(&job, &request, CaptureError::Transient(err), ms)
                        .await
                }
            },
            Err(err) => {
                self.failed(&job, &request, err, elapsed.as_millis() as u32)
                    .await
            }
        }
    }

    async fn store_pictures(
        &self,
        job: &Job,
        request: &CaptureRequest,
        captured: crate::capture::Captured,
        elapsed: Duration,
    ) -> Result<versions::Version, String> {
        let blobs = Blobs::choose(self.store.as_ref(), &self.sql, &self.http)
            .map_err(|e| format!("storage: {e}"))?;
        let (full_key, thumb_key) = versions::image_keys(&request.url, uuid::Uuid::new_v4());
        let taken_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for (key, bytes, size) in [
            (&full_key, &captured.full, "full"),
            (&thumb_key, &captured.thumb, "thumb"),
        ] {
            // What the object is, readable without the database; and the
            // retention hint (policy P4: screenshots are never deleted).
            let metadata = [
                ("source-url", request.url.clone()),
                ("final-url", captured.final_url.clone()),
                ("captured-at", taken_at.clone()),
                ("size", size.to_owned()),
                ("job-id", job.id.to_string()),
                ("retention", "keep".to_owned()),
            ]
            .into_iter()
            .filter(|(_, v)| {
                v.len() <= METADATA_VALUE_MAX && v.chars().all(|c| c.is_ascii_graphic())
            })
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            blobs
                .put(
                    key,
                    &Blob {
                        content_type: "image/webp".into(),
                        bytes: bytes.clone(),
                        metadata,
                    },
                )
                .await
                .map_err(|e| format!("storage: {e}"))?;
        }
        let image = |key: String, width, height, bytes: &Vec<u8>| Image {
            key,
            width,
            height,
            bytes: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
        };
        versions::record_version(
            &self.sql,
            &NewVersion {
                url: request.url.clone(),
                site_id: request.site_id,
                final_url: captured.final_url.clone(),
                full: image(full_key, FULL_WIDTH, FULL_HEIGHT, &captured.full),
                thumb: image(thumb_key, THUMB_WIDTH, THUMB_HEIGHT, &captured.thumb),
                capture_ms: u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX),
                job_id: Some(job.id),
                attempt: job.attempts,
                captured_at: Utc::now(),
            },
        )
        .await
        .map_err(|e| format!("recording the version: {e}"))
    }

    /// Records a failed capture and settles its job (see the module doc).
    async fn failed(
        &self,
        job: &Job,
        request: &CaptureRequest,
        error: CaptureError,
        capture_ms: u32,
    ) -> Result<(), String> {
        let e = |e: village_platform::sql::SqlError| e.to_string();
        self.metrics.failed(&error);
        tracing::warn!(reason = %error, "capture failed");
        let now = Utc::now();
        versions::record_failure(
            &self.sql,
            &Failure {
                url: request.url.clone(),
                site_id: request.site_id,
                job_id: Some(job.id),
                attempt: job.attempts,
                reason: error.to_string(),
                final_url: None,
                capture_ms,
                finished_at: now,
            },
        )
        .await
        .map_err(e)?;
        match error {
            CaptureError::Page(_) => {
                complete(&self.sql, &[job.id], &self.worker, now)
                    .await
                    .map_err(e)?;
            }
            CaptureError::Transient(reason) => {
                let retry_at = (job.attempts < job.max_attempts).then(|| {
                    let unit = f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0;
                    now + chrono::Duration::from_std(TRANSIENT.backoff(job.attempts, unit))
                        .unwrap_or_default()
                });
                fail(
                    &self.sql,
                    job,
                    &self.worker,
                    &format!("retryable: {reason}"),
                    retry_at,
                    now,
                )
                .await
                .map_err(e)?;
            }
            CaptureError::BrowserLost(reason) => {
                let retry_at = (job.attempts < job.max_attempts).then(|| {
                    now + chrono::Duration::from_std(AFTER_BROWSER_LOST).unwrap_or_default()
                });
                fail(
                    &self.sql,
                    job,
                    &self.worker,
                    &format!("retryable: browser lost: {reason}"),
                    retry_at,
                    now,
                )
                .await
                .map_err(e)?;
            }
        }
        Ok(())
    }

    /// Shutdown: gives every job still held back to the queue, attempts
    /// refunded (the host stopped, not the job).
    pub async fn hand_back_all(&self) -> Result<u64, String> {
        // Stopped first: a capture finishing during the hand-back would
        // record a version for a job that then runs again.
        let ids: Vec<JobId> = self
            .running
            .borrow()
            .iter()
            .map(|(id, task)| {
                task.abort();
                *id
            })
            .collect();
        let n = hand_back(&self.sql, &ids, &self.worker, Utc::now())
            .await
            .map_err(|e| e.to_string())?;
        self.metrics
            .handed_back
            .set(self.metrics.handed_back.get() + n);
        Ok(n)
    }
}
