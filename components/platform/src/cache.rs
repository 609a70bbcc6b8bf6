//! The cache port: Redis as counters, short-lived values and wake-ups.
//! Nothing stored through it may be the only copy of anything.
//!
//! Keys are namespaced by the Postgres database the deployment uses
//! ([`namespace_of`]): what Redis holds (cached flag definitions, rate-limit
//! counters, metrics) belongs to that database, so two deployments — or two
//! test apps — sharing one Redis never read each other's keys. Build every
//! key with [`Cache::key`].

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    #[error("cache command failed: {0}")]
    Command(String),
}

/// A reply element of a raw command.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheValue {
    Nil,
    Int(i64),
    Bytes(Vec<u8>),
    Status(String),
}

impl CacheValue {
    pub fn as_text(&self) -> Option<String> {
        match self {
            CacheValue::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            CacheValue::Status(s) => Some(s.clone()),
            CacheValue::Int(i) => Some(i.to_string()),
            CacheValue::Nil => None,
        }
    }
}

/// An argument of a raw command.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheArg {
    Int(i64),
    Bytes(Vec<u8>),
}

impl From<&str> for CacheArg {
    fn from(s: &str) -> Self {
        CacheArg::Bytes(s.as_bytes().to_vec())
    }
}

impl From<String> for CacheArg {
    fn from(s: String) -> Self {
        CacheArg::Bytes(s.into_bytes())
    }
}

impl From<i64> for CacheArg {
    fn from(i: i64) -> Self {
        CacheArg::Int(i)
    }
}

#[allow(async_fn_in_trait)] // used through generics, never as `dyn`
pub trait Cache {
    /// This deployment's key prefix (see the module docs).
    fn namespace(&self) -> &str;

    /// `<namespace>:<rest>`: every key this application stores.
    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.namespace())
    }

    /// Runs one command; array replies come back flattened, as Spin does.
    async fn execute(
        &self,
        command: &str,
        args: &[CacheArg],
    ) -> Result<Vec<CacheValue>, CacheError>;

    /// Runs `command` when the request's answer has gone out (Spin
    /// adapter: `spin::serve` runs them after responding), or at once
    /// where there is no request (native adapter). For writes whose reply
    /// nobody waits for, e.g. appending to an analytics buffer; a failure is
    /// logged, never returned.
    async fn defer(&self, command: &str, args: Vec<CacheArg>) {
        if let Err(e) = self.execute(command, &args).await {
            crate::log::event(
                "WARNING",
                "deferred cache command failed",
                serde_json::json!({ "command": command, "error": e.to_string() }),
            );
        }
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let reply = self.execute("PING", &[]).await?;
        match reply.first() {
            Some(CacheValue::Status(s)) if s == "PONG" => Ok(()),
            other => Err(CacheError::Command(format!(
                "unexpected PING reply {other:?}"
            ))),
        }
    }
}

/// Reads a hash of integer counters (`HGETALL`), skipping fields that are
/// not integers.
pub async fn counters(
    cache: &impl Cache,
    key: &str,
) -> Result<std::collections::BTreeMap<String, u64>, CacheError> {
    let flat = cache.execute("HGETALL", &[key.into()]).await?;
    let mut fields = std::collections::BTreeMap::new();
    for pair in flat.chunks(2) {
        if let [k, v] = pair
            && let (Some(k), Some(v)) =
                (k.as_text(), v.as_text().and_then(|v| v.parse::<u64>().ok()))
        {
            fields.insert(k, v);
        }
    }
    Ok(fields)
}

/// A JSON value cached under `key` (a [`Cache::key`]): `Ok(None)` on a miss
/// or an unreadable value, `Err` when Redis cannot answer.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    cache: &impl Cache,
    key: &str,
) -> Result<Option<T>, CacheError> {
    let reply = cache.execute("GET", &[key.into()]).await?;
    Ok(match reply.first() {
        Some(CacheValue::Bytes(b)) => serde_json::from_slice(b).ok(),
        _ => None,
    })
}

/// Caches `value` under `key` for `ttl_secs`. Best effort: a failure only
/// costs the next reader a trip to the source.
pub async fn put_json<T: serde::Serialize>(
    cache: &impl Cache,
    key: &str,
    value: &T,
    ttl_secs: i64,
) {
    if let Ok(json) = serde_json::to_vec(value) {
        let _ = cache
            .execute(
                "SET",
                &[
                    key.into(),
                    CacheArg::Bytes(json),
                    "EX".into(),
                    CacheArg::Int(ttl_secs),
                ],
            )
            .await;
    }
}

/// Drops a cached value after its source changed. A lost deletion heals
/// when the value's `ttl_secs` runs out, which the warning says.
pub async fn forget(cache: &impl Cache, key: &str, ttl_secs: i64) {
    if let Err(e) = cache.execute("DEL", &[key.into()]).await {
        crate::log::event(
            "WARNING",
            "cached value not invalidated; it expires within its TTL",
            serde_json::json!({ "key": key, "error": e.to_string(), "ttl_secs": ttl_secs }),
        );
    }
}

/// The key namespace for a deployment using the database at `database_url`:
/// the database's name (`village` in production), or `village` when the URL
/// names none.
pub fn namespace_of(database_url: &str) -> String {
    url::Url::parse(database_url)
        .ok()
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.next_back().map(str::to_owned))
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "village".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_is_the_database_name() {
        assert_eq!(
            namespace_of("postgres://postgres:pw@127.0.0.1:5432/village"),
            "village"
        );
        assert_eq!(
            namespace_of("postgres://u@db:5432/village_test_42?sslmode=disable"),
            "village_test_42"
        );
        assert_eq!(namespace_of("postgres://u@db:5432"), "village");
        assert_eq!(namespace_of("not a url"), "village");
    }
}
