//! Watchlists: each visitor's symbols, in order, at most
//! [`MAX_SYMBOLS`]. A symbol joins a watchlist only once Alpha Vantage's
//! `SYMBOL_SEARCH` has listed it exactly; after that it is known
//! (`stock_symbols`) and costs no further call. An anonymous visitor's
//! first addition creates their `users` row, as a first saved preference
//! does.
//!
//! Searches share the quota quotes live on, so visitors cannot spend it:
//! at most a fifth of the day's calls go to searches ([`search_share`]),
//! and a symbol the search did not list is remembered for a day (asking
//! again costs nothing).

use chrono::{DateTime, Utc};
use uuid::Uuid;
use village_jobs::{NewJob, Queue};
use village_platform::AppError;
use village_platform::cache::{Cache, CacheValue};
use village_platform::error::FieldError;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlError, SqlValue};
use village_preferences::Owner;

use crate::alpha::AlphaError;
use crate::{Config, Symbol};

pub const MAX_SYMBOLS: i64 = 10;

/// Searches allowed per UTC day: a fifth of the day's calls, at least one.
pub fn search_share(per_day: u32) -> i64 {
    i64::from(per_day / 5).max(1)
}

/// A watched symbol with its name.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Watched {
    pub symbol: String,
    pub name: String,
}

fn invalid(message: impl Into<String>) -> AppError {
    AppError::Validation(vec![FieldError::new("symbol", message.into())])
}

/// The owner's `users` row, if they have one.
async fn user_of(sql: &impl Sql, owner: Owner) -> Result<Option<Uuid>, SqlError> {
    match owner {
        Owner::User(id) => Ok(Some(id)),
        Owner::Anonymous(anon) => sql
            .query_opt(
                "SELECT id FROM users WHERE anon_id = $1",
                &[SqlValue::Uuid(anon.as_uuid())],
            )
            .await?
            .map(|r| r.get("id"))
            .transpose(),
    }
}

/// The owner's `users` row, created for an anonymous visitor.
async fn ensure_user(sql: &impl Sql, owner: Owner) -> Result<Uuid, SqlError> {
    match owner {
        Owner::User(id) => Ok(id),
        Owner::Anonymous(anon) => sql
            .query_opt(
                "INSERT INTO users (is_anonymous, anon_id) VALUES (true, $1) \
                 ON CONFLICT (anon_id) DO UPDATE SET last_seen_at = now() RETURNING id",
                &[SqlValue::Uuid(anon.as_uuid())],
            )
            .await?
            .ok_or_else(|| SqlError::Decode("no users row returned".into()))?
            .get("id"),
    }
}

/// The owner's watchlist, in order.
pub async fn list(sql: &impl Sql, owner: Owner) -> Result<Vec<Watched>, SqlError> {
    let Some(user) = user_of(sql, owner).await? else {
        return Ok(Vec::new());
    };
    let rows = sql
        .query(
            "SELECT w.symbol, s.name FROM stock_watchlists w \
             JOIN stock_symbols s ON s.symbol = w.symbol \
             WHERE w.user_id = $1 ORDER BY w.position, w.added_at",
            &[SqlValue::Uuid(user)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Watched {
                symbol: r.get("symbol")?,
                name: r.get("name")?,
            })
        })
        .collect()
}

/// Confirms `symbol` exists: known already, or listed exactly by
/// `SYMBOL_SEARCH` (one call from the quota).
pub async fn confirm(
    sql: &impl Sql,
    cache: &impl Cache,
    http: &impl HttpClient,
    config: &Config,
    symbol: &Symbol,
    now: DateTime<Utc>,
) -> Result<String, AppError> {
    if let Some(row) = sql
        .query_opt(
            "SELECT name FROM stock_symbols WHERE symbol = $1",
            &[SqlValue::Text(symbol.as_str().into())],
        )
        .await?
    {
        return Ok(row.get("name")?);
    }
    let busy = |retry_after_secs: u64| AppError::TooManyRequests { retry_after_secs };
    let redis_down = |e: village_platform::cache::CacheError| AppError::Unavailable {
        dependency: "redis",
        detail: e.to_string(),
    };
    let unknown_key = cache.key(&format!("stocks:unknown:{symbol}"));
    let known_unknown = cache
        .execute("EXISTS", &[unknown_key.clone().into()])
        .await
        .map_err(redis_down)?;
    if matches!(known_unknown.first(), Some(CacheValue::Int(1))) {
        return Err(invalid(format!(
            "no listed security has the symbol {symbol}"
        )));
    }
    // The day's searches: checked first, counted once the call is taken
    // (a search refused for the gap between calls costs none).
    let searches_key = cache.key(&format!("alpha-vantage:searches:{}", now.format("%Y%m%d")));
    let done = cache
        .execute("GET", &[searches_key.clone().into()])
        .await
        .map_err(redis_down)?
        .first()
        .and_then(CacheValue::as_text)
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(0);
    if done >= search_share(config.quota.per_day) {
        let midnight = (now.date_naive() + chrono::Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .map_or(now, |t| t.and_utc());
        return Err(busy((midnight - now).num_seconds().max(1) as u64));
    }
    match crate::quota::take(cache, config.quota, now)
        .await
        .map_err(redis_down)?
    {
        Ok(()) => {}
        Err(spent) => {
            crate::throttle::record(sql, cache, spent, Some(symbol.as_str()), now).await?;
            return Err(busy((spent.resume_at - now).num_seconds().max(1) as u64));
        }
    }
    cache
        .execute("INCR", &[searches_key.clone().into()])
        .await
        .map_err(redis_down)?;
    cache
        .defer("EXPIRE", vec![searches_key.into(), 172_800i64.into()])
        .await;
    let matches = match config.alpha.search(http, symbol.as_str()).await {
        Ok(m) => m,
        Err(AlphaError::Throttled(_)) => return Err(busy(60)),
        Err(e) => {
            return Err(AppError::Unavailable {
                dependency: "alpha-vantage",
                detail: e.to_string(),
            });
        }
    };
    let Some(m) = matches.into_iter().find(|m| m.symbol == symbol.as_str()) else {
        // Remembered for a day: asking again costs no call.
        cache
            .defer(
                "SET",
                vec![
                    unknown_key.into(),
                    "1".into(),
                    "EX".into(),
                    86_400i64.into(),
                ],
            )
            .await;
        return Err(invalid(format!(
            "no listed security has the symbol {symbol}"
        )));
    };
    sql.execute(
        "INSERT INTO stock_symbols (symbol, name, region, currency, confirmed_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (symbol) DO NOTHING",
        &[
            SqlValue::Text(m.symbol.clone()),
            SqlValue::Text(m.name.clone()),
            SqlValue::Text(m.region),
            SqlValue::Text(m.currency),
            SqlValue::Timestamp(now),
        ],
    )
    .await?;
    Ok(m.name)
}

/// Adds a symbol to the owner's watchlist and queues its first quote (a
/// symbol someone already watches has one: nothing is queued).
pub async fn add(
    sql: &impl Sql,
    cache: &impl Cache,
    http: &impl HttpClient,
    config: &Config,
    owner: Owner,
    raw: &str,
    now: DateTime<Utc>,
) -> Result<Watched, AppError> {
    let symbol = Symbol::try_from(raw).map_err(invalid)?;
    let current = list(sql, owner).await?;
    if current.iter().any(|w| w.symbol == symbol.as_str()) {
        return Err(invalid(format!("{symbol} is already on your watchlist")));
    }
    if current.len() as i64 >= MAX_SYMBOLS {
        return Err(invalid(format!(
            "a watchlist holds at most {MAX_SYMBOLS} symbols; remove one first"
        )));
    }
    let name = confirm(sql, cache, http, config, &symbol, now).await?;
    let user = ensure_user(sql, owner).await?;
    sql.execute(
        "INSERT INTO stock_watchlists (user_id, symbol, position, added_at) \
         SELECT $1, $2, coalesce(max(position) + 1, 0), $3 FROM stock_watchlists WHERE user_id = $1 \
         ON CONFLICT (user_id, symbol) DO NOTHING",
        &[
            SqlValue::Uuid(user),
            SqlValue::Text(symbol.as_str().into()),
            SqlValue::Timestamp(now),
        ],
    )
    .await?;
    let quoted = sql
        .query_opt(
            "SELECT 1 AS one FROM stock_quotes WHERE symbol = $1",
            &[SqlValue::Text(symbol.as_str().into())],
        )
        .await?
        .is_some();
    if !quoted {
        village_jobs::enqueue(
            sql,
            cache,
            now,
            NewJob::new(
                Queue::Low,
                crate::jobs::QUOTE,
                serde_json::json!({ "symbol": symbol.as_str() }),
            )
            .idempotency_key(format!("{}:{symbol}:first", crate::jobs::QUOTE))
            .max_attempts(3),
        )
        .await
        .map_err(|e| AppError::Internal(format!("failed to queue the first quote: {e}")))?;
    }
    Ok(Watched {
        symbol: symbol.as_str().into(),
        name,
    })
}

/// Removes a symbol from the owner's watchlist; whether it was there.
pub async fn remove(sql: &impl Sql, owner: Owner, raw: &str) -> Result<bool, AppError> {
    let symbol = Symbol::try_from(raw).map_err(invalid)?;
    let Some(user) = user_of(sql, owner).await? else {
        return Ok(false);
    };
    Ok(sql
        .execute(
            "DELETE FROM stock_watchlists WHERE user_id = $1 AND symbol = $2",
            &[SqlValue::Uuid(user), SqlValue::Text(symbol.as_str().into())],
        )
        .await?
        == 1)
}
