//! `bootstrap` — `/bootstrap`: a page offering the first signed-in visitor
//! the `super_admin` role while nobody has ever held it; 403 ever after.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_accounts::{bootstrap, pages};
use village_platform::AppError;
use village_platform::spin::IncomingRequest;
use village_platform::spin::{Surface, serve_guarded};
use village_platform::web;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_guarded(
        "bootstrap",
        Surface::Page,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| match *req.method() {
            http::Method::GET => {
                if !bootstrap::is_open(&env.sql).await? {
                    return Err(AppError::Forbidden(
                        "bootstrap is closed: an administrator already exists".into(),
                    ));
                }
                let providers: Vec<(&str, &str)> = village_accounts::oidc::Provider::ALL
                    .iter()
                    .filter(|p| {
                        !spin_sdk::variables::get(&format!("{p}_client_id"))
                            .unwrap_or_default()
                            .is_empty()
                    })
                    .map(|p| (p.as_str(), p.display_name()))
                    .collect();
                let html = pages::bootstrap(ctx.principal.is_some(), &providers)?;
                Ok(web::html(http::StatusCode::OK, html))
            }
            http::Method::POST => {
                bootstrap::grant(&env.sql, ctx).await?;
                let html = pages::message(
                    "You are the administrator",
                    "You now hold the super_admin role. Grant roles to others from the admin API.",
                    "/",
                    "Back to your homepage",
                )?;
                Ok(web::html(http::StatusCode::OK, html))
            }
            _ => Err(AppError::MethodNotAllowed {
                allowed: "GET, POST",
            }),
        },
    )
    .await
}
