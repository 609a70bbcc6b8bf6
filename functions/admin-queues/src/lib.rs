//! `admin-queues` — `/admin/api/queues/...`: the ops view and controls of
//! the job queues, behind the admin token until roles exist.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http_component;
use village_jobs::ops::{OpsRequest, handle as ops};
use village_platform::clock::Clock;
use village_platform::spin::{Surface, serve};
use village_platform::web::{Request, Response};

#[http_component]
async fn handle(req: Request) -> Response {
    serve("admin-queues", Surface::Api, req, async |req, env, ctx| {
        let token = spin_sdk::variables::get("admin_api_token").unwrap_or_default();
        let actor = village_platform::admin::require_token(req.headers(), &token)?;
        let path = req
            .headers()
            .get("spin-path-info")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
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
