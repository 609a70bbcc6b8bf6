//! Popularity from clicks: what "top" ranks by, in the directory and the
//! news. `clicks.maintain` keeps `link_popularity` — visitors per link over
//! the last [`WINDOW_DAYS`] complete days (a visitor's clicks on a link
//! from one place the same day count once) — and ranking queries join it, one index
//! lookup per item.

/// The window popularity counts visitors over.
pub const WINDOW_DAYS: i64 = 30;
