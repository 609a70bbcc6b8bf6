//! `village-bench widgets`: the homepage with all seven widgets, three of
//! them fed by outside providers (weather, stocks, social), beside the
//! same page with only the four that need no provider — through the
//! runtime, the real `homepage` component, real Postgres and Redis.
//!
//! The providers are down for the whole run: their base URLs point at a
//! listener that accepts connections and never answers, and the run
//! counts the connections it got — any is a page that called a provider
//! (`homepage`'s allow-list in `spin.toml` names only Postgres and Redis,
//! so the runtime would refuse one anyway; the count says it never tried).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{LoadResult, load_expecting};

#[derive(clap::Args)]
pub struct WidgetsArgs {
    /// Concurrent keep-alive connections (visitors at once).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds per page per round.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds, alternating the two pages; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

pub fn run(args: WidgetsArgs) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(measure(args))
}

fn layout(widgets: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = widgets
        .iter()
        .enumerate()
        .map(|(i, (kind, settings))| {
            serde_json::json!({"id": format!("w{i}"), "type": kind, "column": i % 3,
                               "position": i / 3, "size": "medium", "settings": settings})
        })
        .collect();
    serde_json::json!({"columns": 3, "widgets": list})
}

async fn measure(args: WidgetsArgs) -> anyhow::Result<()> {
    // The providers: accepted, never answered.
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let down = format!("http://{}", blackhole.local_addr()?);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = blackhole.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });

    let url = village_migrate::testing::fresh_database().await?;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(
            "UPDATE feature_flags SET enabled = true, rollout_percent = 100 \
               WHERE key IN ('stocks_widget', 'social_integration'); \
             DELETE FROM feeds WHERE is_default; \
             UPDATE rate_limit_rules SET limit_count = 1000000000; \
             INSERT INTO stock_symbols (symbol, name) VALUES \
               ('IBM', 'International Business Machines'), ('AAPL', 'Apple Inc'), ('MSFT', 'Microsoft'); \
             INSERT INTO stock_quotes (symbol, price, change, change_percent, previous_close, trading_day, fetched_at) \
               SELECT symbol, 101.25, 1.25, 1.25, 100, current_date, now() AT TIME ZONE 'utc' FROM stock_symbols",
        )
        .await?;
    let portland: i64 = client
        .query_one(
            "SELECT id FROM geo_cities WHERE name = 'Portland' AND admin_code = 'OR'",
            &[],
        )
        .await?
        .get(0);
    client
        .execute(
            "INSERT INTO weather_cache (location_key, latitude, longitude, in_us, forecast, \
                 forecast_fetched_at, expires_at, alerts, alerts_fetched_at) \
             VALUES ('45.5,-122.7', 45.5, -122.7, true, $1, now() AT TIME ZONE 'utc', \
                 (now() AT TIME ZONE 'utc') + interval '1 day', '[]', now() AT TIME ZONE 'utc')",
            &[&serde_json::json!({"timezone": "America/Los_Angeles",
                "current": {"time": "2026-12-01T08:00", "temperature_c": 10.0, "feels_like_c": 8.0,
                            "humidity_pct": 81, "wind_kmh": 16.0, "code": 61},
                "days": [{"date": "2026-12-01", "code": 61, "max_c": 11.0, "min_c": 5.0, "precipitation_pct": 90}]})],
        )
        .await?;
    let seven = layout(&[
        ("news", serde_json::json!({})),
        ("weather", serde_json::json!({"city_id": portland})),
        ("stocks", serde_json::json!({})),
        ("social", serde_json::json!({})),
        ("good_sites", serde_json::json!({})),
        ("marketplace", serde_json::json!({})),
        ("quick_links", serde_json::json!({})),
    ]);
    let four = layout(&[
        ("news", serde_json::json!({})),
        ("good_sites", serde_json::json!({})),
        ("marketplace", serde_json::json!({})),
        ("quick_links", serde_json::json!({})),
    ]);
    // One returning visitor per connection and page, with their layout
    // saved (and, for the seven, a three-symbol watchlist).
    let mut visitors: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for (page, doc) in [&seven, &four].into_iter().enumerate() {
        for _ in 0..args.connections {
            let anon = uuid::Uuid::new_v4();
            let user: uuid::Uuid = client
                .query_one(
                    "INSERT INTO users (is_anonymous, anon_id) VALUES (true, $1) RETURNING id",
                    &[&anon],
                )
                .await?
                .get(0);
            client
                .execute(
                    "INSERT INTO user_preferences (user_id, schema_version, layout, settings) \
                     VALUES ($1, 1, $2, '{\"theme\": \"system\", \"units\": \"imperial\"}')",
                    &[&user, doc],
                )
                .await?;
            if page == 0 {
                client
                    .execute(
                        "INSERT INTO stock_watchlists (user_id, symbol, position) \
                         SELECT $1, symbol, row_number() OVER (ORDER BY symbol) FROM stock_symbols",
                        &[&user],
                    )
                    .await?;
            }
            visitors[page].push(format!("vu_anon_id={anon}"));
        }
    }

    let mut options = crate::project_options(&url, &["homepage"]);
    for provider in [
        "open_meteo_base_url",
        "nws_base_url",
        "alpha_vantage_base_url",
        "facebook_graph_origin",
    ] {
        options.variables.insert(provider.into(), down.clone());
    }
    let running = village_runtime::start(options, "127.0.0.1:0".parse()?).await?;
    println!(
        "village-bench widgets: {} connections, {} s per page per round, {} rounds, {} cores, providers down",
        args.connections,
        args.seconds,
        args.rounds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let ok = |s: http::StatusCode| s == http::StatusCode::OK;
    let page = |n: usize| {
        let cookies = visitors[n].clone();
        move |i: usize| ("/".to_owned(), Some(cookies[i % cookies.len()].clone()))
    };
    // Warm (components compiled, pools filled, flags cached).
    load_expecting(running.addr, page(0), 2, 1, ok).await?;
    load_expecting(running.addr, page(1), 2, 1, ok).await?;
    let mut with_providers = Vec::new();
    let mut without = Vec::new();
    for _ in 0..args.rounds.max(1) {
        without
            .push(load_expecting(running.addr, page(1), args.connections, args.seconds, ok).await?);
        with_providers
            .push(load_expecting(running.addr, page(0), args.connections, args.seconds, ok).await?);
    }
    running.stop().await;
    let median = |rounds: &mut Vec<LoadResult>| -> LoadResult {
        rounds.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
        rounds.remove(rounds.len() / 2)
    };
    let without = median(&mut without);
    let with_providers = median(&mut with_providers);
    println!("median round (by throughput):");
    crate::row("4 widgets (baseline)", &without);
    crate::row("7 widgets", &with_providers);
    println!(
        "seven widgets: p99 {:.1} ms ({:.1} ms more than the baseline's), {:.0} % of its throughput; \
         provider connections during the run: {}",
        with_providers.percentile(0.99).as_secs_f64() * 1e3,
        (with_providers.percentile(0.99).as_secs_f64() - without.percentile(0.99).as_secs_f64())
            * 1e3,
        100.0 * with_providers.rps() / without.rps(),
        calls.load(Ordering::SeqCst)
    );
    Ok(())
}
