//! `clicks.maintain`: the hourly upkeep of `link_clicks` (queued by the
//! `clicks-maintenance` cron component, one job per hour slot).
//!
//! 1. Partitions: one per day from yesterday to [`PARTITIONS_AHEAD`] days
//!    ahead exist after every run (`link_clicks_ensure_partition`, V29).
//! 2. Rollups: yesterday's clicks are rolled up every run (late clicks
//!    of the day are folded in), and any earlier day of the last week
//!    without an agreeing run. Only complete days are rolled up: a day's
//!    rollup is final once it agrees.
//! 3. Agreement: after each day's rollup its raw rows are counted again
//!    and compared with the rolled-up sum; the result is a row of
//!    `link_click_rollup_runs` and, when they differ, an error in the log.
//! 4. Popularity: `link_popularity` (visitors per link over the last 30
//!    complete days) rebuilt from the rollups.
//! 5. Retention: partitions wholly older than [`RAW_DAYS`] days are
//!    dropped, rollups older than [`ROLLUP_DAYS`] deleted.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use village_jobs::{Job, JobError, JobHandler};
use village_platform::clock::Clock;
use village_platform::sql::{Sql, SqlError, SqlValue};

pub const NAME: &str = "clicks.maintain";
/// Days of partitions made ahead (the blueprint: "partitions exist for
/// the next two months").
pub const PARTITIONS_AHEAD: i64 = 60;
/// Raw clicks are kept 90 days.
pub const RAW_DAYS: i64 = 90;
/// Rollups are kept two years.
pub const ROLLUP_DAYS: i64 = 730;
/// How far back a day without an agreeing rollup is caught up.
const CATCH_UP_DAYS: i64 = 7;

fn date(d: NaiveDate) -> SqlValue {
    SqlValue::Text(d.format("%Y-%m-%d").to_string())
}

/// One day's rollup and its check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayRollup {
    pub day: NaiveDate,
    pub raw_clicks: i64,
    pub rolled_up: i64,
    pub agreed: bool,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Report {
    pub partitions_created: usize,
    pub partitions_dropped: i64,
    pub rollups: Vec<DayRollup>,
    pub rollups_pruned: u64,
    /// Links with clicks in the popularity window.
    pub popular_links: u64,
}

/// Makes sure the partition of `day` exists; true when it was created.
pub async fn ensure_partition(sql: &impl Sql, day: NaiveDate) -> Result<bool, SqlError> {
    let row = sql
        .query_opt(
            "SELECT link_clicks_ensure_partition($1::text::date) AS created",
            &[date(day)],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("no answer".into()))?;
    row.get("created")
}

/// Rolls up `day` (replacing what was there) and checks the result
/// against the raw rows, recording the check.
pub async fn roll_up(
    sql: &impl Sql,
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Result<DayRollup, SqlError> {
    // One statement: the day's old rollup rows that no longer occur are
    // deleted, the rest replaced, atomically.
    sql.execute(
        "WITH fresh AS ( \
             SELECT link_kind, link_id, source, category_id, count(*) AS clicks, \
                    count(DISTINCT visitor) + count(*) FILTER (WHERE visitor IS NULL) AS visitors \
             FROM link_clicks \
             WHERE clicked_at >= $1::text::date AND clicked_at < $1::text::date + 1 \
             GROUP BY 1, 2, 3, 4), \
         gone AS ( \
             DELETE FROM link_click_rollups r WHERE r.day = $1::text::date AND NOT EXISTS ( \
                 SELECT 1 FROM fresh f WHERE f.link_kind = r.link_kind AND f.link_id = r.link_id \
                     AND f.source = r.source AND f.category_id = r.category_id)) \
         INSERT INTO link_click_rollups (day, link_kind, link_id, source, category_id, clicks, visitors) \
         SELECT $1::text::date, link_kind, link_id, source, category_id, clicks, visitors FROM fresh \
         ON CONFLICT (day, link_kind, link_id, source, category_id) \
         DO UPDATE SET clicks = EXCLUDED.clicks, visitors = EXCLUDED.visitors",
        &[date(day)],
    )
    .await?;
    check(sql, day, now).await
}

/// Counts `day`'s raw clicks and its rolled-up sum afresh (one statement,
/// one snapshot), records the comparison in `link_click_rollup_runs`, and
/// logs an error when they differ.
pub async fn check(
    sql: &impl Sql,
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Result<DayRollup, SqlError> {
    let row = sql
        .query_opt(
            "WITH counted AS ( \
                 SELECT (SELECT count(*) FROM link_clicks \
                         WHERE clicked_at >= $1::text::date AND clicked_at < $1::text::date + 1) AS raw, \
                        (SELECT coalesce(sum(clicks), 0)::bigint FROM link_click_rollups \
                         WHERE day = $1::text::date) AS rolled) \
             INSERT INTO link_click_rollup_runs (day, raw_clicks, rolled_up, agreed, ran_at) \
             SELECT $1::text::date, raw, rolled, raw = rolled, $2 FROM counted \
             RETURNING raw_clicks, rolled_up, agreed",
            &[date(day), SqlValue::Timestamp(now)],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("no answer".into()))?;
    let result = DayRollup {
        day,
        raw_clicks: row.get("raw_clicks")?,
        rolled_up: row.get("rolled_up")?,
        agreed: row.get("agreed")?,
    };
    if !result.agreed {
        village_platform::log::event(
            "ERROR",
            "click rollup disagrees with the raw clicks",
            serde_json::json!({ "job": NAME, "day": day.to_string(),
                                "raw_clicks": result.raw_clicks, "rolled_up": result.rolled_up }),
        );
    }
    Ok(result)
}

/// The days this run rolls up: yesterday, and each earlier day of the
/// last week whose latest run did not agree (or that never ran).
async fn days_to_roll_up(sql: &impl Sql, today: NaiveDate) -> Result<Vec<NaiveDate>, SqlError> {
    let from = today - Duration::days(CATCH_UP_DAYS);
    let rows = sql
        .query(
            "SELECT d::date::text AS day FROM generate_series($1::text::date, $2::text::date - 2, \
                 interval '1 day') d \
             WHERE NOT coalesce((SELECT agreed FROM link_click_rollup_runs r \
                                 WHERE r.day = d::date ORDER BY ran_at DESC, id DESC LIMIT 1), false) \
             ORDER BY 1",
            &[date(from), date(today)],
        )
        .await?;
    let mut days = rows
        .iter()
        .map(|r| {
            r.get::<String>("day").and_then(|d| {
                NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                    .map_err(|e| SqlError::Decode(e.to_string()))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    days.push(today - Duration::days(1));
    Ok(days)
}

/// Rebuilds `link_popularity` from the rollups of the window ending
/// yesterday, in one statement (readers see the old table or the new).
pub async fn refresh_popularity(sql: &impl Sql, today: NaiveDate) -> Result<u64, SqlError> {
    let since = today - Duration::days(crate::popularity::WINDOW_DAYS);
    let row = sql
        .query_opt(
            "WITH fresh AS ( \
                 SELECT link_kind, link_id, sum(visitors)::bigint AS visitors, \
                        sum(clicks)::bigint AS clicks \
                 FROM link_click_rollups WHERE day >= $1::text::date \
                 GROUP BY link_kind, link_id), \
             gone AS ( \
                 DELETE FROM link_popularity p WHERE NOT EXISTS ( \
                     SELECT 1 FROM fresh f WHERE f.link_kind = p.link_kind AND f.link_id = p.link_id)), \
             kept AS ( \
                 INSERT INTO link_popularity (link_kind, link_id, visitors, clicks) \
                 SELECT link_kind, link_id, visitors, clicks FROM fresh \
                 ON CONFLICT (link_kind, link_id) \
                 DO UPDATE SET visitors = EXCLUDED.visitors, clicks = EXCLUDED.clicks \
                 RETURNING 1) \
             SELECT count(*) AS n FROM kept",
            &[date(since)],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("no answer".into()))?;
    Ok(row.get::<i64>("n")? as u64)
}

/// One run (see the module doc).
pub async fn run(sql: &impl Sql, now: DateTime<Utc>) -> Result<Report, SqlError> {
    let today = now.date_naive();
    let mut report = Report::default();
    for offset in -1..=PARTITIONS_AHEAD {
        if ensure_partition(sql, today + Duration::days(offset)).await? {
            report.partitions_created += 1;
        }
    }
    for day in days_to_roll_up(sql, today).await? {
        report.rollups.push(roll_up(sql, day, now).await?);
    }
    report.popular_links = refresh_popularity(sql, today).await?;
    report.partitions_dropped = sql
        .query_opt(
            "SELECT link_clicks_drop_before($1::text::date) AS dropped",
            &[date(today - Duration::days(RAW_DAYS))],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("no answer".into()))?
        .get::<i32>("dropped")? as i64;
    report.rollups_pruned = sql
        .execute(
            "DELETE FROM link_click_rollups WHERE day < $1::text::date",
            &[date(today - Duration::days(ROLLUP_DAYS))],
        )
        .await?;
    sql.execute(
        "DELETE FROM link_click_rollup_runs WHERE day < $1::text::date",
        &[date(today - Duration::days(ROLLUP_DAYS))],
    )
    .await?;
    Ok(report)
}

/// The job handler the workers register.
pub struct Maintain<'a, S, K> {
    pub sql: &'a S,
    pub clock: &'a K,
}

impl<S: Sql, K: Clock> JobHandler for Maintain<'_, S, K> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        let report = run(self.sql, self.clock.now())
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        village_platform::log::event(
            "INFO",
            "click tables maintained",
            serde_json::json!({ "job": NAME, "report": report }),
        );
        Ok(())
    }
}

/// Queues this hour's run (one per hour slot, whatever fires it).
pub async fn schedule(
    sql: &impl Sql,
    cache: &impl village_platform::cache::Cache,
    now: DateTime<Utc>,
) -> Result<village_jobs::JobId, village_jobs::JobsError> {
    let job = village_jobs::NewJob::new(village_jobs::Queue::Low, NAME, serde_json::json!({}))
        .idempotency_key(format!("{NAME}:{}", now.format("%Y-%m-%dT%H")));
    village_jobs::enqueue(sql, cache, now, job).await
}
