//! `homepage` — `GET /`: the visitor's widget grid, server-rendered.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http_component;
use village_platform::spin::{Surface, serve};
use village_platform::web::{Request, Response};

#[http_component]
async fn handle(req: Request) -> Response {
    serve("homepage", Surface::Page, req, async |req, env, ctx| {
        village_homepage::page(req.method(), &env.sql, ctx).await
    })
    .await
}
