//! The edge every admin API function runs inside Spin.

use spin_sdk::http::ResponseOutparam;
use village_platform::spin::{Env, IncomingRequest, Surface, serve_guarded};
use village_platform::web::{Request, Response};
use village_platform::{AppError, RequestContext};

use crate::authz::{Admin, authorize};

/// Serves an admin API request: the rate-limit gate, then [`authorize`]
/// (the route's permission from `roles::ADMIN_ROUTES`; a denial is audited
/// and answered 401/403), then `handler` with the admin who may act.
pub async fn serve_admin<F>(
    component: &'static str,
    req: IncomingRequest,
    out: ResponseOutparam,
    handler: F,
) where
    F: AsyncFnOnce(&Request, &Env, &RequestContext, Admin) -> Result<Response, AppError>,
{
    serve_guarded(
        component,
        Surface::Api,
        req,
        out,
        village_ratelimit::spin::gate,
        async move |req, env, ctx| {
            let admin = authorize(&env.sql, ctx, req.method().as_str(), req.uri().path()).await?;
            handler(&req, env, ctx, admin).await
        },
    )
    .await
}
