//! NYSE trading hours: 9:30 to 16:00 New York time (America/New_York, so
//! daylight saving changes follow the tz database), weekdays, except the
//! exchange's holidays; some days close early at 13:00.
//!
//! The calendar is NYSE's published "Holidays and Trading Hours"
//! (<https://www.nyse.com/markets/hours-calendars>), 2025 to 2027,
//! including the 9 January 2025 closing for the National Day of Mourning.
//! A year the table does not cover is treated as weekdays-only and says
//! so ([`calendar_covers`]): add NYSE's next year before it starts.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;

/// Full-day closings: (date, holiday).
const HOLIDAYS: &[(i32, u32, u32, &str)] = &[
    (2025, 1, 1, "New Year's Day"),
    (2025, 1, 9, "National Day of Mourning"),
    (2025, 1, 20, "Martin Luther King, Jr. Day"),
    (2025, 2, 17, "Washington's Birthday"),
    (2025, 4, 18, "Good Friday"),
    (2025, 5, 26, "Memorial Day"),
    (2025, 6, 19, "Juneteenth"),
    (2025, 7, 4, "Independence Day"),
    (2025, 9, 1, "Labor Day"),
    (2025, 11, 27, "Thanksgiving Day"),
    (2025, 12, 25, "Christmas Day"),
    (2026, 1, 1, "New Year's Day"),
    (2026, 1, 19, "Martin Luther King, Jr. Day"),
    (2026, 2, 16, "Washington's Birthday"),
    (2026, 4, 3, "Good Friday"),
    (2026, 5, 25, "Memorial Day"),
    (2026, 6, 19, "Juneteenth"),
    (2026, 7, 3, "Independence Day (observed)"),
    (2026, 9, 7, "Labor Day"),
    (2026, 11, 26, "Thanksgiving Day"),
    (2026, 12, 25, "Christmas Day"),
    (2027, 1, 1, "New Year's Day"),
    (2027, 1, 18, "Martin Luther King, Jr. Day"),
    (2027, 2, 15, "Washington's Birthday"),
    (2027, 3, 26, "Good Friday"),
    (2027, 5, 31, "Memorial Day"),
    (2027, 6, 18, "Juneteenth (observed)"),
    (2027, 7, 5, "Independence Day (observed)"),
    (2027, 9, 6, "Labor Day"),
    (2027, 11, 25, "Thanksgiving Day"),
    (2027, 12, 24, "Christmas Day (observed)"),
];

/// Days the exchange closes at 13:00.
const EARLY_CLOSES: &[(i32, u32, u32)] = &[
    (2025, 7, 3),
    (2025, 11, 28),
    (2025, 12, 24),
    (2026, 11, 27),
    (2026, 12, 24),
    (2027, 11, 26),
];

/// Years [`HOLIDAYS`] and [`EARLY_CLOSES`] cover.
pub const COVERED_YEARS: std::ops::RangeInclusive<i32> = 2025..=2027;

pub fn calendar_covers(day: NaiveDate) -> bool {
    COVERED_YEARS.contains(&day.year())
}

/// A day's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    Closed(&'static str),
    /// Open from 9:30 to `close` (16:00, or 13:00 on an early close).
    Open {
        close: NaiveTime,
    },
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
}

pub fn opening() -> NaiveTime {
    hm(9, 30)
}

/// The session on a New York calendar day.
pub fn session(day: NaiveDate) -> Session {
    if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
        return Session::Closed("weekend");
    }
    let ymd = (day.year(), day.month(), day.day());
    if let Some((.., name)) = HOLIDAYS.iter().find(|(y, m, d, _)| (*y, *m, *d) == ymd) {
        return Session::Closed(name);
    }
    let close = if EARLY_CLOSES.contains(&ymd) {
        hm(13, 0)
    } else {
        hm(16, 0)
    };
    Session::Open { close }
}

/// New York wall-clock time on `day` as an instant. Trading times never
/// fall in a DST gap or overlap (those are at 2:00), so this is exact.
fn at(day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    New_York
        .from_local_datetime(&day.and_time(time))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| day.and_time(time).and_utc())
}

/// Whether the market is open at an instant, and the edges around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open {
        closes_at: DateTime<Utc>,
    },
    Closed {
        opens_at: DateTime<Utc>,
        /// The most recent session's day and closing instant.
        last_close: Option<(NaiveDate, DateTime<Utc>)>,
    },
}

impl Status {
    pub fn is_open(&self) -> bool {
        matches!(self, Status::Open { .. })
    }
}

/// The market at `now`.
pub fn status(now: DateTime<Utc>) -> Status {
    let today = now.with_timezone(&New_York).date_naive();
    if let Session::Open { close } = session(today) {
        let (opens, closes) = (at(today, opening()), at(today, close));
        if now >= opens && now < closes {
            return Status::Open { closes_at: closes };
        }
    }
    // The next opening: today's (before 9:30) or a later day's.
    let opens_at = (0..15)
        .filter_map(|n| {
            let day = today + Duration::days(n);
            match session(day) {
                Session::Open { .. } if at(day, opening()) > now => Some(at(day, opening())),
                _ => None,
            }
        })
        .next()
        .unwrap_or(now + Duration::days(1));
    let last_close = (0..15)
        .filter_map(|n| {
            let day = today - Duration::days(n);
            match session(day) {
                Session::Open { close } if at(day, close) <= now => Some((day, at(day, close))),
                _ => None,
            }
        })
        .next();
    Status::Closed {
        opens_at,
        last_close,
    }
}

/// "4:00 PM ET" / "Mon 9:30 AM ET": an instant as New York time.
pub fn eastern(t: DateTime<Utc>, with_day: bool) -> String {
    let ny = t.with_timezone(&New_York);
    if with_day {
        ny.format("%a %-I:%M %p ET").to_string()
    } else {
        ny.format("%-I:%M %p ET").to_string()
    }
}

/// When a quote was taken, in New York time: the time alone on the same
/// New York day as `now`, with the date before it otherwise (a quote held
/// back by the quota must not read as today's).
pub fn eastern_since(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let (at, today) = (t.with_timezone(&New_York), now.with_timezone(&New_York));
    if at.date_naive() == today.date_naive() {
        at.format("%-I:%M %p ET").to_string()
    } else {
        at.format("%a %-d %b %-I:%M %p ET").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("valid")
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid")
    }

    #[test]
    fn a_winter_weekday_is_open_from_1430_to_2100_utc() {
        // 2026-12-01 is a Tuesday, EST (UTC-5).
        assert!(!status(utc(2026, 12, 1, 14, 29)).is_open());
        assert_eq!(
            status(utc(2026, 12, 1, 14, 30)),
            Status::Open {
                closes_at: utc(2026, 12, 1, 21, 0)
            }
        );
        assert!(
            !status(utc(2026, 12, 1, 21, 0)).is_open(),
            "closed at the bell"
        );
    }

    #[test]
    fn summer_time_moves_the_session_an_hour_earlier_in_utc() {
        // 2026-07-01 (Wednesday), EDT (UTC-4): 13:30 to 20:00 UTC.
        assert!(status(utc(2026, 7, 1, 13, 30)).is_open());
        assert!(!status(utc(2026, 7, 1, 20, 0)).is_open());
        // DST began Sunday 2026-03-08: Friday is EST, Monday EDT.
        assert!(!status(utc(2026, 3, 6, 14, 0)).is_open(), "09:00 EST");
        assert!(status(utc(2026, 3, 9, 13, 45)).is_open(), "09:45 EDT");
        // DST ended Sunday 2026-11-01.
        assert!(!status(utc(2026, 11, 2, 13, 45)).is_open(), "08:45 EST");
    }

    #[test]
    fn holidays_and_weekends_are_closed_and_say_why() {
        assert_eq!(
            session(day(2026, 11, 26)),
            Session::Closed("Thanksgiving Day")
        );
        assert_eq!(
            session(day(2026, 7, 3)),
            Session::Closed("Independence Day (observed)")
        );
        assert_eq!(session(day(2026, 4, 3)), Session::Closed("Good Friday"));
        assert_eq!(session(day(2026, 11, 28)), Session::Closed("weekend"));
        assert!(!status(utc(2026, 11, 26, 16, 0)).is_open());
        assert_eq!(
            session(day(2025, 1, 9)),
            Session::Closed("National Day of Mourning")
        );
    }

    #[test]
    fn half_days_close_at_one() {
        assert_eq!(
            session(day(2026, 11, 27)),
            Session::Open { close: hm(13, 0) }
        );
        assert!(status(utc(2026, 11, 27, 17, 59)).is_open());
        let after = status(utc(2026, 11, 27, 18, 0));
        assert!(!after.is_open());
        let Status::Closed {
            last_close,
            opens_at,
        } = after
        else {
            panic!("closed");
        };
        assert_eq!(
            last_close,
            Some((day(2026, 11, 27), utc(2026, 11, 27, 18, 0)))
        );
        assert_eq!(opens_at, utc(2026, 11, 30, 14, 30), "Monday morning");
    }

    #[test]
    fn after_a_long_weekend_the_next_open_skips_the_holiday() {
        // Friday 2026-07-03 is the observed holiday: Thursday's close,
        // Monday's open.
        let Status::Closed {
            opens_at,
            last_close,
        } = status(utc(2026, 7, 3, 15, 0))
        else {
            panic!("closed");
        };
        assert_eq!(opens_at, utc(2026, 7, 6, 13, 30));
        assert_eq!(last_close.map(|(d, _)| d), Some(day(2026, 7, 2)));
    }

    #[test]
    fn the_table_knows_which_years_it_covers() {
        assert!(calendar_covers(day(2027, 12, 31)));
        assert!(!calendar_covers(day(2028, 1, 3)));
        assert_eq!(eastern(utc(2026, 12, 1, 21, 0), false), "4:00 PM ET");
        assert_eq!(eastern(utc(2026, 11, 30, 14, 30), true), "Mon 9:30 AM ET");
        let now = utc(2026, 12, 1, 20, 0);
        assert_eq!(eastern_since(utc(2026, 12, 1, 15, 0), now), "10:00 AM ET");
        assert_eq!(
            eastern_since(utc(2026, 11, 30, 15, 0), now),
            "Mon 30 Nov 10:00 AM ET"
        );
    }
}
