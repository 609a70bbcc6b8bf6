//! `track-click` — `GET /track/click`: a signed outbound link checked,
//! the click recorded, the visitor redirected. See `village_clicks::record`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_platform::clock::Clock;
use village_platform::spin::{IncomingRequest, Surface, serve_guarded};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_guarded(
        "track-click",
        Surface::Page,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            let signer = village_clicks::spin_components::signer("track-click");
            village_clicks::record::handle(
                &env.sql,
                signer.as_ref(),
                req.method(),
                req.uri().query().unwrap_or_default(),
                ctx,
                env.clock.now(),
            )
            .await
        },
    )
    .await
}
