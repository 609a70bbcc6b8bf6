//! The National Weather Service API (<https://www.weather.gov/documentation/services-web-api>):
//! active alerts for a US point, `GET /alerts/active?point=lat,lon`, a
//! GeoJSON `FeatureCollection` whose features' `properties` carry the CAP
//! fields. The NWS asks every client to send a `User-Agent` naming it and
//! a contact (`nws_user_agent`). Errors come as `application/problem+json`.
//!
//! `weather.alerts` refreshes one US location; its failures land in the
//! alert columns only, never in Open-Meteo's.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use village_jobs::{Job, JobError, JobHandler, RetryPolicy};
use village_platform::boundary::stored;
use village_platform::cache::Cache;
use village_platform::clock::Clock;
use village_platform::http_client::{HttpClient, HttpError};
use village_platform::sql::{Sql, SqlValue};

use crate::{Alert, Location};

/// Alerts kept per location (the most severe first).
pub const MAX_ALERTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("the NWS unreachable: {0}")]
    Http(#[from] HttpError),
    /// A problem document's title and detail.
    #[error("the NWS answered {status}: {detail}")]
    Refused { status: u16, detail: String },
    #[error("the NWS's answer does not parse: {0}")]
    Malformed(String),
}

/// Active alerts at `at`, most severe first.
pub async fn fetch(
    http: &impl HttpClient,
    base: &str,
    user_agent: &str,
    at: Location,
) -> Result<Vec<Alert>, AlertsError> {
    let mut url = url::Url::parse(base)
        .and_then(|b| b.join("/alerts/active"))
        .map_err(|e| AlertsError::Malformed(format!("base URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("point", &format!("{:.1},{:.1}", at.lat, at.lon));
    let request = http::Request::get(url.as_str())
        .header("accept", "application/geo+json")
        .header("user-agent", user_agent)
        .body(Vec::new())
        .map_err(|e| AlertsError::Malformed(e.to_string()))?;
    let response = http.send(request).await?;
    let status = response.status().as_u16();
    if status != 200 {
        #[derive(Deserialize)]
        struct Problem {
            #[serde(default)]
            title: String,
            #[serde(default)]
            detail: String,
        }
        let detail = serde_json::from_slice::<Problem>(response.body())
            .map(|p| format!("{} {}", p.title, p.detail).trim().to_owned())
            .unwrap_or_else(|_| "no detail given".into());
        return Err(AlertsError::Refused {
            status,
            detail: stored(&detail, 200),
        });
    }
    parse(response.body())
}

/// The alerts of an `/alerts/active` answer, most severe first.
pub fn parse(body: &[u8]) -> Result<Vec<Alert>, AlertsError> {
    #[derive(Deserialize)]
    struct Collection {
        features: Vec<Feature>,
    }
    #[derive(Deserialize)]
    struct Feature {
        properties: Properties,
    }
    #[derive(Deserialize)]
    struct Properties {
        event: String,
        #[serde(default)]
        severity: Option<String>,
        #[serde(default)]
        headline: Option<String>,
        #[serde(default)]
        instruction: Option<String>,
        #[serde(default)]
        ends: Option<String>,
        #[serde(default)]
        expires: Option<String>,
    }
    let c: Collection =
        serde_json::from_slice(body).map_err(|e| AlertsError::Malformed(e.to_string()))?;
    let clip = |s: String, n: usize| stored(&s, n);
    let mut alerts: Vec<Alert> = c
        .features
        .into_iter()
        .map(|f| {
            let p = f.properties;
            Alert {
                headline: clip(p.headline.unwrap_or_else(|| p.event.clone()), 300),
                event: clip(p.event, 100),
                severity: clip(p.severity.unwrap_or_else(|| "Unknown".into()), 20),
                instruction: p.instruction.map(|i| clip(i, 1000)),
                until: p.ends.or(p.expires).map(|t| clip(t, 40)),
            }
        })
        .collect();
    alerts.sort_by_key(|a| rank(&a.severity));
    alerts.truncate(MAX_ALERTS);
    Ok(alerts)
}

/// CAP severities, most severe first.
fn rank(severity: &str) -> u8 {
    match severity {
        "Extreme" => 0,
        "Severe" => 1,
        "Moderate" => 2,
        "Minor" => 3,
        _ => 4,
    }
}

/// `weather.alerts`: one US location's active alerts, from the NWS.
pub struct RefreshAlerts<'a, S, K, H, C> {
    pub sql: &'a S,
    pub cache: &'a K,
    pub http: &'a H,
    pub clock: &'a C,
    /// `nws_base_url`.
    pub base_url: &'a str,
    /// `nws_user_agent`.
    pub user_agent: &'a str,
}

/// The provider's name in [`crate::outage`].
pub const PROVIDER: &str = "nws";

impl<S: Sql, K: Cache, H: HttpClient, C: Clock> JobHandler for RefreshAlerts<'_, S, K, H, C> {
    fn name(&self) -> &'static str {
        crate::jobs::ALERTS
    }

    fn policy(&self) -> RetryPolicy {
        crate::retry_policy()
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let Some((at, in_us)) = crate::cached_location(self.sql, job).await? else {
            return Ok(());
        };
        if !in_us {
            return Ok(()); // the NWS covers the US only
        }
        let now = self.clock.now();
        crate::outage::wait_out_pause(self.cache, PROVIDER, now).await?;
        let outcome = fetch(self.http, self.base_url, self.user_agent, at).await;
        let retry = |e: village_platform::sql::SqlError| JobError::Retry(e.to_string());
        match outcome {
            Ok(alerts) => store(self.sql, &at.key(), &alerts, now)
                .await
                .map_err(retry),
            // A point the NWS does not cover: not a failure, and not asked
            // about again.
            Err(AlertsError::Refused {
                status: 400 | 404, ..
            }) => self
                .sql
                .execute(
                    "UPDATE weather_cache SET in_us = false WHERE location_key = $1",
                    &[SqlValue::Text(at.key())],
                )
                .await
                .map(drop)
                .map_err(retry),
            Err(e) => {
                crate::outage::mark_down(self.cache, PROVIDER).await;
                self.sql
                    .execute(
                        "UPDATE weather_cache SET alerts_error = $2, alerts_failed_at = $3 \
                         WHERE location_key = $1",
                        &[
                            SqlValue::Text(at.key()),
                            SqlValue::Text(stored(&e.to_string(), 500)),
                            SqlValue::Timestamp(now),
                        ],
                    )
                    .await
                    .map_err(retry)?;
                Err(JobError::Retry(e.to_string()))
            }
        }
    }
}

/// Stores a location's current alerts (and clears the last error).
pub async fn store(
    sql: &impl Sql,
    key: &str,
    alerts: &[Alert],
    now: DateTime<Utc>,
) -> Result<(), village_platform::sql::SqlError> {
    let doc = serde_json::to_value(alerts)
        .map_err(|e| village_platform::sql::SqlError::Decode(e.to_string()))?;
    sql.execute(
        "UPDATE weather_cache SET alerts = $2, alerts_fetched_at = $3, alerts_error = NULL, \
             alerts_failed_at = NULL \
         WHERE location_key = $1",
        &[
            SqlValue::Text(key.to_owned()),
            SqlValue::Json(doc),
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
    fn alerts_parse_most_severe_first() {
        let body =
            br#"{"type":"FeatureCollection","title":"Current watches, warnings, and advisories",
          "features":[
            {"type":"Feature","properties":{"event":"Wind Advisory","severity":"Minor",
              "headline":"Wind Advisory until 6 PM","ends":"2026-11-30T18:00:00-08:00"}},
            {"type":"Feature","properties":{"event":"Flood Warning","severity":"Severe",
              "headline":"Flood Warning issued","instruction":"Turn around, don't drown.",
              "ends":null,"expires":"2026-12-01T06:00:00-08:00"}}]}"#;
        let alerts = parse(body).expect("parses");
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].event, "Flood Warning");
        assert_eq!(
            alerts[0].until.as_deref(),
            Some("2026-12-01T06:00:00-08:00")
        );
        assert_eq!(
            alerts[1].until.as_deref(),
            Some("2026-11-30T18:00:00-08:00")
        );
    }

    #[test]
    fn alert_text_is_made_storable() {
        let body = br#"{"type":"FeatureCollection","features":[{"properties":{
            "event":"Wind\u0000 Advisory","headline":"Gusts\u0000 to 60 mph"}}]}"#;
        let a = &parse(body).expect("parses")[0];
        assert_eq!(
            (a.event.as_str(), a.headline.as_str()),
            ("Wind Advisory", "Gusts to 60 mph")
        );
    }

    #[test]
    fn no_alerts_is_an_empty_list() {
        let alerts = parse(br#"{"type":"FeatureCollection","features":[]}"#).expect("parses");
        assert!(alerts.is_empty());
    }
}
