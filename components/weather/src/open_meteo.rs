//! Open-Meteo (<https://open-meteo.com/en/docs>): current conditions and a
//! five-day daily forecast for any coordinate, no key. `weather.forecast`
//! refreshes one cached location; a failure is recorded on the row (the
//! widget says its data is stale) and leaves the last good forecast and
//! the NWS columns alone.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use village_jobs::{Job, JobError, JobHandler, RetryPolicy};
use village_platform::boundary::stored;
use village_platform::cache::Cache;
use village_platform::clock::Clock;
use village_platform::http_client::{HttpClient, HttpError};
use village_platform::sql::{Sql, SqlValue};

use crate::{Current, Day, Forecast, Location};

/// How long a forecast is shown as current: the hourly refresh plus
/// room for one late or failed run.
pub const FRESH_FOR: Duration = Duration::minutes(90);
/// Forecast days asked for.
const DAYS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    #[error("Open-Meteo unreachable: {0}")]
    Http(#[from] HttpError),
    /// Open-Meteo's own error answer (`{"error": true, "reason": ...}`).
    #[error("Open-Meteo answered {status}: {reason}")]
    Refused { status: u16, reason: String },
    #[error("Open-Meteo's answer does not parse: {0}")]
    Malformed(String),
}

/// `GET {base}/v1/forecast` for `at`.
pub async fn fetch(
    http: &impl HttpClient,
    base: &str,
    at: Location,
) -> Result<Forecast, ForecastError> {
    let mut url = url::Url::parse(base)
        .and_then(|b| b.join("/v1/forecast"))
        .map_err(|e| ForecastError::Malformed(format!("base URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("latitude", &format!("{:.1}", at.lat))
        .append_pair("longitude", &format!("{:.1}", at.lon))
        .append_pair(
            "current",
            "temperature_2m,apparent_temperature,relative_humidity_2m,weather_code,wind_speed_10m",
        )
        .append_pair(
            "daily",
            "weather_code,temperature_2m_max,temperature_2m_min,precipitation_probability_max",
        )
        .append_pair("timezone", "auto")
        .append_pair("forecast_days", &DAYS.to_string());
    let request = http::Request::get(url.as_str())
        .header("accept", "application/json")
        .body(Vec::new())
        .map_err(|e| ForecastError::Malformed(e.to_string()))?;
    let response = http.send(request).await?;
    let status = response.status().as_u16();
    if status != 200 {
        #[derive(Deserialize)]
        struct Refusal {
            reason: String,
        }
        let reason = serde_json::from_slice::<Refusal>(response.body())
            .map(|r| r.reason)
            .unwrap_or_else(|_| "no reason given".into());
        return Err(ForecastError::Refused {
            status,
            reason: stored(&reason, 200),
        });
    }
    parse(response.body())
}

/// Open-Meteo's forecast answer, normalised.
pub fn parse(body: &[u8]) -> Result<Forecast, ForecastError> {
    #[derive(Deserialize)]
    struct Answer {
        timezone: String,
        current: CurrentAnswer,
        daily: DailyAnswer,
    }
    #[derive(Deserialize)]
    struct CurrentAnswer {
        time: String,
        temperature_2m: f64,
        apparent_temperature: Option<f64>,
        relative_humidity_2m: Option<f64>,
        weather_code: i32,
        wind_speed_10m: Option<f64>,
    }
    #[derive(Deserialize)]
    struct DailyAnswer {
        time: Vec<String>,
        weather_code: Vec<Option<i32>>,
        temperature_2m_max: Vec<Option<f64>>,
        temperature_2m_min: Vec<Option<f64>>,
        #[serde(default)]
        precipitation_probability_max: Vec<Option<f64>>,
    }
    let a: Answer =
        serde_json::from_slice(body).map_err(|e| ForecastError::Malformed(e.to_string()))?;
    let at = |v: &Vec<Option<f64>>, i: usize| v.get(i).copied().flatten();
    let days = a
        .daily
        .time
        .iter()
        .take(DAYS as usize)
        .enumerate()
        .map(|(i, date)| Day {
            date: stored(date, 10),
            code: a.daily.weather_code.get(i).copied().flatten(),
            max_c: at(&a.daily.temperature_2m_max, i),
            min_c: at(&a.daily.temperature_2m_min, i),
            precipitation_pct: at(&a.daily.precipitation_probability_max, i),
        })
        .collect();
    Ok(Forecast {
        timezone: stored(&a.timezone, 64),
        current: Current {
            time: stored(&a.current.time, 32),
            temperature_c: a.current.temperature_2m,
            feels_like_c: a.current.apparent_temperature,
            humidity_pct: a.current.relative_humidity_2m,
            wind_kmh: a.current.wind_speed_10m,
            code: a.current.weather_code,
        },
        days,
    })
}

/// `weather.forecast`: one location's forecast, from Open-Meteo.
pub struct RefreshForecast<'a, S, K, H, C> {
    pub sql: &'a S,
    pub cache: &'a K,
    pub http: &'a H,
    pub clock: &'a C,
    /// `open_meteo_base_url`.
    pub base_url: &'a str,
}

/// The provider's name in [`crate::outage`].
pub const PROVIDER: &str = "open-meteo";

impl<S: Sql, K: Cache, H: HttpClient, C: Clock> JobHandler for RefreshForecast<'_, S, K, H, C> {
    fn name(&self) -> &'static str {
        crate::jobs::FORECAST
    }

    fn policy(&self) -> RetryPolicy {
        crate::retry_policy()
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let Some((at, _)) = crate::cached_location(self.sql, job).await? else {
            return Ok(()); // nobody wants it any more
        };
        let now = self.clock.now();
        crate::outage::wait_out_pause(self.cache, PROVIDER, now).await?;
        match fetch(self.http, self.base_url, at).await {
            Ok(forecast) => store(self.sql, &at.key(), &forecast, now)
                .await
                .map_err(|e| JobError::Retry(e.to_string())),
            Err(e) => {
                crate::outage::mark_down(self.cache, PROVIDER).await;
                record_failure(self.sql, &at.key(), &e.to_string(), now)
                    .await
                    .map_err(|e| JobError::Retry(e.to_string()))?;
                // Counted as a failed run; its retry, inside the pause,
                // asks nothing (the hourly run tries the provider again).
                Err(JobError::Retry(e.to_string()))
            }
        }
    }
}

/// Stores a fresh forecast (and clears the last error).
pub async fn store(
    sql: &impl Sql,
    key: &str,
    forecast: &Forecast,
    now: DateTime<Utc>,
) -> Result<(), village_platform::sql::SqlError> {
    let doc = serde_json::to_value(forecast)
        .map_err(|e| village_platform::sql::SqlError::Decode(e.to_string()))?;
    sql.execute(
        "UPDATE weather_cache SET forecast = $2, forecast_fetched_at = $3, expires_at = $4, \
             forecast_error = NULL, forecast_failed_at = NULL \
         WHERE location_key = $1",
        &[
            SqlValue::Text(key.to_owned()),
            SqlValue::Json(doc),
            SqlValue::Timestamp(now),
            SqlValue::Timestamp(now + FRESH_FOR),
        ],
    )
    .await
    .map(drop)
}

async fn record_failure(
    sql: &impl Sql,
    key: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), village_platform::sql::SqlError> {
    sql.execute(
        "UPDATE weather_cache SET forecast_error = $2, forecast_failed_at = $3 WHERE location_key = $1",
        &[
            SqlValue::Text(key.to_owned()),
            SqlValue::Text(stored(error, 500)),
            SqlValue::Timestamp(now),
        ],
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_answer_with_gaps() {
        let body = br#"{"latitude":45.5,"longitude":-122.7,"timezone":"America/Los_Angeles",
            "current_units":{"temperature_2m":"\u00b0C"},
            "current":{"time":"2026-11-30T14:00","interval":900,"temperature_2m":8.4,
                "apparent_temperature":5.9,"relative_humidity_2m":81,"weather_code":61,"wind_speed_10m":12.2},
            "daily":{"time":["2026-11-30","2026-12-01"],"weather_code":[61,null],
                "temperature_2m_max":[9.1,null],"temperature_2m_min":[4.0,3.2],
                "precipitation_probability_max":[80,null]}}"#;
        let f = parse(body).expect("parses");
        assert_eq!(f.timezone, "America/Los_Angeles");
        assert_eq!(f.current.code, 61);
        assert_eq!(f.current.temperature_c, 8.4);
        assert_eq!(f.days.len(), 2);
        assert_eq!(f.days[1].code, None);
        assert_eq!(f.days[1].min_c, Some(3.2));
    }

    #[test]
    fn a_shapeless_answer_is_an_error_not_a_panic() {
        assert!(matches!(
            parse(b"<html>busy</html>"),
            Err(ForecastError::Malformed(_))
        ));
        assert!(matches!(
            parse(br#"{"timezone":"UTC","current":{},"daily":{}}"#),
            Err(ForecastError::Malformed(_))
        ));
    }
}
