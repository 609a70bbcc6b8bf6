//! `news` — `/api/feeds/...`, `/api/news` and `/news/...`: follow and drop
//! feeds (JSON, or the homepage's forms), and the news widget's articles
//! as JSON. See `village_feeds::api`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_feeds::api::{NewsRequest, handle as news};
use village_platform::clock::Clock;
use village_platform::spin::IncomingRequest;
use village_platform::spin::{Surface, serve_guarded};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    // The forms under /news/ answer browsers: errors as readable pages.
    let surface = Surface::by_path(&req.path_with_query().unwrap_or_default());
    serve_guarded(
        "news",
        surface,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            let hosts = village_platform::address::allowed_hosts(
                &spin_sdk::variables::get("feed_allowed_hosts").unwrap_or_default(),
            );
            let request = NewsRequest {
                method: req.method(),
                path: req.uri().path(),
                query: req.uri().query().unwrap_or_default(),
                body: req.body(),
                allowed_hosts: &hosts,
            };
            news(request, &env.sql, &env.cache, ctx, env.clock.now()).await
        },
    )
    .await
}
