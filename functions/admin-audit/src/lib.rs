//! `admin-audit` — `GET /admin/api/audit`: the audit log, filtered and
//! paginated, for callers with `view_audit`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_accounts::audit_log::{AuditQuery, read};
use village_accounts::spin::serve_admin;
use village_platform::spin::IncomingRequest;
use village_platform::web;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_admin("admin-audit", req, out, async |req, env, _ctx, _admin| {
        let query = AuditQuery::parse(req.uri().query().unwrap_or_default())?;
        let page = read(&env.sql, &query).await?;
        Ok(web::json(http::StatusCode::OK, &page))
    })
    .await
}
