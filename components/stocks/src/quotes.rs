//! `stocks.quote`: one symbol's `GLOBAL_QUOTE`, stored once for every
//! visitor who watches it. The call is taken from the shared quota first;
//! when the quota is spent the job is deferred to when it has room
//! (`JobError::Defer`: still queued, no attempt spent) and ops are told.
//! A quote fetched after the bell, for the session that just closed, is
//! marked as that day's closing price.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use village_jobs::{Job, JobError, JobHandler, RetryPolicy};
use village_platform::cache::Cache;
use village_platform::clock::Clock;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlValue};

use crate::alpha::{AlphaError, Quote};
use crate::market::{self, Status};
use crate::quota::{Spent, Window};
use crate::{Config, Symbol};

pub struct RefreshQuote<'a, S, K, H, C> {
    pub sql: &'a S,
    pub cache: &'a K,
    pub http: &'a H,
    pub clock: &'a C,
    pub config: &'a Config,
}

#[derive(Deserialize)]
struct Payload {
    symbol: String,
}

/// Whether a quote fetched at `now` for `day` is that day's close.
pub fn is_close(quote_day: chrono::NaiveDate, now: DateTime<Utc>) -> bool {
    match market::status(now) {
        Status::Closed {
            last_close: Some((day, closed_at)),
            ..
        } => day == quote_day && now >= closed_at,
        _ => false,
    }
}

impl<S: Sql, K: Cache, H: HttpClient, C: Clock> JobHandler for RefreshQuote<'_, S, K, H, C> {
    fn name(&self) -> &'static str {
        crate::jobs::QUOTE
    }

    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: std::time::Duration::from_secs(120),
            max_delay: std::time::Duration::from_secs(1800),
            jitter: 0.2,
        }
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let p: Payload =
            serde_json::from_value(job.payload.clone()).map_err(JobError::malformed)?;
        let symbol = Symbol::try_from(p.symbol.as_str()).map_err(JobError::malformed)?;
        let retry = |e: village_platform::sql::SqlError| JobError::Retry(e.to_string());
        let watched = self
            .sql
            .query_opt(
                "SELECT 1 AS one FROM stock_watchlists WHERE symbol = $1 LIMIT 1",
                &[SqlValue::Text(symbol.as_str().into())],
            )
            .await
            .map_err(retry)?
            .is_some();
        if !watched {
            return Ok(()); // nobody watches it any more: no call spent
        }
        let now = self.clock.now();
        let spent = crate::quota::take(self.cache, self.config.quota, now)
            .await
            .map_err(|e| JobError::Retry(format!("quota unavailable: {e}")))?
            .err();
        let defer = async |spent: Spent| {
            crate::throttle::record(self.sql, self.cache, spent, Some(symbol.as_str()), now)
                .await
                .map_err(retry)?;
            Err(JobError::Defer {
                until: spent.resume_at,
                reason: format!(
                    "the Alpha Vantage quota per {} is spent",
                    spent.window.as_str()
                ),
            })
        };
        if let Some(spent) = spent {
            return defer(spent).await;
        }
        match self.config.alpha.quote(self.http, &symbol).await {
            Ok(Some(q)) => store(self.sql, &symbol, &q, is_close(q.trading_day, now), now)
                .await
                .map_err(retry),
            Ok(None) => Err(JobError::Permanent(format!(
                "Alpha Vantage has no quote for {symbol}"
            ))),
            // Their count says spent though ours did not (the key is shared,
            // or their window differs): wait a minute, or for tomorrow when
            // they say the day is spent.
            Err(AlphaError::Throttled(said)) => {
                let window = if said.to_ascii_lowercase().contains("per day") {
                    Window::Day
                } else {
                    Window::Minute
                };
                let resume_at = match window {
                    Window::Minute => now + Duration::minutes(1),
                    Window::Day => (now.date_naive() + Duration::days(1))
                        .and_hms_opt(0, 0, 0)
                        .map_or(now + Duration::days(1), |t| t.and_utc()),
                };
                defer(Spent { window, resume_at }).await
            }
            Err(AlphaError::Refused(m)) => Err(JobError::Permanent(m)),
            Err(e) => Err(JobError::Retry(e.to_string())),
        }
    }
}

/// Stores a quote for the symbol asked for (replacing its last one).
pub async fn store(
    sql: &impl Sql,
    symbol: &Symbol,
    q: &Quote,
    is_close: bool,
    now: DateTime<Utc>,
) -> Result<(), village_platform::sql::SqlError> {
    sql.execute(
        "INSERT INTO stock_quotes (symbol, price, change, change_percent, previous_close, \
             trading_day, is_close, fetched_at) \
         VALUES ($1, $2::text::numeric, $3::text::numeric, $4::text::numeric, $5::text::numeric, $6::text::date, $7, $8) \
         ON CONFLICT (symbol) DO UPDATE SET price = EXCLUDED.price, change = EXCLUDED.change, \
             change_percent = EXCLUDED.change_percent, previous_close = EXCLUDED.previous_close, \
             trading_day = EXCLUDED.trading_day, is_close = EXCLUDED.is_close, \
             fetched_at = EXCLUDED.fetched_at",
        &[
            SqlValue::Text(symbol.as_str().into()),
            SqlValue::Text(q.price.as_str().into()),
            SqlValue::Text(q.change.as_str().into()),
            SqlValue::Text(q.change_percent.as_str().into()),
            SqlValue::Text(q.previous_close.as_str().into()),
            SqlValue::Text(q.trading_day.to_string()),
            SqlValue::Bool(is_close),
            SqlValue::Timestamp(now),
        ],
    )
    .await
    .map(drop)
}
