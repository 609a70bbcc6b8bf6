//! `admin-ai-budget` — `/admin/api/ai-budget`: the month's AI budget, its
//! spend, level and notices; `PUT` sets the limit with a reason, audited.
//! For callers with `manage_system`. See `village_ai::admin`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_accounts::spin::serve_admin;
use village_ai::admin::{BudgetRequest, handle as budget};
use village_platform::AppError;
use village_platform::clock::Clock;
use village_platform::spin::IncomingRequest;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_admin("admin-ai-budget", req, out, async |req, env, ctx, admin| {
        let config = village_ai::spin_components::config().map_err(AppError::Internal)?;
        let request = BudgetRequest {
            method: req.method(),
            path: req.uri().path(),
            body: req.body(),
        };
        let actor = Some(admin.user_id);
        budget(request, &env.sql, &config, ctx, actor, env.clock.now()).await
    })
    .await
}
