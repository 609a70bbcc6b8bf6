//! Small local HTTP servers that stand in for third parties in tests: each
//! answers with a test-supplied function, records every request, binds to
//! 127.0.0.1 on a free port, and stops when dropped.
//!
//! [`providers`] has the ones that speak a provider's documented wire
//! format (Anthropic's Messages API, Mailgun, Slack webhooks, a feed site).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// What the server answers.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long first (a slow or silent server).
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            delay: None,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Reply::new(status, "application/json", value.to_string())
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

pub struct StubServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl StubServer {
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a stub server");
        let addr = listener.local_addr().expect("stub address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = handler.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        let log = log.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let recorded = Recorded {
                                method: parts.method.to_string(),
                                path: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: parts.headers,
                                body,
                            };
                            let reply = handler(&recorded);
                            if let Ok(mut l) = log.lock() {
                                l.push(recorded);
                            }
                            if let Some(d) = reply.delay {
                                tokio::time::sleep(d).await;
                            }
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(reply.body)));
                            *resp.status_mut() = hyper::StatusCode::from_u16(reply.status)
                                .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                            for (k, v) in reply.headers {
                                if let (Ok(k), Ok(v)) = (
                                    hyper::header::HeaderName::try_from(k),
                                    hyper::header::HeaderValue::try_from(v),
                                ) {
                                    resp.headers_mut().append(k, v);
                                }
                            }
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        StubServer {
            addr,
            requests,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:<port>`, as allow-lists take it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub mod providers {
    //! Stand-ins that speak providers' documented wire formats.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use base64::Engine;

    use super::{Recorded, Reply, StubServer};

    pub const ANTHROPIC_KEY: &str = "sk-ant-test-key";
    pub const MAILGUN_KEY: &str = "key-mailgun-test";
    pub const MAILGUN_DOMAIN: &str = "mg.village.test";

    /// The token counts the next Messages API answers report.
    #[derive(Clone)]
    pub struct UsageDial {
        pub input: Arc<AtomicI64>,
        pub output: Arc<AtomicI64>,
    }

    impl UsageDial {
        pub fn new(input: i64, output: i64) -> Self {
            UsageDial {
                input: Arc::new(AtomicI64::new(input)),
                output: Arc::new(AtomicI64::new(output)),
            }
        }

        pub fn set(&self, input: i64, output: i64) {
            self.input.store(input, Ordering::SeqCst);
            self.output.store(output, Ordering::SeqCst);
        }
    }

    /// The article ids and titles a tagging request carried.
    pub fn articles_in(r: &Recorded) -> Vec<(i64, String)> {
        let content = r.json()["messages"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let list = content.find('[').map(|i| &content[i..]).unwrap_or("[]");
        serde_json::from_str::<Vec<serde_json::Value>>(list)
            .unwrap_or_default()
            .iter()
            .map(|a| {
                (
                    a["id"].as_i64().unwrap_or_default(),
                    a["title"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// `POST /v1/messages` as Anthropic answers it: checks `x-api-key` and
    /// `anthropic-version`, tags each article with the first word of its
    /// title (lowercased) and `"local"`, and reports `usage` from the dial.
    pub async fn messages_api(usage: UsageDial) -> StubServer {
        messages_api_taking(usage, None).await
    }

    /// [`messages_api`] answering after `delay`, as a model writing a long
    /// answer does.
    pub async fn messages_api_taking(
        usage: UsageDial,
        delay: Option<std::time::Duration>,
    ) -> StubServer {
        StubServer::start(move |r| {
            if r.method != "POST" || r.path != "/v1/messages" {
                return Reply::json(
                    404,
                    &serde_json::json!({"type": "error",
                    "error": {"type": "not_found_error", "message": "Not found"}}),
                );
            }
            if r.header("x-api-key") != Some(ANTHROPIC_KEY)
                || r.header("anthropic-version") != Some("2023-06-01")
            {
                return Reply::json(
                    401,
                    &serde_json::json!({"type": "error",
                    "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
                );
            }
            let items: Vec<serde_json::Value> = articles_in(r)
                .into_iter()
                .map(|(id, title)| {
                    let first = title
                        .split_whitespace()
                        .next()
                        .unwrap_or("misc")
                        .to_lowercase();
                    serde_json::json!({ "id": id, "tags": [first, "Local"] })
                })
                .collect();
            let text = format!("```json\n{}\n```", serde_json::json!({ "items": items }));
            let reply = Reply::json(
                200,
                &serde_json::json!({
                    "id": "msg_01TestTagging",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-sonnet-4-20250514",
                    "content": [{ "type": "text", "text": text }],
                    "stop_reason": "end_turn",
                    "stop_sequence": null,
                    "usage": {
                        "input_tokens": usage.input.load(Ordering::SeqCst),
                        "output_tokens": usage.output.load(Ordering::SeqCst),
                    }
                }),
            );
            Reply { delay, ..reply }
        })
        .await
    }

    /// Mailgun's `POST /v3/{domain}/messages`: HTTP Basic `api:<key>`,
    /// form fields; answers as Mailgun does. `fail` answers 500 instead.
    pub async fn mailgun(fail: Arc<std::sync::atomic::AtomicBool>) -> StubServer {
        StubServer::start(move |r| {
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("api:{MAILGUN_KEY}"))
            );
            if r.header("authorization") != Some(expected.as_str()) {
                return Reply::new(401, "text/plain", "Forbidden");
            }
            if r.path != format!("/v3/{MAILGUN_DOMAIN}/messages") {
                return Reply::json(404, &serde_json::json!({"message": "Domain not found"}));
            }
            if fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Reply::json(500, &serde_json::json!({"message": "Internal error"}));
            }
            Reply::json(
                200,
                &serde_json::json!({"id": "<20261127.1@mg.village.test>", "message": "Queued. Thank you."}),
            )
        })
        .await
    }

    /// The form fields of a Mailgun request.
    pub fn form(r: &Recorded) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&r.body).into_owned().collect()
    }

    /// A Slack incoming webhook: `POST` JSON with `text`, answered `ok`.
    pub async fn slack() -> StubServer {
        StubServer::start(|r| {
            if r.json()["text"].as_str().is_some_and(|t| !t.is_empty()) {
                Reply::new(200, "text/plain", "ok")
            } else {
                Reply::new(400, "text/plain", "no_text")
            }
        })
        .await
    }
}
