//! `social` — `/social/...`: connecting Meta for the social widget,
//! removing posts, the data-deletion status page. See `village_social::api`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_platform::clock::Clock;
use village_platform::spin::{IncomingRequest, SpinHttp, Surface, serve_guarded};
use village_social::api::{Services, SocialRequest, handle as social};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_guarded(
        "social",
        Surface::Page,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            // Broken settings stop connecting (503, saying so), not the
            // status page, removals or disconnecting.
            let config = village_social::spin_components::config();
            let http = SpinHttp::default();
            let services = Services {
                sql: &env.sql,
                cache: &env.cache,
                http: &http,
                config: config.as_ref().map_err(String::as_str),
                cookie_secure: env.cookie_secure,
                now: env.clock.now(),
            };
            let request = SocialRequest {
                method: req.method(),
                path: req.uri().path(),
                query: req.uri().query().unwrap_or_default(),
                headers: req.headers(),
                body: req.body(),
            };
            social(request, &services, ctx).await
        },
    )
    .await
}
