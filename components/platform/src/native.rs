//! The native adapters: the same ports over tokio-postgres and redis, for
//! tests and native tools that talk to the real servers.

use tokio_postgres::types::{ToSql, Type};

use crate::cache::{Cache, CacheArg, CacheError, CacheValue};
use crate::sql::{Row, Sql, SqlError, SqlValue};

pub struct NativeSql {
    pub client: tokio_postgres::Client,
    /// Prepared statements by text: one round trip per query afterwards, as
    /// the runtime's Spin Postgres host does with its statement cache.
    statements: std::sync::Mutex<std::collections::HashMap<String, tokio_postgres::Statement>>,
}

impl NativeSql {
    /// Connects and drives the connection on the current tokio runtime.
    pub async fn connect(url: &str) -> Result<Self, SqlError> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| SqlError::Unavailable(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("native sql connection ended: {e}");
            }
        });
        Ok(Self {
            client,
            statements: Default::default(),
        })
    }

    async fn prepare(&self, statement: &str) -> Result<tokio_postgres::Statement, SqlError> {
        let cached = self
            .statements
            .lock()
            .map_err(|_| SqlError::Unavailable("statement cache poisoned".into()))?
            .get(statement)
            .cloned();
        if let Some(s) = cached {
            return Ok(s);
        }
        let prepared = self.client.prepare(statement).await.map_err(pg_error)?;
        self.statements
            .lock()
            .map_err(|_| SqlError::Unavailable("statement cache poisoned".into()))?
            .insert(statement.to_owned(), prepared.clone());
        Ok(prepared)
    }
}

fn pg_error(e: tokio_postgres::Error) -> SqlError {
    match e.as_db_error() {
        Some(db) => SqlError::Query {
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
        },
        None if e.is_closed() => SqlError::Unavailable(e.to_string()),
        None => SqlError::Query {
            code: String::new(),
            message: e.to_string(),
        },
    }
}

/// SQL NULL for a parameter of any type, as Spin's `DbNull` is: an
/// `Option<String>` would be refused for a `uuid` or `integer` parameter.
#[derive(Debug)]
struct AnyNull;

impl ToSql for AnyNull {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(tokio_postgres::types::IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// The Rust type bound for each value is the one Spin 3.6's Postgres host
/// binds for the Spin variant `spin::SpinSql` sends (see there), so a
/// parameter Postgres infers as another type fails here as in production:
/// `Timestamp` is a zone-less `timestamp` (never `timestamptz`), `Int32`
/// only an `integer`, `Text` only a text type.
fn boxed(v: &SqlValue) -> Box<dyn ToSql + Sync + Send> {
    match v {
        SqlValue::Null => Box::new(AnyNull),
        SqlValue::Bool(b) => Box::new(*b),
        SqlValue::Int32(i) => Box::new(*i),
        SqlValue::Int64(i) => Box::new(*i),
        SqlValue::Float64(f) => Box::new(*f),
        SqlValue::Text(s) => Box::new(s.clone()),
        SqlValue::Bytes(b) => Box::new(b.clone()),
        SqlValue::Json(j) => Box::new(j.clone()),
        SqlValue::Uuid(u) => Box::new(*u),
        SqlValue::Timestamp(t) => Box::new(t.naive_utc()),
        SqlValue::Int64Array(a) => Box::new(a.iter().copied().map(Some).collect::<Vec<_>>()),
    }
}

fn boxed_all(params: &[SqlValue]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params.iter().map(boxed).collect()
}

fn as_refs(owned: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    owned
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// A column as `spin::SpinSql` would see it under Spin 3.6: the same types
/// read, the same refused (a `timestamptz` column fails the read, as Spin
/// reads it as a zone-less date-time), the same fallbacks (`date` as text;
/// types Spin does not map, such as `json` or `name`, as their raw bytes).
/// Types `SpinSql` has no value for are refused (`numeric` among them,
/// which `SpinSql` would take as text: nothing reads one today).
fn value(row: &tokio_postgres::Row, i: usize) -> Result<SqlValue, SqlError> {
    let ty = row.columns()[i].type_().clone();
    let d = |e: tokio_postgres::Error| SqlError::Decode(e.to_string());
    macro_rules! get {
        ($t:ty, $variant:expr) => {
            row.try_get::<_, Option<$t>>(i)
                .map_err(d)?
                .map($variant)
                .unwrap_or(SqlValue::Null)
        };
    }
    Ok(match ty {
        Type::BOOL => get!(bool, SqlValue::Bool),
        Type::INT2 => get!(i16, |v| SqlValue::Int32(v.into())),
        Type::INT4 => get!(i32, SqlValue::Int32),
        Type::INT8 => get!(i64, SqlValue::Int64),
        Type::FLOAT4 => get!(f32, |v| SqlValue::Float64(v.into())),
        Type::FLOAT8 => get!(f64, SqlValue::Float64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => get!(String, SqlValue::Text),
        Type::BYTEA => get!(Vec<u8>, SqlValue::Bytes),
        Type::JSONB => get!(serde_json::Value, SqlValue::Json),
        Type::UUID => get!(uuid::Uuid, SqlValue::Uuid),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            get!(chrono::NaiveDateTime, |v: chrono::NaiveDateTime| {
                SqlValue::Timestamp(v.and_utc())
            })
        }
        Type::DATE => get!(chrono::NaiveDate, |v: chrono::NaiveDate| SqlValue::Text(
            v.format("%Y-%m-%d").to_string()
        )),
        Type::TIME
        | Type::INTERVAL
        | Type::NUMERIC
        | Type::INT4_ARRAY
        | Type::INT8_ARRAY
        | Type::NUMERIC_ARRAY
        | Type::TEXT_ARRAY
        | Type::VARCHAR_ARRAY
        | Type::BPCHAR_ARRAY
        | Type::INT4_RANGE
        | Type::INT8_RANGE
        | Type::NUM_RANGE => {
            return Err(SqlError::Decode(format!(
                "column type {ty} has no SqlValue (cast it in the statement)"
            )));
        }
        _ => get!(RawBytes, |r: RawBytes| SqlValue::Bytes(r.0)),
    })
}

/// A type Spin hands over as `unsupported`: its binary wire bytes.
struct RawBytes(Vec<u8>);

impl<'a> tokio_postgres::types::FromSql<'a> for RawBytes {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawBytes(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

impl Sql for NativeSql {
    async fn query(&self, statement: &str, params: &[SqlValue]) -> Result<Vec<Row>, SqlError> {
        let owned = boxed_all(params);
        let refs = as_refs(&owned);
        let prepared = self.prepare(statement).await?;
        let rows = self
            .client
            .query(&prepared, &refs)
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|r| {
                Ok(Row {
                    columns: (0..r.len())
                        .map(|i| Ok((r.columns()[i].name().to_owned(), value(r, i)?)))
                        .collect::<Result<_, SqlError>>()?,
                })
            })
            .collect()
    }

    async fn execute(&self, statement: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        let owned = boxed_all(params);
        let refs = as_refs(&owned);
        let prepared = self.prepare(statement).await?;
        self.client
            .execute(&prepared, &refs)
            .await
            .map_err(pg_error)
    }
}

/// The local Redis tests use.
pub const TEST_REDIS: &str = "redis://127.0.0.1:6379";

/// A test's ports for its own database: SQL on `database_url`, and the
/// local Redis with keys under that database's namespace, so tests sharing
/// one Redis never share keys.
pub async fn test_ports(database_url: &str) -> (NativeSql, NativeCache) {
    let sql = NativeSql::connect(database_url)
        .await
        .expect("connect to the test database");
    let cache =
        NativeCache::connect_namespaced(TEST_REDIS, &crate::cache::namespace_of(database_url))
            .await
            .expect("connect to the local Redis");
    (sql, cache)
}

pub struct NativeCache {
    pub conn: redis::aio::MultiplexedConnection,
    namespace: String,
}

impl NativeCache {
    /// Connects with the production namespace (`village`).
    pub async fn connect(url: &str) -> Result<Self, CacheError> {
        Self::connect_namespaced(url, "village").await
    }

    /// Connects with keys under `namespace` (see `cache::namespace_of`).
    pub async fn connect_namespaced(url: &str, namespace: &str) -> Result<Self, CacheError> {
        let client =
            redis::Client::open(url).map_err(|e| CacheError::Unavailable(e.to_string()))?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| CacheError::Unavailable(e.to_string()))?;
        Ok(Self {
            conn,
            namespace: namespace.to_owned(),
        })
    }
}

fn flatten(v: redis::Value, out: &mut Vec<CacheValue>) {
    use redis::Value as V;
    match v {
        V::Nil => out.push(CacheValue::Nil),
        V::Int(i) => out.push(CacheValue::Int(i)),
        V::BulkString(b) => out.push(CacheValue::Bytes(b)),
        V::SimpleString(s) => out.push(CacheValue::Status(s)),
        V::Okay => out.push(CacheValue::Status("OK".into())),
        V::Array(items) | V::Set(items) => items.into_iter().for_each(|i| flatten(i, out)),
        V::Map(pairs) => pairs.into_iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        other => out.push(CacheValue::Status(format!("{other:?}"))),
    }
}

impl Cache for NativeCache {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn execute(
        &self,
        command: &str,
        args: &[CacheArg],
    ) -> Result<Vec<CacheValue>, CacheError> {
        let mut cmd = redis::cmd(command);
        for a in args {
            match a {
                CacheArg::Int(i) => cmd.arg(*i),
                CacheArg::Bytes(b) => cmd.arg(b.as_slice()),
            };
        }
        let mut conn = self.conn.clone();
        let v: redis::Value = cmd.query_async(&mut conn).await.map_err(|e| {
            if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
                CacheError::Unavailable(e.to_string())
            } else {
                CacheError::Command(e.to_string())
            }
        })?;
        let mut out = Vec::new();
        flatten(v, &mut out);
        Ok(out)
    }
}

/// Outbound HTTP with reqwest, with a whole-request timeout. Redirects are
/// answered, not followed, as Spin's outbound HTTP does: callers that follow
/// them check each target themselves (feeds). Errors never carry the URL: a
/// presigned one holds a signature, and errors reach logs and records.
pub struct NativeHttp {
    client: reqwest::Client,
    timeout: std::time::Duration,
    /// Answers with a larger body fail with `TooLarge`, checked while
    /// reading (as `SpinHttp` does).
    pub max_body: usize,
}

impl NativeHttp {
    pub fn new(timeout: std::time::Duration) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            timeout,
            max_body: 5 << 20,
        }
    }
}

impl crate::http_client::HttpClient for NativeHttp {
    async fn send(
        &self,
        request: crate::http_client::HttpRequest,
    ) -> Result<crate::http_client::HttpResponse, crate::http_client::HttpError> {
        use crate::http_client::HttpError;
        let (parts, body) = request.into_parts();
        let resp = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    HttpError::Timeout(self.timeout)
                } else {
                    HttpError::Failed(e.without_url().to_string())
                }
            })?;
        let mut out = http::Response::builder().status(resp.status());
        for (k, v) in resp.headers() {
            out = out.header(k, v);
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(HttpError::TooLarge {
                limit: self.max_body,
            });
        }
        let mut resp = resp;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            if e.is_timeout() {
                HttpError::Timeout(self.timeout)
            } else {
                HttpError::Failed(e.without_url().to_string())
            }
        })? {
            if body.len() + chunk.len() > self.max_body {
                return Err(HttpError::TooLarge {
                    limit: self.max_body,
                });
            }
            body.extend_from_slice(&chunk);
        }
        out.body(body).map_err(|e| HttpError::Failed(e.to_string()))
    }
}

/// A private `redis-server` on a free loopback port, for tests that need a
/// real Redis outage: connect, then [`PrivateRedis::stop`] it. Stopped on
/// drop too.
pub struct PrivateRedis {
    child: Option<std::process::Child>,
    pub url: String,
}

impl PrivateRedis {
    pub async fn start() -> Result<Self, CacheError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| CacheError::Unavailable(e.to_string()))?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| CacheError::Unavailable(format!("redis-server: {e}")))?;
        let url = format!("redis://127.0.0.1:{port}");
        let redis = PrivateRedis {
            child: Some(child),
            url,
        };
        for _ in 0..100 {
            if let Ok(c) = NativeCache::connect(&redis.url).await
                && c.ping().await.is_ok()
            {
                return Ok(redis);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Err(CacheError::Unavailable("redis-server did not start".into()))
    }

    /// Kills the server: every connection to it fails from now on.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
