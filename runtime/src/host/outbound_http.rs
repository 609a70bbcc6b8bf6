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
        Box::new(async move {
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(io);
            Ok((response.map(BodyExt::boxed_unsync), io))
        })
    }
}
