//! `stocks` — `/stocks/...` (the widget's forms) and `/api/stocks/...`
//! (JSON): watchlists. See `village_stocks::api`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_platform::clock::Clock;
use village_platform::spin::{IncomingRequest, SpinHttp, Surface, serve_guarded};
use village_stocks::api::{Services, StocksRequest, handle as stocks};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let surface = Surface::by_path(&req.path_with_query().unwrap_or_default());
    serve_guarded(
        "stocks",
        surface,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            let config = village_stocks::spin_components::config();
            let http = SpinHttp::default();
            let services = Services {
                sql: &env.sql,
                cache: &env.cache,
                http: &http,
                config: &config,
                now: env.clock.now(),
            };
            let request = StocksRequest {
                method: req.method(),
                path: req.uri().path(),
                body: req.body(),
            };
            stocks(request, &services, ctx).await
        },
    )
    .await
}
