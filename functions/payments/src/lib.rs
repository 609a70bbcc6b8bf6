//! `payments` — `/payments/checkout` (the page) and `/api/payments/...`:
//! a seller buys a paid category's posting or a promotion. See
//! `village_payments::api`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_payments::api::{PaymentRequest, Services, handle as payments};
use village_platform::clock::Clock;
use village_platform::spin::{IncomingRequest, SpinHttp, Surface, serve_guarded};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let surface = Surface::by_path(&req.path_with_query().unwrap_or_default());
    serve_guarded(
        "payments",
        surface,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            let config = village_payments::spin_components::config();
            // Stripe answers within seconds; give it more than the default.
            let http = SpinHttp {
                timeout: std::time::Duration::from_secs(10),
                ..SpinHttp::default()
            };
            let services = Services {
                sql: &env.sql,
                cache: &env.cache,
                http: &http,
                config: &config,
                now: env.clock.now(),
            };
            let request = PaymentRequest {
                method: req.method(),
                path: req.uri().path(),
                query: req.uri().query().unwrap_or_default(),
                body: req.body(),
            };
            payments(request, &services, ctx).await
        },
    )
    .await
}
