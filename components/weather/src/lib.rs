//! The weather widget. Two providers, kept apart so that one failing never
//! touches the other or the page:
//!
//! - [`open_meteo`]: current conditions and a five-day forecast, anywhere;
//! - [`nws`]: the National Weather Service's active alerts, for US places.
//!
//! Neither is ever called while a page renders. Visitors choose a place in
//! the widget (a `geo_cities` town or a latitude/longitude, [`widget`]);
//! the hourly `weather-scheduler` ([`schedule`]) refreshes every place
//! saved preferences name — each rounded location once, however many
//! visitors watch it — into `weather_cache`, which the homepage reads.

pub mod nws;
pub mod open_meteo;
pub mod outage;
pub mod schedule;
#[cfg(feature = "spin")]
pub mod spin_components;
pub mod widget;

use serde::{Deserialize, Serialize};
use village_jobs::{Job, JobError, RetryPolicy};
use village_platform::sql::{Sql, SqlError, SqlValue};

/// Job handler names.
pub mod jobs {
    /// Refreshes one location's Open-Meteo forecast.
    pub const FORECAST: &str = "weather.forecast";
    /// Refreshes one US location's NWS alerts.
    pub const ALERTS: &str = "weather.alerts";
}

/// Both weather jobs' retries: the next hourly run refreshes again anyway,
/// so two quick ones.
pub(crate) fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: std::time::Duration::from_secs(60),
        max_delay: std::time::Duration::from_secs(600),
        jitter: 0.2,
    }
}

/// The job payload both weather jobs take.
#[derive(Debug, serde::Deserialize)]
struct Target {
    pub key: String,
}

/// The cached location a weather job names, and whether the NWS covers
/// it; `None` when nobody wants it any more.
pub(crate) async fn cached_location(
    sql: &impl Sql,
    job: &Job,
) -> Result<Option<(Location, bool)>, JobError> {
    let target: Target =
        serde_json::from_value(job.payload.clone()).map_err(JobError::malformed)?;
    let row = sql
        .query_opt(
            "SELECT latitude, longitude, in_us FROM weather_cache WHERE location_key = $1",
            &[SqlValue::Text(target.key)],
        )
        .await
        .map_err(|e| JobError::Retry(e.to_string()))?;
    let Some(row) = row else { return Ok(None) };
    let read = |e: SqlError| JobError::Retry(e.to_string());
    let lat: f64 = row.get("latitude").map_err(read)?;
    let lon: f64 = row.get("longitude").map_err(read)?;
    let in_us: bool = row.get("in_us").map_err(read)?;
    Ok(Location::rounded(lat, lon).map(|l| (l, in_us)))
}

/// A cached location: a coordinate rounded to 0.1° (about 11 km), so
/// visitors in one town share one row and one provider call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

impl Location {
    /// Rounds a valid coordinate; `None` outside WGS 84's ranges.
    pub fn rounded(lat: f64, lon: f64) -> Option<Self> {
        let round = |v: f64| {
            let r = (v * 10.0).round() / 10.0;
            // No "-0.0" keys.
            if r == 0.0 { 0.0 } else { r }
        };
        let p = village_marketplace::places::Point::new(lat, lon).ok()?;
        Some(Location {
            lat: round(p.lat),
            lon: round(p.lon),
        })
    }

    /// The cache key, "45.5,-122.7".
    pub fn key(&self) -> String {
        format!("{:.1},{:.1}", self.lat, self.lon)
    }

    /// Whether the point lies where the NWS issues alerts but the
    /// gazetteer has no town to vouch for it: Puerto Rico and the US
    /// Virgin Islands, Guam and the Northern Marianas, American Samoa,
    /// and Alaska (west of 141°W, its panhandle, the far Aleutians). Rough
    /// boxes; an NWS answer that a point is outside its area settles it.
    pub fn in_remote_us(&self) -> bool {
        let within = |(s, n, w, e): (f64, f64, f64, f64)| {
            (s..=n).contains(&self.lat) && (w..=e).contains(&self.lon)
        };
        [
            (17.6, 18.6, -67.3, -64.5),
            (13.2, 20.6, 144.6, 146.1),
            (-14.6, -11.0, -171.1, -168.1),
            (51.2, 71.5, -180.0, -141.0),
            (54.5, 60.0, -141.0, -129.9),
            (51.0, 53.5, 172.0, 180.0),
        ]
        .into_iter()
        .any(within)
    }
}

/// A forecast as stored (Open-Meteo's answer, normalised; metric units).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// The place's IANA time zone, as Open-Meteo resolved it.
    pub timezone: String,
    pub current: Current,
    pub days: Vec<Day>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Current {
    /// Local time of the observation, "2026-11-30T14:00".
    pub time: String,
    pub temperature_c: f64,
    pub feels_like_c: Option<f64>,
    pub humidity_pct: Option<f64>,
    pub wind_kmh: Option<f64>,
    /// WMO weather interpretation code.
    pub code: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Day {
    /// "2026-11-30".
    pub date: String,
    pub code: Option<i32>,
    pub max_c: Option<f64>,
    pub min_c: Option<f64>,
    pub precipitation_pct: Option<f64>,
}

/// An active NWS alert, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub event: String,
    /// CAP severity: Extreme, Severe, Moderate, Minor, Unknown.
    pub severity: String,
    pub headline: String,
    pub instruction: Option<String>,
    /// When the alert ends (`ends`, else `expires`), RFC 3339.
    pub until: Option<String>,
}

/// What a WMO weather code means, in words.
/// (Open-Meteo's documented table, itself WMO 4677's subset.)
pub fn describe(code: i32) -> &'static str {
    match code {
        0 => "Clear sky",
        1 => "Mainly clear",
        2 => "Partly cloudy",
        3 => "Overcast",
        45 | 48 => "Fog",
        51 | 53 | 55 => "Drizzle",
        56 | 57 => "Freezing drizzle",
        61 => "Light rain",
        63 => "Rain",
        65 => "Heavy rain",
        66 | 67 => "Freezing rain",
        71 => "Light snow",
        73 => "Snow",
        75 => "Heavy snow",
        77 => "Snow grains",
        80..=82 => "Rain showers",
        85 | 86 => "Snow showers",
        95 => "Thunderstorm",
        96 | 99 => "Thunderstorm with hail",
        _ => "Unknown",
    }
}

/// A symbol for a WMO weather code (decorative: the words are the text).
pub fn symbol(code: i32) -> &'static str {
    match code {
        0 | 1 => "☀",
        2 => "⛅",
        3 | 45 | 48 => "☁",
        51..=67 | 80..=82 => "☂",
        71..=77 | 85 | 86 => "❄",
        95..=99 => "⚡",
        _ => "·",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_to_a_tenth_of_a_degree_and_share_a_key() {
        let a = Location::rounded(45.5231, -122.6765).expect("valid");
        let b = Location::rounded(45.4800, -122.7049).expect("valid");
        assert_eq!(a.key(), "45.5,-122.7");
        assert_eq!(a.key(), b.key(), "neighbours share a row");
        assert_eq!(
            Location::rounded(-0.04, 0.01).expect("valid").key(),
            "0.0,0.0"
        );
        assert!(Location::rounded(91.0, 0.0).is_none());
        assert!(Location::rounded(f64::NAN, 0.0).is_none());
    }

    #[test]
    fn remote_us_boxes_cover_the_territories_and_alaska_not_canada() {
        for (lat, lon) in [
            (18.4, -66.1),
            (13.5, 144.8),
            (-14.3, -170.7),
            (64.8, -147.7),
            (58.3, -134.4),
            (52.9, 173.2),
        ] {
            assert!(
                Location::rounded(lat, lon).expect("valid").in_remote_us(),
                "{lat},{lon}"
            );
        }
        for (lat, lon) in [(60.7, -135.1), (49.3, -123.1), (51.5, -0.1), (45.5, -122.7)] {
            assert!(
                !Location::rounded(lat, lon).expect("valid").in_remote_us(),
                "{lat},{lon}"
            );
        }
    }

    #[test]
    fn weather_codes_read_as_words() {
        assert_eq!(describe(0), "Clear sky");
        assert_eq!(describe(63), "Rain");
        assert_eq!(describe(1234), "Unknown");
        assert_eq!(symbol(73), "❄");
    }
}
