//! `homepage` — `GET /`: the visitor's widget grid, server-rendered.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_platform::clock::Clock;
use village_platform::spin::IncomingRequest;
use village_platform::spin::{Surface, serve_guarded};

/// Sign-in providers with a client id configured: only those get a link.
fn providers() -> Vec<(&'static str, &'static str)> {
    [
        ("google", "Google"),
        ("facebook", "Facebook"),
        ("apple", "Apple"),
    ]
    .into_iter()
    .filter(|(id, _)| {
        spin_sdk::variables::get(&format!("{id}_client_id")).is_ok_and(|v| !v.is_empty())
    })
    .collect()
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_guarded(
        "homepage",
        Surface::Page,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            let signer = village_clicks::spin_components::signer("homepage");
            village_homepage::page(
                req.method(),
                req.uri().query().unwrap_or_default(),
                &env.sql,
                &env.cache,
                ctx,
                village_homepage::PageConfig {
                    providers: providers(),
                    signer: signer.as_ref(),
                },
                env.clock.now(),
            )
            .await
        },
    )
    .await
}
