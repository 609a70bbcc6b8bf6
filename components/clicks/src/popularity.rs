//! Popularity from clicks: what "top" ranks by, in the directory and the
//! news. Ranking queries sum `link_click_rollups` for their kind of link
//! from [`since`] on (complete days only, so "top" moves once a day and
//! costs one index range, `link_click_rollups_link`, per item).

use chrono::{DateTime, Duration, Utc};
use village_platform::sql::SqlValue;

/// The window popularity counts clicks over.
pub const WINDOW_DAYS: i64 = 30;

/// The first day of the window ending `now`, as a statement parameter
/// (`$n::text::date`).
pub fn since(now: DateTime<Utc>) -> SqlValue {
    SqlValue::Text(
        (now.date_naive() - Duration::days(WINDOW_DAYS))
            .format("%Y-%m-%d")
            .to_string(),
    )
}
