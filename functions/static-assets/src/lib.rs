//! `static-assets` — `GET /static/...`: files mounted read-only at `/static`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_platform::spin::IncomingRequest;
use village_platform::spin::{Surface, serve};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(
        "static-assets",
        Surface::Plain,
        req,
        out,
        async |req, _env, _ctx| {
            let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
            village_platform::assets::respond(
                req.method(),
                header("spin-path-info").unwrap_or_default(),
                header("if-none-match"),
                |path| std::fs::read(format!("/static/{path}")).ok(),
            )
        },
    )
    .await
}
