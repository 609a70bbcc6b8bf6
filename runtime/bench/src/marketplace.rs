//! `village-bench marketplace`: radius search at a million listings.
//!
//! Seeds a fresh database with `--listings` active listings (1,000,000 by
//! default) spread over the gazetteer's real places, as many per place as
//! its share of the population (jittered up to 5 km around it), then for
//! each radius (10, 50, 100, 250 miles), without and with a keyword, runs
//! `--queries` searches around places drawn by population — through the
//! whole `marketplace` function (HTTP, the runtime, the component, its
//! Postgres calls) and, in the same run, the bare SQL statement the
//! function sends (`Search::params`) over a native connection — and prints
//! p50/p95/p99 of each. Searches are nearest first (the default, keywords
//! or not); the last rows rank by relevance (`sort=relevance`, fewer
//! searches: each reads every match in the radius). Targets (issue #15):
//! p95 < 20 ms at 100 miles, < 40 ms at 250 miles, page of 50.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use village_marketplace::search::SearchQuery;
use village_platform::native::NativeSql;
use village_platform::sql::Sql;

use crate::percentile;

#[derive(clap::Args)]
pub struct MarketplaceArgs {
    /// Listings to seed.
    #[arg(long, default_value_t = 1_000_000)]
    listings: i64,
    /// Searches per radius and keyword setting, each path.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Searches per radius ranked by relevance (`sort=relevance`), each path.
    #[arg(long, default_value_t = 40)]
    ranked_queries: usize,
}

const KEYWORD: &str = "table";

pub fn run(args: MarketplaceArgs) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(measure(args))
}

async fn seed(client: &tokio_postgres::Client, listings: i64) -> anyhow::Result<()> {
    let started = Instant::now();
    client
        .batch_execute(
            "INSERT INTO users (id, is_anonymous, email, display_name) \
             VALUES ('00000000-0000-0000-0000-00000000be7c', false, 'bench@example.com', 'Bench')",
        )
        .await?;
    // Words for titles: one in twenty titles says "table".
    client
        .execute(
            "WITH total AS (SELECT sum(population)::float8 AS p FROM geo_cities), \
                  words AS (SELECT ARRAY['oak table', 'mountain bike', 'sofa', 'lamp', 'guitar', \
                      'desk', 'bookshelf', 'kayak', 'drill', 'jacket', 'camera', 'tent', 'piano', \
                      'dresser', 'stroller', 'monitor', 'mirror', 'rug', 'grill', 'heater'] AS w), \
                  cats AS (SELECT ARRAY[11, 12, 13, 14, 15, 16, 18]::bigint[] AS c) \
             INSERT INTO marketplace_listings (seller_id, category_id, title, body_markdown, \
                 body_html, price_cents, city_id, place_name, location, contact_method, \
                 contact_value, status, published_at, expires_at) \
             SELECT '00000000-0000-0000-0000-00000000be7c', \
                 cats.c[1 + (g % 7)], \
                 initcap(words.w[1 + (g % 20)]) || ' no. ' || g, \
                 'A good ' || words.w[1 + ((g * 7) % 20)] || ', barely used.', \
                 '<p>A good ' || words.w[1 + ((g * 7) % 20)] || ', barely used.</p>', \
                 (g % 500) * 100, city.id, city.name || ', ' || city.admin_code, \
                 ST_Project(city.location, random() * 5000, radians(random() * 360)), \
                 'email', 'bench@example.com', 'active', \
                 now() - random() * interval '30 days', now() + interval '30 days' \
             FROM total, words, cats, geo_cities city, \
                  generate_series(1, greatest(1, round($1::float8 * city.population / total.p)::int)) g",
            &[&(listings as f64)],
        )
        .await?;
    client.batch_execute("ANALYZE marketplace_listings").await?;
    let n: i64 = client
        .query_one("SELECT count(*) FROM marketplace_listings", &[])
        .await?
        .get(0);
    println!(
        "seeded {n} listings over {} places in {:.0} s",
        client
            .query_one(
                "SELECT count(DISTINCT city_id) FROM marketplace_listings",
                &[]
            )
            .await?
            .get::<_, i64>(0),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `count` places drawn by population (with replacement), deterministic.
async fn places(client: &tokio_postgres::Client, count: usize) -> anyhow::Result<Vec<i64>> {
    let rows = client
        .query(
            "WITH c AS (SELECT id, sum(population) OVER (ORDER BY id) AS cum, \
                     sum(population) OVER () AS total FROM geo_cities) \
             SELECT (SELECT id FROM c WHERE cum >= (s.i * 7919 % 10007)::float8 / 10007 * total \
                     ORDER BY cum LIMIT 1) \
             FROM generate_series(1, $1::bigint) s(i), (SELECT max(total) AS total FROM c) t",
            &[&(count as i64)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

struct Figures {
    function: Vec<Duration>,
    sql: Vec<Duration>,
    results: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn measure(args: MarketplaceArgs) -> anyhow::Result<()> {
    let url = village_migrate::testing::fresh_database().await?;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    println!(
        "village-bench marketplace: {} listings, {} searches per case and path, {} cores",
        args.listings,
        args.queries,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    seed(&client, args.listings).await?;
    // One address sends every search: the per-address API limit would
    // refuse most of them.
    client
        .batch_execute("DELETE FROM rate_limit_rules WHERE action = 'api'")
        .await?;
    let options = crate::project_options(&url, &["marketplace"]);
    let running = village_runtime::start(options, "127.0.0.1:0".parse()?).await?;
    let sql = NativeSql::connect(&url).await?;
    let mut sender = connect(running.addr).await?;
    let cities = places(&client, args.queries).await?;

    println!(
        "{:>7} {:>14} | {:>32} | {:>32} | {:>7}",
        "radius",
        "keyword",
        "function p50 / p95 / p99 (ms)",
        "bare SQL p50 / p95 / p99 (ms)",
        "results"
    );
    let cases = [10, 50, 100, 250]
        .into_iter()
        .flat_map(|r| [(r, None, false), (r, Some(KEYWORD), false)]);
    let ranked = [10, 50, 100, 250]
        .into_iter()
        .map(|r| (r, Some(KEYWORD), true));
    for (radius, keyword, by_rank) in cases.chain(ranked) {
        let cities = if by_rank {
            &cities[..args.ranked_queries.min(cities.len())]
        } else {
            &cities[..]
        };
        let mut f = Figures {
            function: Vec::new(),
            sql: Vec::new(),
            results: 0,
        };
        for (i, city) in cities.iter().enumerate() {
            let mut query = format!("city_id={city}&radius={radius}&limit=50");
            if let Some(k) = keyword {
                query.push_str(&format!("&q={k}"));
            }
            if by_rank {
                query.push_str("&sort=relevance");
            }
            // Alternate which path goes first, so neither always finds
            // the other's pages in the cache.
            let search = SearchQuery::from_query(&query)
                .check(&sql)
                .await
                .map_err(|e| anyhow::anyhow!("search {query}: {e}"))?;
            let (statement, params) = search.params(&sql).await?;
            let bare = async {
                let t = Instant::now();
                let rows = sql.query(statement, &params).await?;
                anyhow::Ok((t.elapsed(), rows.len()))
            };
            let path = format!("/api/marketplace/listings?{query}");
            if i % 2 == 0 {
                let (d, n) = bare.await?;
                f.sql.push(d);
                f.results += n.min(50);
                f.function
                    .push(get(&mut sender, running.addr, &path).await?);
            } else {
                f.function
                    .push(get(&mut sender, running.addr, &path).await?);
                let (d, n) = bare.await?;
                f.sql.push(d);
                f.results += n.min(50);
            }
        }
        f.function.sort();
        f.sql.sort();
        let p = |v: &[Duration]| {
            format!(
                "{:>8.2} / {:>8.2} / {:>8.2}",
                ms(percentile(v, 0.5)),
                ms(percentile(v, 0.95)),
                ms(percentile(v, 0.99))
            )
        };
        println!(
            "{:>4} mi {:>14} | {:>32} | {:>32} | {:>7.1}",
            radius,
            match (keyword, by_rank) {
                (None, _) => "—".to_owned(),
                (Some(k), false) => k.to_owned(),
                (Some(k), true) => format!("{k}, ranked"),
            },
            p(&f.function),
            p(&f.sql),
            f.results as f64 / cities.len() as f64
        );
    }
    running.stop().await;
    Ok(())
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One GET on a keep-alive connection, timed from the request's start; a
/// connection the server has closed is replaced first (as a browser does),
/// outside the timing.
async fn get(
    sender: &mut Sender,
    addr: std::net::SocketAddr,
    path: &str,
) -> anyhow::Result<Duration> {
    if sender.ready().await.is_err() {
        *sender = connect(addr).await?;
    }
    let req = http::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let t = Instant::now();
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let elapsed = t.elapsed();
    if !status.is_success() {
        anyhow::bail!("{path}: {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(elapsed)
}
