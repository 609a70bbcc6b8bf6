//! `probes` — `/healthz` (the function answers) and `/readyz` (Postgres and
//! Redis answer; 503 naming what does not).

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_platform::spin::IncomingRequest;
use village_platform::spin::{Surface, serve};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(
        "probes",
        Surface::Plain,
        req,
        out,
        async |req, env, _ctx| {
            Ok(match req.uri().path() {
                "/readyz" => village_platform::probes::readiness(&env.sql, &env.cache).await,
                _ => village_platform::probes::liveness(),
            })
        },
    )
    .await
}
