//! Object storage: an S3-compatible bucket (Cloudflare R2 in production,
//! `s3s-fs` on loopback in development and tests) reached with SigV4
//! presigned URLs.
//!
//! Signing is `rusty-s3`'s: a sans-IO crate (it builds URLs, we send them
//! through the [`HttpClient`] port), so the same code runs in a component
//! and natively. Everything is a presigned URL, including the component's
//! own HEAD, GET and DELETE; a browser uploads with a presigned PUT whose
//! signature pins `content-type` and `content-length`, so storage itself
//! refuses another type or size.
//!
//! Server-side blobs reach it through [`crate::blob::BlobStore`] (or the
//! embedded Postgres store when no bucket is configured); browser uploads
//! need its presigned URLs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::http_client::{HttpClient, HttpError};

/// How long a browser has to start an upload.
pub const UPLOAD_URL_LIFE: Duration = Duration::from_secs(15 * 60);
/// How long a private object's read URL works (draft listings' images).
pub const PRIVATE_URL_LIFE: Duration = Duration::from_secs(24 * 3600);
/// The life of the URLs the component signs for its own requests.
const OWN_URL_LIFE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object storage is not configured")]
    NotConfigured,
    #[error("object storage settings: {0}")]
    Config(String),
    #[error("object storage unreachable: {0}")]
    Transport(#[from] HttpError),
    #[error("object storage answered {status} to {operation}")]
    Status {
        operation: &'static str,
        status: u16,
    },
}

/// What storage says about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub content_type: Option<String>,
}

/// A stored object read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
    /// `x-amz-meta-*` headers, by name without the prefix.
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// The bucket's settings: Spin variables `object_store_endpoint` (origin,
/// path-style), `object_store_bucket`, `object_store_region`,
/// `object_store_access_key`, `object_store_secret_key`. An empty endpoint
/// means no object storage.
#[derive(Clone)]
pub struct S3Config {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for S3Config {
    // The secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// Reads the settings through `get` (Spin variables in a component);
    /// `Ok(None)` when no endpoint or no keys are configured (a site
    /// without object storage: uploads say so, everything else works).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ObjectError> {
        let value = |name: &str| get(name).unwrap_or_default().trim().to_owned();
        let endpoint = value("object_store_endpoint");
        if endpoint.is_empty()
            || value("object_store_access_key").is_empty()
            || value("object_store_secret_key").is_empty()
        {
            return Ok(None);
        }
        let config = S3Config {
            endpoint,
            bucket: value("object_store_bucket"),
            region: value("object_store_region"),
            access_key: value("object_store_access_key"),
            secret_key: value("object_store_secret_key"),
        };
        for (name, v) in [
            ("object_store_bucket", &config.bucket),
            ("object_store_region", &config.region),
        ] {
            if v.is_empty() {
                return Err(ObjectError::Config(format!("`{name}` is empty")));
            }
        }
        Ok(Some(config))
    }

    /// The store's origin (`scheme://host[:port]`), for a page's CSP.
    pub fn origin(&self) -> String {
        url::Url::parse(&self.endpoint)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }
}

/// An S3-compatible bucket behind presigned URLs.
pub struct S3Store<'h, H> {
    bucket: Bucket,
    credentials: Credentials,
    http: &'h H,
}

fn signing_time(now: DateTime<Utc>) -> jiff::Timestamp {
    jiff::Timestamp::from_second(now.timestamp()).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl<'h, H: HttpClient> S3Store<'h, H> {
    pub fn new(config: &S3Config, http: &'h H) -> Result<Self, ObjectError> {
        let endpoint = url::Url::parse(&config.endpoint)
            .map_err(|e| ObjectError::Config(format!("`object_store_endpoint`: {e}")))?;
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| ObjectError::Config(e.to_string()))?;
        Ok(S3Store {
            bucket,
            credentials: Credentials::new(config.access_key.clone(), config.secret_key.clone()),
            http,
        })
    }

    /// A URL a browser PUTs `size` bytes of `content_type` to, until
    /// `now + life`: the signature covers both headers, so storage refuses
    /// any other type or length.
    pub fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        life: Duration,
        now: DateTime<Utc>,
    ) -> String {
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        action
            .headers_mut()
            .insert("content-type", content_type.to_owned());
        action
            .headers_mut()
            .insert("content-length", size.to_string());
        action.sign_with_time(life, &signing_time(now)).into()
    }

    /// Stores `bytes` under `key` (server-side writes: screenshots, exports).
    pub async fn put(
        &self,
        key: &str,
        content_type: &str,
        bytes: Vec<u8>,
        now: DateTime<Utc>,
    ) -> Result<(), ObjectError> {
        self.put_with_metadata(key, content_type, &Default::default(), bytes, now)
            .await
    }

    /// [`S3Store::put`], with user metadata as signed `x-amz-meta-*`
    /// headers (names lower-case ASCII, values printable ASCII).
    pub async fn put_with_metadata(
        &self,
        key: &str,
        content_type: &str,
        metadata: &std::collections::BTreeMap<String, String>,
        bytes: Vec<u8>,
        now: DateTime<Utc>,
    ) -> Result<(), ObjectError> {
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        let headers = action.headers_mut();
        headers.insert("content-type", content_type.to_owned());
        headers.insert("content-length", bytes.len().to_string());
        for (name, value) in metadata {
            headers.insert(format!("x-amz-meta-{name}"), value.clone());
        }
        let url: String = action
            .sign_with_time(OWN_URL_LIFE, &signing_time(now))
            .into();
        let mut request = http::Request::put(url)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, bytes.len());
        for (name, value) in metadata {
            request = request.header(format!("x-amz-meta-{name}"), value);
        }
        let request = request
            .body(bytes)
            .map_err(|e| ObjectError::Config(e.to_string()))?;
        let response = self.http.send(request).await?;
        match response.status().as_u16() {
            200 | 201 | 204 => Ok(()),
            status => Err(ObjectError::Status {
                operation: "PUT",
                status,
            }),
        }
    }

    /// A URL that reads `key` until `now + life`.
    pub fn presign_get(&self, key: &str, life: Duration, now: DateTime<Utc>) -> String {
        self.bucket
            .get_object(Some(&self.credentials), key)
            .sign_with_time(life, &signing_time(now))
            .into()
    }

    /// The object's size and type, or `None` when there is no such object.
    pub async fn head(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ObjectInfo>, ObjectError> {
        let url: String = self
            .bucket
            .head_object(Some(&self.credentials), key)
            .sign_with_time(OWN_URL_LIFE, &signing_time(now))
            .into();
        let response = self.send(http::Method::HEAD, url).await?;
        match response.status().as_u16() {
            200 => Ok(Some(ObjectInfo {
                size: header(&response, http::header::CONTENT_LENGTH)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                content_type: header(&response, http::header::CONTENT_TYPE),
            })),
            404 => Ok(None),
            status => Err(ObjectError::Status {
                operation: "HEAD",
                status,
            }),
        }
    }

    /// The object, or `None` when there is no such object.
    pub async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Object>, ObjectError> {
        let url = self.presign_get(key, OWN_URL_LIFE, now);
        let response = self.send(http::Method::GET, url).await?;
        match response.status().as_u16() {
            200 => Ok(Some(Object {
                content_type: header(&response, http::header::CONTENT_TYPE),
                metadata: response
                    .headers()
                    .iter()
                    .filter_map(|(name, value)| {
                        Some((
                            name.as_str().strip_prefix("x-amz-meta-")?.to_owned(),
                            value.to_str().ok()?.to_owned(),
                        ))
                    })
                    .collect(),
                bytes: response.into_body(),
            })),
            404 => Ok(None),
            status => Err(ObjectError::Status {
                operation: "GET",
                status,
            }),
        }
    }

    /// Deletes the object; deleting what is not there is not an error.
    pub async fn delete(&self, key: &str, now: DateTime<Utc>) -> Result<(), ObjectError> {
        let url: String = self
            .bucket
            .delete_object(Some(&self.credentials), key)
            .sign_with_time(OWN_URL_LIFE, &signing_time(now))
            .into();
        let response = self.send(http::Method::DELETE, url).await?;
        match response.status().as_u16() {
            200 | 204 | 404 => Ok(()),
            status => Err(ObjectError::Status {
                operation: "DELETE",
                status,
            }),
        }
    }

    async fn send(
        &self,
        method: http::Method,
        url: String,
    ) -> Result<crate::http_client::HttpResponse, ObjectError> {
        let request = http::Request::builder()
            .method(method)
            .uri(url)
            .body(Vec::new())
            .map_err(|e| ObjectError::Config(e.to_string()))?;
        Ok(self.http.send(request).await?)
    }
}

fn header(
    response: &crate::http_client::HttpResponse,
    name: http::header::HeaderName,
) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoHttp;
    impl HttpClient for NoHttp {
        async fn send(
            &self,
            _: crate::http_client::HttpRequest,
        ) -> Result<crate::http_client::HttpResponse, HttpError> {
            Err(HttpError::Failed("not in this test".into()))
        }
    }

    fn config() -> S3Config {
        S3Config {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "village".into(),
            region: "us-east-1".into(),
            access_key: "AKID".into(),
            secret_key: "very-secret".into(),
        }
    }

    #[test]
    fn an_upload_url_signs_its_type_and_length_and_expires_in_fifteen_minutes() {
        let store = S3Store::new(&config(), &NoHttp).expect("store");
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let url = store.presign_put("listings/1/a.png", "image/png", 1234, UPLOAD_URL_LIFE, now);
        let url = url::Url::parse(&url).expect("url");
        assert_eq!(url.path(), "/village/listings/1/a.png");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["X-Amz-Expires"], "900");
        assert_eq!(q["X-Amz-SignedHeaders"], "content-length;content-type;host");
        assert!(q["X-Amz-Credential"].starts_with("AKID/"));
        assert!(!url.as_str().contains("very-secret"));
    }

    #[test]
    fn settings_need_every_field_once_an_endpoint_is_set() {
        let none = S3Config::from_lookup(|_| None).expect("no store");
        assert!(none.is_none());
        let no_keys = S3Config::from_lookup(|n| {
            (n == "object_store_endpoint").then(|| "http://127.0.0.1:9000".to_owned())
        });
        assert!(matches!(no_keys, Ok(None)), "no keys: no object storage");
        let partial = S3Config::from_lookup(|n| match n {
            "object_store_endpoint" => Some("http://127.0.0.1:9000".to_owned()),
            "object_store_access_key" | "object_store_secret_key" => Some("k".to_owned()),
            _ => None,
        });
        assert!(
            matches!(partial, Err(ObjectError::Config(m)) if m.contains("object_store_bucket"))
        );
        assert!(!format!("{:?}", config()).contains("very-secret"));
        assert_eq!(config().origin(), "http://127.0.0.1:9000");
    }
}
