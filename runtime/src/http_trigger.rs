//! The HTTP trigger: a hyper server that routes by Spin's rules, sets Spin's
//! request headers and hands each request to a fresh component instance.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;
use crate::routes::{RouteMatch, RoutePattern};

pub type ResponseBody = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The values behind Spin's `spin-*` request headers.
pub struct SpinHeaders<'a> {
    pub full_url: &'a str,
    pub pattern: Option<&'a RoutePattern>,
    pub matched: Option<&'a RouteMatch>,
    pub client: SocketAddr,
}

/// Replaces every `spin-*` request header with the runtime's own: a client
/// must not be able to forge one the runtime does not set for this route
/// (a `spin-path-match-*` for a parameter the route lacks, say). Spin keeps
/// the client's beside its own; `village` drops them (runtime/README).
///
/// Values as Spin 3.6.3 sets them (`trigger-http/src/headers.rs`): the base
/// path is always `/`; `spin-matched-route` is the route without a trailing
/// slash (empty for `/`); a parameter's header name is lower-cased with `_`
/// turned into `-` (`:user_id` → `spin-path-match-user-id`).
pub fn set_spin_headers(headers: &mut HeaderMap, h: &SpinHeaders<'_>) {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    let mut set = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    };
    set("spin-full-url", h.full_url);
    set("spin-base-path", "/");
    set("spin-client-addr", &h.client.to_string());
    if let Some(pattern) = h.pattern {
        set("spin-matched-route", pattern.based_route());
        set("spin-raw-component-route", pattern.raw());
        set("spin-component-route", &pattern.component_route());
    }
    if let Some(m) = h.matched {
        set("spin-path-info", &m.path_info);
        for (name, value) in &m.params {
            set(&path_match_header(name), value);
        }
    } else {
        set("spin-path-info", "");
    }
}

/// `spin-path-match-<name>` as Spin names it.
pub fn path_match_header(param: &str) -> String {
    format!(
        "spin-path-match-{}",
        param.replace('_', "-").to_ascii_lowercase()
    )
}

fn plain(status: StatusCode, text: &str) -> Response<ResponseBody> {
    let mut r = empty(status);
    *r.body_mut() = Full::new(Bytes::from(text.to_owned()))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// An answer with no body and no content type, as Spin gives for "no route"
/// and for a component that failed.
fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut r = Response::new(
        Full::new(Bytes::new())
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r
}

/// Spin's own endpoints under `/.well-known/spin/`, answered before routing.
fn well_known(path: &str) -> Option<Response<ResponseBody>> {
    let rest = path.strip_prefix("/.well-known/spin/")?;
    Some(match rest {
        "health" => {
            let mut ok = empty(StatusCode::OK);
            *ok.body_mut() = Full::new(Bytes::from_static(b"OK"))
                .map_err(|never: Infallible| match never {})
                .boxed_unsync();
            ok
        }
        _ => empty(StatusCode::NOT_FOUND),
    })
}

/// Routes and runs one request. Never fails: problems become 4xx/5xx.
pub async fn handle(
    app: Arc<App>,
    mut req: Request<Incoming>,
    client: SocketAddr,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let max = app.options.max_request_body;
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large\n");
    }
    if let Some(answer) = well_known(&path) {
        return answer;
    }
    let Some(routed) = app.router.route(&path) else {
        tracing::debug!(%method, %path, "no route");
        return empty(StatusCode::NOT_FOUND);
    };
    let component = routed.component.to_owned();
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| "localhost".to_owned());
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let full_url = format!("http://{host}{path_and_query}");
    // wasi:http wants an absolute URI; the authority is the Host header.
    if let Ok(uri) = full_url.parse() {
        *req.uri_mut() = uri;
    }
    set_spin_headers(
        req.headers_mut(),
        &SpinHeaders {
            full_url: &full_url,
            pattern: Some(routed.pattern),
            matched: Some(&routed.matched),
            client,
        },
    );
    let req = req.map(|body| {
        Limited::new(body, max)
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    wasmtime_wasi_http::Error::HttpRequestBodySize(None)
                } else {
                    wasmtime_wasi_http::Error::InternalError(Some(e.to_string()))
                }
            })
            .boxed_unsync()
    });
    let response = match app.invoke_http(&component, req).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(component = %component, %method, %path, "500: {}", app.shared.variables.redact(&format!("{e:#}")));
            empty(StatusCode::INTERNAL_SERVER_ERROR)
        }
    };
    tracing::info!(
        component = %component,
        %method,
        %path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// Serves HTTP on `listener` until `shutdown` turns true, then drains.
///
/// Hostile clients are bounded here: a request's head must arrive within
/// `header_read_timeout` (a half-sent request — or an idle keep-alive
/// connection — is closed after it), at most `max_connections` are open at
/// once (beyond that the listener stops accepting and the kernel's backlog
/// holds the rest), and a failing `accept` (out of file handles, say) backs
/// off instead of spinning, its log line written at most once a second.
pub async fn serve(app: Arc<App>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(app.options.header_read_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(app.options.max_connections));
    let mut backoff = AcceptBackoff::default();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(a) => {
                        backoff.reset();
                        a
                    }
                    Err(e) => {
                        backoff.failed(&e).await;
                        continue;
                    }
                };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!("set_nodelay failed: {e}");
                }
                let app = app.clone();
                let service = service_fn(move |req| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(handle(app, req, client).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection from {client} ended: {e}");
                    }
                    drop(slot);
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("shutdown: gave up waiting for connections to drain"),
    }
}

/// Back-off after failed `accept`s: 5 ms doubling to 1 s, and one log line
/// a second at most (with how many failures it stands for).
#[derive(Default)]
struct AcceptBackoff {
    delay: Duration,
    suppressed: u64,
    last_log: Option<Instant>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    fn reset(&mut self) {
        self.delay = Duration::ZERO;
    }

    async fn failed(&mut self, e: &std::io::Error) {
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            tracing::warn!(
                suppressed = self.suppressed,
                "accept failed: {e} (backing off; repeats within a second are counted, not logged)"
            );
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        self.delay = (self.delay * 2).clamp(Self::FIRST, Self::MAX);
        tokio::time::sleep(self.delay).await;
    }
}
