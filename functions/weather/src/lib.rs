//! `weather` — `/weather/...`: the form that chooses the weather widget's
//! place. See `village_weather::widget`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_platform::clock::Clock;
use village_platform::spin::{IncomingRequest, Surface, serve_guarded};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_guarded(
        "weather",
        Surface::Page,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            village_weather::widget::handle(
                req.method(),
                req.uri().path(),
                req.body(),
                &env.sql,
                &env.cache,
                ctx,
                env.clock.now(),
            )
            .await
        },
    )
    .await
}
