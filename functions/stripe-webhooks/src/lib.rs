//! `stripe-webhooks` — `POST /webhooks/stripe`: Stripe's event deliveries.
//! No cookie, no session: `Stripe-Signature` is the only credential. The
//! event is recorded and queued; the answer is immediate. See
//! `village_payments::webhook`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_platform::clock::Clock;
use village_platform::spin::{IncomingRequest, Surface, serve};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(
        "stripe-webhooks",
        Surface::Plain,
        req,
        out,
        async |req, env, _ctx| {
            let config = village_payments::spin_components::config();
            village_payments::webhook::handle(
                req.method(),
                req.headers(),
                req.body(),
                &env.sql,
                &env.cache,
                &config.webhook_secrets,
                env.clock.now(),
            )
            .await
        },
    )
    .await
}
