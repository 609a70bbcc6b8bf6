//! `admin-rate-limits` — `/admin/api/rate-limits/...`: the rules, active
//! bans and recent violations; set a rule, lift a ban. For callers with
//! `manage_system`; every change audited with its reason.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_accounts::spin::serve_admin;
use village_platform::spin::IncomingRequest;
use village_ratelimit::admin::{RateLimitsRequest, handle as rate_limits};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_admin(
        "admin-rate-limits",
        req,
        out,
        async |req, env, ctx, admin| {
            let request = RateLimitsRequest {
                method: req.method(),
                path: req.uri().path(),
                query: req.uri().query().unwrap_or_default(),
                body: req.body(),
            };
            rate_limits(request, &env.sql, &env.cache, ctx, Some(admin.user_id)).await
        },
    )
    .await
}
