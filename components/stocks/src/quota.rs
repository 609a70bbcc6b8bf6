//! Alpha Vantage's quota (calls per minute and per day), counted in Redis
//! for every component and worker together. A call is taken only when
//! both windows have room: one Lua script reads and increments both, so
//! concurrent workers can never overshoot. The day is the UTC day (Alpha
//! Vantage does not document its reset time; UTC is the conservative
//! reading for a day that might reset at local midnight anywhere).

use chrono::{DateTime, Duration, Timelike, Utc};
use village_platform::cache::{Cache, CacheError, CacheValue};

/// The quota, from `alpha_vantage_calls_per_minute` and `_per_day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_minute: u32,
    pub per_day: u32,
}

impl Quota {
    /// Alpha Vantage's free tier as documented today: 25 calls a day, and
    /// the historical 5 a minute.
    pub const FREE_TIER: Quota = Quota {
        per_minute: 5,
        per_day: 25,
    };
}

/// Which window is spent, and when it has room again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    pub window: Window,
    pub resume_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Minute,
    Day,
}

impl Window {
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Day => "day",
        }
    }
}

const TAKE: &str = "local m = tonumber(redis.call('GET', KEYS[1]) or '0') \
local d = tonumber(redis.call('GET', KEYS[2]) or '0') \
if d >= tonumber(ARGV[2]) then return 2 end \
if m >= tonumber(ARGV[1]) then return 1 end \
redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 120) \
redis.call('INCR', KEYS[2]) redis.call('EXPIRE', KEYS[2], 172800) \
return 0";

fn next_minute(now: DateTime<Utc>) -> DateTime<Utc> {
    now.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now)
        + Duration::minutes(1)
}

fn next_day(now: DateTime<Utc>) -> DateTime<Utc> {
    (now.date_naive() + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .map_or(now + Duration::days(1), |t| t.and_utc())
}

/// Takes one call from the quota at `now`, or says which window is spent.
pub async fn take(
    cache: &impl Cache,
    quota: Quota,
    now: DateTime<Utc>,
) -> Result<Result<(), Spent>, CacheError> {
    let minute_key = cache.key(&format!("alpha-vantage:calls:{}", now.format("%Y%m%d%H%M")));
    let day_key = cache.key(&format!("alpha-vantage:calls:{}", now.format("%Y%m%d")));
    let reply = cache
        .execute(
            "EVAL",
            &[
                TAKE.into(),
                2i64.into(),
                minute_key.into(),
                day_key.into(),
                i64::from(quota.per_minute).into(),
                i64::from(quota.per_day).into(),
            ],
        )
        .await?;
    Ok(match reply.first() {
        Some(CacheValue::Int(0)) => Ok(()),
        Some(CacheValue::Int(1)) => Err(Spent {
            window: Window::Minute,
            resume_at: next_minute(now),
        }),
        Some(CacheValue::Int(2)) => Err(Spent {
            window: Window::Day,
            resume_at: next_day(now),
        }),
        other => {
            return Err(CacheError::Command(format!(
                "unexpected quota reply {other:?}"
            )));
        }
    })
}

/// Calls taken so far in `now`'s minute and day (for the ops view).
pub async fn used(cache: &impl Cache, now: DateTime<Utc>) -> Result<(i64, i64), CacheError> {
    let get = async |k: String| -> Result<i64, CacheError> {
        Ok(cache
            .execute("GET", &[cache.key(&k).into()])
            .await?
            .first()
            .and_then(CacheValue::as_text)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    };
    Ok((
        get(format!("alpha-vantage:calls:{}", now.format("%Y%m%d%H%M"))).await?,
        get(format!("alpha-vantage:calls:{}", now.format("%Y%m%d"))).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn windows_reopen_at_the_next_minute_and_the_next_utc_midnight() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 30, 23, 59, 42)
            .single()
            .expect("valid");
        assert_eq!(next_minute(now).to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(next_day(now).to_rfc3339(), "2026-12-01T00:00:00+00:00");
    }
}
