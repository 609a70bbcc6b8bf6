//! The weather, stocks and social widgets against real Postgres and Redis,
//! with local servers speaking Open-Meteo's, the NWS's, Alpha Vantage's,
//! Meta Graph's and Mailgun's wire formats: one refresh per location or
//! symbol however many watch it, the two weather providers isolated, slow
//! and failing providers, the Alpha Vantage quota under many watchers,
//! Meta tokens sealed, refreshed, lapsed, archived and resealed, and
//! Meta's signed callbacks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;
use village_e2e::stub::{Recorded, Reply, StubServer};
use village_jobs::{Queue, Registry, drain};
use village_platform::cache::Cache;
use village_platform::clock::FixedClock;
use village_platform::native::{NativeCache, NativeHttp, NativeSql, test_ports};
use village_platform::sql::{Sql, SqlValue};
use village_preferences::{Owner, Preferences, Units, WidgetKind};

async fn ports() -> (NativeSql, NativeCache) {
    let url = village_migrate::testing::fresh_database()
        .await
        .expect("test database");
    test_ports(&url).await
}

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("valid")
}

async fn user(sql: &NativeSql, email: &str) -> Uuid {
    sql.query_opt(
        "INSERT INTO users (is_anonymous, email) VALUES (false, $1) RETURNING id",
        &[SqlValue::Text(email.into())],
    )
    .await
    .expect("insert")
    .expect("row")
    .get("id")
    .expect("id")
}

/// Saves the default layout with the weather widget's `settings`.
async fn weather_at(sql: &NativeSql, owner: Uuid, settings: serde_json::Value) {
    let mut prefs = Preferences::default();
    for w in prefs
        .layout
        .widgets
        .iter_mut()
        .filter(|w| w.kind == WidgetKind::Weather)
    {
        w.settings = settings.as_object().cloned().unwrap_or_default();
    }
    village_preferences::save(sql, Owner::User(owner), &prefs)
        .await
        .expect("saved");
}

async fn count(sql: &NativeSql, statement: &str) -> i64 {
    sql.query_opt(statement, &[])
        .await
        .expect("query")
        .expect("row")
        .get("n")
        .expect("n")
}

async fn drain_low(
    sql: &NativeSql,
    cache: &NativeCache,
    now: DateTime<Utc>,
    registry: &Registry<'_>,
) -> village_jobs::DrainReport {
    drain(
        sql,
        cache,
        &FixedClock(now),
        registry,
        Queue::Low,
        "test",
        Duration::from_secs(30),
        50,
    )
    .await
    .expect("drain")
}

// ---------------------------------------------------------------------------
// Weather
// ---------------------------------------------------------------------------

/// Open-Meteo's `/v1/forecast`, answering for any coordinate (or 500 when
/// `down`), the documented shape.
async fn open_meteo(down: Arc<AtomicBool>) -> StubServer {
    StubServer::start(move |r: &Recorded| {
        if down.load(Ordering::SeqCst) {
            return Reply::json(500, &json!({"error": true, "reason": "Internal server error"}));
        }
        if !r.path.starts_with("/v1/forecast?") || !r.path.contains("latitude=") {
            return Reply::json(400, &json!({"error": true, "reason": "Parameter latitude missing"}));
        }
        Reply::json(200, &json!({
            "latitude": 45.5, "longitude": -122.7, "generationtime_ms": 0.1, "utc_offset_seconds": -28800,
            "timezone": "America/Los_Angeles", "timezone_abbreviation": "PST", "elevation": 15.0,
            "current_units": {"time": "iso8601", "temperature_2m": "°C"},
            "current": {"time": "2026-12-01T08:00", "interval": 900, "temperature_2m": 10.0,
                        "apparent_temperature": 8.0, "relative_humidity_2m": 81, "weather_code": 61,
                        "wind_speed_10m": 16.1},
            "daily_units": {"time": "iso8601"},
            "daily": {"time": ["2026-12-01", "2026-12-02"], "weather_code": [61, 3],
                      "temperature_2m_max": [11.0, 9.0], "temperature_2m_min": [5.0, 4.0],
                      "precipitation_probability_max": [90, 20]}
        }))
    })
    .await
}

/// The NWS's `/alerts/active?point=`: one flood warning; a problem
/// document without a User-Agent, as the NWS documents, or (while `down`)
/// a 503 one.
async fn nws(down: Arc<AtomicBool>) -> StubServer {
    StubServer::start(move |r: &Recorded| {
        if down.load(Ordering::SeqCst) {
            return Reply::new(
                503,
                "application/problem+json",
                json!({"title": "Service Unavailable", "status": 503, "detail": "try later"})
                    .to_string(),
            );
        }
        if r.header("user-agent").is_none_or(str::is_empty) {
            return Reply::new(403, "application/problem+json",
                json!({"title": "Forbidden", "status": 403, "detail": "A User-Agent is required"}).to_string());
        }
        Reply::new(200, "application/geo+json", json!({
            "type": "FeatureCollection", "title": "Current watches, warnings, and advisories",
            "features": [{"type": "Feature", "properties": {
                "event": "Flood Warning", "severity": "Severe", "headline": "Flood Warning until Thursday",
                "instruction": "Avoid low-lying roads.", "expires": "2099-01-01T00:00:00-08:00", "ends": null}}]
        }).to_string())
    })
    .await
}

/// Both weather handlers, as a worker registers them.
fn weather_jobs<'a>(
    sql: &'a NativeSql,
    cache: &'a NativeCache,
    http: &'a NativeHttp,
    clock: &'a FixedClock,
    meteo_url: &'a str,
    nws_url: &'a str,
) -> Registry<'a> {
    Registry::new()
        .with(village_weather::open_meteo::RefreshForecast {
            sql,
            cache,
            http,
            clock,
            base_url: meteo_url,
        })
        .with(village_weather::nws::RefreshAlerts {
            sql,
            cache,
            http,
            clock,
            base_url: nws_url,
            user_agent: "VillageHomepage/test (ops@village.example)",
        })
}

#[tokio::test]
async fn each_rounded_location_is_refreshed_once_however_many_watch_it() {
    let (sql, cache) = ports().await;
    let portland: i64 = sql
        .query_opt(
            "SELECT id FROM geo_cities WHERE name = 'Portland' AND admin_code = 'OR'",
            &[],
        )
        .await
        .expect("q")
        .expect("Portland is in the gazetteer")
        .get("id")
        .expect("id");
    for i in 0..20 {
        let u = user(&sql, &format!("pdx{i}@example.org")).await;
        weather_at(&sql, u, json!({"city_id": portland})).await;
    }
    // Two visitors a few streets apart in London share a row; garbage
    // settings are skipped, not fatal.
    for (lat, lon) in [(51.5072, -0.1276), (51.52, -0.10)] {
        let u = user(&sql, &format!("ldn{lat}@example.org")).await;
        weather_at(&sql, u, json!({"lat": lat, "lon": lon})).await;
    }
    let junk = user(&sql, "junk@example.org").await;
    weather_at(&sql, junk, json!({"lat": "north", "city_id": "x"})).await;
    // Saved, but no homepage has shown it lately: not refreshed.
    let idle = user(&sql, "idle@example.org").await;
    weather_at(&sql, idle, json!({"lat": 42.36, "lon": -71.06})).await;
    // What the homepage does when it shows a place.
    for (lat, lon) in [(45.5, -122.7), (51.5, -0.1)] {
        let loc = village_weather::Location::rounded(lat, lon).expect("valid");
        village_weather::schedule::mark_seen(&cache, &loc).await;
    }

    let now = at(2026, 12, 1, 16, 5);
    let done = village_weather::schedule::run(&sql, &cache, now)
        .await
        .expect("scheduled");
    assert_eq!(
        (
            done.named,
            done.locations,
            done.forecast_jobs,
            done.alert_jobs
        ),
        (3, 2, 2, 1),
        "{done:?}"
    );
    // A second fire in the same hour queues nothing more.
    village_weather::schedule::run(&sql, &cache, now)
        .await
        .expect("scheduled");
    assert_eq!(
        count(
            &sql,
            "SELECT count(*) AS n FROM delayed_jobs WHERE handler LIKE 'weather.%'"
        )
        .await,
        3
    );

    let down = Arc::new(AtomicBool::new(false));
    let meteo = open_meteo(down.clone()).await;
    let nws_down = Arc::new(AtomicBool::new(false));
    let alerts = nws(nws_down.clone()).await;
    let http = NativeHttp::new(Duration::from_secs(2));
    let (meteo_url, nws_url) = (meteo.url(), alerts.url());
    let clock = FixedClock(now);
    let registry = weather_jobs(&sql, &cache, &http, &clock, &meteo_url, &nws_url);
    let report = drain_low(&sql, &cache, now, &registry).await;
    assert_eq!(report.succeeded, 3, "{report:?}");
    assert_eq!(meteo.requests().len(), 2, "one forecast call per location");
    assert_eq!(
        alerts.requests().len(),
        1,
        "alerts for the US location only"
    );
    assert!(
        alerts.requests()[0].path.contains("point=45.5%2C-122.7")
            || alerts.requests()[0].path.contains("point=45.5,-122.7")
    );

    // The widget, in the visitor's units, with the NWS alert.
    let settings = json!({"city_id": portland})
        .as_object()
        .cloned()
        .expect("object");
    let v = village_weather::widget::view(&sql, &settings, Units::Imperial, now)
        .await
        .expect("view");
    assert_eq!(v.place.as_deref(), Some("Portland, OR"));
    let current = v.current.as_ref().expect("current conditions");
    assert_eq!(current.temperature, "50°F");
    assert_eq!(current.summary, "Light rain");
    assert_eq!(current.wind.as_deref(), Some("10 mph"));
    assert_eq!(v.days.len(), 2);
    assert_eq!(v.alerts[0].event, "Flood Warning");
    assert_eq!(v.notice, None, "fresh data says nothing");
    let metric = village_weather::widget::view(&sql, &settings, Units::Metric, now)
        .await
        .expect("view");
    assert_eq!(metric.current.expect("current").temperature, "10°C");

    // Open-Meteo fails an hour later: the NWS still refreshes, the last
    // forecast stays, and once it is old the widget says so.
    down.store(true, Ordering::SeqCst);
    let later = now + chrono::Duration::hours(2);
    village_weather::schedule::run(&sql, &cache, later)
        .await
        .expect("scheduled");
    let clock = FixedClock(later);
    let registry = weather_jobs(&sql, &cache, &http, &clock, &meteo_url, &nws_url);
    let calls_before = meteo.requests().len();
    let report = drain_low(&sql, &cache, later, &registry).await;
    assert_eq!(
        (report.succeeded, report.retried, report.deferred),
        (1, 1, 1),
        "{report:?}"
    );
    assert_eq!(
        meteo.requests().len(),
        calls_before + 1,
        "after one failure the provider is left alone a while (London's job waits)"
    );
    let row = sql
        .query_opt(
            "SELECT forecast_error, alerts_fetched_at FROM weather_cache WHERE location_key = '45.5,-122.7'",
            &[],
        )
        .await
        .expect("q")
        .expect("row");
    let error: Option<String> = row.get("forecast_error").expect("error");
    assert!(error.expect("recorded").contains("Open-Meteo answered 500"));
    let alerts_at: Option<DateTime<Utc>> = row.get("alerts_fetched_at").expect("at");
    assert_eq!(alerts_at, Some(later), "the NWS refresh was not held back");
    let v = village_weather::widget::view(&sql, &settings, Units::Metric, later)
        .await
        .expect("view");
    assert_eq!(
        v.current.expect("the last forecast stays").temperature,
        "10°C"
    );
    assert!(
        v.notice
            .as_deref()
            .unwrap_or_default()
            .starts_with("Last updated 2 hours ago"),
        "{:?}",
        v.notice
    );

    // The other way round: the NWS down, Open-Meteo back. The forecast is
    // fresh again; only the alerts say they are old.
    cache
        .execute("DEL", &[cache.key("weather:down:open-meteo").into()])
        .await
        .expect("pause over");
    down.store(false, Ordering::SeqCst);
    nws_down.store(true, Ordering::SeqCst);
    let later = now + chrono::Duration::hours(4);
    village_weather::schedule::run(&sql, &cache, later)
        .await
        .expect("scheduled");
    let clock = FixedClock(later);
    let registry = weather_jobs(&sql, &cache, &http, &clock, &meteo_url, &nws_url);
    let report = drain_low(&sql, &cache, later, &registry).await;
    assert_eq!((report.succeeded, report.retried), (2, 1), "{report:?}");
    let v = village_weather::widget::view(&sql, &settings, Units::Metric, later)
        .await
        .expect("view");
    assert_eq!(v.notice, None, "the forecast is fresh");
    assert_eq!(
        v.alerts_notice.as_deref(),
        Some("Weather alerts last checked 2 hours ago."),
        "{v:?}"
    );
    assert_eq!(v.alerts.len(), 1, "the last known alert stays");
}

#[tokio::test]
async fn a_point_the_nws_does_not_cover_stops_asking_it() {
    let (sql, cache) = ports().await;
    // Windsor, Ontario: within 50 km of Detroit, so taken for the US until
    // the NWS says otherwise.
    let u = user(&sql, "windsor@example.org").await;
    weather_at(&sql, u, json!({"lat": 42.30, "lon": -83.02})).await;
    let windsor = village_weather::Location::rounded(42.30, -83.02).expect("valid");
    village_weather::schedule::mark_seen(&cache, &windsor).await;
    let now = at(2026, 12, 1, 10, 0);
    let done = village_weather::schedule::run(&sql, &cache, now)
        .await
        .expect("scheduled");
    assert_eq!(done.alert_jobs, 1, "{done:?}");
    let outside = StubServer::start(|_| {
        Reply::new(
            404,
            "application/problem+json",
            json!({"title": "Not Found", "status": 404,
                   "detail": "The requested point is outside the area served"})
            .to_string(),
        )
    })
    .await;
    let meteo = open_meteo(Arc::new(AtomicBool::new(false))).await;
    let http = NativeHttp::new(Duration::from_secs(2));
    let (meteo_url, nws_url, clock) = (meteo.url(), outside.url(), FixedClock(now));
    let registry = weather_jobs(&sql, &cache, &http, &clock, &meteo_url, &nws_url);
    let report = drain_low(&sql, &cache, now, &registry).await;
    assert_eq!(
        (report.succeeded, report.retried),
        (2, 0),
        "not a failure: {report:?}"
    );
    // The next hours ask Open-Meteo only, whatever the gazetteer says.
    let later = now + chrono::Duration::hours(1);
    let done = village_weather::schedule::run(&sql, &cache, later)
        .await
        .expect("scheduled");
    assert_eq!((done.forecast_jobs, done.alert_jobs), (1, 0), "{done:?}");
    assert_eq!(outside.requests().len(), 1);
}

#[tokio::test]
async fn a_silent_forecast_service_times_out_and_is_recorded() {
    let (sql, cache) = ports().await;
    let u = user(&sql, "slow@example.org").await;
    weather_at(&sql, u, json!({"lat": 48.85, "lon": 2.35})).await;
    let paris = village_weather::Location::rounded(48.85, 2.35).expect("valid");
    village_weather::schedule::mark_seen(&cache, &paris).await;
    let now = at(2026, 12, 1, 10, 0);
    village_weather::schedule::run(&sql, &cache, now)
        .await
        .expect("scheduled");
    let silent = StubServer::start(|_| Reply {
        delay: Some(Duration::from_secs(5)),
        ..Reply::json(200, &json!({}))
    })
    .await;
    let http = NativeHttp::new(Duration::from_millis(500));
    let (clock, silent_url) = (FixedClock(now), silent.url());
    let registry = Registry::new().with(village_weather::open_meteo::RefreshForecast {
        sql: &sql,
        cache: &cache,
        http: &http,
        clock: &clock,
        base_url: &silent_url,
    });
    let report = drain_low(&sql, &cache, now, &registry).await;
    assert_eq!(report.retried, 1, "{report:?}");
    let error: Option<String> = sql
        .query_opt("SELECT forecast_error FROM weather_cache", &[])
        .await
        .expect("q")
        .expect("row")
        .get("forecast_error")
        .expect("col");
    assert!(error.expect("recorded").contains("timed out"));
    let settings = json!({"lat": 48.85, "lon": 2.35})
        .as_object()
        .cloned()
        .expect("object");
    let v = village_weather::widget::view(&sql, &settings, Units::Metric, now)
        .await
        .expect("view");
    assert!(v.current.is_none());
    assert!(v.alerts.is_empty(), "Paris has no NWS alerts");
    assert!(v.notice.expect("said").contains("not answering"));
}

// ---------------------------------------------------------------------------
// Stocks
// ---------------------------------------------------------------------------

const AV_KEY: &str = "AVTESTKEY";

/// Alpha Vantage's `/query`: `SYMBOL_SEARCH` and `GLOBAL_QUOTE` for a few
/// listed symbols; an `Error Message` for a wrong key; the rate-limit
/// `Information` answer while `throttle` is set.
async fn alpha_vantage(throttle: Arc<AtomicBool>) -> StubServer {
    StubServer::start(move |r: &Recorded| {
        let url = url::Url::parse(&format!("http://x{}", r.path)).expect("path");
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        if q.get("apikey").map(String::as_str) != Some(AV_KEY) {
            return Reply::json(200, &json!({"Error Message": "the parameter apikey is invalid or missing."}));
        }
        if throttle.load(Ordering::SeqCst) {
            return Reply::json(200, &json!({"Information": "We have detected your API key as AVTESTKEY and our standard API rate limit is 25 requests per day."}));
        }
        let listed = [("IBM", "International Business Machines Corp"), ("AAPL", "Apple Inc"), ("MSFT", "Microsoft Corporation")];
        // VFIAX: a fund the search lists and GLOBAL_QUOTE answers empty.
        let searchable = [("VFIAX", "Vanguard 500 Index Fund Admiral Shares")];
        match q.get("function").map(String::as_str) {
            Some("SYMBOL_SEARCH") => {
                let kw = q.get("keywords").cloned().unwrap_or_default().to_uppercase();
                let matches: Vec<serde_json::Value> = listed
                    .iter()
                    .chain(searchable.iter())
                    .filter(|(s, _)| s.starts_with(&kw))
                    .map(|(s, n)| json!({"1. symbol": s, "2. name": n, "3. type": "Equity",
                        "4. region": "United States", "5. marketOpen": "09:30", "6. marketClose": "16:00",
                        "7. timezone": "UTC-04", "8. currency": "USD", "9. matchScore": "1.0000"}))
                    .collect();
                Reply::json(200, &json!({"bestMatches": matches}))
            }
            Some("GLOBAL_QUOTE") => {
                let symbol = q.get("symbol").cloned().unwrap_or_default();
                if !listed.iter().any(|(s, _)| *s == symbol) {
                    return Reply::json(200, &json!({"Global Quote": {}}));
                }
                Reply::json(200, &json!({"Global Quote": {
                    "01. symbol": symbol, "02. open": "100.0000", "03. high": "102.0000", "04. low": "99.0000",
                    "05. price": "101.2500", "06. volume": "1000", "07. latest trading day": "2026-12-01",
                    "08. previous close": "100.0000", "09. change": "1.2500", "10. change percent": "1.2500%"}}))
            }
            _ => Reply::json(200, &json!({"Error Message": "Invalid API call."})),
        }
    })
    .await
}

/// The quote handler, as a worker registers it.
fn quote_jobs<'a>(
    sql: &'a NativeSql,
    cache: &'a NativeCache,
    http: &'a NativeHttp,
    clock: &'a FixedClock,
    config: &'a village_stocks::Config,
) -> Registry<'a> {
    Registry::new().with(village_stocks::quotes::RefreshQuote {
        sql,
        cache,
        http,
        clock,
        config,
    })
}

/// A quota of `per_minute` a minute and 100 a day; no spacing between
/// calls unless a test asks for it (the tests' clock does not move).
fn stocks_config(base: String, per_minute: u32) -> village_stocks::Config {
    village_stocks::Config {
        alpha: village_stocks::alpha::AlphaVantage {
            base_url: base,
            api_key: AV_KEY.into(),
        },
        quota: village_stocks::quota::Quota {
            per_minute,
            per_day: 100,
            min_interval_ms: 0,
        },
        open_every_minutes: 15,
    }
}

fn quote_calls(server: &StubServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.path.contains("GLOBAL_QUOTE"))
        .count()
}

#[tokio::test]
async fn quotes_stay_inside_the_quota_however_many_watch_and_wait_when_it_is_spent() {
    let (sql, cache) = ports().await;
    let throttle = Arc::new(AtomicBool::new(false));
    let av = alpha_vantage(throttle.clone()).await;
    let http = NativeHttp::new(Duration::from_secs(2));
    let config = stocks_config(av.url(), 2);
    // Tuesday 1 December 2026, 11:00 in New York: the market is open.
    let t0 = at(2026, 12, 1, 16, 0);

    // Symbols are confirmed by SYMBOL_SEARCH once; unknown ones are refused.
    let first = Owner::User(user(&sql, "w0@example.org").await);
    let err = village_stocks::watchlist::add(&sql, &cache, &http, &config, first, "ZZZQ", t0)
        .await
        .expect_err("unknown symbol");
    assert!(format!("{err:?}").contains("no listed security"), "{err:?}");
    let err = village_stocks::watchlist::add(&sql, &cache, &http, &config, first, "AAPL;--", t0)
        .await
        .expect_err("malformed");
    assert!(format!("{err:?}").contains("ticker symbol"), "{err:?}");
    // 30 watchers of three symbols.
    for i in 0..30 {
        let owner = Owner::User(user(&sql, &format!("w{}@example.org", i + 1)).await);
        let symbol = ["ibm", "AAPL", "MSFT"][i % 3];
        let t = t0 + chrono::Duration::minutes(1 + i as i64); // fresh minute windows
        village_stocks::watchlist::add(&sql, &cache, &http, &config, owner, symbol, t)
            .await
            .expect("added");
    }
    let searches = av
        .requests()
        .iter()
        .filter(|r| r.path.contains("SYMBOL_SEARCH"))
        .count();
    assert_eq!(
        searches, 4,
        "one search per new symbol, plus the refused one"
    );
    // The refused symbol is remembered: asking again costs no call.
    let again = t0 + chrono::Duration::minutes(40);
    let err = village_stocks::watchlist::add(&sql, &cache, &http, &config, first, "ZZZQ", again)
        .await
        .expect_err("still unknown");
    assert!(format!("{err:?}").contains("no listed security"), "{err:?}");
    assert_eq!(av.requests().len(), 4, "no new call");
    // Each symbol's first quote was queued once, not 30 times.
    assert_eq!(
        count(
            &sql,
            "SELECT count(*) AS n FROM delayed_jobs WHERE handler = 'stocks.quote'"
        )
        .await,
        3
    );
    // The scheduler adds nothing while those wait.
    let t1 = at(2026, 12, 1, 17, 0);
    let s = village_stocks::schedule::run(&sql, &cache, &config, t1)
        .await
        .expect("scheduled");
    assert_eq!(
        (s.considered, s.queued, s.market_open),
        (0, 0, true),
        "{s:?}"
    );

    // Two calls a minute: two quotes now, the third deferred (not failed).
    let clock = FixedClock(t1);
    let registry = quote_jobs(&sql, &cache, &http, &clock, &config);
    let report = drain_low(&sql, &cache, t1, &registry).await;
    assert_eq!(
        (report.succeeded, report.deferred, report.dead),
        (2, 1, 0),
        "{report:?}"
    );
    assert_eq!(quote_calls(&av), 2, "never more calls than the quota");
    let (attempts, run_at, last_error): (i32, DateTime<Utc>, String) = {
        let r = sql
            .query_opt("SELECT attempts, run_at, last_error FROM delayed_jobs WHERE handler = 'stocks.quote' AND status = 'pending'", &[])
            .await
            .expect("q")
            .expect("the deferred job is still queued");
        (
            r.get("attempts").expect("a"),
            r.get("run_at").expect("r"),
            r.get("last_error").expect("e"),
        )
    };
    assert_eq!(attempts, 0);
    assert!(
        run_at >= t1 + chrono::Duration::minutes(1) && run_at < t1 + chrono::Duration::seconds(80),
        "when the minute has room, give or take a spread: {run_at}"
    );
    assert!(last_error.contains("per minute is spent"), "{last_error}");
    assert_eq!(
        count(
            &sql,
            "SELECT count(*) AS n FROM stock_throttle_events WHERE window_kind = 'minute'"
        )
        .await,
        1
    );
    let metrics = village_stocks::throttle::metrics(&cache)
        .await
        .expect("metrics");
    assert!(
        metrics.contains("village_stocks_throttled_total{window=\"minute\"} 1"),
        "{metrics}"
    );
    // The widget says quotes may be late.
    let view = village_stocks::widget::view(&sql, first, t1)
        .await
        .expect("view");
    assert!(view.items.is_empty());
    let watcher = Owner::User(
        sql.query_opt(
            "SELECT user_id FROM stock_watchlists WHERE symbol = 'IBM' LIMIT 1",
            &[],
        )
        .await
        .expect("q")
        .expect("row")
        .get("user_id")
        .expect("id"),
    );
    let view = village_stocks::widget::view(&sql, watcher, t1)
        .await
        .expect("view");
    assert!(
        view.notice
            .as_deref()
            .unwrap_or_default()
            .contains("per-minute limit"),
        "{view:?}"
    );
    assert!(
        view.market.starts_with("Market open · closes 4:00 PM ET"),
        "{}",
        view.market
    );

    // Once the minute has room, it runs.
    let t2 = t1 + chrono::Duration::seconds(90);
    let clock = FixedClock(t2);
    let registry = quote_jobs(&sql, &cache, &http, &clock, &config);
    let report = drain_low(&sql, &cache, t2, &registry).await;
    assert_eq!(report.succeeded, 1, "{report:?}");
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM stock_quotes").await,
        3
    );
    let view = village_stocks::widget::view(&sql, watcher, t2)
        .await
        .expect("view");
    let ibm = &view.items[0];
    assert_eq!(
        (ibm.symbol.as_str(), ibm.price.as_deref()),
        ("IBM", Some("101.25"))
    );
    assert_eq!(ibm.change.as_deref(), Some("+1.25 (+1.25%)"));
    assert_eq!(ibm.direction, "up");

    // Alpha Vantage's own "rate limit" answer defers too — a minute, as our
    // own count of the day is far from spent whatever their text says.
    throttle.store(true, Ordering::SeqCst);
    let t3 = at(2026, 12, 1, 18, 0);
    let s = village_stocks::schedule::run(&sql, &cache, &config, t3)
        .await
        .expect("scheduled");
    assert_eq!(s.queued, 3, "15 minutes passed while open: all due");
    let clock = FixedClock(t3);
    let registry = quote_jobs(&sql, &cache, &http, &clock, &config);
    let report = drain_low(&sql, &cache, t3, &registry).await;
    assert_eq!(
        (report.deferred, report.dead),
        (3, 0),
        "two calls fit our count and Alpha Vantage says wait; the third waits for our count: {report:?}"
    );
    let events = |window: &'static str| {
        let sql = &sql;
        async move {
            count(
                sql,
                &format!(
                    "SELECT count(*) AS n FROM stock_throttle_events WHERE window_kind = '{window}'"
                ),
            )
            .await
        }
    };
    assert_eq!(events("minute").await, 2, "one row per pause, not per job");
    assert_eq!(events("day").await, 0);
    let metrics = village_stocks::throttle::metrics(&cache)
        .await
        .expect("metrics");
    assert!(
        metrics.contains("village_stocks_throttled_total{window=\"minute\"} 4"),
        "every deferred refresh counted: {metrics}"
    );

    // Our own count of the day spent: the refreshes wait for midnight.
    throttle.store(false, Ordering::SeqCst);
    let tight = village_stocks::Config {
        quota: village_stocks::quota::Quota {
            per_day: 5,
            ..config.quota
        },
        ..config.clone()
    };
    let t4 = t3 + chrono::Duration::minutes(3);
    let clock = FixedClock(t4);
    let registry = quote_jobs(&sql, &cache, &http, &clock, &tight);
    let calls = quote_calls(&av);
    let report = drain_low(&sql, &cache, t4, &registry).await;
    assert_eq!(report.deferred, 3, "{report:?}");
    assert_eq!(quote_calls(&av), calls, "no call past the day's quota");
    assert_eq!(events("day").await, 1);
    let earliest: DateTime<Utc> = sql
        .query_opt(
            "SELECT min(run_at) AS t FROM delayed_jobs WHERE handler = 'stocks.quote' AND status = 'pending'",
            &[],
        )
        .await
        .expect("q")
        .expect("row")
        .get("t")
        .expect("t");
    assert!(earliest >= at(2026, 12, 2, 0, 0), "{earliest}");
}

#[tokio::test]
async fn calls_are_spaced_searches_are_bounded_and_unquotable_symbols_wait_a_day() {
    let (sql, cache) = ports().await;
    let av = alpha_vantage(Arc::new(AtomicBool::new(false))).await;
    let http = NativeHttp::new(Duration::from_secs(2));
    let mut config = stocks_config(av.url(), 5);
    config.quota.per_day = 10; // searches: 2 a day
    config.quota.min_interval_ms = 1_000;
    let t0 = at(2026, 12, 1, 16, 0);
    let owner = Owner::User(user(&sql, "spaced@example.org").await);
    // Searches, a second apart: a fund the search lists but GLOBAL_QUOTE
    // has nothing for, and IBM.
    village_stocks::watchlist::add(&sql, &cache, &http, &config, owner, "VFIAX", t0)
        .await
        .expect("added");
    let t1 = t0 + chrono::Duration::seconds(1);
    village_stocks::watchlist::add(&sql, &cache, &http, &config, owner, "IBM", t1)
        .await
        .expect("added");
    // A third search today is refused before any call; so is a symbol
    // already found unlisted.
    let searches = av.requests().len();
    let t2 = t0 + chrono::Duration::seconds(5);
    let err = village_stocks::watchlist::add(&sql, &cache, &http, &config, owner, "MSFT", t2)
        .await
        .expect_err("no searches left today");
    assert!(
        matches!(err, village_platform::AppError::TooManyRequests { .. }),
        "{err:?}"
    );
    assert_eq!(av.requests().len(), searches, "no call made");

    // Two first quotes due at once: one call now, the other a second later.
    let t3 = t0 + chrono::Duration::minutes(1);
    let clock = FixedClock(t3);
    let registry = quote_jobs(&sql, &cache, &http, &clock, &config);
    let report = drain_low(&sql, &cache, t3, &registry).await;
    assert_eq!((report.succeeded, report.deferred), (1, 1), "{report:?}");
    let gap: DateTime<Utc> = sql
        .query_opt(
            "SELECT run_at FROM delayed_jobs WHERE handler = 'stocks.quote' AND status = 'pending'",
            &[],
        )
        .await
        .expect("q")
        .expect("the paced job")
        .get("run_at")
        .expect("run_at");
    assert!(
        gap >= t3 + chrono::Duration::seconds(1) && gap < t3 + chrono::Duration::seconds(4),
        "{gap}"
    );
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM stock_throttle_events").await,
        0,
        "pacing is not a spent quota"
    );
    let t4 = t3 + chrono::Duration::seconds(5);
    let clock = FixedClock(t4);
    let registry = quote_jobs(&sql, &cache, &http, &clock, &config);
    let report = drain_low(&sql, &cache, t4, &registry).await;
    assert_eq!((report.succeeded, report.dead), (1, 0), "{report:?}");
    // The fund: noted, shown as having no quote, and not asked again today.
    let view = village_stocks::widget::view(&sql, owner, t4)
        .await
        .expect("view");
    let fund = view
        .items
        .iter()
        .find(|q| q.symbol == "VFIAX")
        .expect("listed");
    assert!(fund.no_quote && fund.price.is_none(), "{fund:?}");
    // Ten calls a day for two symbols, two kept for searches: each every
    // 130 minutes while open.
    let later = t0 + chrono::Duration::hours(3);
    let s = village_stocks::schedule::run(&sql, &cache, &config, later)
        .await
        .expect("scheduled");
    assert_eq!((s.considered, s.queued), (1, 1), "IBM only: {s:?}");
    let next_day = t0 + chrono::Duration::days(1) + chrono::Duration::hours(1);
    let s = village_stocks::schedule::run(&sql, &cache, &config, next_day)
        .await
        .expect("scheduled");
    assert_eq!(
        s.considered, 1,
        "IBM's job still waits; the fund is asked again: {s:?}"
    );
    // It misses again: the next day starts from this miss.
    let clock = FixedClock(next_day);
    let registry = quote_jobs(&sql, &cache, &http, &clock, &config);
    drain_low(&sql, &cache, next_day, &registry).await;
    let s =
        village_stocks::schedule::run(&sql, &cache, &config, next_day + chrono::Duration::hours(1))
            .await
            .expect("scheduled");
    assert_eq!(
        (s.considered, s.queued),
        (1, 0),
        "IBM, not due; the fund not asked again within the day: {s:?}"
    );
}

#[tokio::test]
async fn after_the_bell_the_closing_price_is_fetched_and_marked() {
    let (sql, cache) = ports().await;
    let av = alpha_vantage(Arc::new(AtomicBool::new(false))).await;
    let http = NativeHttp::new(Duration::from_secs(2));
    let config = stocks_config(av.url(), 5);
    let owner = Owner::User(user(&sql, "close@example.org").await);
    let before = at(2026, 12, 1, 20, 50); // 15:50 New York
    let bell = at(2026, 12, 1, 21, 20); // 16:20: the close has printed
    let (before_clock, bell_clock) = (FixedClock(before), FixedClock(bell));
    village_stocks::watchlist::add(&sql, &cache, &http, &config, owner, "IBM", before)
        .await
        .expect("added");
    let registry = |clock| {
        Registry::new().with(village_stocks::quotes::RefreshQuote {
            sql: &sql,
            cache: &cache,
            http: &http,
            clock,
            config: &config,
        })
    };
    drain_low(&sql, &cache, before, &registry(&before_clock)).await;
    let s = village_stocks::schedule::run(&sql, &cache, &config, bell)
        .await
        .expect("scheduled");
    assert_eq!(
        (s.queued, s.market_open),
        (1, false),
        "the close is due at once"
    );
    drain_low(&sql, &cache, bell, &registry(&bell_clock)).await;
    let view = village_stocks::widget::view(&sql, owner, bell)
        .await
        .expect("view");
    assert_eq!(view.items[0].as_of.as_deref(), Some("Close, Tue 01 Dec"));
    assert_eq!(view.market, "Market closed · opens Wed 9:30 AM ET");
    // Not again until an hour has passed.
    let s =
        village_stocks::schedule::run(&sql, &cache, &config, bell + chrono::Duration::minutes(30))
            .await
            .expect("scheduled");
    assert_eq!(s.queued, 0, "the close is in: nothing until the next open");
}

// ---------------------------------------------------------------------------
// Social
// ---------------------------------------------------------------------------

const APP_SECRET: &str = "meta-app-secret";
const K1: &str = "k1=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "k2=ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// Meta's Graph API as the widget uses it: the code and token exchanges
/// (`REVOKED` is refused with code 190, as an invalidated token is),
/// `/me`, the pages' Instagram account, posts and media.
async fn graph() -> StubServer {
    StubServer::start(|r: &Recorded| {
        let url = url::Url::parse(&format!("http://x{}", r.path)).expect("path");
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        let token = |t: &str, days: i64| Reply::json(200, &json!({"access_token": t, "token_type": "bearer", "expires_in": days * 86_400}));
        let invalid = Reply::json(400, &json!({"error": {"message": "Error validating access token: The user has not authorized application 123.", "type": "OAuthException", "code": 190, "error_subcode": 458, "fbtrace_id": "AbC"}}));
        match url.path() {
            "/v21.0/oauth/access_token" => {
                if q.get("client_secret").map(String::as_str) != Some(APP_SECRET) {
                    return Reply::json(400, &json!({"error": {"message": "Error validating client secret.", "type": "OAuthException", "code": 1}}));
                }
                match (q.get("code").map(String::as_str), q.get("fb_exchange_token").map(String::as_str)) {
                    (Some("good-code"), _) => token("SHORT-1", 0),
                    (_, Some("SHORT-1")) => token("LONG-1", 60),
                    (_, Some("LONG-1")) => token("LONG-2", 60),
                    (Some(_), _) => Reply::json(
                        400,
                        &json!({"error": {"message": "This authorization code has been used.",
                            "type": "OAuthException", "code": 100, "error_subcode": 36009,
                            "fbtrace_id": "AbC"}}),
                    ),
                    _ => invalid,
                }
            }
            path => {
                let t = q.get("access_token").cloned().unwrap_or_default();
                if !t.starts_with("LONG-") {
                    return invalid;
                }
                match path {
                    "/v21.0/me" => Reply::json(200, &json!({"id": "fb-42", "name": "Ada Lovelace"})),
                    "/v21.0/me/accounts" => Reply::json(200, &json!({"data": [
                        {"id": "page-1", "instagram_business_account": {"id": "ig-7", "username": "ada.bakes"}}]})),
                    "/v21.0/me/posts" => Reply::json(200, &json!({"data": [
                        {"id": "42_1", "message": "Bake sale on Saturday <b>bring cake</b>", "created_time": "2026-11-30T08:15:00+0000",
                         "permalink_url": "https://www.facebook.com/42/posts/1"}], "paging": {}})),
                    "/v21.0/ig-7/media" => Reply::json(200, &json!({"data": [
                        {"id": "179", "caption": "Sourdough", "media_type": "IMAGE",
                         "media_url": "https://scontent.cdninstagram.com/bread.jpg",
                         "permalink": "https://www.instagram.com/p/xyz/", "timestamp": "2026-11-29T10:00:00+0000"}]})),
                    _ => Reply::json(404, &json!({"error": {"message": "Unknown path", "code": 803}})),
                }
            }
        }
    })
    .await
}

fn social_config(graph: &StubServer, keys: &str) -> village_social::Config {
    village_social::Config {
        meta: village_social::graph::Meta {
            app_id: "123".into(),
            app_secret: APP_SECRET.into(),
            www_origin: "https://www.facebook.com".into(),
            graph_origin: graph.url(),
        },
        keys: village_social::tokens::KeyRing::try_from(keys).expect("keys"),
        public_base_url: "https://village.example".into(),
    }
}

async fn connection(sql: &NativeSql, user: Uuid) -> (String, String, Vec<u8>, DateTime<Utc>) {
    let r = sql
        .query_opt(
            "SELECT status, token_key_id, token_sealed, token_expires_at FROM social_connections WHERE user_id = $1",
            &[SqlValue::Uuid(user)],
        )
        .await
        .expect("q")
        .expect("a connection");
    (
        r.get("status").expect("s"),
        r.get("token_key_id").expect("k"),
        r.get("token_sealed").expect("t"),
        r.get("token_expires_at").expect("e"),
    )
}

#[tokio::test]
async fn a_meta_connection_is_sealed_refreshed_lapses_is_archived_and_reseals() {
    let (sql, cache) = ports().await;
    let meta = graph().await;
    let mailgun = StubServer::start(|_| {
        Reply::json(
            200,
            &json!({"id": "<1@mg>", "message": "Queued. Thank you."}),
        )
    })
    .await;
    let http = NativeHttp::new(Duration::from_secs(2));
    let config = social_config(&meta, K1);
    let ada = user(&sql, "ada@example.org").await;
    let t0 = at(2026, 12, 1, 9, 0);

    // Connect: the state must be ours, for this user, and in the cookie.
    let (dialog, state) = village_social::connect::start(&config, ada, t0).expect("starts");
    assert!(dialog.starts_with("https://www.facebook.com/v21.0/dialog/oauth?"));
    let refused = village_social::connect::complete(
        &sql,
        &cache,
        &http,
        &config,
        ada,
        "good-code",
        &state,
        Some("other"),
        t0,
    )
    .await;
    assert!(refused.is_err(), "a state not in the cookie is refused");
    village_social::connect::complete(
        &sql,
        &cache,
        &http,
        &config,
        ada,
        "good-code",
        &state,
        Some(&state),
        t0,
    )
    .await
    .expect("connected");
    let (status, key, sealed, expires) = connection(&sql, ada).await;
    assert_eq!((status.as_str(), key.as_str()), ("active", "k1"));
    assert!(
        !String::from_utf8_lossy(&sealed).contains("LONG-1"),
        "sealed at rest"
    );
    assert_eq!(expires, t0 + chrono::Duration::days(60));

    // The first fetch was queued on connect. While the kill switch is off
    // (social_integration's default) it runs without calling Meta.
    let t0_clock = FixedClock(t0);
    let fetch = village_social::posts::FetchPosts {
        sql: &sql,
        cache: &cache,
        http: &http,
        clock: &t0_clock,
        config: &config,
    };
    let registry = Registry::new().with(fetch);
    let fetch_now = async || {
        village_jobs::enqueue(
            &sql,
            &cache,
            t0,
            village_jobs::NewJob::new(
                Queue::Default,
                village_social::jobs::FETCH_POSTS,
                json!({ "user_id": ada }),
            ),
        )
        .await
        .expect("queued");
        drain(
            &sql,
            &cache,
            &t0_clock,
            &registry,
            Queue::Default,
            "t",
            Duration::from_secs(10),
            10,
        )
        .await
        .expect("drain")
    };
    let calls_before = meta.requests().len();
    let report = drain(
        &sql,
        &cache,
        &t0_clock,
        &registry,
        Queue::Default,
        "t",
        Duration::from_secs(10),
        10,
    )
    .await
    .expect("drain");
    assert_eq!(report.succeeded, 1, "{report:?}");
    assert_eq!(
        meta.requests().len(),
        calls_before,
        "the kill switch stops calls to Meta"
    );
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM social_posts").await,
        0
    );
    // On for Ada alone (an allow-list, the usual first rollout): posts
    // from both networks.
    sql.execute(
        "UPDATE feature_flags SET allow_user_ids = ARRAY[$1::uuid] WHERE key = 'social_integration'",
        &[SqlValue::Uuid(ada)],
    )
    .await
    .expect("flag on");
    village_flags::store::invalidate(&cache).await;
    let report = fetch_now().await;
    assert_eq!(report.succeeded, 1, "{report:?}");
    let v = village_social::widget::view(&sql, Some(ada))
        .await
        .expect("view");
    assert_eq!(v.posts.len(), 2);
    assert_eq!(
        v.posts[0].message, "Bake sale on Saturday <b>bring cake</b>",
        "stored as text; the template escapes it"
    );
    assert_eq!(v.instagram.as_deref(), Some("ada.bakes"));
    assert!(!v.needs_reconnect());
    // A post the user removes stays removed when the next fetch brings it:
    // its content gone, the tombstone untouched.
    assert!(
        village_social::posts::remove(&sql, ada, "instagram", "179", t0)
            .await
            .expect("removed")
    );
    fetch_now().await;
    let v = village_social::widget::view(&sql, Some(ada))
        .await
        .expect("view");
    assert_eq!(v.posts.len(), 1, "{:?}", v.posts);
    let tomb = sql
        .query_opt(
            "SELECT message, image_url, permalink, removed_at FROM social_posts \
             WHERE post_id = '179'",
            &[],
        )
        .await
        .expect("q")
        .expect("the tombstone");
    let message: String = tomb.get("message").expect("m");
    let image: Option<String> = tomb.get("image_url").expect("i");
    let removed: Option<DateTime<Utc>> = tomb.get("removed_at").expect("r");
    assert_eq!((message.as_str(), image, removed), ("", None, Some(t0)));
    assert!(
        !village_social::posts::remove(&sql, ada, "instagram", "179", t0)
            .await
            .expect("answered"),
        "already gone"
    );
    // Reloading the callback (its code used): a 400 to start again.
    let (_, state) = village_social::connect::start(&config, ada, t0).expect("starts");
    let err = village_social::connect::complete(
        &sql,
        &cache,
        &http,
        &config,
        ada,
        "used-code",
        &state,
        Some(&state),
        t0,
    )
    .await
    .expect_err("refused");
    assert!(
        matches!(err, village_platform::AppError::Validation(_)),
        "{err:?}"
    );
    // The kill switch stops the fetches again, allow-list or not.
    sql.execute(
        "UPDATE feature_flags SET kill_switch = true WHERE key = 'social_integration'",
        &[],
    )
    .await
    .expect("killed");
    village_flags::store::invalidate(&cache).await;
    let calls = meta.requests().len();
    fetch_now().await;
    assert_eq!(meta.requests().len(), calls, "killed: no call to Meta");

    // `run_at` takes its time; the clock is only what a worker would read.
    let clock = FixedClock(t0);
    let upkeep = |_now: DateTime<Utc>, config| village_social::upkeep::Upkeep {
        sql: &sql,
        cache: &cache,
        http: &http,
        clock: &clock,
        config,
        mail: village_social::upkeep::Mail {
            relay: village_platform::mail::Mailgun {
                base_url: mailgun.url(),
                domain: "mg.village.example".into(),
                api_key: "key-1".into(),
            },
            from: "Village <noreply@village.example>".into(),
            site_url: "https://village.example".into(),
            http: &http,
        },
    };
    // Eight days before expiry: nothing to do.
    let r = upkeep(t0 + chrono::Duration::days(52), &config)
        .run_at(t0 + chrono::Duration::days(52))
        .await
        .expect("upkeep");
    assert_eq!(r.refreshed, 0);
    // Six days before: refreshed with Meta's exchange, resealed.
    let t1 = t0 + chrono::Duration::days(54);
    let r = upkeep(t1, &config).run_at(t1).await.expect("upkeep");
    assert_eq!(r.refreshed, 1, "{r:?}");
    assert!(
        meta.requests()
            .iter()
            .any(|q| q.path.contains("fb_exchange_token=LONG-1"))
    );
    let (_, _, sealed2, expires2) = connection(&sql, ada).await;
    assert_eq!(expires2, t1 + chrono::Duration::days(60));
    let opened = config
        .keys
        .open(
            &village_social::tokens::Sealed {
                key_id: "k1".into(),
                bytes: sealed2,
            },
            ada,
        )
        .expect("opens");
    assert_eq!(opened, "LONG-2");

    // Keys rotate: the upkeep reseals under the new key; the old may go.
    let rotated = social_config(&meta, &format!("{K2},{K1}"));
    let r = upkeep(t1, &rotated).run_at(t1).await.expect("upkeep");
    assert_eq!(r.resealed, 1, "{r:?}");
    let (_, key, sealed3, _) = connection(&sql, ada).await;
    assert_eq!(key, "k2");
    let k2_only = social_config(&meta, K2);
    assert_eq!(
        k2_only
            .keys
            .open(
                &village_social::tokens::Sealed {
                    key_id: key,
                    bytes: sealed3
                },
                ada
            )
            .expect("opens"),
        "LONG-2"
    );

    // Meta revokes the token: the refresh is refused, the connection goes
    // stale, the user is emailed once.
    let revoked = k2_only.keys.seal("REVOKED", ada).expect("seals");
    sql.execute(
        "UPDATE social_connections SET token_key_id = $2, token_sealed = $3, token_expires_at = $4 WHERE user_id = $1",
        &[SqlValue::Uuid(ada), SqlValue::Text(revoked.key_id), SqlValue::Bytes(revoked.bytes), SqlValue::Timestamp(t1 + chrono::Duration::days(3))],
    )
    .await
    .expect("update");
    let t2 = t1 + chrono::Duration::days(1);
    let r = upkeep(t2, &k2_only).run_at(t2).await.expect("upkeep");
    assert_eq!((r.marked_stale, r.notified), (1, 1), "{r:?}");
    let emails = mailgun.requests();
    assert_eq!(emails.len(), 1);
    assert!(String::from_utf8_lossy(&emails[0].body).contains("ada%40example.org"));
    let r = upkeep(t2, &k2_only).run_at(t2).await.expect("upkeep");
    assert_eq!(r.notified, 0, "once");
    let v = village_social::widget::view(&sql, Some(ada))
        .await
        .expect("view");
    assert_eq!(v.status.as_deref(), Some("stale"));
    assert!(v.needs_reconnect());
    assert!(
        v.posts.iter().all(|p| !p.archived),
        "posts stay live for seven days"
    );

    // Seven days stale is not yet "more than seven days".
    let week = t2 + chrono::Duration::days(7);
    let r = upkeep(week, &k2_only).run_at(week).await.expect("upkeep");
    assert_eq!(r.archived, 0, "{r:?}");
    // More than seven days stale: archived, posts still shown.
    let t3 = t2 + chrono::Duration::days(8);
    let r = upkeep(t3, &k2_only).run_at(t3).await.expect("upkeep");
    assert_eq!(
        r.archived, 1,
        "the live post (the removed one stays removed): {r:?}"
    );
    let v = village_social::widget::view(&sql, Some(ada))
        .await
        .expect("view");
    assert_eq!(v.status.as_deref(), Some("archived"));
    assert_eq!(v.posts.len(), 1);
    assert!(v.posts.iter().all(|p| p.archived));
}

#[tokio::test]
async fn metas_signed_callbacks_are_verified_and_answered_in_its_format() {
    let (sql, cache) = ports().await;
    let meta = graph().await;
    let http = NativeHttp::new(Duration::from_secs(2));
    let config = social_config(&meta, K1);
    let ada = user(&sql, "ada2@example.org").await;
    let now = at(2026, 12, 1, 9, 0);
    let connect = async || {
        let (_, state) = village_social::connect::start(&config, ada, now).expect("starts");
        village_social::connect::complete(
            &sql,
            &cache,
            &http,
            &config,
            ada,
            "good-code",
            &state,
            Some(&state),
            now,
        )
        .await
        .expect("connected");
        village_social::posts::store(
            &sql,
            ada,
            "fb-42",
            &village_social::graph::items(
                &json!({"data": [
            {"id": "42_9", "message": "hello", "created_time": "2026-11-30T08:15:00+0000"}]}),
                "facebook",
            ),
            now,
        )
        .await
        .expect("stored");
    };
    connect().await;
    let post = http::Method::POST;
    let form = |signed: &str| {
        format!(
            "signed_request={}",
            url::form_urlencoded::byte_serialize(signed.as_bytes()).collect::<String>()
        )
    };
    let call = async |path: &str, signed: &str| {
        village_social::webhooks::handle(
            &post,
            path,
            form(signed).as_bytes(),
            &sql,
            APP_SECRET,
            "https://village.example",
            now,
        )
        .await
    };
    let payload =
        json!({"algorithm": "HMAC-SHA256", "issued_at": now.timestamp() - 60, "user_id": "fb-42"});

    // A forged request, or a genuine one replayed days later, changes nothing.
    let forged = village_social::signed_request::sign(&payload, "not-the-secret");
    let err = call("/webhooks/meta/data-deletion", &forged)
        .await
        .expect_err("refused");
    assert!(format!("{err:?}").contains("signature"), "{err:?}");
    let mut old = payload.clone();
    old["issued_at"] = json!(now.timestamp() - 3 * 86_400);
    let replayed = village_social::signed_request::sign(&old, APP_SECRET);
    let err = call("/webhooks/meta/data-deletion", &replayed)
        .await
        .expect_err("refused");
    assert!(format!("{err:?}").contains("not current"), "{err:?}");
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM social_connections").await,
        1
    );

    // Deauthorize: the token goes; posts stay, archived.
    let signed = village_social::signed_request::sign(&payload, APP_SECRET);
    let r = call("/webhooks/meta/deauthorize", &signed)
        .await
        .expect("honoured");
    assert_eq!(r.status(), 200);
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM social_connections").await,
        0
    );
    assert_eq!(
        count(
            &sql,
            "SELECT count(*) AS n FROM social_posts WHERE archived"
        )
        .await,
        1
    );

    // Then the deletion request Meta sends after a deauthorization: the
    // posts are found by the Facebook account and deleted; Meta gets the
    // status URL and the confirmation code.
    let r = call("/webhooks/meta/data-deletion", &signed)
        .await
        .expect("honoured");
    let body: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
    let code = body["confirmation_code"]
        .as_str()
        .expect("a code")
        .to_owned();
    assert_eq!(
        body["url"],
        format!("https://village.example/social/deletion/{code}")
    );
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM social_posts").await,
        0
    );
    let status = village_social::webhooks::deletion_status(&sql, &code)
        .await
        .expect("q")
        .expect("recorded");
    assert_eq!((status.connections, status.posts), (0, 1), "{status:?}");
    assert!(status.completed_at.is_some(), "done at once");

    // Connected again, a deletion takes the connection too.
    connect().await;
    let r = call("/webhooks/meta/data-deletion", &signed)
        .await
        .expect("honoured");
    let body: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
    let code = body["confirmation_code"]
        .as_str()
        .expect("a code")
        .to_owned();
    let status = village_social::webhooks::deletion_status(&sql, &code)
        .await
        .expect("q")
        .expect("recorded");
    assert_eq!((status.connections, status.posts), (1, 1), "{status:?}");
    assert_eq!(
        count(&sql, "SELECT count(*) AS n FROM social_connections").await,
        0
    );
}

// ---------------------------------------------------------------------------
// End to end, on village and on Spin
// ---------------------------------------------------------------------------

async fn until(what: &str, probe: impl AsyncFnMut() -> bool) {
    until_within(what, Duration::from_secs(60), probe).await;
}

async fn until_within(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The seven widgets, in the visitor's imperial units.
fn seven_widgets(city_id: i64) -> serde_json::Value {
    json!({
        "schema_version": 1,
        "layout": {"columns": 3, "widgets": [
            {"id": "news", "type": "news", "column": 0, "position": 0, "size": "large"},
            {"id": "weather", "type": "weather", "column": 1, "position": 0, "size": "medium", "settings": {"city_id": city_id}},
            {"id": "stocks", "type": "stocks", "column": 1, "position": 1, "size": "small"},
            {"id": "social", "type": "social", "column": 1, "position": 2, "size": "medium"},
            {"id": "good-sites", "type": "good_sites", "column": 2, "position": 0, "size": "medium"},
            {"id": "marketplace", "type": "marketplace", "column": 2, "position": 1, "size": "medium"},
            {"id": "quick-links", "type": "quick_links", "column": 2, "position": 2, "size": "small"}
        ]},
        "settings": {"theme": "system", "units": "imperial"}
    })
}

const FLAGS_ON: &str = "UPDATE feature_flags SET enabled = true, rollout_percent = 100 \
                        WHERE key IN ('stocks_widget', 'social_integration')";

#[tokio::test]
async fn the_homepage_with_all_seven_widgets_and_every_provider_down_renders_from_the_caches() {
    // Every provider answers 503, and records that it was asked.
    let down =
        StubServer::start(|_| Reply::json(503, &json!({"error": true, "reason": "down"}))).await;
    let app = village_e2e::spawn_app_with(|o| {
        for k in [
            "open_meteo_base_url",
            "nws_base_url",
            "alpha_vantage_base_url",
            "facebook_graph_origin",
        ] {
            o.variables.insert(k.into(), down.url());
        }
        o.variables.insert("social_token_keys".into(), K1.into());
        o.variables
            .insert("facebook_client_id".into(), "123".into());
        o.variables
            .insert("facebook_client_secret".into(), APP_SECRET.into());
    })
    .await;
    app.execute(FLAGS_ON).await;
    let (ada, cookie) = app.signed_in_as(&[]).await;
    let portland = app
        .count("SELECT id FROM geo_cities WHERE name = 'Portland' AND admin_code = 'OR'")
        .await;
    let saved = app
        .put_json(
            "/api/preferences",
            seven_widgets(portland).to_string(),
            Some(&cookie),
        )
        .await;
    assert_eq!(saved.status(), 200);
    // What the crons filled earlier.
    for statement in [
        "INSERT INTO weather_cache (location_key, latitude, longitude, in_us, forecast, forecast_fetched_at, expires_at, alerts, alerts_fetched_at) \
         VALUES ('45.5,-122.7', 45.5, -122.7, true, \
           '{\"timezone\": \"America/Los_Angeles\", \"current\": {\"time\": \"2026-12-01T08:00\", \"temperature_c\": 10.0, \"feels_like_c\": 8.0, \"humidity_pct\": 81, \"wind_kmh\": 16.1, \"code\": 61}, \
              \"days\": [{\"date\": \"2026-12-01\", \"code\": 61, \"max_c\": 11.0, \"min_c\": 5.0, \"precipitation_pct\": 90}]}', \
           now() AT TIME ZONE 'utc', (now() AT TIME ZONE 'utc') + interval '1 hour', \
           '[{\"event\": \"Flood Warning\", \"severity\": \"Severe\", \"headline\": \"Flood Warning until Thursday\", \"instruction\": null, \"until\": null}]', \
           now() AT TIME ZONE 'utc')".to_owned(),
        "INSERT INTO stock_symbols (symbol, name) VALUES ('IBM', 'International Business Machines Corp')".to_owned(),
        format!(
            "INSERT INTO stock_watchlists (user_id, symbol, position) VALUES ('{ada}', 'IBM', 0)"
        ),
        "INSERT INTO stock_quotes (symbol, price, change, change_percent, previous_close, trading_day, fetched_at) \
           VALUES ('IBM', 101.25, 1.25, 1.25, 100, '2026-12-01', now() AT TIME ZONE 'utc')".to_owned(),
        format!(
            "INSERT INTO social_connections (user_id, meta_user_id, name, token_key_id, token_sealed, token_expires_at) \
           VALUES ('{ada}', 'fb-42', 'Ada Lovelace', 'k1', '\\x00', (now() AT TIME ZONE 'utc') + interval '30 days')"
        ),
        format!(
            "INSERT INTO social_posts (user_id, meta_user_id, network, post_id, message, posted_at) \
           VALUES ('{ada}', 'fb-42', 'facebook', '42_1', 'Bake sale <script>alert(1)</script>', now() AT TIME ZONE 'utc')"
        ),
    ] {
        app.execute(&statement).await;
    }

    let page = app.get("/", Some(&cookie)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert_eq!(
        html.matches("<section class=\"widget ").count(),
        7,
        "all seven widgets"
    );
    assert!(
        html.contains("50°F"),
        "weather from the cache, in °F: {html}"
    );
    assert!(html.contains("Flood Warning"));
    assert!(
        html.contains(">IBM</abbr>") && html.contains("101.25"),
        "the quote from the cache"
    );
    assert!(html.contains("Bake sale &#60;script&#62;"), "posts escaped");
    assert!(!html.contains("<script>alert(1)"));
    assert!(
        down.requests().is_empty(),
        "no provider is called while the page renders: {:?}",
        down.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
    );

    // The crons run; the workers meet the dead providers; the page still
    // renders what it had.
    for cron in ["weather-scheduler", "stocks-scheduler", "social-scheduler"] {
        app.fire_cron(cron).await;
    }
    until("the workers to try the providers", async || {
        app.count("SELECT count(*) FROM weather_cache WHERE forecast_failed_at IS NOT NULL")
            .await
            == 1
    })
    .await;
    let page = app.get("/", Some(&cookie)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("50°F") && html.contains("101.25"), "{html}");
    app.stop().await;
}

#[tokio::test]
async fn weather_quotes_and_metas_callbacks_work_through_the_runtime() {
    let meteo = open_meteo(Arc::new(AtomicBool::new(false))).await;
    let alerts = nws(Arc::new(AtomicBool::new(false))).await;
    let av = alpha_vantage(Arc::new(AtomicBool::new(false))).await;
    let app = village_e2e::spawn_app_with(|o| {
        for (k, v) in [
            ("open_meteo_base_url", meteo.url()),
            ("nws_base_url", alerts.url()),
            ("alpha_vantage_base_url", av.url()),
            ("alpha_vantage_api_key", AV_KEY.to_owned()),
            ("social_token_keys", K1.to_owned()),
            ("facebook_client_id", "123".to_owned()),
            ("facebook_client_secret", APP_SECRET.to_owned()),
            ("facebook_www_origin", "https://www.facebook.com".to_owned()),
        ] {
            o.variables.insert(k.into(), v);
        }
    })
    .await;
    let (_, cookie) = app.signed_in_as(&[]).await;

    // Weather: choose the place with the widget's form; the refresh is
    // queued at once and the worker fills the cache.
    let chosen = app
        .client
        .post(app.url("/weather/widget"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("near=Portland%2C+OR")
        .send()
        .await
        .expect("answered");
    assert_eq!(chosen.status(), 303);
    until("the forecast and alerts", async || {
        app.count(
            "SELECT count(*) FROM weather_cache WHERE forecast IS NOT NULL AND alerts IS NOT NULL",
        )
        .await
            == 1
    })
    .await;
    let html = app
        .get("/", Some(&cookie))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("10°C") && html.contains("Portland, OR") && html.contains("Flood Warning"),
        "{html}"
    );
    let bad = app
        .client
        .post(app.url("/weather/widget"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("near=Nowhere+Special%2C+ZZ")
        .send()
        .await
        .expect("answered");
    assert_eq!(bad.status(), 400, "a readable refusal");

    // Stocks: off until the flag is on.
    let post = reqwest::Method::POST;
    let (code, _) = app
        .call_json(
            post.clone(),
            "/api/stocks/watchlist",
            Some(json!({"symbol": "IBM"})),
            &cookie,
        )
        .await;
    assert_eq!(code, 404, "behind stocks_widget");
    app.execute(FLAGS_ON).await;
    // Flags are cached briefly in Redis: drop the cache, as the admin API does.
    let (_, app_cache) = test_ports(&app.db_url).await;
    village_flags::store::invalidate(&app_cache).await;
    until("the flag to turn on", async || {
        app.call_json(reqwest::Method::GET, "/api/stocks/watchlist", None, &cookie)
            .await
            .0
            == 200
    })
    .await;
    let (code, refused) = app
        .call_json(
            post.clone(),
            "/api/stocks/watchlist",
            Some(json!({"symbol": "NOPE!"})),
            &cookie,
        )
        .await;
    assert_eq!(code, 400, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "symbol");
    let (code, added) = app
        .call_json(
            post.clone(),
            "/api/stocks/watchlist",
            Some(json!({"symbol": "ibm"})),
            &cookie,
        )
        .await;
    assert_eq!(code, 201, "{added}");
    assert_eq!(added["name"], "International Business Machines Corp");
    // The search just took a call, so the first quote is paced a second
    // later (deferred); a deferred job is woken by the minute sweep
    // (`jobs-sweeper`), so it may take up to a minute more.
    until_within("the first quote", Duration::from_secs(150), async || {
        app.count("SELECT count(*) FROM stock_quotes").await == 1
    })
    .await;
    let (_, list) = app
        .call_json(reqwest::Method::GET, "/api/stocks/watchlist", None, &cookie)
        .await;
    assert_eq!(list["symbols"][0]["price"], "101.25", "{list}");
    let metrics = app
        .get("/q/metrics", None)
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains("village_stocks_throttled_total{window=\"day\"} 0"),
        "{metrics}"
    );

    // Ops see the quota: its use and what waits for it; others do not.
    let (code, _) = app
        .call_json(
            reqwest::Method::GET,
            "/admin/api/queues/throttles",
            None,
            &cookie,
        )
        .await;
    assert_eq!(code, 403, "manage_system only");
    let (_, ops) = app.signed_in_as(&["ops"]).await;
    let (code, view) = app
        .call_json(
            reqwest::Method::GET,
            "/admin/api/queues/throttles",
            None,
            &ops,
        )
        .await;
    assert_eq!(code, 200, "{view}");
    assert!(
        view["quota"]["used_today"].as_i64().unwrap_or_default() >= 2,
        "a search and a quote: {view}"
    );
    assert_eq!(view["quota"]["per_day"], 25);
    assert!(view["events"].as_array().is_some(), "{view}");

    // Social: the connect route sends the browser to Meta's dialog.
    let connect = app.get("/social/connect", Some(&cookie)).await;
    assert_eq!(connect.status(), 303);
    let location = connect.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        location.starts_with("https://www.facebook.com/v21.0/dialog/oauth?client_id=123"),
        "{location}"
    );
    assert!(
        connect.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .starts_with("vh_social_state=")
    );

    // Meta's data-deletion callback, signed and forged.
    let signed = village_social::signed_request::sign(
        &json!({"algorithm": "HMAC-SHA256", "issued_at": Utc::now().timestamp(), "user_id": "fb-1"}),
        APP_SECRET,
    );
    let call = async |signed: &str| {
        app.client
            .post(app.url("/webhooks/meta/data-deletion"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "signed_request={}",
                url::form_urlencoded::byte_serialize(signed.as_bytes()).collect::<String>()
            ))
            .send()
            .await
            .expect("answered")
    };
    let answer = call(&signed).await;
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.expect("json");
    let code = body["confirmation_code"].as_str().expect("code").to_owned();
    assert!(
        body["url"]
            .as_str()
            .expect("url")
            .ends_with(&format!("/social/deletion/{code}"))
    );
    let status_page = app.get(&format!("/social/deletion/{code}"), None).await;
    assert_eq!(status_page.status(), 200);
    let forged = village_social::signed_request::sign(
        &json!({"algorithm": "HMAC-SHA256", "issued_at": Utc::now().timestamp(), "user_id": "fb-1"}),
        "guess",
    );
    assert_eq!(call(&forged).await.status(), 400);
    app.stop().await;
}
