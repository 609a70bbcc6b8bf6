//! A local site corpus on loopback, for the host's tests and benchmark
//! (feature `corpus`): ordinary pages and every way a page can misbehave.
//! Served by a small hyper server on the caller's runtime; the broken-TLS
//! site by a second listener with a certificate nobody issued (`rcgen`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

pub struct Corpus {
    pub addr: SocketAddr,
    pub tls_addr: SocketAddr,
    /// A loopback port nothing listens on.
    pub closed_addr: SocketAddr,
    /// A loopback port that is listening but not on the allow-list: what
    /// `/to-private` redirects to.
    pub private_addr: SocketAddr,
    /// Connections `private_addr` accepted: none, if the guard holds.
    pub private_hits: Arc<AtomicUsize>,
}

impl Corpus {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the host may reach whatever the address: the corpus and its
    /// TLS and closed ports, not `private_addr`.
    pub fn allowed_hosts(&self) -> Vec<String> {
        [self.addr, self.tls_addr, self.closed_addr]
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    pub async fn start() -> Corpus {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let private = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let private_addr = private.local_addr().expect("addr");
        let closed_addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let private_hits = Arc::new(AtomicUsize::new(0));
        let hits = private_hits.clone();
        tokio::spawn(async move {
            while private.accept().await.is_ok() {
                hits.fetch_add(1, Ordering::SeqCst);
            }
        });
        tokio::spawn(serve_plain(listener, private_addr));
        let tls = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let tls_addr = tls.local_addr().expect("addr");
        tokio::spawn(serve_tls(tls, private_addr));
        Corpus {
            addr,
            tls_addr,
            closed_addr,
            private_addr,
            private_hits,
        }
    }
}

async fn serve_plain(listener: tokio::net::TcpListener, private: SocketAddr) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(move |req| page(req, private));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn serve_tls(listener: tokio::net::TcpListener, private: SocketAddr) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("a certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .expect("tls config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(move |req| page(req, private));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn html(body: String) -> http::Response<Body> {
    let mut r = http::Response::new(Full::new(Bytes::from(body)).boxed());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn redirect(to: &str) -> http::Response<Body> {
    let mut r = http::Response::new(Full::new(Bytes::new()).boxed());
    *r.status_mut() = http::StatusCode::FOUND;
    r.headers_mut()
        .insert(http::header::LOCATION, to.parse().expect("location"));
    r
}

/// An ordinary page: a heading, a few coloured blocks, text — different
/// for each `n`, so pictures differ.
pub fn ordinary(n: u32) -> String {
    let hue = (n * 47) % 360;
    let blocks: String = (0..12)
        .map(|i| {
            format!(
                "<div style=\"display:inline-block;width:180px;height:120px;margin:8px;\
                 background:hsl({}, 70%, {}%)\">block {i}</div>",
                (hue + i * 30) % 360,
                40 + (i % 4) * 10
            )
        })
        .collect();
    format!(
        "<!doctype html><html><head><title>Site {n}</title></head>\
         <body style=\"font-family:sans-serif;margin:24px;background:hsl({hue},30%,96%)\">\
         <h1>Village corpus site {n}</h1><p>An ordinary page with ordinary content, \
         number {n}.</p>{blocks}</body></html>"
    )
}

async fn page(
    req: http::Request<hyper::body::Incoming>,
    private: SocketAddr,
) -> Result<http::Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    Ok(match path.as_str() {
        p if p.starts_with("/normal/") => {
            let n = p.trim_start_matches("/normal/").parse().unwrap_or(0);
            html(ordinary(n))
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            html(ordinary(101))
        }
        "/slower" => {
            tokio::time::sleep(Duration::from_secs(6)).await;
            html(ordinary(102))
        }
        // 12 MB of page, in 64 KiB pieces: over the tests' 4 MB budget.
        "/huge" => {
            let head = Bytes::from_static(b"<!doctype html><html><body><h1>Huge</h1><!--");
            let chunk = Bytes::from(vec![b'x'; 64 << 10]);
            let frames = futures::stream::iter(
                std::iter::once(head)
                    .chain(std::iter::repeat_n(chunk, 192))
                    .map(|b| Ok::<_, Infallible>(Frame::data(b))),
            );
            let mut r = http::Response::new(StreamBody::new(frames).boxed());
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/html"),
            );
            r
        }
        // Content that keeps coming (an endless feed) and an image that
        // never finishes: `load` never fires.
        "/endless" => html(format!(
            "<!doctype html><html><body><h1>Endless</h1><img src=\"/hang\" width=10 height=10>\
             <div id=feed></div><script>let i=0;setInterval(()=>{{const d=document.createElement('p');\
             d.textContent='item '+(i++);document.getElementById('feed').appendChild(d);\
             window.scrollTo(0, document.body.scrollHeight);}},20);</script>{}</body></html>",
            ordinary(103)
        )),
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            html(String::new())
        }
        "/loop" => redirect("/loop-again"),
        "/loop-again" => redirect("/loop"),
        "/popup" => html(format!(
            "<!doctype html><html><body onload=\"window.open('/normal/7');alert('hello');\
             confirm('sure?');window.open('/normal/8','_blank')\">{}</body></html>",
            ordinary(104)
        )),
        "/download" => {
            let mut r = http::Response::new(Full::new(Bytes::from(vec![0u8; 4096])).boxed());
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/octet-stream"),
            );
            r.headers_mut().insert(
                http::header::CONTENT_DISPOSITION,
                http::HeaderValue::from_static("attachment; filename=\"data.bin\""),
            );
            r
        }
        // A public-looking page that sends the browser to a loopback port
        // by name: the proxy must refuse the second hop.
        // A page that pulls an image, a frame and a fetch from a private
        // address: captured, and none of them reaches it.
        "/embeds-private" => html(format!(
            "<!doctype html><html><body>{}<img src=\"http://localhost:{p}/pixel.png\">\
             <iframe src=\"http://127.0.0.1:{p}/frame\"></iframe>\
             <script>fetch('http://[::1]:{p}/api').catch(()=>{{}})</script></body></html>",
            ordinary(105),
            p = private.port()
        )),
        "/to-private" => redirect(&format!("http://localhost:{}/", private.port())),
        _ => {
            let mut r = html("not here".into());
            *r.status_mut() = http::StatusCode::NOT_FOUND;
            r
        }
    })
}
