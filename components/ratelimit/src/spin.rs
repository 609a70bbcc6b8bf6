//! The gate as a Spin function hands it to `serve_guarded`.

use village_platform::RequestContext;
use village_platform::clock::Clock;
use village_platform::guard::Verdict;
use village_platform::spin::Env;
use village_platform::web::Request;

/// Checks the request's route action (see [`crate::routes`]) for its caller.
pub async fn gate(req: &Request, env: &Env, ctx: &RequestContext) -> Verdict {
    crate::limiter::gate(
        &env.sql,
        &env.cache,
        crate::routes::action_of(req),
        ctx,
        env.clock.now(),
    )
    .await
}
