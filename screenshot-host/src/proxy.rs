//! The guard between Chromium and the network: every request a capture's
//! page makes — the first URL, each redirect, every image, script, frame
//! and `fetch` — goes through a proxy of its own (the browser context is
//! created with it, and with `<-loopback>` so even loopback addresses are
//! not exempt). The proxy resolves the name itself, refuses the connection
//! unless every address the name has is public
//! ([`village_platform::address::is_public_ip`]), then connects to exactly
//! the address it checked: a DNS answer that changes between a check and a
//! connect (rebinding) cannot lead anywhere else. Hosts on the allow-list
//! (tests' local sites) are let through whatever their address.
//!
//! It also counts what the page downloads: past the budget, connections
//! fail and the capture ends as too large. Both `CONNECT` (https, tunnelled
//! untouched: Chromium checks the certificate) and absolute-form `http://`
//! requests are served; the proxy and everything it opened end with the
//! capture ([`Proxy`] dropped).

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use village_platform::address::{is_allowed, is_public_ip};

/// Time to resolve a name, and to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The header a refusal answer carries (plain-http requests); its value
/// says nothing about why.
pub const REFUSED_HEADER: &str = "x-village-refused";

type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// What the proxy saw during one capture.
#[derive(Debug, Default)]
pub struct Observed {
    /// Bytes downloaded, every connection together.
    pub bytes: Cell<u64>,
    /// The budget was spent: connections were cut.
    pub over_budget: Cell<bool>,
    /// Hosts (`host:port`) the proxy would not or could not reach, and why.
    pub problems: RefCell<Vec<(String, String)>>,
}

impl Observed {
    /// Why `host:port` could not be reached, if it could not.
    pub fn problem_with(&self, authority: &str) -> Option<String> {
        self.problems
            .borrow()
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(authority))
            .map(|(_, r)| r.clone())
    }

    fn record(&self, authority: &str, reason: &str) {
        let mut problems = self.problems.borrow_mut();
        if problems.len() < 100 {
            problems.push((authority.to_owned(), reason.to_owned()));
        }
    }
}

/// One capture's proxy, serving on a loopback port until dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    pub observed: Rc<Observed>,
    _stop: watch::Sender<()>,
}

struct Guard {
    allowed_hosts: Vec<String>,
    max_bytes: u64,
    observed: Rc<Observed>,
    stop: watch::Receiver<()>,
}

impl Proxy {
    /// Starts a proxy (on the current `LocalSet`) for one capture.
    pub async fn start(allowed_hosts: Vec<String>, max_bytes: u64) -> io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let observed = Rc::new(Observed::default());
        let (stop_tx, stop) = watch::channel(());
        let guard = Rc::new(Guard {
            allowed_hosts,
            max_bytes,
            observed: observed.clone(),
            stop: stop.clone(),
        });
        tokio::task::spawn_local(until_stopped(stop, async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let guard = guard.clone();
                tokio::task::spawn_local(until_stopped(guard.stop.clone(), async move {
                    let service = service_fn(move |req| serve(req, guard.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .header_read_timeout(Some(CONNECT_TIMEOUT))
                        .timer(hyper_util::rt::TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                }));
            }
        }));
        Ok(Proxy {
            addr,
            observed,
            _stop: stop_tx,
        })
    }
}

/// Runs `work` until it ends or the proxy is dropped.
async fn until_stopped(mut stop: watch::Receiver<()>, work: impl Future<Output = ()>) {
    tokio::select! {
        _ = work => {}
        _ = stop.changed() => {}
    }
}

fn answer(status: http::StatusCode, reason: &str) -> http::Response<Body> {
    let mut response = http::Response::new(
        Full::new(Bytes::from(format!("{reason}\n")))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(&reason.replace(['\r', '\n'], " ")) {
        response.headers_mut().insert(REFUSED_HEADER, v);
    }
    response
}

async fn serve(
    req: http::Request<Incoming>,
    guard: Rc<Guard>,
) -> Result<http::Response<Body>, Infallible> {
    let default_port = if req.method() == http::Method::CONNECT {
        443
    } else {
        80
    };
    let Some(authority) = req.uri().authority().cloned() else {
        return Ok(answer(http::StatusCode::BAD_REQUEST, "not a proxy request"));
    };
    if req.method() != http::Method::CONNECT && req.uri().scheme_str() != Some("http") {
        return Ok(answer(http::StatusCode::BAD_REQUEST, "only http and https"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = authority.port_u16().unwrap_or(default_port);
    let key = format!("{host}:{port}");
    let stream = match connect(&guard, &host, port).await {
        Ok(s) => s,
        Err(reason) => {
            // The reason (which may name an internal address) is for the
            // capture's record; the page, which could render the answer
            // into the picture, learns nothing.
            guard.observed.record(&key, &reason);
            return Ok(answer(http::StatusCode::FORBIDDEN, "not fetched"));
        }
    };
    let counted = Counted {
        inner: stream,
        observed: guard.observed.clone(),
        max_bytes: guard.max_bytes,
    };
    if req.method() == http::Method::CONNECT {
        let stop = guard.stop.clone();
        tokio::task::spawn_local(until_stopped(stop, async move {
            if let Ok(upgraded) = hyper::upgrade::on(req).await {
                let mut client = TokioIo::new(upgraded);
                let mut upstream = counted;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        }));
        return Ok(http::Response::new(
            Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed_unsync(),
        ));
    }
    Ok(forward(req, counted, &guard)
        .await
        .unwrap_or_else(|reason| {
            guard.observed.record(&key, &reason);
            answer(http::StatusCode::BAD_GATEWAY, "not fetched")
        }))
}

/// Sends a plain-http request on to the checked address.
async fn forward(
    mut req: http::Request<Incoming>,
    upstream: Counted,
    guard: &Guard,
) -> Result<http::Response<Body>, String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(upstream))
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    tokio::task::spawn_local(until_stopped(guard.stop.clone(), async move {
        let _ = conn.await;
    }));
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    *req.uri_mut() = path.parse().map_err(|_| "a malformed request".to_owned())?;
    let headers = req.headers_mut();
    headers.remove("proxy-connection");
    headers.remove(http::header::PROXY_AUTHORIZATION);
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    Ok(response.map(|b| b.boxed_unsync()))
}

/// Resolves `host` and connects to an address that passed the check.
async fn connect(guard: &Guard, host: &str, port: u16) -> Result<TcpStream, String> {
    let allowed = is_allowed(&guard.allowed_hosts, host, Some(port));
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => return Err(format!("unreachable: {host} does not resolve ({e})")),
            Err(_) => return Err(format!("unreachable: resolving {host} timed out")),
        };
    if addrs.is_empty() {
        return Err(format!("unreachable: {host} has no address"));
    }
    if !allowed && let Some(private) = addrs.iter().find(|a| !is_public_ip(a.ip())) {
        return Err(format!(
            "refused: {host} is {}, not a public address",
            private.ip()
        ));
    }
    let mut last = String::new();
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "connection timed out".into(),
        }
    }
    Err(format!("unreachable: {host}:{port}: {last}"))
}

/// The upstream socket, counting what it reads against the page's budget.
struct Counted {
    inner: TcpStream,
    observed: Rc<Observed>,
    max_bytes: u64,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.observed.over_budget.get() {
            return Poll::Ready(Err(io::Error::other("the page is too large")));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 {
            let total = self.observed.bytes.get() + read;
            self.observed.bytes.set(total);
            if total > self.max_bytes {
                self.observed.over_budget.set(true);
            }
        }
        result
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
