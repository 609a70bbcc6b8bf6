//! `admin-feeds` — `/admin/api/feeds/...`: every feed with its health and
//! readers; ops add feeds to the default set and set refresh intervals.
//! For callers with `manage_system`; every change audited with its reason.
//! See `village_feeds::admin`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_accounts::spin::serve_admin;
use village_feeds::admin::{FeedsAdminRequest, handle as feeds};
use village_platform::clock::Clock;
use village_platform::spin::IncomingRequest;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_admin("admin-feeds", req, out, async |req, env, ctx, admin| {
        let hosts = village_platform::address::allowed_hosts(
            &spin_sdk::variables::get("feed_allowed_hosts").unwrap_or_default(),
        );
        let request = FeedsAdminRequest {
            method: req.method(),
            path: req.uri().path(),
            query: req.uri().query().unwrap_or_default(),
            body: req.body(),
            allowed_hosts: &hosts,
        };
        feeds(request, &env.sql, ctx, Some(admin.user_id), env.clock.now()).await
    })
    .await
}
