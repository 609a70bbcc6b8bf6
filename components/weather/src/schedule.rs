//! The hourly refresh (`weather-scheduler`): every location visitors use —
//! named by saved preferences and shown on a homepage within
//! [`SEEN_FOR_SECS`] (the homepage marks it in Redis, without waiting) —
//! gets one forecast job and, in the US, one alerts job, each keyed by
//! location and hour: a location watched by a thousand visitors costs one
//! call per provider per hour, a double fire does no double work, and a
//! location whose refresh still waits gets no second job. Forecasts go
//! first (alerts jobs have a lower priority). Locations nobody has used
//! for [`FORGET_AFTER_DAYS`] days are dropped from the cache.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use village_jobs::{NewJob, Queue};
use village_platform::cache::{Cache, CacheValue};
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::Location;

pub const FORGET_AFTER_DAYS: i64 = 30;
/// How long a homepage showing a location keeps it refreshed.
pub const SEEN_FOR_SECS: i64 = 7 * 86_400;
/// Alerts jobs run after the forecasts queued with them.
const ALERTS_PRIORITY: i32 = 10;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// Locations saved preferences name.
    pub named: usize,
    /// Of those, the ones visitors used lately.
    pub locations: usize,
    pub forecast_jobs: usize,
    pub alert_jobs: usize,
    pub forgotten: u64,
}

fn seen_key(cache: &impl Cache, location: &Location) -> String {
    cache.key(&format!("weather:seen:{}", location.key()))
}

/// Marks `location` as shown to a visitor now (the homepage does this
/// after answering; choosing a place does too).
pub async fn mark_seen(cache: &impl Cache, location: &Location) {
    cache
        .defer(
            "SET",
            vec![
                seen_key(cache, location).into(),
                "1".into(),
                "EX".into(),
                SEEN_FOR_SECS.into(),
            ],
        )
        .await;
}

/// Every distinct rounded location the saved weather widgets name, with
/// whether the NWS covers it: a town knows its country; a coordinate is
/// in the US when a gazetteer town lies within 50 km, or it lies in the
/// territories and remote Alaska the (US-only, towns-only) gazetteer
/// misses ([`Location::in_remote_us`]). Settings are read
/// as the widget reads them (an integer `city_id`, else numeric `lat` and
/// `lon`); anything else is skipped (preferences accept any object).
pub async fn wanted_locations(sql: &impl Sql) -> Result<Vec<(Location, bool)>, SqlError> {
    let rows = sql
        .query(
            "WITH w AS ( \
                 SELECT e->'settings' AS s, \
                        coalesce(jsonb_typeof(e->'settings'->'city_id') = 'number' \
                          AND (e->'settings'->>'city_id') ~ '^[0-9]{1,18}$', false) AS by_city \
                 FROM user_preferences p \
                 CROSS JOIN LATERAL jsonb_array_elements(p.layout->'widgets') e \
                 WHERE e->>'type' = 'weather'), \
             pts AS ( \
                 SELECT ST_Y(c.location::geometry) AS lat, ST_X(c.location::geometry) AS lon, \
                        c.country IN ('US', 'PR', 'GU', 'VI', 'AS', 'MP') AS in_us \
                 FROM w JOIN geo_cities c ON w.by_city AND c.id = (w.s->>'city_id')::bigint \
                 UNION ALL \
                 SELECT x.lat, x.lon, EXISTS (SELECT 1 FROM geo_cities c \
                     WHERE c.country IN ('US', 'PR', 'GU', 'VI', 'AS', 'MP') \
                       AND ST_DWithin(c.location, ST_SetSRID(ST_MakePoint(x.lon, x.lat), 4326)::geography, 50000)) \
                 FROM (SELECT (w.s->>'lat')::float8 AS lat, (w.s->>'lon')::float8 AS lon FROM w \
                       WHERE NOT w.by_city \
                         AND jsonb_typeof(w.s->'lat') = 'number' AND jsonb_typeof(w.s->'lon') = 'number') x \
                 WHERE x.lat BETWEEN -90 AND 90 AND x.lon BETWEEN -180 AND 180) \
             SELECT lat, lon, in_us FROM pts",
            &[],
        )
        .await?;
    // Rounded here, as the widget rounds (one rule, one key), and
    // deduplicated by key.
    let mut out: BTreeMap<String, (Location, bool)> = BTreeMap::new();
    for r in &rows {
        let (lat, lon): (f64, f64) = (r.get("lat")?, r.get("lon")?);
        let in_us: Option<bool> = r.get("in_us")?;
        if let Some(loc) = Location::rounded(lat, lon) {
            let in_us = in_us.unwrap_or(false) || loc.in_remote_us();
            out.entry(loc.key())
                .and_modify(|(_, us)| *us |= in_us)
                .or_insert((loc, in_us));
        }
    }
    Ok(out.into_values().collect())
}

/// Of `locations`, those a homepage showed within [`SEEN_FOR_SECS`]
/// (one `MGET`). Without Redis, all of them: better a call too many than
/// a stale widget.
pub async fn seen_lately(
    cache: &impl Cache,
    locations: Vec<(Location, bool)>,
) -> Vec<(Location, bool)> {
    if locations.is_empty() {
        return locations;
    }
    let keys = locations
        .iter()
        .map(|(l, _)| seen_key(cache, l).into())
        .collect::<Vec<_>>();
    match cache.execute("MGET", &keys).await {
        Ok(values) if values.len() == locations.len() => locations
            .into_iter()
            .zip(values)
            .filter(|(_, v)| !matches!(v, CacheValue::Nil))
            .map(|(l, _)| l)
            .collect(),
        other => {
            village_platform::log::event(
                "WARNING",
                "which weather locations are in use is unknown: refreshing all",
                serde_json::json!({ "reply": format!("{other:?}") }),
            );
            locations
        }
    }
}

/// Records `locations` as wanted now (creating their cache rows), and
/// returns them as stored: a location the NWS has said it does not cover
/// stays uncovered, whatever the gazetteer says.
pub async fn want(
    sql: &impl Sql,
    locations: &[(Location, bool)],
    now: DateTime<Utc>,
) -> Result<Vec<(Location, bool)>, SqlError> {
    if locations.is_empty() {
        return Ok(Vec::new());
    }
    let doc: Vec<serde_json::Value> = locations
        .iter()
        .map(|(l, us)| serde_json::json!({ "key": l.key(), "lat": l.lat, "lon": l.lon, "in_us": us }))
        .collect();
    let rows = sql
        .query(
            "INSERT INTO weather_cache (location_key, latitude, longitude, in_us, wanted_at) \
             SELECT key, lat, lon, in_us, $2 \
             FROM jsonb_to_recordset($1) AS x(key text, lat float8, lon float8, in_us boolean) \
             ON CONFLICT (location_key) DO UPDATE SET wanted_at = EXCLUDED.wanted_at, \
                 in_us = EXCLUDED.in_us AND weather_cache.in_us \
             RETURNING location_key, in_us",
            &[
                SqlValue::Json(serde_json::Value::Array(doc)),
                SqlValue::Timestamp(now),
            ],
        )
        .await?;
    let mut covered = std::collections::HashMap::new();
    for r in &rows {
        covered.insert(r.get::<String>("location_key")?, r.get::<bool>("in_us")?);
    }
    Ok(locations
        .iter()
        .map(|(l, us)| (*l, covered.get(&l.key()).copied().unwrap_or(*us)))
        .collect())
}

/// The refresh jobs for `locations` in the hour `slot` ("2026-11-30T14"),
/// except those whose `(handler, key)` is in `waiting`.
pub fn jobs_for(
    locations: &[(Location, bool)],
    slot: &str,
    waiting: &HashSet<(String, String)>,
) -> Vec<NewJob> {
    let mut jobs = Vec::new();
    for (l, in_us) in locations {
        let key = l.key();
        let payload = serde_json::json!({ "key": key });
        let wanted = [
            (crate::jobs::FORECAST, true, 0),
            (crate::jobs::ALERTS, *in_us, ALERTS_PRIORITY),
        ];
        for (handler, needed, priority) in wanted {
            if needed && !waiting.contains(&(handler.to_owned(), key.clone())) {
                jobs.push(
                    NewJob::new(Queue::Low, handler, payload.clone())
                        .idempotency_key(format!("{handler}:{key}:{slot}"))
                        .priority(priority)
                        .max_attempts(3),
                );
            }
        }
    }
    jobs
}

/// The `(handler, key)` of weather jobs still pending or running.
pub async fn waiting(sql: &impl Sql) -> Result<HashSet<(String, String)>, SqlError> {
    let rows = sql
        .query(
            "SELECT DISTINCT handler, payload->>'key' AS key FROM delayed_jobs \
             WHERE handler IN ($1, $2) AND status IN ('pending', 'running')",
            &[
                SqlValue::Text(crate::jobs::FORECAST.into()),
                SqlValue::Text(crate::jobs::ALERTS.into()),
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let key: Option<String> = r.get("key")?;
            Ok((r.get("handler")?, key.unwrap_or_default()))
        })
        .collect()
}

/// One hourly run at `now`.
pub async fn run(
    sql: &impl Sql,
    cache: &impl Cache,
    now: DateTime<Utc>,
) -> Result<Scheduled, village_jobs::JobsError> {
    let named = wanted_locations(sql).await?;
    let named_count = named.len();
    let locations = want(sql, &seen_lately(cache, named).await, now).await?;
    let forgotten = sql
        .execute(
            "DELETE FROM weather_cache WHERE wanted_at < $1",
            &[SqlValue::Timestamp(now - Duration::days(FORGET_AFTER_DAYS))],
        )
        .await?;
    let jobs = jobs_for(
        &locations,
        &now.format("%Y-%m-%dT%H").to_string(),
        &waiting(sql).await?,
    );
    village_jobs::enqueue_many(sql, cache, now, &jobs).await?;
    Ok(Scheduled {
        named: named_count,
        locations: locations.len(),
        forecast_jobs: jobs
            .iter()
            .filter(|j| j.handler == crate::jobs::FORECAST)
            .count(),
        alert_jobs: jobs
            .iter()
            .filter(|j| j.handler == crate::jobs::ALERTS)
            .count(),
        forgotten,
    })
}
