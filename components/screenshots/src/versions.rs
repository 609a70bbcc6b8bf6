//! Screenshot versions and the capture log (migration V26).
//!
//! A successful capture writes its two images to blob storage first, then
//! records the version and its log row in one statement: the previous
//! current version loses `is_current` in the same transaction, so a URL
//! never has two current versions, and a reader never sees none between
//! them. A crash between upload and record leaves unreferenced images, not
//! a version without images.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use village_platform::sql::{Row, Sql, SqlError, SqlValue};

/// An image of a capture, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u32,
}

/// What a successful capture records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    pub url: String,
    pub site_id: Option<i64>,
    pub final_url: String,
    pub full: Image,
    pub thumb: Image,
    pub capture_ms: u32,
    pub job_id: Option<i64>,
    pub attempt: i32,
    pub captured_at: DateTime<Utc>,
}

/// A stored version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    pub id: i64,
    pub url: String,
    pub site_id: Option<i64>,
    pub version: i32,
    pub is_current: bool,
    pub final_url: String,
    pub full: Image,
    pub thumb: Image,
    pub capture_ms: u32,
    pub job_id: Option<i64>,
    pub captured_at: DateTime<Utc>,
}

/// What a failed capture records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub url: String,
    pub site_id: Option<i64>,
    pub job_id: Option<i64>,
    pub attempt: i32,
    /// Why, in words ops can act on (`TLS error: net::ERR_CERT_...`).
    pub reason: String,
    pub final_url: Option<String>,
    pub capture_ms: u32,
    pub finished_at: DateTime<Utc>,
}

/// One finished capture attempt, as the ops list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capture {
    pub id: i64,
    pub url: String,
    pub site_id: Option<i64>,
    pub job_id: Option<i64>,
    pub attempt: i32,
    pub outcome: String,
    pub reason: Option<String>,
    pub final_url: Option<String>,
    pub capture_ms: u32,
    pub finished_at: DateTime<Utc>,
    pub version: Option<Version>,
}

/// Where a capture's images go: under the URL's digest (so one site's
/// versions sit together), each capture under a fresh id — written before
/// the version number is known, never overwritten.
pub fn image_keys(url: &str, capture: uuid::Uuid) -> (String, String) {
    let digest = Sha256::digest(url.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    (
        format!("screenshots/{hex}/{capture}-full.webp"),
        format!("screenshots/{hex}/{capture}-thumb.webp"),
    )
}

const VERSION_COLUMNS: &str = "v.id, v.url, v.site_id, v.version, v.is_current, v.final_url, \
     v.full_key, v.full_width, v.full_height, v.full_bytes, \
     v.thumb_key, v.thumb_width, v.thumb_height, v.thumb_bytes, \
     v.capture_ms, v.job_id, v.captured_at";

fn int(v: i32) -> u32 {
    u32::try_from(v).unwrap_or_default()
}

fn version(row: &Row) -> Result<Version, SqlError> {
    Ok(Version {
        id: row.get("id")?,
        url: row.get("url")?,
        site_id: row.get("site_id")?,
        version: row.get("version")?,
        is_current: row.get("is_current")?,
        final_url: row.get("final_url")?,
        full: Image {
            key: row.get("full_key")?,
            width: int(row.get("full_width")?),
            height: int(row.get("full_height")?),
            bytes: int(row.get("full_bytes")?),
        },
        thumb: Image {
            key: row.get("thumb_key")?,
            width: int(row.get("thumb_width")?),
            height: int(row.get("thumb_height")?),
            bytes: int(row.get("thumb_bytes")?),
        },
        capture_ms: int(row.get("capture_ms")?),
        job_id: row.get("job_id")?,
        captured_at: row.get("captured_at")?,
    })
}

fn opt_i64(v: Option<i64>) -> SqlValue {
    v.map(SqlValue::Int64).unwrap_or(SqlValue::Null)
}

fn int32(v: u32) -> SqlValue {
    SqlValue::Int32(i32::try_from(v).unwrap_or(i32::MAX))
}

/// Records a successful capture: the URL's next version, now current (the
/// previous one flipped in the same statement, hence transaction), and its
/// log row. Two captures of one URL racing for the same version number:
/// the loser sees a unique violation and takes the next number.
pub async fn record_version(sql: &impl Sql, new: &NewVersion) -> Result<Version, SqlError> {
    let params = [
        SqlValue::Text(new.url.clone()),
        opt_i64(new.site_id),
        SqlValue::Text(new.final_url.clone()),
        SqlValue::Text(new.full.key.clone()),
        int32(new.full.width),
        int32(new.full.height),
        int32(new.full.bytes),
        SqlValue::Text(new.thumb.key.clone()),
        int32(new.thumb.width),
        int32(new.thumb.height),
        int32(new.thumb.bytes),
        int32(new.capture_ms),
        opt_i64(new.job_id),
        SqlValue::Timestamp(new.captured_at),
        SqlValue::Int32(new.attempt),
    ];
    // The INSERT reads `previous` (through the count), so the flip has run
    // before the new row meets the one-current-per-URL index.
    let statement = format!(
        "WITH previous AS ( \
             UPDATE directory_screenshot_versions SET is_current = false \
             WHERE url = $1 AND is_current RETURNING id), \
         v AS ( \
             INSERT INTO directory_screenshot_versions (url, site_id, version, is_current, \
                 final_url, full_key, full_width, full_height, full_bytes, \
                 thumb_key, thumb_width, thumb_height, thumb_bytes, capture_ms, job_id, captured_at) \
             SELECT $1, $2, COALESCE((SELECT max(version) FROM directory_screenshot_versions \
                                      WHERE url = $1), 0) + 1 + 0 * (SELECT count(*) FROM previous), \
                 true, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::timestamp \
             RETURNING *), \
         logged AS ( \
             INSERT INTO screenshot_captures (url, site_id, job_id, attempt, outcome, final_url, \
                 version_id, capture_ms, finished_at) \
             SELECT url, site_id, job_id, $15, 'captured', final_url, id, capture_ms, captured_at \
             FROM v) \
         SELECT {VERSION_COLUMNS} FROM v"
    );
    let mut tries = 0;
    loop {
        match sql.query_opt(&statement, &params).await {
            Ok(Some(row)) => return version(&row),
            Ok(None) => return Err(SqlError::Decode("no version recorded".into())),
            Err(e) if e.is_unique_violation() && tries < 10 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Records a failed capture attempt.
pub async fn record_failure(sql: &impl Sql, failure: &Failure) -> Result<(), SqlError> {
    sql.execute(
        "INSERT INTO screenshot_captures (url, site_id, job_id, attempt, outcome, reason, \
             final_url, capture_ms, finished_at) \
         VALUES ($1, $2, $3, $4, 'failed', $5, $6, $7, $8::timestamp)",
        &[
            SqlValue::Text(failure.url.clone()),
            opt_i64(failure.site_id),
            opt_i64(failure.job_id),
            SqlValue::Int32(failure.attempt),
            SqlValue::Text(failure.reason.clone()),
            failure
                .final_url
                .clone()
                .map(SqlValue::Text)
                .unwrap_or(SqlValue::Null),
            int32(failure.capture_ms),
            SqlValue::Timestamp(failure.finished_at),
        ],
    )
    .await?;
    Ok(())
}

/// The newest finished captures, newest first, each with its version.
pub async fn recent(sql: &impl Sql, limit: i64) -> Result<Vec<Capture>, SqlError> {
    let rows = sql
        .query(
            &format!(
                "SELECT c.id AS capture_id, c.url AS capture_url, c.site_id AS capture_site_id, \
                     c.job_id AS capture_job_id, c.attempt, c.outcome, c.reason, \
                     c.final_url AS capture_final_url, c.capture_ms AS capture_capture_ms, \
                     c.finished_at, c.version_id, {VERSION_COLUMNS} \
                 FROM screenshot_captures c \
                 LEFT JOIN directory_screenshot_versions v ON v.id = c.version_id \
                 ORDER BY c.finished_at DESC, c.id DESC LIMIT $1"
            ),
            &[SqlValue::Int64(limit)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let version_id: Option<i64> = r.get("version_id")?;
            Ok(Capture {
                id: r.get("capture_id")?,
                url: r.get("capture_url")?,
                site_id: r.get("capture_site_id")?,
                job_id: r.get("capture_job_id")?,
                attempt: r.get("attempt")?,
                outcome: r.get("outcome")?,
                reason: r.get("reason")?,
                final_url: r.get("capture_final_url")?,
                capture_ms: int(r.get("capture_capture_ms")?),
                finished_at: r.get("finished_at")?,
                version: version_id.map(|_| version(r)).transpose()?,
            })
        })
        .collect()
}

/// One version by id.
pub async fn find(sql: &impl Sql, id: i64) -> Result<Option<Version>, SqlError> {
    sql.query_opt(
        &format!("SELECT {VERSION_COLUMNS} FROM directory_screenshot_versions v WHERE v.id = $1"),
        &[SqlValue::Int64(id)],
    )
    .await?
    .map(|r| version(&r))
    .transpose()
}

/// A URL's versions, newest first (never deleted: the history).
pub async fn history(sql: &impl Sql, url: &str) -> Result<Vec<Version>, SqlError> {
    sql.query(
        &format!(
            "SELECT {VERSION_COLUMNS} FROM directory_screenshot_versions v \
             WHERE v.url = $1 ORDER BY v.version DESC"
        ),
        &[SqlValue::Text(url.to_owned())],
    )
    .await?
    .iter()
    .map(version)
    .collect()
}

/// Success rate over the log's captures since `since`: (captured, failed).
pub async fn outcome_counts(sql: &impl Sql, since: DateTime<Utc>) -> Result<(i64, i64), SqlError> {
    let row = sql
        .query_opt(
            "SELECT count(*) FILTER (WHERE outcome = 'captured') AS captured, \
                    count(*) FILTER (WHERE outcome = 'failed') AS failed \
             FROM screenshot_captures WHERE finished_at >= $1::timestamp",
            &[SqlValue::Timestamp(since)],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("no counts".into()))?;
    Ok((row.get("captured")?, row.get("failed")?))
}

/// Purges capture-log rows finished before `before` (versions stay).
pub async fn purge_log(sql: &impl Sql, before: DateTime<Utc>) -> Result<u64, SqlError> {
    sql.execute(
        "DELETE FROM screenshot_captures WHERE finished_at < $1::timestamp",
        &[SqlValue::Timestamp(before)],
    )
    .await
}

/// A Good Sites entry's versions, newest first: its page's history.
pub async fn of_site(sql: &impl Sql, site_id: i64) -> Result<Vec<Version>, SqlError> {
    sql.query(
        &format!(
            "SELECT {VERSION_COLUMNS} FROM directory_screenshot_versions v \
             WHERE v.site_id = $1 ORDER BY v.captured_at DESC, v.id DESC"
        ),
        &[SqlValue::Int64(site_id)],
    )
    .await?
    .iter()
    .map(version)
    .collect()
}
