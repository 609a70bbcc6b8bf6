//! `payments.stripe_event`: applies one recorded webhook event
//! (`stripe_events`), whatever order Stripe delivered it in.
//!
//! - `payment_intent.succeeded` / `payment_intent.payment_failed`: the
//!   intent is re-read from Stripe and its *current* status applied — a late
//!   `payment_failed` after a success changes nothing, and a success moves
//!   a failed attempt forward. A success books the charge in the ledger and
//!   fulfils the purchase ([`crate::fulfil`]).
//! - `charge.refunded` / `charge.refund.updated`: the charge's refunds are
//!   re-read and each one booked once (refunds made in Stripe's dashboard
//!   included; a failed one booked back).
//! - `charge.dispute.created` / `.funds_reinstated` / `.closed`: the dispute
//!   is recorded, each balance transaction it moved money with booked, the
//!   payment marked disputed, and [`crate::disputes`] gathers the evidence.
//! - `review.opened`: Radar flagged the payment; ops are told.
//!
//! Text Stripe sends (messages, reasons, statuses) is stored NUL-free and
//! bounded (`boundary::stored`).
//!
//! States only move forward (see the `payments` table); every write is
//! keyed so a replay is a no-op.

use serde_json::Value;
use uuid::Uuid;
use village_jobs::{Job, JobError, JobHandler, NewJob, Queue};
use village_platform::boundary::stored;
use village_platform::cache::Cache;
use village_platform::clock::Clock;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::fulfil::{self, Fulfilment};
use crate::ledger::{self, Entry, Kind};
use crate::notify::Mail;
use crate::stripe::{PaymentIntent, Stripe, StripeError};
use crate::{Config, Purpose, refunds, unix as at};

pub const NAME: &str = "payments.stripe_event";

/// The event types we act on (others are recorded and acknowledged).
pub const HANDLED: [&str; 8] = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.funds_reinstated",
    "charge.dispute.closed",
    "review.opened",
];

pub struct ApplyEvent<'a, S, C, H, K> {
    pub sql: &'a S,
    pub cache: &'a C,
    pub http: &'a H,
    pub clock: &'a K,
    pub config: &'a Config,
    pub mail: &'a Mail<'a, H>,
}

fn retry(e: SqlError) -> JobError {
    JobError::Retry(e.to_string())
}

fn stripe_failed(e: StripeError) -> JobError {
    if e.is_transient() {
        JobError::Retry(e.to_string())
    } else {
        JobError::Permanent(e.to_string())
    }
}

fn text<'v>(object: &'v Value, field: &str) -> Option<&'v str> {
    object.get(field).and_then(Value::as_str)
}

/// A field that is an id or an expanded object.
fn id_of(object: &Value, field: &str) -> Option<String> {
    match object.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("id")?.as_str().map(str::to_owned),
        _ => None,
    }
}

impl<S: Sql, C: Cache, H: HttpClient, K: Clock> ApplyEvent<'_, S, C, H, K> {
    fn stripe(&self) -> Stripe<'_, H> {
        Stripe {
            http: self.http,
            config: self.config,
        }
    }

    async fn apply(&self, event_id: &str) -> Result<String, JobError> {
        let Some(row) = self
            .sql
            .query_opt(
                "SELECT type, payload, processed_at IS NOT NULL AS done FROM stripe_events WHERE id = $1",
                &[SqlValue::Text(event_id.to_owned())],
            )
            .await
            .map_err(retry)?
        else {
            return Err(JobError::Permanent(format!("no event {event_id}")));
        };
        if row.get::<bool>("done").map_err(retry)? {
            return Ok("already applied".into());
        }
        let kind: String = row.get("type").map_err(retry)?;
        let payload: Value = row.get("payload").map_err(retry)?;
        let object = payload
            .pointer("/data/object")
            .cloned()
            .unwrap_or(Value::Null);
        match kind.as_str() {
            "payment_intent.succeeded" | "payment_intent.payment_failed" => {
                let id = text(&object, "id").ok_or_else(|| {
                    JobError::Permanent("the event names no payment intent".into())
                })?;
                // Order matters here: what Stripe says now, not what the
                // event said then.
                let intent = self
                    .stripe()
                    .payment_intent(id)
                    .await
                    .map_err(stripe_failed)?;
                self.apply_intent(&intent).await
            }
            "charge.refunded" => {
                let charge = text(&object, "id")
                    .ok_or_else(|| JobError::Permanent("the event names no charge".into()))?;
                self.apply_refunds(charge, id_of(&object, "payment_intent"))
                    .await
            }
            // A refund changed (pending → succeeded, or failed): the
            // charge's refunds re-read, as for `charge.refunded`.
            "charge.refund.updated" => {
                let charge = id_of(&object, "charge")
                    .ok_or_else(|| JobError::Permanent("the refund names no charge".into()))?;
                self.apply_refunds(&charge, id_of(&object, "payment_intent"))
                    .await
            }
            "charge.dispute.created"
            | "charge.dispute.funds_reinstated"
            | "charge.dispute.closed" => self.apply_dispute(&object).await,
            "review.opened" => self.apply_review(&object).await,
            other => Ok(format!("{other}: not handled")),
        }
    }

    /// Our payment behind `intent`: by its id, else by the metadata we set
    /// (the id may not have been saved if the request failed after Stripe
    /// created it).
    async fn payment_of(&self, intent: &PaymentIntent) -> Result<Option<Payment>, JobError> {
        let by_metadata = intent
            .metadata
            .get("payment_id")
            .and_then(|s| Uuid::parse_str(s).ok());
        // Written only when the id was missing (the usual case reads).
        let row = self
            .sql
            .query_opt(
                "WITH claimed AS (UPDATE payments SET stripe_payment_intent_id = $1 \
                     WHERE id = $2 AND stripe_payment_intent_id IS NULL \
                     RETURNING id, purpose, amount_cents, currency) \
                 SELECT id, purpose, amount_cents, currency FROM payments \
                 WHERE stripe_payment_intent_id = $1 \
                 UNION ALL SELECT id, purpose, amount_cents, currency FROM claimed",
                &[
                    SqlValue::Text(intent.id.clone()),
                    by_metadata.map_or(SqlValue::Null, SqlValue::Uuid),
                ],
            )
            .await
            .map_err(retry)?;
        row.map(|r| -> Result<Payment, SqlError> {
            Ok(Payment {
                id: r.get("id")?,
                purpose: r.get("purpose")?,
                amount_cents: i64::from(r.get::<i32>("amount_cents")?),
                currency: r.get("currency")?,
            })
        })
        .transpose()
        .map_err(retry)
    }

    async fn apply_intent(&self, intent: &PaymentIntent) -> Result<String, JobError> {
        let now = self.clock.now();
        let Some(payment) = self.payment_of(intent).await? else {
            return Ok(format!("{}: not one of ours", intent.id));
        };
        match intent.status.as_str() {
            "succeeded" => {
                if intent.amount != payment.amount_cents
                    || !intent.currency.eq_ignore_ascii_case(&payment.currency)
                {
                    self.mail
                        .ops(
                            "A Stripe payment does not match its purchase",
                            &format!(
                                "Payment {} expected {} {}, Stripe says {} {} (intent {}). Nothing was fulfilled.",
                                payment.id, payment.amount_cents, payment.currency,
                                intent.amount, intent.currency, intent.id
                            ),
                            serde_json::json!({ "payment_id": payment.id, "payment_intent": intent.id }),
                        )
                        .await;
                    return Ok("amount mismatch: held for ops".into());
                }
                let charge = intent.charge_id();
                let charged_at = intent.charge_created().and_then(at).unwrap_or(now);
                self.sql
                    .execute(
                        "UPDATE payments SET status = 'succeeded', succeeded_at = coalesce(succeeded_at, $2::timestamp), \
                             stripe_charge_id = coalesce(stripe_charge_id, $3), failure_message = NULL, \
                             updated_at = $2::timestamp \
                         WHERE id = $1 AND status IN ('created', 'failed')",
                        &[
                            SqlValue::Uuid(payment.id),
                            SqlValue::Timestamp(now),
                            charge.clone().map_or(SqlValue::Null, SqlValue::Text),
                        ],
                    )
                    .await
                    .map_err(retry)?;
                if let Some(charge) = &charge {
                    ledger::record(
                        self.sql,
                        &Entry {
                            payment: Some(payment.id),
                            kind: Kind::Charge,
                            amount_cents: intent.amount,
                            currency: &intent.currency,
                            stripe_object_id: charge,
                            occurred_at: charged_at,
                        },
                        now,
                    )
                    .await
                    .map_err(retry)?;
                }
                // A refund or a dispute applied before this success (events
                // come in any order) settles the state now; fulfilment then
                // finds it no longer `succeeded` and does nothing.
                ledger::settle_refunds(self.sql, payment.id, now)
                    .await
                    .map_err(retry)?;
                self.sql
                    .execute(
                        "UPDATE payments SET status = 'disputed', updated_at = $2::timestamp \
                         WHERE id = $1 AND status IN ('succeeded', 'partially_refunded', 'refunded') \
                           AND EXISTS (SELECT 1 FROM payment_disputes WHERE payment_id = $1)",
                        &[SqlValue::Uuid(payment.id), SqlValue::Timestamp(now)],
                    )
                    .await
                    .map_err(retry)?;
                let purpose = Purpose::parse(&payment.purpose)
                    .ok_or_else(|| JobError::Permanent("unknown purpose".into()))?;
                match fulfil::fulfil(self.sql, payment.id, purpose, now)
                    .await
                    .map_err(retry)?
                {
                    Fulfilment::Applied => Ok(format!("{} fulfilled", payment.id)),
                    Fulfilment::Nothing => Ok(format!("{} already fulfilled", payment.id)),
                    Fulfilment::Refunding { refund_id } => {
                        if let Some(id) = refund_id {
                            refunds::enqueue(self.sql, self.cache, &[id], now)
                                .await
                                .map_err(|e| JobError::Retry(e.to_string()))?;
                        }
                        Ok(format!("{}: listing unavailable, refunding", payment.id))
                    }
                }
            }
            "requires_payment_method" | "canceled" => {
                let message = intent
                    .last_payment_error
                    .as_ref()
                    .and_then(|e| e.message.clone())
                    .unwrap_or_else(|| format!("the payment was {}", intent.status));
                self.sql
                    .execute(
                        "UPDATE payments SET status = 'failed', failure_message = $2, updated_at = $3::timestamp \
                         WHERE id = $1 AND status IN ('created', 'failed')",
                        &[
                            SqlValue::Uuid(payment.id),
                            SqlValue::Text(stored(&message, 500)),
                            SqlValue::Timestamp(now),
                        ],
                    )
                    .await
                    .map_err(retry)?;
                Ok(format!("{} failed", payment.id))
            }
            other => Ok(format!("{}: {other}, nothing to do yet", payment.id)),
        }
    }

    async fn apply_refunds(
        &self,
        charge: &str,
        intent: Option<String>,
    ) -> Result<String, JobError> {
        let now = self.clock.now();
        let payment: Option<Uuid> = self
            .sql
            .query_opt(
                "SELECT id FROM payments WHERE stripe_charge_id = $1 OR stripe_payment_intent_id = $2 LIMIT 1",
                &[
                    SqlValue::Text(charge.to_owned()),
                    intent.map_or(SqlValue::Null, SqlValue::Text),
                ],
            )
            .await
            .map_err(retry)?
            .map(|r| r.get("id"))
            .transpose()
            .map_err(retry)?;
        let Some(payment) = payment else {
            return Ok(format!("{charge}: not one of ours"));
        };
        let refunds = self
            .stripe()
            .refunds_of(charge)
            .await
            .map_err(stripe_failed)?;
        let mut booked = 0;
        // Stripe takes a refund from the balance when it is created, pending
        // or not: both are booked. One that failed or was canceled comes
        // back; it is booked again as a reversal.
        for r in refunds
            .iter()
            .filter(|r| r.status == "failed" || r.status == "canceled")
        {
            self.sql
                .execute(
                    "UPDATE payment_refunds SET status = 'failed', \
                         failure = coalesce(failure, 'Stripe reports the refund ' || $2) \
                     WHERE stripe_refund_id = $1 AND status = 'issued'",
                    &[
                        SqlValue::Text(r.id.clone()),
                        SqlValue::Text(stored(&r.status, 40)),
                    ],
                )
                .await
                .map_err(retry)?;
            let reversal = format!("{}:reversed", r.id);
            let had = ledger::booked(self.sql, Kind::Refund, &r.id)
                .await
                .map_err(retry)?;
            if had {
                self.mail
                    .ops(
                        "A Stripe refund failed",
                        &format!(
                            "Refund {} of payment {payment} is {} at Stripe: the money is back in \
                             the balance and the buyer was not refunded. Refund again from \
                             /admin/api/payments.",
                            r.id, r.status
                        ),
                        serde_json::json!({ "payment_id": payment, "stripe_refund_id": r.id }),
                    )
                    .await;
                booked += usize::from(
                    ledger::record(
                        self.sql,
                        &Entry {
                            payment: Some(payment),
                            kind: Kind::Refund,
                            amount_cents: r.amount,
                            currency: &r.currency,
                            stripe_object_id: &reversal,
                            occurred_at: now,
                        },
                        now,
                    )
                    .await
                    .map_err(retry)?,
                );
            }
        }
        for r in refunds
            .iter()
            .filter(|r| r.status == "succeeded" || r.status == "pending")
        {
            let row = r
                .metadata
                .get("refund_row")
                .and_then(|s| s.parse::<i64>().ok());
            self.sql
                .execute(
                    "UPDATE payment_refunds SET status = 'issued', stripe_refund_id = $2, \
                         issued_at = coalesce(issued_at, $3::timestamp) \
                     WHERE payment_id = $4 AND (stripe_refund_id = $2 OR (id = $1 AND status = 'approved'))",
                    &[
                        row.map_or(SqlValue::Null, SqlValue::Int64),
                        SqlValue::Text(r.id.clone()),
                        SqlValue::Timestamp(now),
                        SqlValue::Uuid(payment),
                    ],
                )
                .await
                .map_err(retry)?;
            let new = ledger::record(
                self.sql,
                &Entry {
                    payment: Some(payment),
                    kind: Kind::Refund,
                    amount_cents: -r.amount,
                    currency: &r.currency,
                    stripe_object_id: &r.id,
                    occurred_at: at(r.created).unwrap_or(now),
                },
                now,
            )
            .await
            .map_err(retry)?;
            booked += usize::from(new);
        }
        ledger::settle_refunds(self.sql, payment, now)
            .await
            .map_err(retry)?;
        Ok(format!("{payment}: {booked} refund(s) booked"))
    }

    async fn apply_dispute(&self, dispute: &Value) -> Result<String, JobError> {
        let now = self.clock.now();
        let id = text(dispute, "id")
            .filter(|id| crate::stripe::is_id(id))
            .ok_or_else(|| JobError::Permanent("the dispute has no id".into()))?;
        let charge = id_of(dispute, "charge");
        let intent = id_of(dispute, "payment_intent");
        let amount = dispute.get("amount").and_then(Value::as_i64).unwrap_or(0);
        let currency = stored(text(dispute, "currency").unwrap_or("usd"), 3);
        let currency = currency.as_str();
        let due = dispute
            .pointer("/evidence_details/due_by")
            .and_then(Value::as_i64)
            .and_then(at);
        let row = self
            .sql
            .query_opt(
                "WITH p AS (SELECT id FROM payments WHERE stripe_charge_id = $2 \
                            OR stripe_payment_intent_id = $3 LIMIT 1), \
                      d AS (INSERT INTO payment_disputes (stripe_dispute_id, payment_id, stripe_charge_id, \
                                amount_cents, currency, reason, status, evidence_due_by, created_at) \
                            VALUES ($1, (SELECT id FROM p), $2, $4::bigint, $5, $6, $7, $8::timestamp, $9::timestamp) \
                            ON CONFLICT (stripe_dispute_id) DO UPDATE SET status = CASE \
                                WHEN payment_disputes.status IN ('won', 'lost') THEN payment_disputes.status \
                                ELSE EXCLUDED.status END \
                            RETURNING id, payment_id), \
                      s AS (UPDATE payments SET status = 'disputed', updated_at = $9::timestamp \
                            WHERE id = (SELECT id FROM p) \
                              AND status IN ('succeeded', 'partially_refunded', 'refunded') RETURNING id) \
                 SELECT d.id, d.payment_id FROM d",
                &[
                    SqlValue::Text(id.to_owned()),
                    charge.clone().map_or(SqlValue::Null, SqlValue::Text),
                    intent.map_or(SqlValue::Null, SqlValue::Text),
                    SqlValue::Int64(amount),
                    SqlValue::Text(currency.to_owned()),
                    text(dispute, "reason").map_or(SqlValue::Null, |s| SqlValue::Text(stored(s, 100))),
                    text(dispute, "status").map_or(SqlValue::Null, |s| SqlValue::Text(stored(s, 40))),
                    due.map_or(SqlValue::Null, SqlValue::Timestamp),
                    SqlValue::Timestamp(now),
                ],
            )
            .await
            .map_err(retry)?
            .ok_or_else(|| JobError::Retry("the dispute was not recorded".into()))?;
        let dispute_row: i64 = row.get("id").map_err(retry)?;
        let payment: Option<Uuid> = row.get("payment_id").map_err(retry)?;
        // Each balance transaction the dispute moved money with (the
        // chargeback; a won dispute's reinstatement), booked once by its id.
        // An inquiry (`warning_*`) has none: no money moved, nothing booked.
        let txns: Vec<&Value> = dispute
            .get("balance_transactions")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        for t in &txns {
            let (Some(txn), Some(cents)) = (
                text(t, "id").filter(|id| crate::stripe::is_id(id)),
                t.get("amount").and_then(Value::as_i64),
            ) else {
                continue;
            };
            ledger::record(
                self.sql,
                &Entry {
                    payment,
                    kind: Kind::Dispute,
                    amount_cents: cents,
                    currency,
                    stripe_object_id: txn,
                    occurred_at: t
                        .get("created")
                        .and_then(Value::as_i64)
                        .and_then(at)
                        .unwrap_or(now),
                },
                now,
            )
            .await
            .map_err(retry)?;
        }
        village_jobs::enqueue(self.sql, self.cache, now, crate::disputes::job(dispute_row))
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        Ok(format!("dispute {id} recorded"))
    }

    async fn apply_review(&self, review: &Value) -> Result<String, JobError> {
        let charge = id_of(review, "charge");
        let intent = id_of(review, "payment_intent");
        let rows = self
            .sql
            .query(
                "UPDATE payments SET review_open = true \
                 WHERE stripe_charge_id = $1 OR stripe_payment_intent_id = $2 RETURNING id",
                &[
                    charge.clone().map_or(SqlValue::Null, SqlValue::Text),
                    intent.clone().map_or(SqlValue::Null, SqlValue::Text),
                ],
            )
            .await
            .map_err(retry)?;
        let Some(payment) = rows.first() else {
            return Ok("review of a payment not ours".into());
        };
        let payment: Uuid = payment.get("id").map_err(retry)?;
        let reason = text(review, "reason").unwrap_or("unspecified");
        self.mail
            .ops(
                "Stripe Radar opened a review",
                &format!(
                    "Payment {payment} (intent {}) is under review in Stripe ({reason}). \
                     Decide it in Stripe's dashboard; refund from /admin/api/payments if it was fraud.",
                    intent.as_deref().unwrap_or("?")
                ),
                serde_json::json!({ "payment_id": payment, "reason": reason }),
            )
            .await;
        Ok(format!("{payment}: review opened"))
    }
}

/// The job applying event `id` (keyed by it).
pub fn job(id: &str) -> NewJob {
    NewJob::new(Queue::High, NAME, serde_json::json!({ "event_id": id }))
        .idempotency_key(format!("{NAME}:{id}"))
        .max_attempts(12)
}

struct Payment {
    id: Uuid,
    purpose: String,
    amount_cents: i64,
    currency: String,
}

impl<S: Sql, C: Cache, H: HttpClient, K: Clock> JobHandler for ApplyEvent<'_, S, C, H, K> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let id = job
            .payload
            .get("event_id")
            .and_then(Value::as_str)
            .ok_or_else(|| JobError::Permanent("payload needs event_id".into()))?;
        let outcome = match self.apply(id).await {
            Ok(outcome) => outcome,
            Err(JobError::Permanent(why)) => {
                // It will never apply: recorded, so the scheduler's sweep
                // stops queueing it; ops find it in /admin/api/payments/events.
                self.sql
                    .execute(
                        "UPDATE stripe_events SET failed_at = $2::timestamp, outcome = $3 \
                         WHERE id = $1 AND processed_at IS NULL",
                        &[
                            SqlValue::Text(id.to_owned()),
                            SqlValue::Timestamp(self.clock.now()),
                            SqlValue::Text(format!("failed: {}", stored(&why, 400))),
                        ],
                    )
                    .await
                    .map_err(retry)?;
                return Err(JobError::Permanent(why));
            }
            Err(other) => return Err(other),
        };
        self.sql
            .execute(
                "UPDATE stripe_events SET processed_at = $2::timestamp, outcome = $3 WHERE id = $1",
                &[
                    SqlValue::Text(id.to_owned()),
                    SqlValue::Timestamp(self.clock.now()),
                    SqlValue::Text(outcome),
                ],
            )
            .await
            .map_err(retry)?;
        Ok(())
    }
}
