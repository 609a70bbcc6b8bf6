//! `marketplace` — `/marketplace/...` (pages), `/api/marketplace/...` and
//! `/api/places` (JSON). See `village_marketplace::api`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_marketplace::api::{MarketRequest, Services, handle as market};
use village_platform::clock::Clock;
use village_platform::objects::{S3Config, S3Store};
use village_platform::spin::{IncomingRequest, SpinHttp, Surface, serve_guarded};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let surface = Surface::by_path(&req.path_with_query().unwrap_or_default());
    serve_guarded(
        "marketplace",
        surface,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            // Broken storage settings disable uploads (they say so), not
            // the marketplace: searching and reading go on.
            let config = village_platform::spin::object_store_config().unwrap_or_else(|e| {
                village_platform::log::event(
                    "ERROR",
                    &format!("object storage disabled: {e}"),
                    serde_json::json!({ "component": "marketplace" }),
                );
                None
            });
            // Images are up to 8 MiB: reading one back needs more room
            // than the default answer bound.
            let http = SpinHttp {
                max_body: 9 << 20,
                ..SpinHttp::default()
            };
            let store = config.as_ref().and_then(|c| {
                S3Store::new(c, &http)
                    .map_err(|e| {
                        village_platform::log::event(
                            "ERROR",
                            &format!("object storage disabled: {e}"),
                            serde_json::json!({ "component": "marketplace" }),
                        );
                    })
                    .ok()
            });
            let signer = village_clicks::spin_components::signer("marketplace");
            // Paid promotions show only while `promoted_listings` is on for
            // this visitor (its kill switch and rollout); asked only where
            // they show.
            let promotions =
                village_marketplace::api::shows_promotions(req.method(), req.uri().path())
                    && village_flags::visitor::is_enabled(
                        &env.sql,
                        &env.cache,
                        &village_flags::Visitor::of(ctx),
                        village_marketplace::PROMOTIONS_FLAG,
                        env.clock.now(),
                    )
                    .await;
            let services = Services {
                sql: &env.sql,
                store: store.as_ref(),
                store_origin: config.as_ref().map(S3Config::origin),
                signer: signer.as_ref(),
                promotions,
                now: env.clock.now(),
            };
            let request = MarketRequest {
                method: req.method(),
                path: req.uri().path(),
                query: req.uri().query().unwrap_or_default(),
                body: req.body(),
            };
            market(request, &services, ctx).await
        },
    )
    .await
}
