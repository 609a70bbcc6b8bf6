//! `admin-payments` — `/admin/api/payments/...`: what ops and support
//! need around money. For callers with `manage_refunds`, never while
//! impersonating. See `village_payments::admin`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_accounts::spin::serve_admin;
use village_payments::admin::{AdminRequest, PREFIX, Services, handle as payments};
use village_platform::admin::Actor;
use village_platform::blob::Blobs;
use village_platform::clock::Clock;
use village_platform::spin::{IncomingRequest, SpinHttp};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_admin("admin-payments", req, out, async |req, env, ctx, admin| {
        // Evidence packages are where the workers put them: the bucket
        // when `object_store_*` are set, else the embedded store.
        let config = village_platform::spin::object_store_config().map_err(|e| {
            village_platform::error::AppError::Internal(format!("object storage settings: {e}"))
        })?;
        let http = SpinHttp::default();
        let blobs = Blobs::choose(config.as_ref(), &env.sql, &http).map_err(|e| {
            village_platform::error::AppError::Internal(format!("object storage: {e}"))
        })?;
        let services = Services {
            sql: &env.sql,
            cache: &env.cache,
            blobs: &blobs,
            now: env.clock.now(),
        };
        let path = req.uri().path();
        let request = AdminRequest {
            method: req.method(),
            path: path.strip_prefix(PREFIX).unwrap_or(path),
            query: req.uri().query().unwrap_or_default(),
            body: req.body(),
        };
        let actor = Actor {
            user_id: Some(admin.user_id),
            label: admin.label(),
        };
        payments(request, &services, &actor, ctx).await
    })
    .await
}
