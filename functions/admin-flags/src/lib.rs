//! `admin-flags` — `/admin/api/flags/...`: list, view, create and change
//! feature flags, for callers with `manage_flags`; every change audited.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_accounts::spin::serve_admin;
use village_flags::admin::{FlagsRequest, handle as flags};
use village_platform::clock::Clock;
use village_platform::spin::IncomingRequest;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_admin("admin-flags", req, out, async |req, env, ctx, admin| {
        let request = FlagsRequest {
            method: req.method(),
            path: req.uri().path(),
            body: req.body(),
        };
        let actor = Some(admin.user_id);
        flags(request, &env.sql, &env.cache, ctx, actor, env.clock.now()).await
    })
    .await
}
