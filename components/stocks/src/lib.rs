//! The stocks widget (behind the `stocks_widget` flag).
//!
//! - [`watchlist`]: each visitor's symbols, every one confirmed against
//!   Alpha Vantage's `SYMBOL_SEARCH` once (then known in `stock_symbols`).
//! - [`quotes`]: `stocks.quote`, one symbol's `GLOBAL_QUOTE` into
//!   `stock_quotes` — for all its watchers at once.
//! - [`quota`]: the provider's calls per minute and per day, counted in
//!   Redis; a spent quota defers the refresh (never drops it), records a
//!   throttle event and tells ops ([`throttle`]).
//! - [`market`]: NYSE hours, holidays and early closes.
//! - [`schedule`]: `stocks-scheduler` (every five minutes) queues refreshes
//!   every 15 minutes while the market is open, hourly otherwise, and the
//!   closing price right after the bell.
//! - [`widget`], [`api`]: what the homepage shows and the routes.

pub mod alpha;
pub mod api;
pub mod market;
pub mod quota;
pub mod quotes;
pub mod schedule;
#[cfg(feature = "spin")]
pub mod spin_components;
pub mod throttle;
pub mod watchlist;
pub mod widget;

/// The feature flag everything here sits behind.
pub const FLAG: &str = "stocks_widget";

/// Job handler names.
pub mod jobs {
    /// Refreshes one symbol's quote.
    pub const QUOTE: &str = "stocks.quote";
}

/// A ticker symbol as Alpha Vantage writes them: "AAPL", "BRK.B",
/// "TSCO.LON" (upper-cased, 1 to 15 letters, digits, dots and dashes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(String);

impl Symbol {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Symbol {
    type Error = &'static str;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        let s = s.trim().to_ascii_uppercase();
        let ok = (1..=15).contains(&s.len())
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if ok {
            Ok(Symbol(s))
        } else {
            Err("a ticker symbol: letters, digits, dots and dashes, like AAPL or BRK.B")
        }
    }
}

impl std::fmt::Display for Symbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the stocks components are configured with.
#[derive(Debug, Clone)]
pub struct Config {
    pub alpha: alpha::AlphaVantage,
    pub quota: quota::Quota,
    /// Minutes between refreshes of a symbol while the market is open
    /// (`stocks_open_refresh_minutes`, 15).
    pub open_every_minutes: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_upper_cased_and_bounded() {
        assert_eq!(
            Symbol::try_from(" brk.b ").expect("valid").as_str(),
            "BRK.B"
        );
        assert_eq!(
            Symbol::try_from("TSCO.LON").expect("valid").as_str(),
            "TSCO.LON"
        );
        for bad in ["", ".A", "A B", "AAPL;DROP", "ABCDEFGHIJKLMNOP", "€UR"] {
            assert!(Symbol::try_from(bad).is_err(), "{bad}");
        }
    }
}
