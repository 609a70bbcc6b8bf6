//! `village-bench clicks`: `/track/click` under concurrent load through the
//! runtime — the real `track-click` component from `spin.toml`, against
//! the real Postgres (one row per click, committed before the 302) and
//! Redis (the `click` rate-limit counters, made too generous to refuse).
//!
//! Each round loads `/healthz` (the `probes` component: the runtime's floor
//! for a component answering without I/O) and then `/track/click`, each
//! connection following its own signed link. Afterwards the clicks
//! recorded per link are counted against the redirects served: a click
//! answered but not on disk is a lost click.

use village_clicks::{Link, LinkKind, LinkSigner};

use crate::{LoadResult, load, load_expecting};

const KEYS: &str = "bench=village-bench-click-signing-key-0123456789";

#[derive(clap::Args)]
pub struct ClicksArgs {
    /// Concurrent keep-alive connections (visitors clicking at once).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds per path per round.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds, alternating the two paths; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

pub fn run(args: ClicksArgs) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(measure(args))
}

async fn measure(args: ClicksArgs) -> anyhow::Result<()> {
    let url = village_migrate::testing::fresh_database().await?;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    // Every visitor here is one address: the per-address and per-visitor
    // click limits stay checked (their Redis counters are part of the
    // cost) but would refuse nearly everything.
    client
        .batch_execute(
            "UPDATE rate_limit_rules SET limit_count = 1000000000 WHERE action = 'click'",
        )
        .await?;
    let mut options = crate::project_options(&url, &["track-click", "probes"]);
    options
        .variables
        .insert("click_signing_keys".into(), KEYS.into());
    let running = village_runtime::start(options, "127.0.0.1:0".parse()?).await?;
    println!(
        "village-bench clicks: {} connections, {} s per path per round, {} rounds, {} cores",
        args.connections,
        args.seconds,
        args.rounds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let signer = LinkSigner::from_settings(KEYS, None, chrono::Utc::now())
        .map_err(anyhow::Error::msg)?
        .ok_or_else(|| anyhow::anyhow!("no signer"))?;
    // One approved Good Sites entry per connection: a click is recorded
    // only while what it leads to still stands.
    let mut sites = Vec::new();
    for i in 0..args.connections {
        let row = client
            .query_one(
                "INSERT INTO directory_sites (url, url_key, host, title, category_id, status, \
                     created_at, updated_at, approved_at) \
                 SELECT $1, $2, $2, 'Bench site', id, 'approved', now(), now(), now() \
                 FROM directory_categories WHERE slug = 'music' RETURNING id",
                &[
                    &format!("https://site-{i}.example.org/page"),
                    &format!("site-{i}.example.org/page"),
                ],
            )
            .await?;
        sites.push(row.get::<_, i64>(0));
    }
    // Connection `i` is a returning visitor (their `vu_anon_id` cookie)
    // clicking the link at position `i + 1`.
    let link = move |i: usize| {
        let cookie = format!("vu_anon_id={}", uuid::Uuid::new_v4());
        let href = signer.href(
            &Link::to(
                format!("https://site-{i}.example.org/page"),
                LinkKind::Site,
                sites[i],
                "bench",
            )
            .at(i + 1),
        );
        (href, Some(cookie))
    };
    let redirect = |s: http::StatusCode| s == http::StatusCode::FOUND;
    // Warm both (components compiled, pools filled).
    load(running.addr, "/healthz", 1, 1).await?;
    let warm = load_expecting(running.addr, &link, 1, 1, redirect).await?;
    let mut floor = Vec::new();
    let mut clicks = Vec::new();
    for _ in 0..args.rounds.max(1) {
        floor.push(load(running.addr, "/healthz", args.connections, args.seconds).await?);
        clicks.push(
            load_expecting(
                running.addr,
                &link,
                args.connections,
                args.seconds,
                redirect,
            )
            .await?,
        );
    }
    let served: usize = clicks
        .iter()
        .chain([&warm])
        .map(|r| r.requests - r.errors)
        .sum();
    let refused: usize = clicks.iter().chain([&warm]).map(|r| r.errors).sum();
    let median = |rounds: &mut Vec<LoadResult>| -> LoadResult {
        rounds.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
        rounds.remove(rounds.len() / 2)
    };
    let floor = median(&mut floor);
    let clicks = median(&mut clicks);
    running.stop().await;

    let recorded: i64 = client
        .query_one(
            "SELECT count(*) FROM link_clicks WHERE source = 'bench'",
            &[],
        )
        .await?
        .get(0);
    let misfiled: i64 = client
        .query_one(
            "SELECT count(*) FROM link_clicks c LEFT JOIN directory_sites s ON s.id = c.link_id \
             WHERE c.source = 'bench' AND (s.url IS DISTINCT FROM c.target_url \
                 OR c.target_url <> 'https://site-' || (c.position - 1) || '.example.org/page')",
            &[],
        )
        .await?
        .get(0);
    println!("median round (by throughput):");
    crate::row("/healthz (floor)", &floor);
    crate::row("/track/click", &clicks);
    println!(
        "redirects: {:.0}/s (target ≥ 3000), p99 {:.2} ms; {:.0} % of the floor's throughput",
        clicks.rps(),
        clicks.percentile(0.99).as_secs_f64() * 1e3,
        100.0 * clicks.rps() / floor.rps()
    );
    println!(
        "clicks: {served} redirects served, {recorded} recorded, {} lost, {misfiled} recorded against the wrong link, {refused} answers not a 302",
        served as i64 - recorded
    );
    Ok(())
}
