//! Screenshots of sites (issue #16): what the rest of the product asks of
//! `screenshot-host`, and what it keeps.
//!
//! - [`CaptureRequest`]: the `screenshot.capture` job's payload, queued on
//!   the SCREENSHOT queue ([`enqueue`]), consumed only by the native
//!   `screenshot-host` (Chromium does not run in a Wasm component).
//! - [`versions`]: every successful capture is a new, never-deleted row of
//!   `directory_screenshot_versions` (the newest `is_current`), its images
//!   in blob storage; every finished attempt, captured or failed, is a row
//!   of `screenshot_captures` with its reason.
//! - [`admin`]: `/admin/api/screenshots` for ops (`manage_system`): queue a
//!   capture, list recent ones, view their images.

pub mod admin;
pub mod versions;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use village_jobs::{JobId, JobsError, NewJob, Queue};
use village_platform::address::{self, AddressError, PublicUrl};
use village_platform::cache::Cache;
use village_platform::sql::Sql;

/// The handler name of a capture job.
pub const CAPTURE_HANDLER: &str = "screenshot.capture";

/// Attempts a capture job gets: a flaky site or a recycled browser earns a
/// retry; a site that fails five times in a row is recorded as failing.
pub const MAX_ATTEMPTS: i32 = 5;

/// The full image: a desktop viewport, above the fold.
pub const FULL_WIDTH: u32 = 1280;
pub const FULL_HEIGHT: u32 = 800;
/// The thumbnail: the same picture at a quarter of its size.
pub const THUMB_WIDTH: u32 = 320;
pub const THUMB_HEIGHT: u32 = 200;

/// A `screenshot.capture` job's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureRequest {
    /// The page to capture (checked by [`address::check`] when queued, and
    /// again, address by address, by the host's proxy when fetched).
    pub url: String,
    /// The Good Sites entry the capture is for, when there is one.
    #[serde(default)]
    pub site_id: Option<i64>,
}

/// Why a capture could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error(transparent)]
    Jobs(#[from] JobsError),
}

/// Checks `url` (public http(s), or a host on `allowed_hosts`) and queues
/// its capture on the SCREENSHOT queue; the host is woken through Redis.
pub async fn enqueue(
    sql: &impl Sql,
    cache: &impl Cache,
    url: &str,
    site_id: Option<i64>,
    allowed_hosts: &[String],
    now: DateTime<Utc>,
) -> Result<(JobId, PublicUrl), EnqueueError> {
    let checked = address::check(url, allowed_hosts)?;
    let payload = CaptureRequest {
        url: checked.as_str().to_owned(),
        site_id,
    };
    let job = NewJob::new(
        Queue::Screenshot,
        CAPTURE_HANDLER,
        serde_json::to_value(&payload).unwrap_or_default(),
    )
    .max_attempts(MAX_ATTEMPTS);
    let id = village_jobs::enqueue(sql, cache, now, job).await?;
    Ok((id, checked))
}
