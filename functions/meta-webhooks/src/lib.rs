//! `meta-webhooks` — `POST /webhooks/meta/deauthorize` and
//! `/webhooks/meta/data-deletion`: Meta's signed callbacks. No cookie, no
//! session: the signed request is the only credential. See
//! `village_social::webhooks`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_platform::clock::Clock;
use village_platform::spin::{IncomingRequest, Surface, serve};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(
        "meta-webhooks",
        Surface::Plain,
        req,
        out,
        async |req, env, _ctx| {
            let get = |n: &str| spin_sdk::variables::get(n).unwrap_or_default();
            village_social::webhooks::handle(
                req.method(),
                req.uri().path(),
                req.body(),
                &env.sql,
                &get("facebook_client_secret"),
                &get("public_base_url"),
                env.clock.now(),
            )
            .await
        },
    )
    .await
}
