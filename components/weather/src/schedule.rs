//! The hourly refresh (`weather-scheduler`): every location a visitor's
//! saved preferences name gets one forecast job and, in the US, one alerts
//! job — each keyed by location and hour, so a location watched by a
//! thousand visitors costs one call per provider per hour, and a double
//! fire does no double work. Locations nobody has named for
//! [`FORGET_AFTER_DAYS`] days are dropped from the cache.

use chrono::{DateTime, Duration, Utc};
use village_jobs::{NewJob, Queue};
use village_platform::cache::Cache;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::Location;

pub const FORGET_AFTER_DAYS: i64 = 30;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub locations: usize,
    pub forecast_jobs: usize,
    pub alert_jobs: usize,
    pub forgotten: u64,
}

/// Every distinct rounded location the saved weather widgets name, with
/// whether the NWS covers it. Settings that are not numbers are skipped
/// (preferences accept any object; only the widget's form writes these).
pub async fn wanted_locations(sql: &impl Sql) -> Result<Vec<(Location, bool)>, SqlError> {
    let rows = sql
        .query(
            "WITH w AS ( \
                 SELECT e->'settings' AS s FROM user_preferences p \
                 CROSS JOIN LATERAL jsonb_array_elements(p.layout->'widgets') e \
                 WHERE e->>'type' = 'weather') \
             SELECT ST_Y(c.location::geometry) AS lat, ST_X(c.location::geometry) AS lon, \
                    c.country = 'US' AS in_us \
             FROM w JOIN geo_cities c \
               ON (w.s->>'city_id') ~ '^[0-9]{1,18}$' AND c.id = (w.s->>'city_id')::bigint \
             UNION ALL \
             SELECT (w.s->>'lat')::float8, (w.s->>'lon')::float8, NULL \
             FROM w WHERE NOT (w.s ? 'city_id') \
               AND jsonb_typeof(w.s->'lat') = 'number' AND jsonb_typeof(w.s->'lon') = 'number'",
            &[],
        )
        .await?;
    let mut out: Vec<(Location, bool)> = Vec::new();
    for r in &rows {
        let lat: f64 = r.get("lat")?;
        let lon: f64 = r.get("lon")?;
        let in_us: Option<bool> = r.get("in_us")?;
        let Some(loc) = Location::rounded(lat, lon) else {
            continue;
        };
        let in_us = in_us.unwrap_or_else(|| loc.in_us_boxes());
        match out.iter_mut().find(|(l, _)| l.key() == loc.key()) {
            Some((_, us)) => *us |= in_us,
            None => out.push((loc, in_us)),
        }
    }
    Ok(out)
}

/// Records `locations` as wanted now (creating their cache rows).
pub async fn want(
    sql: &impl Sql,
    locations: &[(Location, bool)],
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    if locations.is_empty() {
        return Ok(());
    }
    let doc: Vec<serde_json::Value> = locations
        .iter()
        .map(|(l, us)| serde_json::json!({ "key": l.key(), "lat": l.lat, "lon": l.lon, "in_us": us }))
        .collect();
    sql.execute(
        "INSERT INTO weather_cache (location_key, latitude, longitude, in_us, wanted_at) \
         SELECT key, lat, lon, in_us, $2 \
         FROM jsonb_to_recordset($1) AS x(key text, lat float8, lon float8, in_us boolean) \
         ON CONFLICT (location_key) DO UPDATE SET wanted_at = EXCLUDED.wanted_at, \
             in_us = EXCLUDED.in_us",
        &[
            SqlValue::Json(serde_json::Value::Array(doc)),
            SqlValue::Timestamp(now),
        ],
    )
    .await
    .map(drop)
}

/// The refresh jobs for `locations` in the hour `slot` ("2026-11-30T14").
pub fn jobs_for(locations: &[(Location, bool)], slot: &str) -> Vec<NewJob> {
    let mut jobs = Vec::new();
    for (l, in_us) in locations {
        let key = l.key();
        let payload = serde_json::json!({ "key": key });
        jobs.push(
            NewJob::new(Queue::Low, crate::jobs::FORECAST, payload.clone())
                .idempotency_key(format!("{}:{key}:{slot}", crate::jobs::FORECAST))
                .max_attempts(3),
        );
        if *in_us {
            jobs.push(
                NewJob::new(Queue::Low, crate::jobs::ALERTS, payload)
                    .idempotency_key(format!("{}:{key}:{slot}", crate::jobs::ALERTS))
                    .max_attempts(3),
            );
        }
    }
    jobs
}

/// One hourly run at `now`.
pub async fn run(
    sql: &impl Sql,
    cache: &impl Cache,
    now: DateTime<Utc>,
) -> Result<Scheduled, village_jobs::JobsError> {
    let locations = wanted_locations(sql).await?;
    want(sql, &locations, now).await?;
    let forgotten = sql
        .execute(
            "DELETE FROM weather_cache WHERE wanted_at < $1",
            &[SqlValue::Timestamp(now - Duration::days(FORGET_AFTER_DAYS))],
        )
        .await?;
    let jobs = jobs_for(&locations, &now.format("%Y-%m-%dT%H").to_string());
    village_jobs::enqueue_many(sql, cache, now, &jobs).await?;
    Ok(Scheduled {
        locations: locations.len(),
        forecast_jobs: locations.len(),
        alert_jobs: locations.iter().filter(|(_, us)| *us).count(),
        forgotten,
    })
}
