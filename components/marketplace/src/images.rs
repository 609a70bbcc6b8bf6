//! A listing's pictures, uploaded by the browser straight to object storage.
//!
//! 1. `POST …/images {content_type, byte_size}`: a `pending` row and a
//!    presigned PUT URL that works for 15 minutes, for exactly that type
//!    and length (≤ 8 MiB; JPEG, PNG or WebP) — storage refuses anything
//!    else, since both headers are signed.
//! 2. The browser PUTs the file.
//! 3. `POST …/images/{id}/confirm`: a HEAD on the object; only an object
//!    that is there, with the announced length, is `attached`.
//!
//! Public listings' images are served by the marketplace function at a
//! stable, cacheable address (`/marketplace/images/{key}`); a draft's only
//! through presigned GET URLs that expire in 24 hours.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use village_platform::AppError;
use village_platform::error::FieldError;
use village_platform::http_client::HttpClient;
use village_platform::objects::{ObjectError, PRIVATE_URL_LIFE, S3Store, UPLOAD_URL_LIFE};
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::listings::{Actor, Listing, Status, for_seller};

pub const MAX_IMAGES: i64 = 12;
pub const MAX_BYTES: i64 = 8 << 20;
pub const TYPES: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    pub content_type: Option<String>,
    pub byte_size: Option<i64>,
}

/// What the browser needs to upload.
#[derive(Debug, Serialize)]
pub struct Upload {
    pub image_id: i64,
    pub key: String,
    pub upload_url: String,
    /// Send exactly these headers with the PUT.
    pub headers: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Image {
    pub id: i64,
    pub key: String,
    pub content_type: String,
    pub byte_size: i32,
    pub status: String,
    /// Where a browser may read it (stable for public listings, presigned
    /// for 24 hours otherwise); `None` while pending.
    pub url: Option<String>,
}

fn extension(content_type: &str) -> &'static str {
    match content_type {
        "image/png" => "png",
        "image/webp" => "webp",
        _ => "jpg",
    }
}

fn storage_error(e: ObjectError) -> AppError {
    match e {
        ObjectError::NotConfigured => AppError::Unavailable {
            dependency: "object storage",
            detail: "image uploads are not configured on this site".into(),
        },
        other => AppError::Unavailable {
            dependency: "object storage",
            detail: other.to_string(),
        },
    }
}

/// Starts an upload to listing `id`.
pub async fn start<H: HttpClient>(
    sql: &impl Sql,
    store: Option<&S3Store<'_, H>>,
    actor: &Actor<'_>,
    id: i64,
    request: UploadRequest,
    now: DateTime<Utc>,
) -> Result<Upload, AppError> {
    let listing = for_seller(sql, actor, id).await?;
    if matches!(listing.status, Status::Sold | Status::Removed) || listing.archived_at.is_some() {
        return Err(AppError::Conflict("this listing has ended".into()));
    }
    let mut errors = Vec::new();
    let content_type = request.content_type.unwrap_or_default();
    if !TYPES.contains(&content_type.as_str()) {
        errors.push(FieldError::new(
            "content_type",
            "image/jpeg, image/png or image/webp",
        ));
    }
    let size = request.byte_size.unwrap_or(0);
    if !(1..=MAX_BYTES).contains(&size) {
        errors.push(FieldError::new(
            "byte_size",
            "from 1 byte to 8 MiB (8388608 bytes)",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let store = store.ok_or_else(|| storage_error(ObjectError::NotConfigured))?;
    let key = format!(
        "listings/{id}/{}.{}",
        uuid::Uuid::new_v4().simple(),
        extension(&content_type)
    );
    // Twelve at most, uploads in flight included: the row takes one of the
    // listing's `image_slots` by updating it, and concurrent updates of one
    // row wait for each other and re-check the limit (READ COMMITTED), so
    // no two requests take the last slot.
    let row = sql
        .query_opt(
            "WITH slot AS ( \
                 UPDATE marketplace_listings SET image_slots = image_slots + 1 \
                 WHERE id = $1 AND image_slots < $6::bigint RETURNING id, image_slots) \
             INSERT INTO marketplace_listing_images (listing_id, key, content_type, byte_size, \
                 position, created_at) \
             SELECT slot.id, $2, $3, $4::bigint, \
                 (SELECT coalesce(max(position), 0) + 1 FROM marketplace_listing_images \
                  WHERE listing_id = $1), $5::timestamp \
             FROM slot \
             RETURNING id",
            &[
                SqlValue::Int64(id),
                SqlValue::Text(key.clone()),
                SqlValue::Text(content_type.clone()),
                SqlValue::Int64(size),
                SqlValue::Timestamp(now),
                SqlValue::Int64(MAX_IMAGES),
            ],
        )
        .await?;
    let Some(row) = row else {
        return Err(AppError::Conflict(format!(
            "a listing has at most {MAX_IMAGES} images"
        )));
    };
    Ok(Upload {
        image_id: row.get("id")?,
        upload_url: store.presign_put(&key, &content_type, size as u64, UPLOAD_URL_LIFE, now),
        key,
        headers: serde_json::json!({ "content-type": content_type, "content-length": size.to_string() }),
        expires_at: now + Duration::seconds(UPLOAD_URL_LIFE.as_secs() as i64),
    })
}

/// Attaches an uploaded image once storage has it, as announced.
pub async fn confirm<H: HttpClient>(
    sql: &impl Sql,
    store: Option<&S3Store<'_, H>>,
    actor: &Actor<'_>,
    listing_id: i64,
    image_id: i64,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    for_seller(sql, actor, listing_id).await?;
    let store = store.ok_or_else(|| storage_error(ObjectError::NotConfigured))?;
    let row = sql
        .query_opt(
            "SELECT key, byte_size, status FROM marketplace_listing_images \
             WHERE id = $1 AND listing_id = $2",
            &[SqlValue::Int64(image_id), SqlValue::Int64(listing_id)],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let key: String = row.get("key")?;
    if row.get::<String>("status")? == "attached" {
        return Ok(());
    }
    let expected: i32 = row.get("byte_size")?;
    match store.head(&key, now).await.map_err(storage_error)? {
        Some(info) if info.size == expected as u64 => {
            sql.execute(
                "UPDATE marketplace_listing_images SET status = 'attached', attached_at = $2::timestamp \
                 WHERE id = $1 AND status = 'pending'",
                &[SqlValue::Int64(image_id), SqlValue::Timestamp(now)],
            )
            .await?;
            Ok(())
        }
        Some(_) => Err(AppError::Conflict(
            "the stored file is not the size announced; upload it again".into(),
        )),
        None => Err(AppError::Conflict(
            "the upload has not arrived in storage yet; upload the file, then confirm".into(),
        )),
    }
}

/// Removes an image (the object goes with the next lifecycle run).
pub async fn delete(
    sql: &impl Sql,
    actor: &Actor<'_>,
    listing_id: i64,
    image_id: i64,
) -> Result<(), AppError> {
    for_seller(sql, actor, listing_id).await?;
    let gone = sql
        .execute(
            "WITH gone AS (DELETE FROM marketplace_listing_images \
                 WHERE id = $1 AND listing_id = $2 RETURNING listing_id) \
             UPDATE marketplace_listings SET image_slots = image_slots - 1 \
             WHERE id IN (SELECT listing_id FROM gone)",
            &[SqlValue::Int64(image_id), SqlValue::Int64(listing_id)],
        )
        .await?;
    if gone == 0 {
        return Err(AppError::NotFound);
    }
    Ok(())
}

/// The listing's images with addresses a browser may read them at.
pub async fn of_listing<H: HttpClient>(
    sql: &impl Sql,
    store: Option<&S3Store<'_, H>>,
    listing: &Listing,
    now: DateTime<Utc>,
) -> Result<Vec<Image>, SqlError> {
    let rows = sql
        .query(
            "SELECT id, key, content_type, byte_size, status FROM marketplace_listing_images \
             WHERE listing_id = $1 ORDER BY position, id",
            &[SqlValue::Int64(listing.id)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let key: String = r.get("key")?;
            let status: String = r.get("status")?;
            let url = match (status.as_str(), listing.status.is_public(), store) {
                ("attached", true, _) => Some(public_path(&key)),
                ("attached", false, Some(store)) => {
                    Some(store.presign_get(&key, PRIVATE_URL_LIFE, now))
                }
                _ => None,
            };
            Ok(Image {
                id: r.get("id")?,
                content_type: r.get("content_type")?,
                byte_size: r.get("byte_size")?,
                key,
                status,
                url,
            })
        })
        .collect()
}

/// The stable address of a public listing's image.
pub fn public_path(key: &str) -> String {
    format!("/marketplace/images/{key}")
}

/// A public listing's image, for `GET /marketplace/images/{key}`: `None`
/// unless the image is attached to an active or sold listing.
pub async fn public<H: HttpClient>(
    sql: &impl Sql,
    store: Option<&S3Store<'_, H>>,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<(String, Vec<u8>)>, AppError> {
    let row = sql
        .query_opt(
            "SELECT i.content_type FROM marketplace_listing_images i \
             JOIN marketplace_listings l ON l.id = i.listing_id \
             WHERE i.key = $1 AND i.status = 'attached' AND l.status IN ('active', 'sold')",
            &[SqlValue::Text(key.to_owned())],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let store = store.ok_or_else(|| storage_error(ObjectError::NotConfigured))?;
    let content_type: String = row.get("content_type")?;
    Ok(store
        .get(key, now)
        .await
        .map_err(storage_error)?
        .map(|o| (content_type, o.bytes)))
}
