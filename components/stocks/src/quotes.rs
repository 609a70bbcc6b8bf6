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

/// How long after the bell a quote is taken as the close: the closing
/// auction's print takes a few minutes to reach the feed.
pub const CLOSE_SETTLES: Duration = Duration::minutes(15);

/// Whether a quote fetched at `now` for `day` is that day's close.
pub fn is_close(quote_day: chrono::NaiveDate, now: DateTime<Utc>) -> bool {
    match market::status(now) {
        Status::Closed {
            last_close: Some((day, closed_at)),
            ..
        } => day == quote_day && now >= closed_at + CLOSE_SETTLES,
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
        // Deferred jobs wake spread over a few seconds (by symbol), not all
        // in the same instant to find the quota spent again.
        let spread =
            Duration::seconds(i64::from(symbol.as_str().bytes().fold(0u8, u8::wrapping_add)) % 20);
        let defer = async |spent: Spent| {
            if spent.window == Window::Gap {
                // Pacing, not a spent quota: no event, just wait the gap.
                return Err(JobError::Defer {
                    until: spent.resume_at + spread / 10,
                    reason: "pacing Alpha Vantage calls".into(),
                });
            }
            crate::throttle::record(self.sql, self.cache, spent, Some(symbol.as_str()), now)
                .await
                .map_err(retry)?;
            Err(JobError::Defer {
                until: spent.resume_at + spread,
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
            // Nothing to quote (a fund, a delisted or foreign listing):
            // noted (each miss moves the day on), asked again a day later.
            Ok(None) => self
                .sql
                .execute(
                    "UPDATE stock_symbols SET no_quote_since = $2 WHERE symbol = $1",
                    &[
                        SqlValue::Text(symbol.as_str().into()),
                        SqlValue::Timestamp(now),
                    ],
                )
                .await
                .map(drop)
                .map_err(retry),
            // A refusal is about us (the key, the plan), not the symbol:
            // said loudly, and the job waits an hour rather than spend a
            // call every cycle.
            Err(AlphaError::Refused(why)) => {
                village_platform::log::event(
                    "ERROR",
                    &format!("Alpha Vantage refused a quote call: {why}"),
                    serde_json::json!({ "symbol": symbol.as_str() }),
                );
                Err(JobError::Defer {
                    until: now + Duration::hours(1),
                    reason: format!("Alpha Vantage refused the call: {why}"),
                })
            }
            // Their count says wait though ours did not (the key is shared,
            // or their burst limit is tighter): a minute, unless our own
            // count says the day is spent.
            Err(AlphaError::Throttled(_)) => {
                let (_, today) = crate::quota::used(self.cache, now)
                    .await
                    .map_err(|e| JobError::Retry(format!("quota unavailable: {e}")))?;
                let spent = if today >= i64::from(self.config.quota.per_day) {
                    Spent {
                        window: Window::Day,
                        resume_at: (now.date_naive() + Duration::days(1))
                            .and_hms_opt(0, 0, 0)
                            .map_or(now + Duration::days(1), |t| t.and_utc()),
                    }
                } else {
                    Spent {
                        window: Window::Minute,
                        resume_at: now + Duration::minutes(1),
                    }
                };
                defer(spent).await
            }
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
        "WITH quotable AS ( \
             UPDATE stock_symbols SET no_quote_since = NULL \
             WHERE symbol = $1 AND no_quote_since IS NOT NULL) \
         INSERT INTO stock_quotes (symbol, price, change, change_percent, previous_close, \
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
