//! `stocks-scheduler` (cron, every five minutes): queues a `stocks.quote`
//! for each watched symbol that is due:
//!
//! - while NYSE is open, every [`Config::open_every_minutes`] — or less
//!   often when the day's quota cannot cover that for every watched
//!   symbol through the session (one call per symbol is kept back for the
//!   close; see [`open_interval`]);
//! - after the bell, once, for the closing price ([`CLOSE_SETTLES`] after
//!   it, when the closing auction has printed);
//! - while closed with the close in hand, not at all: the price cannot
//!   change until the next open.
//!
//! A symbol whose refresh still waits (deferred by the quota, say) gets no
//! second job, and one Alpha Vantage cannot quote is asked again only a
//! day later: work waits, it never piles up. Also prunes old throttle
//! events.
//!
//! [`Config::open_every_minutes`]: crate::Config
//! [`CLOSE_SETTLES`]: crate::quotes::CLOSE_SETTLES

use chrono::{DateTime, Duration, Utc};
use village_jobs::{NewJob, Queue};
use village_platform::cache::Cache;
use village_platform::sql::{Sql, SqlValue};

use crate::Config;
use crate::market::{self, Status};
use crate::quotes::CLOSE_SETTLES;

/// A regular session's length.
const SESSION_MINUTES: i64 = 390;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// Watched symbols without a refresh already waiting.
    pub considered: usize,
    pub queued: usize,
    pub market_open: bool,
    /// The interval used while open (minutes).
    pub open_every_minutes: i64,
}

/// Minutes between refreshes of each of `symbols` while open: the
/// configured interval, or longer when a day of `per_day` calls — less the
/// searches' share and one call per symbol kept for the close — cannot
/// cover a session at that rate.
pub fn open_interval(configured: i64, symbols: usize, per_day: u32) -> i64 {
    let n = symbols.max(1) as i64;
    let budget = (i64::from(per_day) - crate::watchlist::search_share(per_day) - n).max(1);
    // Ceiling division (signed `div_ceil` is not stable).
    configured
        .max(1)
        .max((SESSION_MINUTES * n + budget - 1) / budget)
}

/// Whether a symbol last fetched at `fetched` (for trading `day`, the
/// close or not) is due at `now`.
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
        Status::Closed {
            last_close: Some((close_day, closed_at)),
            ..
        } => {
            let have_close = is_close && day == *close_day;
            let settled = *closed_at + CLOSE_SETTLES;
            // Asked after the auction but not given the close (the feed
            // lags): ask again hourly, not every run.
            let tried = fetched >= settled && now - fetched < Duration::hours(1);
            !have_close && now >= settled && !tried
        }
        // No session in the last two weeks (the calendar says so): hourly.
        Status::Closed {
            last_close: None, ..
        } => now - fetched >= Duration::hours(1),
    }
}

/// One run at `now`.
pub async fn run(
    sql: &impl Sql,
    cache: &impl Cache,
    config: &Config,
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
    let watched: i64 = sql
        .query_opt(
            "SELECT count(DISTINCT symbol) AS n FROM stock_watchlists",
            &[],
        )
        .await?
        .map(|r| r.get("n"))
        .transpose()?
        .unwrap_or(0);
    let rows = sql
        .query(
            "SELECT s.symbol, q.fetched_at, q.trading_day::text AS trading_day, q.is_close \
             FROM (SELECT DISTINCT symbol FROM stock_watchlists) s \
             JOIN stock_symbols y ON y.symbol = s.symbol \
             LEFT JOIN stock_quotes q ON q.symbol = s.symbol \
             WHERE (y.no_quote_since IS NULL OR y.no_quote_since < $2) \
               AND NOT EXISTS (SELECT 1 FROM delayed_jobs j \
                 WHERE j.handler = $1 AND j.status IN ('pending', 'running') \
                   AND j.payload->>'symbol' = s.symbol) \
             ORDER BY s.symbol",
            &[
                SqlValue::Text(crate::jobs::QUOTE.into()),
                SqlValue::Timestamp(now - Duration::days(1)),
            ],
        )
        .await?;
    let every = open_interval(
        config.open_every_minutes,
        usize::try_from(watched).unwrap_or(0),
        config.quota.per_day,
    );
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
        if due(last, &status, Duration::minutes(every), now) {
            jobs.push(
                NewJob::new(
                    Queue::Low,
                    crate::jobs::QUOTE,
                    serde_json::json!({ "symbol": symbol }),
                )
                .idempotency_key(format!("{}:{symbol}:{slot}", crate::jobs::QUOTE))
                .max_attempts(3),
            );
        }
    }
    village_jobs::enqueue_many(sql, cache, now, &jobs).await?;
    crate::throttle::prune(sql, now).await?;
    Ok(Scheduled {
        considered: rows.len(),
        queued: jobs.len(),
        market_open: status.is_open(),
        open_every_minutes: every,
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
    fn open_markets_refresh_every_interval_closed_ones_not_at_all_once_closed() {
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
        // Saturday with Friday's close in hand: nothing to refresh.
        let sat = utc(2026, 12, 5, 15, 0);
        let closed = market::status(sat);
        let friday = chrono::NaiveDate::from_ymd_opt(2026, 12, 4).expect("valid");
        assert!(!due(
            Some((sat - Duration::hours(20), friday, true)),
            &closed,
            every,
            sat
        ));
    }

    #[test]
    fn the_close_is_fetched_once_the_auction_has_printed() {
        let every = Duration::minutes(15);
        let bell = utc(2026, 12, 1, 21, 0);
        let day = bell.date_naive();
        let before_bell = Some((bell - Duration::minutes(5), day, false));
        let soon = bell + Duration::minutes(5);
        assert!(
            !due(before_bell, &market::status(soon), every, soon),
            "not yet"
        );
        let settled = bell + Duration::minutes(15);
        assert!(due(before_bell, &market::status(settled), every, settled));
        // The close is in: nothing more until the next open.
        let later = bell + Duration::hours(5);
        assert!(!due(
            Some((settled, day, true)),
            &market::status(later),
            every,
            later
        ));
    }

    #[test]
    fn the_open_interval_stretches_to_fit_the_days_quota() {
        assert_eq!(open_interval(15, 1, 500), 15, "a roomy plan keeps 15");
        // The free tier's 25 calls, 5 kept for searches: one symbol every
        // 21 minutes (19 calls over 390 minutes, one for the close), three
        // every 69.
        assert_eq!(open_interval(15, 1, 25), 21);
        assert_eq!(open_interval(15, 3, 25), 69);
        assert_eq!(open_interval(15, 40, 25), 15_600, "more symbols than calls");
    }
}
