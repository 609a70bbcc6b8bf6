//! `village-s3-cors` — development only. Browsers upload listing images
//! straight to object storage, across origins, so storage must answer CORS
//! (a preflight, then `Access-Control-Allow-Origin` on the answer). Cloudflare
//! R2 does, from the bucket's CORS rules (see the README); the local S3
//! server, `s3s-fs`, does not. This stands in front of it on the address the
//! app signs URLs for and passes every request through unchanged — the
//! `Host` header included, since SigV4 signs it — adding CORS headers for
//! the allowed origins.
//!
//! ```text
//! village-s3-cors --listen 127.0.0.1:9000 --upstream 127.0.0.1:9001 \
//!     --allow-origin http://127.0.0.1:3000
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Body = BoxBody<Bytes, hyper::Error>;

/// The whole exchange with the upstream, bounded: a stuck server does not
/// hold a browser forever.
const UPSTREAM_TIME: Duration = Duration::from_secs(60);

fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

fn allow(headers: &mut http::HeaderMap, origin: &http::HeaderValue) {
    headers.insert("access-control-allow-origin", origin.clone());
    headers.insert("vary", http::HeaderValue::from_static("origin"));
    headers.insert(
        "access-control-expose-headers",
        http::HeaderValue::from_static("etag"),
    );
}

async fn forward(
    req: http::Request<Incoming>,
    upstream: SocketAddr,
) -> anyhow::Result<http::Response<Body>> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let response = sender.send_request(req).await?;
    Ok(response.map(BodyExt::boxed))
}

async fn handle(
    req: http::Request<Incoming>,
    upstream: SocketAddr,
    origins: &[String],
) -> http::Response<Body> {
    let origin = req
        .headers()
        .get(http::header::ORIGIN)
        .filter(|o| origins.iter().any(|a| a.as_bytes() == o.as_bytes()))
        .cloned();
    if req.method() == http::Method::OPTIONS {
        let mut r = http::Response::new(empty());
        *r.status_mut() = http::StatusCode::NO_CONTENT;
        if let Some(origin) = &origin {
            let h = r.headers_mut();
            allow(h, origin);
            h.insert(
                "access-control-allow-methods",
                http::HeaderValue::from_static("GET, HEAD, PUT"),
            );
            h.insert(
                "access-control-allow-headers",
                http::HeaderValue::from_static("content-type"),
            );
            h.insert(
                "access-control-max-age",
                http::HeaderValue::from_static("3600"),
            );
        }
        return r;
    }
    match tokio::time::timeout(UPSTREAM_TIME, forward(req, upstream)).await {
        Ok(Ok(mut r)) => {
            if let Some(origin) = &origin {
                allow(r.headers_mut(), origin);
            }
            r
        }
        Ok(Err(e)) => {
            eprintln!("village-s3-cors: upstream failed: {e:#}");
            let mut r = http::Response::new(empty());
            *r.status_mut() = http::StatusCode::BAD_GATEWAY;
            r
        }
        Err(_) => {
            let mut r = http::Response::new(empty());
            *r.status_mut() = http::StatusCode::GATEWAY_TIMEOUT;
            r
        }
    }
}

/// Serves `listener` until the process ends: every request passed to
/// `upstream`, CORS headers added for `origins`.
pub async fn serve(listener: TcpListener, upstream: SocketAddr, origins: Arc<Vec<String>>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("village-s3-cors: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let origins = origins.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let origins = origins.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, upstream, &origins).await) }
            });
            let conn = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                eprintln!("village-s3-cors: connection ended: {e}");
            }
        });
    }
}
