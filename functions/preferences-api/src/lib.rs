//! `preferences-api` — `GET`/`PUT /api/preferences`: the visitor's layout
//! and settings as JSON.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_platform::spin::IncomingRequest;
use village_platform::spin::{Surface, serve_guarded};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_guarded(
        "preferences-api",
        Surface::Api,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            village_preferences::api::handle(req.method(), req.body(), &env.sql, ctx).await
        },
    )
    .await
}
