//! `admin-queues` — `/admin/api/queues/...`: the ops view and controls of
//! the job queues, for callers with `manage_system`; `/throttles` shows
//! the stocks widget's provider quota and what waits for it.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_accounts::spin::serve_admin;
use village_jobs::ops::{OpsRequest, handle as ops};
use village_platform::admin::Actor;
use village_platform::clock::Clock;
use village_platform::spin::IncomingRequest;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_admin("admin-queues", req, out, async |req, env, ctx, admin| {
        let actor = Actor {
            user_id: Some(admin.user_id),
            label: admin.label(),
        };
        let path = req
            .headers()
            .get("spin-path-info")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // The stocks widget's quota: its use, deferred refreshes, pauses.
        if path.trim_end_matches('/') == "/throttles" {
            if req.method() != http::Method::GET {
                return Err(village_platform::AppError::MethodNotAllowed { allowed: "GET" });
            }
            let config = village_stocks::spin_components::config();
            let view = village_stocks::throttle::ops_view(
                &env.sql,
                &env.cache,
                config.quota,
                env.clock.now(),
            )
            .await?;
            return Ok(village_platform::web::json(http::StatusCode::OK, &view));
        }
        let request = OpsRequest {
            method: req.method(),
            path,
            query: req.uri().query().unwrap_or_default(),
            body: req.body(),
        };
        ops(request, &env.sql, &env.cache, env.clock.now(), &actor, ctx).await
    })
    .await
}
