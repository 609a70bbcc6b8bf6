//! The blob store port, and its embedded default: blobs kept in Postgres.
//!
//! Production can swap in an S3-compatible bucket (Cloudflare R2) behind the
//! same trait; the embedded store serves development and tests with nothing
//! extra to run.

use crate::sql::{Sql, SqlError, SqlValue};

#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

#[allow(async_fn_in_trait)] // used through generics, never as `dyn`
pub trait BlobStore {
    async fn put(&self, key: &str, blob: &Blob) -> Result<(), SqlError>;
    async fn get(&self, key: &str) -> Result<Option<Blob>, SqlError>;
    async fn delete(&self, key: &str) -> Result<bool, SqlError>;
}

/// Blobs in the `blobs` table.
pub struct SqlBlobStore<'a, S: Sql> {
    pub sql: &'a S,
}

impl<S: Sql> BlobStore for SqlBlobStore<'_, S> {
    async fn put(&self, key: &str, blob: &Blob) -> Result<(), SqlError> {
        self.sql
            .execute(
                "INSERT INTO blobs (key, content_type, bytes) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET content_type = EXCLUDED.content_type, \
                 bytes = EXCLUDED.bytes, updated_at = now()",
                &[
                    SqlValue::Text(key.into()),
                    SqlValue::Text(blob.content_type.clone()),
                    SqlValue::Bytes(blob.bytes.clone()),
                ],
            )
            .await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, SqlError> {
        let row = self
            .sql
            .query_opt(
                "SELECT content_type, bytes FROM blobs WHERE key = $1",
                &[SqlValue::Text(key.into())],
            )
            .await?;
        row.map(|r| {
            Ok(Blob {
                content_type: r.get("content_type")?,
                bytes: r.get("bytes")?,
            })
        })
        .transpose()
    }

    async fn delete(&self, key: &str) -> Result<bool, SqlError> {
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
