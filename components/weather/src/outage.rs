//! Remembering that a provider is down, so a hanging one costs a few jobs
//! every few minutes rather than every job's full deadline: after a
//! failure, that provider's jobs skip their call for [`QUIET_SECS`] (the
//! next hourly run, or a job after the pause, tries again). Kept in Redis
//! per provider, so the other provider's jobs — and the page — never
//! notice.

use village_platform::cache::{Cache, CacheValue};

/// How long a failed provider is left alone.
pub const QUIET_SECS: i64 = 300;

fn key(cache: &impl Cache, provider: &str) -> String {
    cache.key(&format!("weather:down:{provider}"))
}

/// Whether `provider` failed within the last [`QUIET_SECS`]. A Redis
/// failure reads as "not down": the call is made.
pub async fn is_down(cache: &impl Cache, provider: &str) -> bool {
    matches!(
        cache
            .execute("EXISTS", &[key(cache, provider).into()])
            .await
            .as_deref(),
        Ok([CacheValue::Int(1), ..])
    )
}

/// Marks `provider` down for [`QUIET_SECS`].
pub async fn mark_down(cache: &impl Cache, provider: &str) {
    cache
        .defer(
            "SET",
            vec![
                key(cache, provider).into(),
                "1".into(),
                "EX".into(),
                QUIET_SECS.into(),
            ],
        )
        .await;
}
