//! `stocks-scheduler` (cron, every five minutes): queues a `stocks.quote`
//! for each watched symbol that is due — every
//! [`Config::open_every_minutes`] while NYSE is open, hourly otherwise,
//! and at once after the bell when the symbol has no closing price for
//! the session that just ended. A symbol whose refresh is still queued
//! (deferred by the quota, say) gets no second job: work waits, it does
//! not pile up. Also prunes old throttle events.
//!
//! [`Config::open_every_minutes`]: crate::Config

use chrono::{DateTime, Duration, Utc};
use village_jobs::{NewJob, Queue};
use village_platform::cache::Cache;
use village_platform::sql::{Sql, SqlValue};

use crate::market::{self, Status};

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub watched: usize,
    pub queued: usize,
    pub market_open: bool,
}

/// Whether a symbol last fetched at `fetched` (closing price or not, for
/// `day`) is due at `now`.
pub fn due(
    last: Option<(DateTime<Utc>, chrono::NaiveDate, bool)>,
    status: &Status,
    open_every: Duration,
    now: DateTime<Utc>,
) -> bool {
    let Some((fetched, day, is_close)) = last else {
        return true;
    };
    match status {
        Status::Open { .. } => now - fetched >= open_every,
        Status::Closed { last_close, .. } => {
            let missing_close = last_close.is_some_and(|(close_day, closed_at)| {
                fetched < closed_at || (day == close_day && !is_close)
            });
            missing_close || now - fetched >= Duration::hours(1)
        }
    }
}

/// One run at `now`.
pub async fn run(
    sql: &impl Sql,
    cache: &impl Cache,
    open_every_minutes: i64,
    now: DateTime<Utc>,
) -> Result<Scheduled, village_jobs::JobsError> {
    let status = market::status(now);
    let today = now.date_naive();
    if !market::calendar_covers(today) {
        village_platform::log::event(
            "WARNING",
            "the NYSE calendar does not cover this year: holidays are not known",
            serde_json::json!({ "year": today.format("%Y").to_string() }),
        );
    }
    let rows = sql
        .query(
            "SELECT s.symbol, q.fetched_at, q.trading_day::text AS trading_day, q.is_close \
             FROM (SELECT DISTINCT symbol FROM stock_watchlists) s \
             LEFT JOIN stock_quotes q ON q.symbol = s.symbol \
             WHERE NOT EXISTS (SELECT 1 FROM delayed_jobs j \
                 WHERE j.handler = $1 AND j.status IN ('pending', 'running') \
                   AND j.payload->>'symbol' = s.symbol) \
             ORDER BY s.symbol",
            &[SqlValue::Text(crate::jobs::QUOTE.into())],
        )
        .await?;
    let watched = rows.len();
    let open_every = Duration::minutes(open_every_minutes.max(1));
    let slot = now.format("%Y-%m-%dT%H:%M").to_string();
    let mut jobs = Vec::new();
    for r in &rows {
        let symbol: String = r.get("symbol")?;
        let fetched: Option<DateTime<Utc>> = r.get("fetched_at")?;
        let day: Option<String> = r.get("trading_day")?;
        let is_close: Option<bool> = r.get("is_close")?;
        let last = match (fetched, day.and_then(|d| d.parse().ok())) {
            (Some(f), Some(d)) => Some((f, d, is_close.unwrap_or(false))),
            _ => None,
        };
        if due(last, &status, open_every, now) {
            jobs.push(
                NewJob::new(
                    Queue::Low,
                    crate::jobs::QUOTE,
                    serde_json::json!({ "symbol": symbol }),
                )
                .idempotency_key(format!("{}:{symbol}:{slot}", crate::jobs::QUOTE)),
            );
        }
    }
    village_jobs::enqueue_many(sql, cache, now, &jobs).await?;
    crate::throttle::prune(sql, now).await?;
    Ok(Scheduled {
        watched,
        queued: jobs.len(),
        market_open: status.is_open(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn open_markets_refresh_every_interval_closed_ones_hourly() {
        let every = Duration::minutes(15);
        let open_at = utc(2026, 12, 1, 16, 0);
        let open = market::status(open_at);
        let day = open_at.date_naive();
        assert!(due(None, &open, every, open_at), "never fetched");
        assert!(!due(
            Some((open_at - Duration::minutes(10), day, false)),
            &open,
            every,
            open_at
        ));
        assert!(due(
            Some((open_at - Duration::minutes(15), day, false)),
            &open,
            every,
            open_at
        ));
        // Saturday: the Friday close is in; hourly.
        let sat = utc(2026, 12, 5, 15, 0);
        let closed = market::status(sat);
        let friday = chrono::NaiveDate::from_ymd_opt(2026, 12, 4).expect("valid");
        assert!(!due(
            Some((sat - Duration::minutes(30), friday, true)),
            &closed,
            every,
            sat
        ));
        assert!(due(
            Some((sat - Duration::minutes(60), friday, true)),
            &closed,
            every,
            sat
        ));
    }

    #[test]
    fn the_bell_makes_the_closing_price_due_at_once() {
        let every = Duration::minutes(15);
        let bell = utc(2026, 12, 1, 21, 0);
        let after = bell + Duration::minutes(5);
        let status = market::status(after);
        let day = bell.date_naive();
        // Fetched at 15:55 ET, five minutes before the bell: due now.
        assert!(due(
            Some((bell - Duration::minutes(5), day, false)),
            &status,
            every,
            after
        ));
        // The close is in: not due again until an hour has passed.
        assert!(!due(
            Some((bell + Duration::minutes(1), day, true)),
            &status,
            every,
            after
        ));
    }
}
