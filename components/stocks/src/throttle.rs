//! Telling ops the quota stopped refreshes: a row in
//! `stock_throttle_events` per pause (the ops queue view,
//! `GET /admin/api/queues/throttles`, lists the latest with the quota's
//! use), a counter of deferred refreshes on `/q/metrics`
//! (`village_stocks_throttled_total{window}`), and a warning in the log
//! when a pause begins. The deferred jobs themselves stay queued.

use chrono::{DateTime, Duration, Utc};
use village_platform::cache::Cache;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::quota::Spent;

/// The Redis hash of throttle counters, by window.
pub const COUNTERS: &str = "stocks:throttled";
/// Throttle events kept this long.
pub const KEEP_DAYS: i64 = 30;

/// Records that `symbol`'s refresh waits for `spent` (a minute or a day
/// window: pacing gaps are routine and not recorded). A pause already on
/// for the window is not recorded twice.
pub async fn record(
    sql: &impl Sql,
    cache: &impl Cache,
    spent: Spent,
    symbol: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    if spent.window == crate::quota::Window::Gap {
        return Ok(());
    }
    let began = sql
        .execute(
            "INSERT INTO stock_throttle_events (at, window_kind, symbol, resume_at) \
             SELECT $1, $2, $3, $4 WHERE NOT EXISTS ( \
                 SELECT 1 FROM stock_throttle_events WHERE window_kind = $2 AND resume_at > $1)",
            &[
                SqlValue::Timestamp(now),
                SqlValue::Text(spent.window.as_str().into()),
                symbol.map_or(SqlValue::Null, |s| SqlValue::Text(s.into())),
                SqlValue::Timestamp(spent.resume_at),
            ],
        )
        .await?
        == 1;
    // At once: a worker has no "after the answer" to defer to.
    let count = [
        cache.key(COUNTERS).into(),
        spent.window.as_str().into(),
        1i64.into(),
    ];
    if let Err(e) = cache.execute("HINCRBY", &count).await {
        village_platform::log::event(
            "WARNING",
            &format!("throttle counter not updated: {e}"),
            serde_json::json!({}),
        );
    }
    if began {
        village_platform::log::event(
            "WARNING",
            "Alpha Vantage quota spent: quote refreshes wait",
            serde_json::json!({ "window": spent.window.as_str(), "symbol": symbol,
                                "resume_at": spent.resume_at.to_rfc3339() }),
        );
    }
    Ok(())
}

/// Drops throttle events older than [`KEEP_DAYS`].
pub async fn prune(sql: &impl Sql, now: DateTime<Utc>) -> Result<u64, SqlError> {
    sql.execute(
        "DELETE FROM stock_throttle_events WHERE at < $1",
        &[SqlValue::Timestamp(now - Duration::days(KEEP_DAYS))],
    )
    .await
}

/// The throttle counters in the Prometheus text format.
pub async fn metrics(cache: &impl Cache) -> Result<String, village_platform::cache::CacheError> {
    let fields = village_platform::cache::counters(cache, &cache.key(COUNTERS)).await?;
    let mut out = String::from(
        "# HELP village_stocks_throttled_total Quote refreshes deferred because the Alpha Vantage quota was spent, by window.\n\
         # TYPE village_stocks_throttled_total counter\n",
    );
    for window in ["minute", "day"] {
        out.push_str(&format!(
            "village_stocks_throttled_total{{window=\"{window}\"}} {}\n",
            fields.get(window).copied().unwrap_or(0)
        ));
    }
    Ok(out)
}

/// A recent throttle event, for the ops view.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub window: String,
    pub symbol: Option<String>,
    pub resume_at: DateTime<Utc>,
}

/// The latest throttle events, newest first.
pub async fn recent(sql: &impl Sql, limit: i64) -> Result<Vec<Event>, SqlError> {
    let rows = sql
        .query(
            "SELECT at, window_kind, symbol, resume_at FROM stock_throttle_events \
             ORDER BY at DESC, id DESC LIMIT $1",
            &[SqlValue::Int64(limit)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Event {
                at: r.get("at")?,
                window: r.get("window_kind")?,
                symbol: r.get("symbol")?,
                resume_at: r.get("resume_at")?,
            })
        })
        .collect()
}

/// The ops view (`GET /admin/api/queues/throttles`): the quota's use now,
/// the refreshes waiting for it, and the latest pauses.
pub async fn ops_view(
    sql: &impl Sql,
    cache: &impl Cache,
    quota: crate::quota::Quota,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, village_platform::AppError> {
    let (minute, day) = crate::quota::used(cache, now).await.map_err(|e| {
        village_platform::AppError::Unavailable {
            dependency: "redis",
            detail: e.to_string(),
        }
    })?;
    let waiting: i64 = sql
        .query_opt(
            "SELECT count(*) AS n FROM delayed_jobs WHERE handler = $1 AND status = 'pending' \
               AND last_error LIKE 'deferred:%'",
            &[SqlValue::Text(crate::jobs::QUOTE.into())],
        )
        .await?
        .map(|r| r.get("n"))
        .transpose()?
        .unwrap_or(0);
    Ok(serde_json::json!({
        "quota": {
            "per_minute": quota.per_minute, "per_day": quota.per_day,
            "used_last_minute": minute, "used_today": day,
        },
        "deferred_refreshes": waiting,
        "events": recent(sql, 50).await?,
    }))
}
