//! The blob store port for server-side blobs (screenshots, exports), with
//! two adapters chosen by Spin variables ([`Blobs::choose`]): an
//! S3-compatible bucket ([`crate::objects::S3Store`]; Cloudflare R2 in
//! production) when `object_store_*` are set, else the embedded store, kept
//! in Postgres, which needs nothing extra to run. Browser uploads (listing
//! images) need presigned URLs, which only the bucket gives: they use
//! `S3Store` directly.

use crate::http_client::HttpClient;
use crate::objects::{ObjectError, S3Config, S3Store};
use crate::sql::{Sql, SqlError, SqlValue};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Object(#[from] ObjectError),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Blob {
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// User metadata, name (lower-case ASCII) → value (printable ASCII):
    /// `x-amz-meta-<name>` in the bucket, the `metadata` column embedded.
    pub metadata: std::collections::BTreeMap<String, String>,
}

#[allow(async_fn_in_trait)] // used through generics, never as `dyn`
pub trait BlobStore {
    async fn put(&self, key: &str, blob: &Blob) -> Result<(), BlobError>;
    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError>;
    /// Whether there was a blob to delete (a bucket does not say: `true`).
    async fn delete(&self, key: &str) -> Result<bool, BlobError>;
}

/// Blobs in the `blobs` table.
pub struct SqlBlobStore<'a, S: Sql> {
    pub sql: &'a S,
}

impl<S: Sql> BlobStore for SqlBlobStore<'_, S> {
    async fn put(&self, key: &str, blob: &Blob) -> Result<(), BlobError> {
        self.sql
            .execute(
                "INSERT INTO blobs (key, content_type, bytes, metadata) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key) DO UPDATE SET content_type = EXCLUDED.content_type, \
                 bytes = EXCLUDED.bytes, metadata = EXCLUDED.metadata, updated_at = now()",
                &[
                    SqlValue::Text(key.into()),
                    SqlValue::Text(blob.content_type.clone()),
                    SqlValue::Bytes(blob.bytes.clone()),
                    SqlValue::Json(serde_json::to_value(&blob.metadata).unwrap_or_default()),
                ],
            )
            .await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError> {
        let row = self
            .sql
            .query_opt(
                "SELECT content_type, bytes, metadata FROM blobs WHERE key = $1",
                &[SqlValue::Text(key.into())],
            )
            .await?;
        Ok(row
            .map(|r| {
                let metadata: serde_json::Value = r.get("metadata")?;
                Ok::<_, SqlError>(Blob {
                    content_type: r.get("content_type")?,
                    bytes: r.get("bytes")?,
                    metadata: serde_json::from_value(metadata).unwrap_or_default(),
                })
            })
            .transpose()?)
    }

    async fn delete(&self, key: &str) -> Result<bool, BlobError> {
        Ok(self
            .sql
            .execute(
                "DELETE FROM blobs WHERE key = $1",
                &[SqlValue::Text(key.into())],
            )
            .await?
            > 0)
    }
}

impl<H: HttpClient> BlobStore for S3Store<'_, H> {
    async fn put(&self, key: &str, blob: &Blob) -> Result<(), BlobError> {
        Ok(self
            .put_with_metadata(
                key,
                &blob.content_type,
                &blob.metadata,
                blob.bytes.clone(),
                chrono::Utc::now(),
            )
            .await?)
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError> {
        Ok(S3Store::get(self, key, chrono::Utc::now())
            .await?
            .map(|o| Blob {
                content_type: o
                    .content_type
                    .unwrap_or_else(|| "application/octet-stream".into()),
                bytes: o.bytes,
                metadata: o.metadata,
            }))
    }

    async fn delete(&self, key: &str) -> Result<bool, BlobError> {
        S3Store::delete(self, key, chrono::Utc::now()).await?;
        Ok(true)
    }
}

/// The blob store the settings choose: the bucket when `object_store_*`
/// are set, else Postgres.
pub enum Blobs<'a, S: Sql, H> {
    Embedded(SqlBlobStore<'a, S>),
    Bucket(Box<S3Store<'a, H>>),
}

impl<'a, S: Sql, H: HttpClient> Blobs<'a, S, H> {
    pub fn choose(config: Option<&S3Config>, sql: &'a S, http: &'a H) -> Result<Self, ObjectError> {
        Ok(match config {
            Some(c) => Blobs::Bucket(Box::new(S3Store::new(c, http)?)),
            None => Blobs::Embedded(SqlBlobStore { sql }),
        })
    }
}

impl<S: Sql, H: HttpClient> BlobStore for Blobs<'_, S, H> {
    async fn put(&self, key: &str, blob: &Blob) -> Result<(), BlobError> {
        match self {
            Blobs::Embedded(s) => s.put(key, blob).await,
            Blobs::Bucket(s) => BlobStore::put(s.as_ref(), key, blob).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError> {
        match self {
            Blobs::Embedded(s) => s.get(key).await,
            Blobs::Bucket(s) => BlobStore::get(s.as_ref(), key).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, BlobError> {
        match self {
            Blobs::Embedded(s) => s.delete(key).await,
            Blobs::Bucket(s) => BlobStore::delete(s.as_ref(), key).await,
        }
    }
}
