//! `safe-fetch` — `POST /fetch`: makes one GET of a URL a user gave us and
//! hands back the answer (see `village_platform::fetch` for the wire). It
//! runs in its own application, `fetch/spin.toml`, started with
//! `fetch/runtime-config.toml`: the runtime refuses to connect to any
//! private, loopback, link-local or cluster address, whatever name or DNS
//! answer leads there. Answers are bounded to 5 MiB (read as a stream) and
//! 3 s.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_platform::fetch::{self, FetchRequest};
use village_platform::http_client::HttpClient;
use village_platform::spin::{IncomingRequest, SpinHttp, serve_plain};
use village_platform::{AppError, FieldError};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_plain("safe-fetch", req, out, async |req| {
        if req.method() != http::Method::POST {
            return Err(AppError::MethodNotAllowed { allowed: "POST" });
        }
        let hop: FetchRequest = serde_json::from_slice(req.body())
            .map_err(|e| AppError::Validation(vec![FieldError::new("body", e.to_string())]))?;
        let upstream = hop
            .to_http()
            .map_err(|e| AppError::Validation(vec![FieldError::new("url", e)]))?;
        Ok(match SpinHttp::default().send(upstream).await {
            Ok(answer) => fetch::completed(answer),
            Err(e) => {
                village_platform::log::event(
                    "WARNING",
                    &format!("fetch failed: {e}"),
                    serde_json::json!({ "url": hop.url }),
                );
                fetch::failed(&e)
            }
        })
    })
    .await;
}
