//! Remembering that a provider is down, so a hanging one costs one job's
//! deadline every few minutes rather than every job's: after a failure,
//! that provider's jobs wait (deferred, not dropped) until the pause of
//! [`QUIET_SECS`] ends. Kept in Redis per provider, so the other
//! provider's jobs — and the page — never notice.

use village_platform::cache::{Cache, CacheValue};

/// How long a failed provider is left alone.
pub const QUIET_SECS: i64 = 300;

fn key(cache: &impl Cache, provider: &str) -> String {
    cache.key(&format!("weather:down:{provider}"))
}

/// Marks `provider` down for [`QUIET_SECS`], at once (the next job of the
/// same drain must see it). A Redis failure is logged: the pause is lost,
/// nothing else.
pub async fn mark_down(cache: &impl Cache, provider: &str) {
    let set = [
        key(cache, provider).into(),
        "1".into(),
        "EX".into(),
        QUIET_SECS.into(),
    ];
    if let Err(e) = cache.execute("SET", &set).await {
        village_platform::log::event(
            "WARNING",
            &format!("provider pause not recorded: {e}"),
            serde_json::json!({ "provider": provider }),
        );
    }
}

/// When `provider`'s pause ends, if it is paused (`PTTL`). A Redis failure
/// reads as "not paused": the call is made.
pub async fn paused_until(
    cache: &impl Cache,
    provider: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    match cache
        .execute("PTTL", &[key(cache, provider).into()])
        .await
        .as_deref()
    {
        Ok([CacheValue::Int(ms), ..]) if *ms > 0 => Some(now + chrono::Duration::milliseconds(*ms)),
        _ => None,
    }
}

/// Ok when `provider` is not paused; else the job waits for the pause to
/// end (deferred, not failed).
pub async fn wait_out_pause(
    cache: &impl Cache,
    provider: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), village_jobs::JobError> {
    match paused_until(cache, provider, now).await {
        Some(until) => Err(village_jobs::JobError::Defer {
            until,
            reason: format!("{provider} failed moments ago"),
        }),
        None => Ok(()),
    }
}
