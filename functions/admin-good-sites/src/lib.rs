//! `admin-good-sites` — `/admin/api/good-sites/...`: appoint and dismiss
//! Good Sites moderators. For callers with `moderate_content`. See
//! `village_directory::admin`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_accounts::spin::serve_admin;
use village_directory::admin::{PREFIX, handle as moderators};
use village_platform::admin::Actor;
use village_platform::clock::Clock;
use village_platform::spin::IncomingRequest;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_admin(
        "admin-good-sites",
        req,
        out,
        async |req, env, ctx, admin| {
            let path = req.uri().path();
            let actor = Actor {
                user_id: Some(admin.user_id),
                label: admin.label(),
            };
            moderators(
                &env.sql,
                req.method(),
                path.strip_prefix(PREFIX).unwrap_or(path),
                req.body(),
                &actor,
                ctx,
                env.clock.now(),
            )
            .await
        },
    )
    .await
}
