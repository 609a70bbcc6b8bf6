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
    enqueue_keyed(sql, cache, url, site_id, allowed_hosts, None, now).await
}

/// [`enqueue`], at most once per `idempotency_key` (a scheduled
/// recapture's site and month): a capture already queued, running or done
/// under the key is returned instead of a second one.
pub async fn enqueue_keyed(
    sql: &impl Sql,
    cache: &impl Cache,
    url: &str,
    site_id: Option<i64>,
    allowed_hosts: &[String],
    idempotency_key: Option<String>,
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
    let job = match idempotency_key {
        Some(key) => job.idempotency_key(key),
        None => job,
    };
    let id = village_jobs::enqueue(sql, cache, now, job).await?;
    Ok((id, checked))
}

/// The answer carrying `version`'s `which` image (`full` or `thumb`), read
/// from blob storage, with `cache_control` (a version's images never
/// change: its id in the URL is the cache-buster).
pub async fn image_response(
    blobs: &impl village_platform::blob::BlobStore,
    version: &versions::Version,
    which: &str,
    cache_control: &'static str,
) -> Result<village_platform::web::Response, village_platform::AppError> {
    let key = if which == "full" {
        &version.full.key
    } else {
        &version.thumb.key
    };
    let blob = blobs
        .get(key)
        .await
        .map_err(|e| village_platform::AppError::Unavailable {
            dependency: "blob storage",
            detail: e.to_string(),
        })?
        .ok_or(village_platform::AppError::NotFound)?;
    let mut response = http::Response::new(blob.bytes);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("image/webp"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static(cache_control),
    );
    Ok(response)
}
