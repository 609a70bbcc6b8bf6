//! Outbound `wasi:http`: the one hook every guest request passes through.
//!
//! The allow-list is checked here, before any socket exists; a refused request
//! fails inside the guest with `HTTP-request-denied`. Requests to
//! `http://<component-id>.spin.internal/…` never touch the network: they are
//! served in-process by that component (Spin's service chaining), and only if
//! the caller's allow-list names that host.

use std::sync::{Arc, Weak};
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::app::App;
use crate::state::{ComponentConfig, Shared};

const CHAIN_SUFFIX: &str = ".spin.internal";
/// Defaults when the guest sets no timeouts of its own.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct OutboundHooks {
    pub component: Arc<ComponentConfig>,
    pub shared: Arc<Shared>,
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

fn denied(component: &str, what: &str) -> ResponseFuture {
    tracing::warn!(
        component,
        "outbound HTTP refused: {what} is not in allowed_outbound_hosts"
    );
    Box::new(async { Err(Error::HttpRequestDenied) })
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        drop(fut);
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_owned();
        let Some(host) = uri.host().map(str::to_owned) else {
            return Box::new(async { Err(Error::HttpRequestUriInvalid) });
        };
        let port = uri.port_u16();
        let id = self.component.id.clone();
        let shown = format!(
            "{scheme}://{host}{}",
            port.map(|p| format!(":{p}")).unwrap_or_default()
        );
        if !self.component.allow_list.allows(&scheme, &host, port) {
            return denied(&id, &shown);
        }

        if let Some(target) = host.strip_suffix(CHAIN_SUFFIX) {
            let target = target.to_owned();
            let app: Option<Arc<App>> = self.shared.app.get().and_then(Weak::upgrade);
            return Box::new(async move {
                let app = app.ok_or(Error::InternalError(Some(
                    "application is shutting down".into(),
                )))?;
                let response = app
                    .chain(&target, request)
                    .await
                    .map_err(|e| Error::InternalError(Some(e.to_string())))?;
                let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                    Box::new(async { Ok(()) });
                Ok((response, done))
            });
        }

        let mut options = options.unwrap_or_default();
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        options.first_byte_timeout.get_or_insert(FIRST_BYTE_TIMEOUT);
        let blocked = self.shared.blocked_networks.clone();
        if !blocked.is_empty() {
            return Box::new(async move {
                let (response, io) = guarded::send(request, options, &blocked, &id).await?;
                Ok((response, io))
            });
        }
        Box::new(async move {
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(io);
            Ok((response.map(BodyExt::boxed_unsync), io))
        })
    }
}

/// Sending when `block_networks` is configured: the name is resolved here
/// and only addresses outside the blocked networks are connected to, so no
/// name — nor a DNS answer that changes between a check and the connect —
/// can lead a request into a blocked network. (wasmtime's default sender
/// resolves and connects in one step, with nothing to hook.) TLS uses the
/// same webpki roots as the default sender.
mod guarded {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpStream;
    use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

    use crate::blocked_networks::BlockedNetworks;

    type Io = Box<dyn Future<Output = Result<(), Error>> + Send>;

    pub async fn send(
        mut request: http::Request<WasiBody>,
        options: RequestOptions,
        blocked: &BlockedNetworks,
        component: &str,
    ) -> Result<(http::Response<WasiBody>, Io), Error> {
        let uri = request.uri().clone();
        let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = uri
            .host()
            .ok_or(Error::HttpRequestUriInvalid)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let connect_timeout = options.connect_timeout.unwrap_or(super::CONNECT_TIMEOUT);
        let addrs: Vec<SocketAddr> = match tokio::time::timeout(
            connect_timeout,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        {
            Err(_) => return Err(Error::DnsTimeout),
            Ok(Err(e)) => {
                return Err(Error::DnsError {
                    rcode: Some(e.to_string()),
                    info_code: None,
                });
            }
            Ok(Ok(a)) => a.collect(),
        };
        let (prohibited, allowed): (Vec<SocketAddr>, Vec<SocketAddr>) =
            addrs.into_iter().partition(|a| blocked.is_blocked(a.ip()));
        if allowed.is_empty() {
            if prohibited.is_empty() {
                return Err(Error::DestinationNotFound);
            }
            tracing::warn!(
                component,
                ?prohibited,
                "outbound HTTP refused: every address of {host} is in a blocked network"
            );
            return Err(Error::DestinationIpProhibited);
        }
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(&allowed[..]))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Connect)?;
        // The request line carries only the path (no proxy is addressed).
        *request.uri_mut() = http::Uri::builder()
            .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
            .build()
            .map_err(|_| Error::HttpRequestUriInvalid)?;
        let first_byte = options
            .first_byte_timeout
            .unwrap_or(super::FIRST_BYTE_TIMEOUT);
        if tls {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => rustls::pki_types::ServerName::from(ip),
                Err(_) => rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|_| Error::HttpRequestUriInvalid)?,
            };
            let stream = tokio::time::timeout(
                connect_timeout,
                tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream),
            )
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Tls)?;
            exchange(TokioIo::new(stream), request, connect_timeout, first_byte).await
        } else {
            exchange(TokioIo::new(stream), request, connect_timeout, first_byte).await
        }
    }

    async fn exchange<T>(
        io: T,
        request: http::Request<WasiBody>,
        handshake_timeout: std::time::Duration,
        first_byte: std::time::Duration,
    ) -> Result<(http::Response<WasiBody>, Io), Error>
    where
        T: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
    {
        let (mut sender, conn) =
            tokio::time::timeout(handshake_timeout, hyper::client::conn::http1::handshake(io))
                .await
                .map_err(|_| Error::ConnectionTimeout)??;
        // The connection is driven on its own task; its end is the `io`
        // future the guest's body stream waits on.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = done_tx.send(conn.await.map_err(Error::from));
        });
        let response = tokio::time::timeout(first_byte, sender.send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)??;
        let io: Io = Box::new(async move { done_rx.await.unwrap_or(Ok(())) });
        Ok((
            response.map(|body| body.map_err(Error::from).boxed_unsync()),
            io,
        ))
    }
}
