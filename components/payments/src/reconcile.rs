//! `payments.reconcile`: once a day, the previous UTC day's Stripe balance
//! transactions against the ledger.
//!
//! Each charge, refund and dispute transaction must match a ledger row for
//! the same Stripe object with the same amount (`missing_in_ledger`,
//! `amount_mismatch`); each ledger charge, refund or dispute of the day must
//! have a transaction (`missing_in_stripe`). Fees exist only at Stripe, so
//! they are booked here, once per transaction. Discrepancies are rows
//! (found once per day, kind and object, so a re-run adds none) and ops
//! are alerted. Our ledger dates a movement when we learned of it, which
//! can trail Stripe's by minutes: transactions an hour either side of the
//! day count as matches for the day's ledger rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use uuid::Uuid;
use village_jobs::{Job, JobError, JobHandler};
use village_platform::clock::Clock;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlValue};

use crate::Config;
use crate::ledger::{self, Entry, Kind};
use crate::notify::Mail;
use crate::stripe::{BalanceTransaction, Stripe};

pub const NAME: &str = "payments.reconcile";

/// How far past the day transactions still match its ledger rows.
const MARGIN_MINUTES: i64 = 60;
/// At most this many pages of 100 are read (a runaway guard).
const MAX_PAGES: usize = 200;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Discrepancy {
    pub kind: &'static str,
    pub stripe_object_id: String,
    pub ledger_cents: Option<i64>,
    pub stripe_cents: Option<i64>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub day: NaiveDate,
    pub transactions: usize,
    pub fees_booked: usize,
    pub discrepancies: Vec<Discrepancy>,
}

pub struct Reconcile<'a, S, H, K> {
    pub sql: &'a S,
    pub http: &'a H,
    pub clock: &'a K,
    pub config: &'a Config,
    pub mail: &'a Mail<'a, H>,
}

fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(e.to_string())
}

/// The ledger row a balance transaction should match: its kind and key —
/// the charge or refund it comes from, a failed refund's reversal
/// (`re_…:reversed`), or for a dispute the transaction itself (a dispute
/// moves money twice when won).
fn ledger_key(txn: &BalanceTransaction) -> Option<(Kind, String)> {
    let source = txn.source.as_deref()?;
    match txn.kind.as_str() {
        "charge" | "payment" if source.starts_with("ch_") || source.starts_with("py_") => {
            Some((Kind::Charge, source.to_owned()))
        }
        "refund" | "payment_refund" if source.starts_with("re_") || source.starts_with("pyr_") => {
            Some((Kind::Refund, source.to_owned()))
        }
        "refund_failure" | "payment_refund_failure" if source.starts_with("re_") => {
            Some((Kind::Refund, format!("{source}:reversed")))
        }
        "adjustment" if source.starts_with("dp_") || source.starts_with("du_") => {
            Some((Kind::Dispute, txn.id.clone()))
        }
        _ => None,
    }
}

impl<S: Sql, H: HttpClient, K: Clock> Reconcile<'_, S, H, K> {
    /// Reconciles `day` (UTC).
    pub async fn day(&self, day: NaiveDate) -> Result<Report, JobError> {
        let now = self.clock.now();
        let start = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default());
        let end = start + Duration::days(1);
        let margin = Duration::minutes(MARGIN_MINUTES);
        let stripe = Stripe {
            http: self.http,
            config: self.config,
        };
        // Newest first: read until past the day's start (and the margin).
        let mut txns: Vec<BalanceTransaction> = Vec::new();
        let mut after: Option<String> = None;
        let mut complete = false;
        for _ in 0..MAX_PAGES {
            let page = stripe
                .balance_transactions(after.as_deref())
                .await
                .map_err(|e| retry(format!("listing balance transactions: {e}")))?;
            let done = !page.has_more
                || page
                    .data
                    .last()
                    .is_none_or(|t| t.created < (start - margin).timestamp());
            after = page.data.last().map(|t| t.id.clone());
            txns.extend(page.data);
            if done {
                complete = true;
                break;
            }
        }
        if !complete {
            // Not the whole day: a wrong answer is worse than none. The job
            // ends (a retry would read the same pages again); ops are told.
            self.mail
                .ops(
                    "Stripe reconciliation incomplete",
                    &format!(
                        "More than {} balance transactions since {day}: the day was not \
                         reconciled. Reconcile it from Stripe's balance report.",
                        MAX_PAGES * 100
                    ),
                    serde_json::json!({ "day": day.to_string() }),
                )
                .await;
            return Ok(Report {
                day,
                transactions: txns.len(),
                fees_booked: 0,
                discrepancies: Vec::new(),
            });
        }
        let in_window = |t: &BalanceTransaction, from: DateTime<Utc>, to: DateTime<Utc>| {
            t.created >= from.timestamp() && t.created < to.timestamp()
        };
        let mut discrepancies = Vec::new();
        let mut fees_booked = 0;
        let mut counted = 0;
        for t in txns.iter().filter(|t| in_window(t, start, end)) {
            counted += 1;
            let Some((kind, source)) = ledger_key(t) else {
                continue;
            };
            let ours = self
                .sql
                .query_opt(
                    "SELECT amount_cents, payment_id FROM payment_ledger WHERE kind = $1 AND stripe_object_id = $2",
                    &[
                        SqlValue::Text(kind.as_str().to_owned()),
                        SqlValue::Text(source.clone()),
                    ],
                )
                .await
                .map_err(retry)?;
            let mut payment: Option<Uuid> = None;
            match ours {
                None => discrepancies.push(Discrepancy {
                    kind: "missing_in_ledger",
                    stripe_object_id: source.clone(),
                    ledger_cents: None,
                    stripe_cents: Some(t.amount),
                    detail: format!(
                        "Stripe's {} {} ({}) has no {} row in the ledger",
                        t.kind,
                        t.id,
                        t.amount,
                        kind.as_str()
                    ),
                }),
                Some(row) => {
                    let amount: i64 = row.get("amount_cents").map_err(retry)?;
                    payment = row.get("payment_id").map_err(retry)?;
                    if amount != t.amount {
                        discrepancies.push(Discrepancy {
                            kind: "amount_mismatch",
                            stripe_object_id: source.clone(),
                            ledger_cents: Some(amount),
                            stripe_cents: Some(t.amount),
                            detail: format!(
                                "the ledger says {amount}, Stripe's {} {} says {}",
                                t.kind, t.id, t.amount
                            ),
                        });
                    }
                }
            }
            if t.fee != 0 {
                let new = ledger::record(
                    self.sql,
                    &Entry {
                        payment,
                        kind: Kind::Fee,
                        amount_cents: -t.fee,
                        currency: &t.currency,
                        stripe_object_id: &t.id,
                        occurred_at: crate::unix(t.created).unwrap_or(now),
                    },
                    now,
                )
                .await
                .map_err(retry)?;
                fees_booked += usize::from(new);
            }
        }
        // The day's ledger rows Stripe has no transaction for.
        let seen: BTreeMap<(&'static str, String), i64> = txns
            .iter()
            .filter(|t| in_window(t, start - margin, end + margin))
            .filter_map(|t| ledger_key(t).map(|(k, key)| ((k.as_str(), key), t.amount)))
            .collect();
        let rows = self
            .sql
            .query(
                "SELECT kind, stripe_object_id, amount_cents FROM payment_ledger \
                 WHERE kind IN ('charge', 'refund', 'dispute') \
                   AND occurred_at >= $1::timestamp AND occurred_at < $2::timestamp ORDER BY id",
                &[SqlValue::Timestamp(start), SqlValue::Timestamp(end)],
            )
            .await
            .map_err(retry)?;
        for r in &rows {
            let kind: String = r.get("kind").map_err(retry)?;
            let object: String = r.get("stripe_object_id").map_err(retry)?;
            let known = ["charge", "refund", "dispute"]
                .into_iter()
                .find(|k| *k == kind)
                .is_some_and(|k| seen.contains_key(&(k, object.clone())));
            if !known {
                let amount: i64 = r.get("amount_cents").map_err(retry)?;
                discrepancies.push(Discrepancy {
                    kind: "missing_in_stripe",
                    stripe_object_id: object.clone(),
                    ledger_cents: Some(amount),
                    stripe_cents: None,
                    detail: format!(
                        "the ledger's {kind} {object} ({amount}) has no Stripe balance transaction"
                    ),
                });
            }
        }
        let day_text = SqlValue::Text(day.format("%Y-%m-%d").to_string());
        let mut new = 0;
        for d in &discrepancies {
            new += self
                .sql
                .execute(
                    "INSERT INTO payment_discrepancies (day, kind, stripe_object_id, ledger_cents, \
                         stripe_cents, detail, found_at) \
                     VALUES ($1::text::date, $2, $3, $4, $5, $6, $7::timestamp) \
                     ON CONFLICT (day, kind, stripe_object_id) DO NOTHING",
                    &[
                        day_text.clone(),
                        SqlValue::Text(d.kind.to_owned()),
                        SqlValue::Text(d.stripe_object_id.clone()),
                        d.ledger_cents.map_or(SqlValue::Null, SqlValue::Int64),
                        d.stripe_cents.map_or(SqlValue::Null, SqlValue::Int64),
                        SqlValue::Text(d.detail.clone()),
                        SqlValue::Timestamp(now),
                    ],
                )
                .await
                .map_err(retry)?;
        }
        self.sql
            .execute(
                "INSERT INTO payment_reconciliations (day, transactions, discrepancies, finished_at) \
                 VALUES ($1::text::date, $2::bigint, $3::bigint, $4::timestamp) \
                 ON CONFLICT (day) DO UPDATE SET transactions = EXCLUDED.transactions, \
                     discrepancies = EXCLUDED.discrepancies, finished_at = EXCLUDED.finished_at",
                &[
                    day_text,
                    SqlValue::Int64(counted as i64),
                    SqlValue::Int64(discrepancies.len() as i64),
                    SqlValue::Timestamp(now),
                ],
            )
            .await
            .map_err(retry)?;
        if new > 0 {
            let lines: Vec<String> = discrepancies.iter().map(|d| d.detail.clone()).collect();
            self.mail
                .ops(
                    "Stripe reconciliation found discrepancies",
                    &format!(
                        "{new} new discrepanc(ies) for {day} (GET /admin/api/payments/discrepancies):\n{}",
                        lines.join("\n")
                    ),
                    serde_json::json!({ "day": day.to_string(), "discrepancies": new }),
                )
                .await;
        }
        Ok(Report {
            day,
            transactions: counted,
            fees_booked,
            discrepancies,
        })
    }
}

impl<S: Sql, H: HttpClient, K: Clock> JobHandler for Reconcile<'_, S, H, K> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let day = job
            .payload
            .get("day")
            .and_then(serde_json::Value::as_str)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .ok_or_else(|| JobError::Permanent("payload needs day (YYYY-MM-DD)".into()))?;
        let report = self.day(day).await?;
        village_platform::log::event(
            "INFO",
            "stripe reconciliation finished",
            serde_json::json!({ "day": day.to_string(), "transactions": report.transactions,
                                "fees_booked": report.fees_booked,
                                "discrepancies": report.discrepancies.len() }),
        );
        Ok(())
    }
}
