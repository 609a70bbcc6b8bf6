//! Alpha Vantage's quota, counted in Redis for every component and worker
//! together by one Lua script (atomic: concurrent workers can never
//! overshoot):
//!
//! - calls in any rolling minute (a sorted set of call times, so two
//!   bursts either side of a minute boundary cannot double the rate);
//! - calls per UTC day (Alpha Vantage does not document its reset time;
//!   UTC is the conservative reading);
//! - a minimum gap between calls (Alpha Vantage refuses bursts faster than
//!   about one a second on the free tier, whatever is left of the minute).

use chrono::{DateTime, Duration, Utc};
use village_platform::cache::{Cache, CacheError, CacheValue};

/// The quota, from `alpha_vantage_calls_per_minute`, `_per_day` and
/// `_min_interval_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_minute: u32,
    pub per_day: u32,
    /// Milliseconds between two calls (0: no spacing).
    pub min_interval_ms: u32,
}

impl Quota {
    /// Alpha Vantage's free tier as documented today: 25 calls a day, the
    /// historical 5 a minute, about one a second.
    pub const FREE_TIER: Quota = Quota {
        per_minute: 5,
        per_day: 25,
        min_interval_ms: 1_000,
    };
}

/// Which limit stopped a call, and when it has room again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    pub window: Window,
    pub resume_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The gap between calls: routine pacing, not a spent quota.
    Gap,
    Minute,
    Day,
}

impl Window {
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Gap => "gap",
            Window::Minute => "minute",
            Window::Day => "day",
        }
    }
}

/// KEYS: the minute's sorted set, the day's counter. ARGV: now (ms),
/// per minute, per day, the gap (ms), a unique member. Returns
/// `{verdict, resume_ms}`: 0 taken, 1 minute spent, 2 day spent, 3 too
/// soon after the last call.
const TAKE: &str = "\
local now = tonumber(ARGV[1]) \
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000) \
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[3]) then return {2, 0} end \
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then \
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES') \
  return {1, tonumber(oldest[2]) + 60000} end \
local gap = tonumber(ARGV[4]) \
if gap > 0 then \
  local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES') \
  if last[2] and now - tonumber(last[2]) < gap then return {3, tonumber(last[2]) + gap} end \
end \
redis.call('ZADD', KEYS[1], now, ARGV[5]) redis.call('PEXPIRE', KEYS[1], 120000) \
redis.call('INCR', KEYS[2]) redis.call('EXPIRE', KEYS[2], 172800) \
return {0, 0}";

fn next_day(now: DateTime<Utc>) -> DateTime<Utc> {
    (now.date_naive() + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .map_or(now + Duration::days(1), |t| t.and_utc())
}

fn day_key(cache: &impl Cache, now: DateTime<Utc>) -> String {
    cache.key(&format!("alpha-vantage:calls:{}", now.format("%Y%m%d")))
}

/// Takes one call from the quota at `now`, or says which limit stops it.
pub async fn take(
    cache: &impl Cache,
    quota: Quota,
    now: DateTime<Utc>,
) -> Result<Result<(), Spent>, CacheError> {
    let now_ms = now.timestamp_millis();
    let member = format!("{now_ms}:{}", uuid::Uuid::new_v4().simple());
    let reply = cache
        .execute(
            "EVAL",
            &[
                TAKE.into(),
                2i64.into(),
                cache.key("alpha-vantage:minute").into(),
                day_key(cache, now).into(),
                now_ms.into(),
                i64::from(quota.per_minute).into(),
                i64::from(quota.per_day).into(),
                i64::from(quota.min_interval_ms).into(),
                member.into(),
            ],
        )
        .await?;
    let at_ms = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or(now + Duration::minutes(1));
    Ok(match reply.as_slice() {
        [CacheValue::Int(0), ..] => Ok(()),
        [CacheValue::Int(1), CacheValue::Int(ms)] => Err(Spent {
            window: Window::Minute,
            resume_at: at_ms(*ms),
        }),
        [CacheValue::Int(2), ..] => Err(Spent {
            window: Window::Day,
            resume_at: next_day(now),
        }),
        [CacheValue::Int(3), CacheValue::Int(ms)] => Err(Spent {
            window: Window::Gap,
            resume_at: at_ms(*ms),
        }),
        other => {
            return Err(CacheError::Command(format!(
                "unexpected quota reply {other:?}"
            )));
        }
    })
}

/// Calls taken in the rolling minute and the UTC day at `now` (the ops
/// view, and telling a provider's daily refusal from a burst one).
pub async fn used(cache: &impl Cache, now: DateTime<Utc>) -> Result<(i64, i64), CacheError> {
    let since = (now - Duration::minutes(1)).timestamp_millis();
    let minute = cache
        .execute(
            "ZCOUNT",
            &[
                cache.key("alpha-vantage:minute").into(),
                since.into(),
                "+inf".into(),
            ],
        )
        .await?;
    let day = cache.execute("GET", &[day_key(cache, now).into()]).await?;
    let int = |v: Option<&CacheValue>| match v {
        Some(CacheValue::Int(n)) => *n,
        Some(other) => other.as_text().and_then(|t| t.parse().ok()).unwrap_or(0),
        None => 0,
    };
    Ok((int(minute.first()), int(day.first())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_day_reopens_at_the_next_utc_midnight() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 30, 23, 59, 42)
            .single()
            .expect("valid");
        assert_eq!(next_day(now).to_rfc3339(), "2026-12-01T00:00:00+00:00");
    }
}
