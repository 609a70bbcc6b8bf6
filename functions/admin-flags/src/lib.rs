//! `admin-flags` — `/admin/api/flags/...`: list, view, create and change
//! feature flags, for callers with `manage_flags`; every change audited.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_accounts::authz::authorize;
use village_flags::admin::{FlagsRequest, handle as flags};
use village_platform::clock::Clock;
use village_platform::spin::{Surface, serve_guarded};
use village_platform::web::Request;

#[http_component]
async fn handle(req: Request, out: ResponseOutparam) {
    serve_guarded(
        "admin-flags",
        Surface::Api,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            let admin = authorize(&env.sql, ctx, req.method().as_str(), req.uri().path()).await?;
            let request = FlagsRequest {
                method: req.method(),
                path: req.uri().path(),
                body: req.body(),
            };
            flags(
                request,
                &env.sql,
                &env.cache,
                ctx,
                Some(admin.user_id),
                env.clock.now(),
            )
            .await
        },
    )
    .await
}
