//! `admin-users` — `/admin/api/users/...` (search, view, roles, sessions) and
//! `/admin/api/impersonation` (start, stop). Permissions per route are in
//! `village_accounts::roles::ADMIN_ROUTES`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_accounts::admin_routes::{AdminRequest, handle as admin};
use village_platform::clock::Clock;
use village_platform::spin::IncomingRequest;
use village_platform::spin::{Surface, serve_guarded};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_guarded(
        "admin-users",
        Surface::Api,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            let request = AdminRequest {
                method: req.method(),
                path: req.uri().path(),
                query: req.uri().query().unwrap_or_default(),
                body: req.body(),
            };
            admin(
                request,
                &env.sql,
                env.signing_key.as_ref(),
                env.cookie_secure,
                ctx,
                env.clock.now(),
            )
            .await
        },
    )
    .await
}
