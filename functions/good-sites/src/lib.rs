//! `good-sites` — `/good-sites/...` (pages) and `/api/good-sites/...`
//! (JSON): the directory. See `village_directory::api`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_directory::api::{DirectoryRequest, Services, handle as directory};
use village_platform::blob::Blobs;
use village_platform::clock::Clock;
use village_platform::spin::{IncomingRequest, SpinHttp, Surface, serve_guarded};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let surface = Surface::by_path(&req.path_with_query().unwrap_or_default());
    serve_guarded(
        "good-sites",
        surface,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            let disabled = |e: String| {
                village_platform::log::event(
                    "ERROR",
                    &format!("screenshots unavailable: {e}"),
                    serde_json::json!({ "component": "good-sites" }),
                );
            };
            // Screenshots are where the host put them: the bucket when
            // `object_store_*` are set, else the embedded store. Broken
            // settings hide the pictures, never the directory.
            let config = village_platform::spin::object_store_config()
                .map_err(|e| disabled(e.to_string()))
                .ok()
                .flatten();
            let http = SpinHttp::default();
            let blobs = Blobs::choose(config.as_ref(), &env.sql, &http)
                .map_err(|e| disabled(e.to_string()))
                .ok();
            let signer = village_clicks::spin_components::signer("good-sites");
            let hosts = village_directory::spin_components::allowed_hosts();
            let services = Services {
                sql: &env.sql,
                cache: &env.cache,
                blobs: blobs.as_ref(),
                signer: signer.as_ref(),
                threshold: village_directory::spin_components::karma_threshold(),
                allowed_hosts: &hosts,
                now: env.clock.now(),
            };
            let request = DirectoryRequest {
                method: req.method(),
                path: req.uri().path(),
                query: req.uri().query().unwrap_or_default(),
                body: req.body(),
            };
            directory(request, &services, ctx).await
        },
    )
    .await
}
