//! `metrics` — `/q/metrics`: request counts and latencies of every component,
//! and the job system's queue depths and handler counters, in the Prometheus
//! text exposition format.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use village_platform::AppError;
use village_platform::clock::Clock;
use village_platform::spin::IncomingRequest;
use village_platform::spin::{Surface, serve};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(
        "metrics",
        Surface::Plain,
        req,
        out,
        async |_req, env, _ctx| {
            let mut text = village_platform::metrics::render(&env.cache)
                .await
                .map_err(|e| AppError::Unavailable {
                    dependency: "redis",
                    detail: e.to_string(),
                })?;
            // Job metrics need Postgres too; without it the HTTP metrics still go out.
            match village_jobs::metrics::render(&env.sql, &env.cache, env.clock.now()).await {
                Ok(jobs) => text.push_str(&jobs),
                Err(e) => text.push_str(&format!(
                    "# job metrics unavailable: {}\n",
                    e.to_string().replace('\n', " ")
                )),
            }
            // Quote refreshes the Alpha Vantage quota held back.
            match village_stocks::throttle::metrics(&env.cache).await {
                Ok(stocks) => text.push_str(&stocks),
                Err(e) => text.push_str(&format!(
                    "# stocks metrics unavailable: {}\n",
                    e.to_string().replace('\n', " ")
                )),
            }
            // Stripe's events not yet applied, and refunds owed.
            match village_payments::metrics::render(&env.sql, env.clock.now()).await {
                Ok(payments) => text.push_str(&payments),
                Err(e) => text.push_str(&format!(
                    "# payments metrics unavailable: {}\n",
                    e.to_string().replace('\n', " ")
                )),
            }
            let mut r = village_platform::web::text(http::StatusCode::OK, &text);
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            Ok(r)
        },
    )
    .await
}
