//! `privacy-api` — `GET`/`PUT /api/consent`: the signed-in user's analytics
//! consent. Withdrawing it purges the analytics rows that name them.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_accounts::consent;
use village_platform::AppError;
use village_platform::admin::parse_body;
use village_platform::clock::Clock;
use village_platform::spin::IncomingRequest;
use village_platform::spin::{Surface, serve_guarded};
use village_platform::web;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_guarded(
        "privacy-api",
        Surface::Api,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            let answer = match *req.method() {
                http::Method::GET => consent::get(&env.sql, ctx).await?,
                http::Method::PUT => {
                    consent::set(&env.sql, ctx, parse_body(req.body())?, env.clock.now()).await?
                }
                _ => {
                    return Err(AppError::MethodNotAllowed {
                        allowed: "GET, PUT",
                    });
                }
            };
            Ok(web::json(http::StatusCode::OK, &answer))
        },
    )
    .await
}
