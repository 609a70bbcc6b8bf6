-- The weather widget's cache: one row per rounded location (0.1°, about
-- 11 km), filled by the hourly `weather-scheduler` run, read by the
-- homepage (which never calls a provider itself).
--
-- The two providers are kept apart: Open-Meteo's forecast (everywhere) and
-- the National Weather Service's active alerts (US only) each have their
-- own columns, written by their own job, so one failing never touches what
-- the other stored.
CREATE TABLE weather_cache (
    location_key          text PRIMARY KEY CHECK (location_key ~ '^-?[0-9]+\.[0-9],-?[0-9]+\.[0-9]$'),
    latitude              double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude             double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    -- Whether the NWS covers it (a US city, or a point inside US territory).
    in_us                 boolean NOT NULL,
    -- Open-Meteo, normalised (`village_weather::Forecast`).
    forecast              jsonb,
    forecast_fetched_at   timestamp,
    expires_at            timestamp,
    forecast_error        text,
    forecast_failed_at    timestamp,
    -- NWS, normalised (`village_weather::Alert` list).
    alerts                jsonb,
    alerts_fetched_at     timestamp,
    alerts_error          text,
    alerts_failed_at      timestamp,
    -- Last time a visitor's saved preferences named it: rows nobody has
    -- wanted for 30 days are dropped by the scheduler.
    wanted_at             timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    created_at            timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);

CREATE INDEX weather_cache_wanted_idx ON weather_cache (wanted_at);
