//! The Spin adapters: Postgres through `spin:postgres@4.0.0`, Redis through
//! `fermyon:spin/redis`, configuration from Spin variables — and [`serve`],
//! the wrapper that makes every HTTP function the same few lines.

use std::cell::OnceCell;
use std::time::Instant;

use spin_sdk::http::{Fields, OutgoingResponse, ResponseOutparam};
use spin_sdk::pg4::{self, DbValue, ParameterValue};
use spin_sdk::{redis, variables};
use uuid::Uuid;

use crate::cache::{Cache, CacheArg, CacheError, CacheValue};
use crate::clock::SystemClock;
use crate::context::RequestContext;
use crate::error::AppError;
use crate::guard::Verdict;
use crate::log::RequestLog;
use crate::sql::{Row, Sql, SqlError, SqlValue};
use crate::web::{self, Request, Response};

/// Postgres, connected on first use: a request that needs no SQL opens none.
pub struct SpinSql {
    address: String,
    conn: OnceCell<pg4::Connection>,
}

impl SpinSql {
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            conn: OnceCell::new(),
        }
    }

    fn conn(&self) -> Result<&pg4::Connection, SqlError> {
        if let Some(c) = self.conn.get() {
            return Ok(c);
        }
        let c = pg4::Connection::open(&self.address).map_err(pg_error)?;
        Ok(self.conn.get_or_init(|| c))
    }
}

fn pg_error(e: pg4::PgError) -> SqlError {
    match e {
        pg4::PgError::ConnectionFailed(m) => SqlError::Unavailable(m),
        pg4::PgError::QueryFailed(pg4::QueryError::DbError(db)) => SqlError::Query {
            code: db.code,
            message: db.message,
        },
        other => SqlError::Query {
            code: String::new(),
            message: other.to_string(),
        },
    }
}

fn to_param(v: &SqlValue) -> ParameterValue {
    use chrono::{Datelike, Timelike};
    match v {
        SqlValue::Null => ParameterValue::DbNull,
        SqlValue::Bool(b) => ParameterValue::Boolean(*b),
        SqlValue::Int32(i) => ParameterValue::Int32(*i),
        SqlValue::Int64(i) => ParameterValue::Int64(*i),
        SqlValue::Float64(f) => ParameterValue::Floating64(*f),
        SqlValue::Text(s) => ParameterValue::Str(s.clone()),
        SqlValue::Bytes(b) => ParameterValue::Binary(b.clone()),
        SqlValue::Json(j) => ParameterValue::Jsonb(j.to_string().into_bytes()),
        SqlValue::Uuid(u) => ParameterValue::Uuid(u.to_string()),
        SqlValue::Int64Array(a) => {
            ParameterValue::ArrayInt64(a.iter().copied().map(Some).collect())
        }
        // chrono keeps every field in range for the u8 casts below.
        SqlValue::Timestamp(t) => ParameterValue::Datetime((
            t.year(),
            t.month() as u8,
            t.day() as u8,
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
            t.nanosecond(),
        )),
    }
}

fn from_db(v: DbValue) -> Result<SqlValue, SqlError> {
    let bad = |what: &str| SqlError::Decode(what.to_owned());
    Ok(match v {
        DbValue::DbNull => SqlValue::Null,
        DbValue::Boolean(b) => SqlValue::Bool(b),
        DbValue::Int8(i) => SqlValue::Int32(i.into()),
        DbValue::Int16(i) => SqlValue::Int32(i.into()),
        DbValue::Int32(i) => SqlValue::Int32(i),
        DbValue::Int64(i) => SqlValue::Int64(i),
        DbValue::Floating32(f) => SqlValue::Float64(f.into()),
        DbValue::Floating64(f) => SqlValue::Float64(f),
        DbValue::Str(s) | DbValue::Decimal(s) => SqlValue::Text(s),
        DbValue::Binary(b) | DbValue::Unsupported(b) => SqlValue::Bytes(b),
        DbValue::Uuid(s) => SqlValue::Uuid(Uuid::parse_str(&s).map_err(|_| bad("invalid uuid"))?),
        DbValue::Jsonb(b) => {
            SqlValue::Json(serde_json::from_slice(&b).map_err(|_| bad("invalid json"))?)
        }
        DbValue::Datetime((y, mo, d, h, mi, s, ns)) => SqlValue::Timestamp(
            chrono::NaiveDate::from_ymd_opt(y, mo.into(), d.into())
                .and_then(|date| date.and_hms_nano_opt(h.into(), mi.into(), s.into(), ns))
                .ok_or_else(|| bad("invalid datetime"))?
                .and_utc(),
        ),
        DbValue::Date((y, m, d)) => SqlValue::Text(format!("{y:04}-{m:02}-{d:02}")),
        other => {
            return Err(SqlError::Decode(format!(
                "unsupported column value {other:?}"
            )));
        }
    })
}

impl Sql for SpinSql {
    async fn query(&self, statement: &str, params: &[SqlValue]) -> Result<Vec<Row>, SqlError> {
        let params: Vec<ParameterValue> = params.iter().map(to_param).collect();
        let set = self.conn()?.query(statement, &params).map_err(pg_error)?;
        let names: Vec<String> = set.columns.iter().map(|c| c.name.clone()).collect();
        set.rows
            .into_iter()
            .map(|row| {
                Ok(Row {
                    columns: names
                        .iter()
                        .cloned()
                        .zip(
                            row.into_iter()
                                .map(from_db)
                                .collect::<Result<Vec<_>, _>>()?,
                        )
                        .collect(),
                })
            })
            .collect()
    }

    async fn execute(&self, statement: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        let params: Vec<ParameterValue> = params.iter().map(to_param).collect();
        self.conn()?.execute(statement, &params).map_err(pg_error)
    }
}

/// Redis, connected on first use, behind the circuit breaker
/// ([`crate::breaker`]) whose state is kept in the key-value store
/// `default` (components declare `key_value_stores = ["default"]`; without
/// it every call goes to Redis).
pub struct SpinCache {
    address: String,
    namespace: String,
    conn: OnceCell<redis::Connection>,
    /// The key-value store holding the breaker, opened on first use.
    kv: OnceCell<Option<spin_sdk::key_value::Store>>,
    /// The breaker as this request last read or wrote it.
    breaker: std::cell::Cell<Option<crate::breaker::BreakerState>>,
    /// Commands to run once the answer has gone out (see `Cache::defer`).
    deferred: std::cell::RefCell<Vec<(String, Vec<CacheArg>)>>,
}

impl SpinCache {
    pub fn new(address: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            namespace: namespace.into(),
            conn: OnceCell::new(),
            kv: OnceCell::new(),
            breaker: std::cell::Cell::new(None),
            deferred: Default::default(),
        }
    }

    /// The breaker's key: one breaker per Redis address (hashed: the
    /// address may carry a password), as apps sharing a key-value store may
    /// use different Redis servers.
    fn breaker_key(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.address.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("village.redis-breaker.{hex}")
    }

    fn kv(&self) -> Option<&spin_sdk::key_value::Store> {
        self.kv
            .get_or_init(|| spin_sdk::key_value::Store::open_default().ok())
            .as_ref()
    }

    fn breaker_state(&self) -> crate::breaker::BreakerState {
        if let Some(state) = self.breaker.get() {
            return state;
        }
        let state = self
            .kv()
            .and_then(|kv| kv.get(&self.breaker_key()).ok().flatten())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        self.breaker.set(Some(state));
        state
    }

    fn store_breaker(&self, state: crate::breaker::BreakerState) {
        let was = self.breaker.replace(Some(state));
        if let (Some(kv), Ok(bytes)) = (self.kv(), serde_json::to_vec(&state)) {
            let _ = kv.set(&self.breaker_key(), &bytes);
        }
        let opened = state.is_open() && !was.is_some_and(|w| w.is_open());
        if opened || (!state.is_open() && was.is_some_and(|w| w.is_open())) {
            crate::log::event(
                if state.is_open() { "WARNING" } else { "INFO" },
                if state.is_open() {
                    "redis circuit open: calls fail fast"
                } else {
                    "redis circuit closed"
                },
                serde_json::json!({ "failures": state.failures }),
            );
        }
    }

    fn now_ms() -> u64 {
        u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
    }

    /// Runs the deferred commands, in order. `serve` calls it after
    /// responding; a component answering without `serve` must call it too.
    pub async fn run_deferred(&self) {
        let pending = std::mem::take(&mut *self.deferred.borrow_mut());
        for (command, args) in pending {
            if let Err(e) = self.execute(&command, &args).await {
                crate::log::event(
                    "WARNING",
                    "deferred cache command failed",
                    serde_json::json!({ "command": command, "error": e.to_string() }),
                );
            }
        }
    }
}

impl Cache for SpinCache {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn defer(&self, command: &str, args: Vec<CacheArg>) {
        self.deferred.borrow_mut().push((command.to_owned(), args));
    }

    async fn execute(
        &self,
        command: &str,
        args: &[CacheArg],
    ) -> Result<Vec<CacheValue>, CacheError> {
        use crate::breaker::Gate;
        let state = self.breaker_state();
        match state.gate(Self::now_ms()) {
            Gate::FailFast => {
                return Err(CacheError::Unavailable(
                    "redis circuit open (recent failures)".into(),
                ));
            }
            Gate::Probe { claim } => self.store_breaker(claim),
            Gate::Call => {}
        }
        let started = Instant::now();
        let result = self.call(command, args);
        // Unavailable, or an error that took its time (a timeout): Redis is
        // not answering. A slow success does not open the breaker.
        let failed = match &result {
            Err(CacheError::Unavailable(_)) => true,
            Err(CacheError::Command(_)) => started.elapsed() >= crate::breaker::SLOW,
            Ok(_) => false,
        };
        let current = self.breaker_state();
        if let Some(next) = current.after(failed, Self::now_ms()) {
            self.store_breaker(next);
        }
        result
    }
}

impl SpinCache {
    /// One Redis command, no breaker.
    fn call(&self, command: &str, args: &[CacheArg]) -> Result<Vec<CacheValue>, CacheError> {
        let conn = match self.conn.get() {
            Some(c) => c,
            None => {
                let c = redis::Connection::open(&self.address)
                    .map_err(|e| CacheError::Unavailable(e.to_string()))?;
                self.conn.get_or_init(|| c)
            }
        };
        let params: Vec<redis::RedisParameter> = args
            .iter()
            .map(|a| match a {
                CacheArg::Int(i) => redis::RedisParameter::Int64(*i),
                CacheArg::Bytes(b) => redis::RedisParameter::Binary(b.clone()),
            })
            .collect();
        let reply = conn.execute(command, &params).map_err(|e| match e {
            redis::Error::Other(m) if m.contains("connect") => CacheError::Unavailable(m),
            other => CacheError::Command(other.to_string()),
        })?;
        Ok(reply
            .into_iter()
            .map(|r| match r {
                redis::RedisResult::Nil => CacheValue::Nil,
                redis::RedisResult::Int64(i) => CacheValue::Int(i),
                redis::RedisResult::Binary(b) => CacheValue::Bytes(b),
                redis::RedisResult::Status(s) => CacheValue::Status(s),
            })
            .collect())
    }
}

/// The object store's settings from the component's Spin variables
/// (`object_store_*`): `None` when the endpoint or keys are empty.
pub fn object_store_config() -> Result<Option<crate::objects::S3Config>, crate::objects::ObjectError>
{
    crate::objects::S3Config::from_lookup(|name| variables::get(name).ok())
}

/// What a handler gets besides the request: the ports and the settings.
pub struct Env {
    pub sql: SpinSql,
    pub cache: SpinCache,
    pub clock: SystemClock,
    /// `Secure` on cookies; off only for plain-http local development.
    pub cookie_secure: bool,
    /// The key access tokens are signed with (`session_signing_key`); `None`
    /// in a component that does not declare it: everyone is anonymous there.
    pub signing_key: Option<crate::session::SigningKey>,
}

impl Env {
    /// Reads the component's Spin variables `database_url`, `redis_url`,
    /// `cookie_secure`.
    pub fn from_variables() -> Result<Self, AppError> {
        let get = |name: &str| {
            variables::get(name).map_err(|e| AppError::Internal(format!("variable `{name}`: {e}")))
        };
        let database_url = get("database_url")?;
        Ok(Env {
            cache: SpinCache::new(get("redis_url")?, crate::cache::namespace_of(&database_url)),
            sql: SpinSql::new(database_url),
            clock: SystemClock,
            cookie_secure: get("cookie_secure").map(|v| v != "false").unwrap_or(true),
            signing_key: variables::get("session_signing_key")
                .ok()
                .and_then(|k| crate::session::SigningKey::try_from(k.as_str()).ok()),
        })
    }
}

pub use crate::boundary::Surface;
/// The request as Spin hands it to a component, body still unread.
pub use spin_sdk::http::IncomingRequest;

/// The largest request body a function reads: the body is read as a
/// stream and refused with 413 as soon as it passes this, whatever its
/// `Content-Length` says (or whether it has one).
pub const MAX_REQUEST_BODY: usize = 1 << 20;

fn malformed(what: &str) -> AppError {
    AppError::Validation(vec![crate::error::FieldError::new(
        "request",
        what.to_owned(),
    )])
}

/// The request line and headers of `incoming`.
fn request_head(incoming: &IncomingRequest) -> Result<http::request::Parts, AppError> {
    let mut builder = http::Request::builder()
        .method(http::Method::from(incoming.method()))
        .uri(incoming.uri());
    for (name, value) in incoming.headers().entries() {
        builder = builder.header(name, value);
    }
    builder
        .body(())
        .map(|r| r.into_parts().0)
        .map_err(|_| malformed("the request line or headers are malformed"))
}

/// Reads the body of `incoming`, refusing it (413) as soon as it passes
/// `limit` bytes — or before reading, when `Content-Length` says so.
async fn read_body(
    incoming: IncomingRequest,
    head: &http::request::Parts,
    limit: usize,
) -> Result<Vec<u8>, AppError> {
    use futures::StreamExt;
    let declared = head
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(AppError::PayloadTooLarge { limit });
    }
    let mut body = Vec::new();
    let mut stream = std::pin::pin!(incoming.into_body_stream());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| malformed("the request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Runs a handler with context, maps its error once, sets the anonymous
/// cookie, writes the answer to `out`, then the request's log line and its
/// metrics.
///
/// The answer goes out through `wasi:http` fields built from the full header
/// list: the SDK's own `Response` conversion keeps one value per name, which
/// would drop all but one `Set-Cookie` (sign-in sets several).
pub async fn serve<F>(
    component: &'static str,
    surface: Surface,
    req: IncomingRequest,
    out: ResponseOutparam,
    handler: F,
) where
    F: AsyncFnOnce(Request, &Env, &RequestContext) -> Result<Response, AppError>,
{
    serve_guarded(
        component,
        surface,
        req,
        out,
        async |_, _, _| Verdict::pass(),
        handler,
    )
    .await
}

/// Serves an internal service that needs neither Postgres, Redis nor a
/// session (the fetch service): the body bounded to 64 KiB, the edge checks
/// of an API, errors as problem+json, one log line.
pub async fn serve_plain<F>(
    component: &'static str,
    incoming: IncomingRequest,
    out: ResponseOutparam,
    handler: F,
) where
    F: AsyncFnOnce(Request) -> Result<Response, AppError>,
{
    let started = Instant::now();
    let method = incoming.method().to_string();
    let head = request_head(&incoming);
    let ctx = RequestContext::from_headers(
        head.as_ref()
            .map_or(&http::HeaderMap::new(), |h| &h.headers),
        component,
    );
    let result = match head {
        Ok(head) => match read_body(incoming, &head, 64 << 10).await {
            Ok(body) => {
                let req = Request::from_parts(head, body);
                match crate::boundary::check(&req, Surface::Api) {
                    Ok(()) => handler(req).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let mut response = result.unwrap_or_else(|e| e.to_problem());
    crate::boundary::security_headers(response.headers_mut(), Surface::Plain);
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    respond(out, response).await;
    println!(
        "{}",
        RequestLog::new(&ctx, &method, status, elapsed.as_secs_f64() * 1e3).line()
    );
}

/// The component's `trusted_proxies` variable (see
/// [`crate::context::TrustedProxies`]); absent or empty: none. A value that
/// does not parse trusts nobody, and says so in the log.
fn trusted_proxies() -> crate::context::TrustedProxies {
    let Ok(list) = variables::get("trusted_proxies") else {
        return Default::default();
    };
    crate::context::TrustedProxies::parse(&list).unwrap_or_else(|e| {
        crate::log::event(
            "ERROR",
            &format!("trusted_proxies ignored: {e}"),
            serde_json::json!({}),
        );
        Default::default()
    })
}

/// [`serve`], with `guard` run after authentication and before the
/// handler: its headers go on the answer (refused or not) and its refusal,
/// if any, is the answer. Functions pass `village_ratelimit::gate` here.
pub async fn serve_guarded<G, F>(
    component: &'static str,
    surface: Surface,
    incoming: IncomingRequest,
    out: ResponseOutparam,
    guard: G,
    handler: F,
) where
    G: AsyncFnOnce(&Request, &Env, &RequestContext) -> Verdict,
    F: AsyncFnOnce(Request, &Env, &RequestContext) -> Result<Response, AppError>,
{
    let started = Instant::now();
    let method = incoming.method().to_string();
    let head = request_head(&incoming);
    let mut ctx = RequestContext::from_headers_behind(
        head.as_ref()
            .map_or(&http::HeaderMap::new(), |h| &h.headers),
        component,
        &trusted_proxies(),
    );
    let read = match head {
        Ok(head) => read_body(incoming, &head, MAX_REQUEST_BODY)
            .await
            .map(|body| Request::from_parts(head, body)),
        Err(e) => Err(e),
    };
    let env = Env::from_variables();
    let mut clear_access_cookie = false;
    let mut guard_headers = Vec::new();
    let checked = read.and_then(|req| crate::boundary::check(&req, surface).map(|()| req));
    let result = match (&env, checked) {
        (_, Err(e)) => Err(e),
        (Ok(env), Ok(req)) => match authenticate(&req, env, surface, &mut ctx).await {
            Ok((gate, rejection)) => {
                // The rate limit runs before a rejected token is audited:
                // a flood of forged cookies is refused without a row each.
                let verdict = guard(&req, env, &ctx).await;
                guard_headers = verdict.headers;
                match verdict.refusal {
                    Some(refused) => Err(refused),
                    None => match audit_rejection(env, &ctx, rejection).await {
                        Err(e) => Err(e),
                        Ok(()) => match gate {
                            Gate::Continue { clear_cookie } => {
                                clear_access_cookie = clear_cookie;
                                handler(req, env, &ctx).await
                            }
                            Gate::Answer(r) => Ok(r),
                            Gate::Refuse(e) => Err(e),
                        },
                    },
                }
            }
            Err(e) => Err(e),
        },
        (Err(e), Ok(_)) => Err(AppError::Internal(e.to_string())),
    };
    let mut error_text = None;
    let mut response = match result {
        Ok(r) => r,
        Err(e) => {
            if e.is_server_fault() {
                error_text = Some(e.to_string());
            }
            match surface {
                Surface::Page => e.to_page(),
                Surface::Api => e.to_problem(),
                Surface::Plain => web::text(e.status(), &format!("{e}\n")),
            }
        }
    };
    for (name, value) in guard_headers {
        response.headers_mut().append(name, value);
    }
    crate::boundary::security_headers(response.headers_mut(), surface);
    if ctx.anon_id_is_new && surface != Surface::Plain {
        let secure = env.as_ref().map(|e| e.cookie_secure).unwrap_or(true);
        if let Ok(v) = http::HeaderValue::from_str(&web::anon_cookie(ctx.anon_id, secure)) {
            response.headers_mut().append(http::header::SET_COOKIE, v);
        }
    }
    if clear_access_cookie {
        let secure = env.as_ref().map(|e| e.cookie_secure).unwrap_or(true);
        if let Ok(v) = http::HeaderValue::from_str(&web::expired_cookie(
            crate::session::ACCESS_COOKIE,
            "/",
            secure,
        )) {
            response.headers_mut().append(http::header::SET_COOKIE, v);
        }
    }
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    // The caller has the answer before the log line, the deferred cache
    // commands and the metrics are written: none adds to its latency.
    respond(out, response).await;
    let mut log = RequestLog::new(&ctx, &method, status, elapsed.as_secs_f64() * 1e3);
    log.error = error_text;
    println!("{}", log.line());
    if let Ok(env) = &env {
        env.cache.run_deferred().await;
    }
    if let Ok(env) = &env
        && let Err(e) =
            crate::metrics::record(&env.cache, component, status, elapsed.as_micros() as u64).await
    {
        crate::log::event(
            "WARNING",
            &format!("metrics not recorded: {e}"),
            serde_json::json!({ "endpoint": component }),
        );
    }
}

/// Writes `response` to the host, every header value kept (repeated names
/// such as `Set-Cookie` included).
async fn respond(out: ResponseOutparam, response: Response) {
    let (parts, body) = response.into_parts();
    let headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    let fields = match Fields::from_list(&headers) {
        Ok(f) => f,
        Err(e) => {
            // Header values come from `http::HeaderValue`, already validated;
            // a refusal here is a host quirk worth a log line and a bare 500.
            crate::log::event(
                "ERROR",
                &format!("response headers refused: {e:?}"),
                serde_json::json!({}),
            );
            let bare = OutgoingResponse::new(Fields::new());
            let _ = bare.set_status_code(500);
            let _ = out.set_with_body(bare, Vec::new()).await;
            return;
        }
    };
    let outgoing = OutgoingResponse::new(fields);
    let _ = outgoing.set_status_code(parts.status.as_u16());
    if let Err(e) = out.set_with_body(outgoing, body).await {
        crate::log::event(
            "WARNING",
            &format!("response body not written: {e:?}"),
            serde_json::json!({}),
        );
    }
}

/// What the session check decided before the handler runs.
enum Gate {
    /// Run the handler (with `ctx.principal` set when signed in).
    Continue { clear_cookie: bool },
    /// Answer without running the handler.
    Answer(Response),
    /// Refuse (an API caller with a rejected token).
    Refuse(AppError),
}

/// A rejected access token, audited once the rate limit has let the
/// request through.
struct Rejection {
    route: String,
    reason: String,
}

/// Repeated rejections from one client for one reason are audited once per
/// this many seconds: the audit log records the attack, not each request.
const REJECTION_AUDIT_WINDOW_SECS: i64 = 60;

/// Audits `rejection`, at most once per client, reason and window (a Redis
/// `SET NX EX`; without Redis every one is audited — the rate limit still
/// bounds them).
async fn audit_rejection(
    env: &Env,
    ctx: &RequestContext,
    rejection: Option<Rejection>,
) -> Result<(), AppError> {
    use crate::cache::Cache;
    let Some(rejection) = rejection else {
        return Ok(());
    };
    let who = ctx
        .client_ip
        .clone()
        .unwrap_or_else(|| ctx.anon_id.to_string());
    let key = env
        .cache
        .key(&format!("audit:token_rejected:{who}:{}", rejection.reason));
    let first = env
        .cache
        .execute(
            "SET",
            &[
                key.into(),
                "1".into(),
                "NX".into(),
                "EX".into(),
                REJECTION_AUDIT_WINDOW_SECS.into(),
            ],
        )
        .await
        .map(|reply| !matches!(reply.first(), Some(crate::cache::CacheValue::Nil)))
        .unwrap_or(true);
    if !first {
        return Ok(());
    }
    let mut entry = crate::audit::AuditEntry::for_request(ctx, None, "auth.token_rejected");
    entry.target_type = Some("route".into());
    entry.target_id = Some(rejection.route);
    entry.reason = Some(rejection.reason.chars().take(200).collect());
    crate::audit::record(&env.sql, &entry).await?;
    Ok(())
}

/// Checks the access cookie. Signed in: `ctx.principal` is set. Expired: a
/// browser navigating to a page is sent through `/auth/refresh` and back; an
/// API caller gets 401 and refreshes itself. Forged, tampered or revoked:
/// 401 for the API, anonymous (cookie cleared) for pages — and a
/// [`Rejection`] to audit once the rate limit has passed the request.
async fn authenticate(
    req: &Request,
    env: &Env,
    surface: Surface,
    ctx: &mut RequestContext,
) -> Result<(Gate, Option<Rejection>), AppError> {
    use crate::clock::Clock;
    use crate::session::{ACCESS_COOKIE, Authentication};
    let (Some(key), true) = (&env.signing_key, surface != Surface::Plain) else {
        return Ok((
            Gate::Continue {
                clear_cookie: false,
            },
            None,
        ));
    };
    let token = web::cookie_value(req.headers(), ACCESS_COOKIE);
    let outcome =
        crate::session::authenticate(&env.sql, key, token.as_deref(), env.clock.now()).await?;
    let path = req.uri().path();
    let reason = match outcome {
        Authentication::Anonymous => {
            return Ok((
                Gate::Continue {
                    clear_cookie: false,
                },
                None,
            ));
        }
        Authentication::SignedIn(p) => {
            ctx.principal = Some(p);
            return Ok((
                Gate::Continue {
                    clear_cookie: false,
                },
                None,
            ));
        }
        Authentication::Expired => {
            // The auth routes themselves (refresh, logout) expect expired
            // tokens: there it is simply not signed in.
            if path.starts_with("/auth/") {
                return Ok((
                    Gate::Continue {
                        clear_cookie: false,
                    },
                    None,
                ));
            }
            let navigating =
                req.method() == http::Method::GET || req.method() == http::Method::HEAD;
            if surface == Surface::Page && navigating {
                let here = req.uri().path_and_query().map_or(path, |p| p.as_str());
                let target = format!(
                    "/auth/refresh?{}",
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("return_to", here)
                        .finish()
                );
                return Ok((Gate::Answer(web::see_other(&target)), None));
            }
            "expired".to_owned()
        }
        Authentication::Rejected(why) => why,
    };
    let rejection = Some(Rejection {
        route: format!("{} {path}", req.method()),
        reason,
    });
    Ok(match surface {
        Surface::Api => (Gate::Refuse(AppError::Unauthorized), rejection),
        _ => (Gate::Continue { clear_cookie: true }, rejection),
    })
}

/// Outbound HTTP through `wasi:http` (the host enforces the allow-list),
/// each exchange bounded by `timeout` — a `wasi:clocks` timer is raced
/// against it and the request is dropped (cancelled) when the timer wins —
/// and its answer's body by `max_body`: the body is read as a stream and
/// the exchange abandoned as soon as it passes the bound, so a hostile
/// server cannot make the component hold more than that in memory.
pub struct SpinHttp {
    pub timeout: std::time::Duration,
    pub max_body: usize,
}

impl SpinHttp {
    /// The bound on every outbound request unless a caller asks for less.
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
    /// The largest answer read unless a caller asks for another bound.
    pub const DEFAULT_MAX_BODY: usize = 5 << 20;
}

impl Default for SpinHttp {
    fn default() -> Self {
        SpinHttp {
            timeout: Self::DEFAULT_TIMEOUT,
            max_body: Self::DEFAULT_MAX_BODY,
        }
    }
}

impl crate::http_client::HttpClient for SpinHttp {
    async fn send(
        &self,
        request: crate::http_client::HttpRequest,
    ) -> Result<crate::http_client::HttpResponse, crate::http_client::HttpError> {
        use crate::http_client::HttpError;
        use futures::future::{Either, select};
        let exchange = std::pin::pin!(exchange(request, self.max_body));
        match select(exchange, Timer::after(self.timeout)).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(HttpError::Timeout(self.timeout)),
        }
    }
}

/// The guarded fetch service (`fetch/spin.toml`, see [`crate::fetch`]) as
/// an `HttpClient`: each GET goes to `{base}/fetch`, which makes it from an
/// application whose runtime config blocks private networks.
pub struct FetchService {
    /// Where the service listens, e.g. `http://127.0.0.1:3001`.
    pub base: String,
    /// The exchange with the service: its deadline covers the service's
    /// own (3 s per hop) with room to spare.
    pub http: SpinHttp,
}

impl FetchService {
    pub fn new(base: impl Into<String>) -> Self {
        FetchService {
            base: base.into(),
            http: SpinHttp {
                timeout: std::time::Duration::from_secs(5),
                ..SpinHttp::default()
            },
        }
    }
}

impl crate::http_client::HttpClient for FetchService {
    async fn send(
        &self,
        request: crate::http_client::HttpRequest,
    ) -> Result<crate::http_client::HttpResponse, crate::http_client::HttpError> {
        use crate::http_client::HttpError;
        let hop = crate::fetch::FetchRequest::from_http(&request)?;
        let body = serde_json::to_vec(&hop).map_err(|e| HttpError::Failed(e.to_string()))?;
        let call = http::Request::post(format!("{}/fetch", self.base.trim_end_matches('/')))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| HttpError::Failed(format!("fetch_service_url: {e}")))?;
        crate::fetch::read_answer(self.http.send(call).await?)
    }
}

/// Sends `request` and reads the answer, its body bounded by `max_body`.
async fn exchange(
    request: crate::http_client::HttpRequest,
    max_body: usize,
) -> Result<crate::http_client::HttpResponse, crate::http_client::HttpError> {
    use crate::http_client::HttpError;
    use futures::StreamExt;
    let response: spin_sdk::http::IncomingResponse = spin_sdk::http::send(request)
        .await
        .map_err(|e| HttpError::from_transport(e.to_string()))?;
    let mut builder = http::Response::builder().status(response.status());
    let mut declared = None;
    for (name, value) in response.headers().entries() {
        if name.eq_ignore_ascii_case("content-length") {
            declared = std::str::from_utf8(&value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
        }
        builder = builder.header(name, value);
    }
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(HttpError::TooLarge { limit: max_body });
    }
    let mut body = Vec::new();
    let mut stream = std::pin::pin!(response.take_body_stream());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| HttpError::Failed(format!("reading the body: {e:?}")))?;
        if body.len() + chunk.len() > max_body {
            return Err(HttpError::TooLarge { limit: max_body });
        }
        body.extend_from_slice(&chunk);
    }
    builder
        .body(body)
        .map_err(|e| HttpError::Failed(format!("malformed answer: {e}")))
}

/// A future that completes at a `wasi:clocks` monotonic deadline, driven by
/// Spin's executor like the SDK's own I/O futures.
struct Timer {
    deadline: u64,
    registration: Option<spin_executor::CancelOnDropToken>,
}

impl Timer {
    fn after(d: std::time::Duration) -> Self {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Timer {
            deadline: wasi::clocks::monotonic_clock::now().saturating_add(nanos),
            registration: None,
        }
    }
}

impl std::future::Future for Timer {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if wasi::clocks::monotonic_clock::now() >= self.deadline {
            return std::task::Poll::Ready(());
        }
        let pollable = wasi::clocks::monotonic_clock::subscribe_instant(self.deadline);
        // Replacing the token cancels the previous registration.
        self.registration =
            Some(spin_executor::push_waker_and_get_token(pollable, cx.waker().clone()).into());
        std::task::Poll::Pending
    }
}

/// Declares the crate a cron component: Spin's cron trigger calls it at
/// each scheduled instant, and it runs `$run(timestamp)` — an
/// `async fn(u64) -> Result<(), String>` — to completion; an `Err` is the
/// trigger's error. The calling crate depends on `wit-bindgen` and
/// `spin-sdk`, and allows `unsafe_code` (the export glue is unsafe); the
/// WIT world is `wit/` at the workspace root.
#[macro_export]
macro_rules! cron_component {
    ($run:path) => {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "fermyon:spin-cron/spin-cron@2.0.0",
        });

        struct Component;

        impl Guest for Component {
            fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
                let outcome = spin_sdk::http::run($run(metadata.timestamp));
                $crate::log::cron_finished(env!("CARGO_PKG_NAME"), metadata.timestamp, &outcome);
                outcome.map_err(Error::Other)
            }
        }

        export!(Component);
    };
}
