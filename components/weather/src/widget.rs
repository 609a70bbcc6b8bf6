//! The widget: the visitor's place (settings `city_id`, or `lat` and
//! `lon`), what the cache holds for it, in the visitor's units, and the
//! form that chooses the place.

use chrono::{DateTime, NaiveDate, Utc};
use village_marketplace::places::{self, Resolved};
use village_platform::cache::Cache;
use village_platform::error::FieldError;
use village_platform::sql::{Row, Sql, SqlError, SqlValue};
use village_platform::{AppError, RequestContext};
use village_preferences::{Owner, Units, WidgetKind};

use crate::{Alert, Forecast, Location};

/// What the widget shows, ready to render.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeatherView {
    /// "Portland, OR"; `None` until the visitor chooses a place.
    pub place: Option<String>,
    pub current: Option<CurrentView>,
    pub days: Vec<DayView>,
    pub alerts: Vec<AlertView>,
    /// Said above the forecast: waiting for the first refresh, or how old
    /// the data is when the provider has not answered lately.
    pub notice: Option<String>,
    /// Said when NWS alerts could not be checked lately (US places).
    pub alerts_notice: Option<String>,
    /// Set when the cache could not be read (the page still renders).
    pub unavailable: bool,
    /// The cached location shown (the homepage marks it as in use).
    pub location: Option<Location>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CurrentView {
    pub temperature: String,
    pub feels_like: Option<String>,
    pub summary: &'static str,
    pub symbol: &'static str,
    pub humidity: Option<String>,
    pub wind: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DayView {
    /// "Tue".
    pub label: String,
    pub summary: &'static str,
    pub symbol: &'static str,
    pub high: Option<String>,
    pub low: Option<String>,
    pub precipitation: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    pub event: String,
    pub severity: String,
    pub headline: String,
    pub instruction: Option<String>,
}

/// The place a widget's settings name, if any.
async fn place_of(
    sql: &impl Sql,
    settings: &serde_json::Map<String, serde_json::Value>,
) -> Result<Option<(Location, String)>, SqlError> {
    // As the scheduler reads them: a whole, non-negative `city_id`, else
    // numeric `lat` and `lon`.
    if let Some(id) = settings
        .get("city_id")
        .and_then(serde_json::Value::as_i64)
        .filter(|id| *id >= 0)
    {
        return Ok(places::by_id(sql, id)
            .await?
            .and_then(|c| Location::rounded(c.lat, c.lon).map(|l| (l, c.label()))));
    }
    let num = |k: &str| settings.get(k).and_then(serde_json::Value::as_f64);
    Ok(match (num("lat"), num("lon")) {
        (Some(lat), Some(lon)) => {
            Location::rounded(lat, lon).map(|l| (l, format!("{lat:.2}, {lon:.2}")))
        }
        _ => None,
    })
}

/// A rounded reading, never "-0".
fn whole(v: f64) -> f64 {
    let r = v.round();
    if r == 0.0 { 0.0 } else { r }
}

fn temperature(c: f64, units: Units) -> String {
    match units {
        Units::Metric => format!("{}°C", whole(c)),
        Units::Imperial => format!("{}°F", whole(c * 9.0 / 5.0 + 32.0)),
    }
}

fn wind(kmh: f64, units: Units) -> String {
    match units {
        Units::Metric => format!("{} km/h", kmh.round()),
        Units::Imperial => format!("{} mph", (kmh / 1.609_344).round()),
    }
}

/// "3 hours ago".
fn age(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let mins = (now - t).num_minutes().max(0);
    let (n, unit) = match mins {
        0..120 => (mins, "minute"),
        120..2_880 => (mins / 60, "hour"),
        _ => (mins / 1_440, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// The widget's view for `settings`, from the cache only.
pub async fn view(
    sql: &impl Sql,
    settings: &serde_json::Map<String, serde_json::Value>,
    units: Units,
    now: DateTime<Utc>,
) -> Result<WeatherView, SqlError> {
    let Some((at, label)) = place_of(sql, settings).await? else {
        return Ok(WeatherView::default());
    };
    let row = sql
        .query_opt(
            "SELECT in_us, forecast, forecast_fetched_at, expires_at, forecast_failed_at, \
                    alerts, alerts_fetched_at, alerts_failed_at \
             FROM weather_cache WHERE location_key = $1",
            &[SqlValue::Text(at.key())],
        )
        .await?;
    let mut v = WeatherView {
        place: Some(label),
        location: Some(at),
        ..WeatherView::default()
    };
    match row {
        Some(row) => fill(&mut v, &row, units, now)?,
        None => v.notice = Some("The forecast is on its way: check back within the hour.".into()),
    }
    Ok(v)
}

fn fill(v: &mut WeatherView, row: &Row, units: Units, now: DateTime<Utc>) -> Result<(), SqlError> {
    let forecast: Option<serde_json::Value> = row.get("forecast")?;
    let fetched: Option<DateTime<Utc>> = row.get("forecast_fetched_at")?;
    let expires: Option<DateTime<Utc>> = row.get("expires_at")?;
    let failed: Option<DateTime<Utc>> = row.get("forecast_failed_at")?;
    let forecast: Option<Forecast> = forecast.and_then(|f| serde_json::from_value(f).ok());
    match (&forecast, fetched) {
        (Some(f), Some(at)) => {
            let c = &f.current;
            v.current = Some(CurrentView {
                temperature: temperature(c.temperature_c, units),
                feels_like: c.feels_like_c.map(|t| temperature(t, units)),
                summary: crate::describe(c.code),
                symbol: crate::symbol(c.code),
                humidity: c.humidity_pct.map(|h| format!("{}%", h.round())),
                wind: c.wind_kmh.map(|w| wind(w, units)),
            });
            v.days = f
                .days
                .iter()
                .map(|d| DayView {
                    label: NaiveDate::parse_from_str(&d.date, "%Y-%m-%d")
                        .map(|d| d.format("%a").to_string())
                        .unwrap_or_else(|_| d.date.clone()),
                    summary: crate::describe(d.code.unwrap_or(-1)),
                    symbol: crate::symbol(d.code.unwrap_or(-1)),
                    high: d.max_c.map(|t| temperature(t, units)),
                    low: d.min_c.map(|t| temperature(t, units)),
                    precipitation: d.precipitation_pct.map(|p| format!("{}%", p.round())),
                })
                .collect();
            if expires.is_some_and(|e| e < now) {
                v.notice = Some(format!(
                    "Last updated {}: the forecast service has not answered since.",
                    age(at, now)
                ));
            }
        }
        _ if failed.is_some() => {
            v.notice = Some("The forecast service is not answering; we will keep trying.".into());
        }
        _ => v.notice = Some("The forecast is on its way: check back within the hour.".into()),
    }
    let in_us: bool = row.get("in_us")?;
    if in_us {
        let alerts: Option<serde_json::Value> = row.get("alerts")?;
        let alerts_at: Option<DateTime<Utc>> = row.get("alerts_fetched_at")?;
        let alerts_failed: Option<DateTime<Utc>> = row.get("alerts_failed_at")?;
        let alerts: Vec<Alert> = alerts
            .and_then(|a| serde_json::from_value(a).ok())
            .unwrap_or_default();
        v.alerts = alerts
            .into_iter()
            // An alert past its end is over, whatever the cache's age.
            .filter(|a| {
                a.until
                    .as_deref()
                    .and_then(|u| DateTime::parse_from_rfc3339(u).ok())
                    .is_none_or(|u| u > now)
            })
            .map(|a| AlertView {
                event: a.event,
                severity: a.severity,
                headline: a.headline,
                instruction: a.instruction,
            })
            .collect();
        let stale = alerts_at.is_none_or(|t| now - t > crate::open_meteo::FRESH_FOR);
        if alerts_failed.is_some() && stale {
            v.alerts_notice = Some(match alerts_at {
                Some(t) => format!("Weather alerts last checked {}.", age(t, now)),
                None => "Weather alerts could not be checked yet.".into(),
            });
        }
    }
    Ok(())
}

/// The NWS's territory (its alerts cover the states and these).
const US: [&str; 6] = ["US", "PR", "GU", "VI", "AS", "MP"];

/// Whether a gazetteer town in the NWS's territory lies within 50 km of a
/// coordinate typed in (as the scheduler decides).
async fn near_us_town(sql: &impl Sql, lat: f64, lon: f64) -> Result<bool, SqlError> {
    Ok(sql
        .query_opt(
            "SELECT 1 AS one FROM geo_cities \
             WHERE country IN ('US', 'PR', 'GU', 'VI', 'AS', 'MP') \
               AND ST_DWithin(location, ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography, 50000) \
             LIMIT 1",
            &[SqlValue::Float64(lat), SqlValue::Float64(lon)],
        )
        .await?
        .is_some())
}

/// `POST /weather/widget` (form `near`): the place for the visitor's
/// weather widgets, kept in their preferences; its refresh is queued at
/// once so the forecast arrives within a minute, not at the next hour.
pub async fn choose_place(
    sql: &impl Sql,
    cache: &impl Cache,
    ctx: &RequestContext,
    near: &str,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let resolved = match places::resolve_text(sql, near).await? {
        Ok(r) => r,
        Err(e) => return Err(AppError::Validation(vec![FieldError::new("near", e)])),
    };
    let point = resolved.point();
    let Some(at) = Location::rounded(point.lat, point.lon) else {
        return Err(AppError::Validation(vec![FieldError::new(
            "near",
            "not a place on Earth",
        )]));
    };
    let in_us = match &resolved {
        Resolved::City(c) => US.contains(&c.country.as_str()),
        Resolved::Point(p) => near_us_town(sql, p.lat, p.lon).await? || at.in_remote_us(),
    };
    let found = village_preferences::update_widget_settings(
        sql,
        Owner::of(ctx),
        WidgetKind::Weather,
        |settings| {
            settings.remove("city_id");
            settings.remove("lat");
            settings.remove("lon");
            match &resolved {
                Resolved::City(c) => {
                    settings.insert("city_id".into(), serde_json::json!(c.id));
                }
                Resolved::Point(p) => {
                    settings.insert("lat".into(), serde_json::json!(p.lat));
                    settings.insert("lon".into(), serde_json::json!(p.lon));
                }
            }
        },
    )
    .await?;
    if !found {
        return Err(AppError::Validation(vec![FieldError::new(
            "near",
            "your homepage has no weather widget; add it first",
        )]));
    }
    let wanted = crate::schedule::want(sql, &[(at, in_us)], now).await?;
    crate::schedule::mark_seen(cache, &at).await;
    let jobs = crate::schedule::jobs_for(
        &wanted,
        &now.format("%Y-%m-%dT%H").to_string(),
        &crate::schedule::waiting(sql).await?,
    );
    village_jobs::enqueue_many(sql, cache, now, &jobs)
        .await
        .map_err(|e| AppError::Internal(format!("failed to queue the weather refresh: {e}")))?;
    Ok(())
}

/// The `weather` component's routes: `POST /weather/widget`.
pub async fn handle(
    method: &http::Method,
    path: &str,
    body: &[u8],
    sql: &impl Sql,
    cache: &impl Cache,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<village_platform::web::Response, AppError> {
    match path.trim_end_matches('/') {
        "/weather/widget" if method == http::Method::POST => {
            let near = village_platform::web::query_param(body, "near").unwrap_or_default();
            choose_place(sql, cache, ctx, &near, now).await?;
            Ok(village_platform::web::see_other("/#widget-weather"))
        }
        "/weather/widget" => Err(AppError::MethodNotAllowed { allowed: "POST" }),
        _ => Err(AppError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_the_visitors_setting() {
        assert_eq!(temperature(20.0, Units::Metric), "20°C");
        assert_eq!(temperature(20.0, Units::Imperial), "68°F");
        assert_eq!(temperature(-40.0, Units::Imperial), "-40°F");
        assert_eq!(temperature(-0.3, Units::Metric), "0°C", "never -0");
        assert_eq!(wind(16.0934, Units::Imperial), "10 mph");
        assert_eq!(wind(12.4, Units::Metric), "12 km/h");
    }

    #[test]
    fn ages_read_as_people_say_them() {
        let now = Utc::now();
        assert_eq!(
            age(now - chrono::Duration::minutes(95), now),
            "95 minutes ago"
        );
        assert_eq!(age(now - chrono::Duration::hours(3), now), "3 hours ago");
        assert_eq!(age(now - chrono::Duration::days(2), now), "2 days ago");
    }
}
