//! `flags-api` — `GET /api/flags`: every feature flag's answer for the
//! visitor (`{"flags": {"stocks_widget": false, ...}}`), in one call.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_flags::{Visitor, flags_for};
use village_platform::AppError;
use village_platform::clock::Clock;
use village_platform::spin::IncomingRequest;
use village_platform::spin::{Surface, serve_guarded};
use village_platform::web;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_guarded(
        "flags-api",
        Surface::Api,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            if req.method() != http::Method::GET {
                return Err(AppError::MethodNotAllowed { allowed: "GET" });
            }
            let flags = flags_for(&env.sql, &env.cache, &Visitor::of(ctx), env.clock.now()).await;
            let mut r = web::json(
                http::StatusCode::OK,
                &serde_json::json!({ "flags": flags.to_map() }),
            );
            r.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("private, no-store"),
            );
            Ok(r)
        },
    )
    .await
}
