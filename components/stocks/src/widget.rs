//! What the stocks widget shows: the visitor's watchlist with the cached
//! quotes (never a provider call), the market's state, and why quotes are
//! late when the quota holds them back.

use chrono::{DateTime, Utc};
use village_platform::sql::{Sql, SqlError, SqlValue};
use village_preferences::Owner;

use crate::market::{self, Status};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StocksView {
    pub items: Vec<QuoteView>,
    /// "Market open · closes 4:00 PM ET".
    pub market: String,
    /// Why quotes may be late (the quota is spent until ...).
    pub notice: Option<String>,
    /// Set when the watchlist could not be read (the page still renders).
    pub unavailable: bool,
    /// Whether another symbol fits.
    pub can_add: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuoteView {
    pub symbol: String,
    pub name: String,
    /// `None` until the first quote arrives.
    pub price: Option<String>,
    pub change: Option<String>,
    /// `up`, `down` or `flat`.
    pub direction: &'static str,
    /// "Close, Fri 27 Nov", "4:05 PM ET" today, or "Mon 30 Nov 4:05 PM ET".
    pub as_of: Option<String>,
    /// Alpha Vantage has no quote for it (a fund, a foreign listing).
    pub no_quote: bool,
}

/// The market's state in words.
pub fn market_line(status: &Status) -> String {
    match status {
        Status::Open { closes_at } => {
            format!(
                "Market open · closes {}",
                market::eastern(*closes_at, false)
            )
        }
        Status::Closed { opens_at, .. } => {
            format!("Market closed · opens {}", market::eastern(*opens_at, true))
        }
    }
}

/// A watchlist's symbols with their quotes (a macro, so statements stay
/// literals).
macro_rules! watchlist_quotes {
    () => {
        "SELECT w.symbol, s.name, round(q.price, 2)::text AS price, \
                round(q.change, 2)::text AS change, round(q.change_percent, 2)::text AS pct, \
                q.is_close, to_char(q.trading_day, 'Dy DD Mon') AS day, q.fetched_at, \
                s.no_quote_since IS NOT NULL AS no_quote \
         FROM stock_watchlists w JOIN stock_symbols s ON s.symbol = w.symbol \
         LEFT JOIN stock_quotes q ON q.symbol = w.symbol"
    };
}

/// The widget's view for `owner` at `now`.
pub async fn view(
    sql: &impl Sql,
    owner: Owner,
    now: DateTime<Utc>,
) -> Result<StocksView, SqlError> {
    // The anonymous visitor's row is looked up in the same statement.
    let who = match owner {
        Owner::User(id) => id,
        Owner::Anonymous(anon) => anon.as_uuid(),
    };
    let statement = match owner {
        Owner::User(_) => concat!(
            watchlist_quotes!(),
            " WHERE w.user_id = $1 ORDER BY w.position, w.added_at"
        ),
        Owner::Anonymous(_) => concat!(
            watchlist_quotes!(),
            " WHERE w.user_id = (SELECT id FROM users WHERE anon_id = $1) ORDER BY w.position, w.added_at"
        ),
    };
    let rows = sql.query(statement, &[SqlValue::Uuid(who)]).await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let price: Option<String> = r.get("price")?;
        let change: Option<String> = r.get("change")?;
        let pct: Option<String> = r.get("pct")?;
        let is_close: Option<bool> = r.get("is_close")?;
        let day: Option<String> = r.get("day")?;
        let fetched: Option<DateTime<Utc>> = r.get("fetched_at")?;
        let direction = match change.as_deref() {
            Some(c) if c.starts_with('-') => "down",
            Some(c) if c.trim_start_matches(['0', '.']).is_empty() => "flat",
            Some(_) => "up",
            None => "flat",
        };
        items.push(QuoteView {
            symbol: r.get("symbol")?,
            name: r.get("name")?,
            price,
            change: match (change, pct) {
                (Some(c), Some(p)) => {
                    let sign = if c.starts_with('-') { "" } else { "+" };
                    Some(format!("{sign}{c} ({sign}{p}%)"))
                }
                _ => None,
            },
            direction,
            as_of: match (is_close, day, fetched) {
                (Some(true), Some(day), _) => Some(format!("Close, {day}")),
                (_, _, Some(at)) => Some(market::eastern_since(at, now)),
                _ => None,
            },
            no_quote: r.get("no_quote")?,
        });
    }
    let paused = sql
        .query_opt(
            "SELECT window_kind, resume_at FROM stock_throttle_events \
             WHERE resume_at > $1 ORDER BY resume_at DESC LIMIT 1",
            &[SqlValue::Timestamp(now)],
        )
        .await?;
    let notice = match paused {
        Some(r) => {
            let window: String = r.get("window_kind")?;
            let resume: DateTime<Utc> = r.get("resume_at")?;
            Some(format!(
                "Quotes may be late: the quote provider's {} limit is reached; refreshes resume at {}.",
                if window == "day" {
                    "daily"
                } else {
                    "per-minute"
                },
                market::eastern(resume, window == "day")
            ))
        }
        None => None,
    };
    Ok(StocksView {
        can_add: (items.len() as i64) < crate::watchlist::MAX_SYMBOLS,
        items,
        market: market_line(&market::status(now)),
        notice,
        unavailable: false,
    })
}
