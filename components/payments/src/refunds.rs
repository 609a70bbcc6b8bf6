//! Refunds (policy P3, blueprint §3.5.1).
//!
//! - **Automatic**: staff remove a paid listing, or a paid listing cannot be
//!   published or promoted after payment, within 24 hours of the payment:
//!   the refund row is `approved` at once and [`IssueRefund`] issues it
//!   (target: within the hour). A failed publication's is queued at once;
//!   a removal's is written by the removal's own statement (the SQL function
//!   `payment_refunds_on_removal`) and queued by the `payments-scheduler`
//!   sweep, which also re-queues any approved refund whose job was lost.
//! - **Manual review**: any other request — a seller asking, a removal
//!   after 24 hours — is a `requested` row that staff with `manage_refunds`
//!   approve or reject in `/admin/api/payments` (reason required, audited).
//!
//! Issuing calls Stripe with an idempotency key per refund row, so a retried
//! job never refunds twice; the ledger row is keyed by Stripe's refund id.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;
use village_jobs::{Job, JobError, JobHandler, JobsError, NewJob, Queue};
use village_platform::audit::AuditEntry;
use village_platform::boundary::stored;
use village_platform::cache::Cache;
use village_platform::clock::Clock;
use village_platform::error::FieldError;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlError, SqlValue};
use village_platform::{AppError, RequestContext};

use crate::ledger::{self, Entry, Kind};
use crate::notify::Mail;
use crate::stripe::{Stripe, StripeError};
use crate::{AUTOMATIC_REFUND_HOURS, Config, dollars};

pub const NAME: &str = "payments.refund";

/// Records the refunds owed when staff remove listing `listing`: every
/// payment for it not yet refunded — automatic when paid within 24 hours,
/// else a request for manual review. Returns the approved ones' ids (to
/// queue). The marketplace's removal calls the same SQL function inside
/// its own statement; this is for callers outside one.
pub async fn on_listing_removed(
    sql: &impl Sql,
    listing: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, SqlError> {
    // The SQL function (migration V33) is what the marketplace's removal
    // statement calls; this is the same, for callers outside it.
    let rows = sql
        .query(
            "SELECT refund_id, refund_status FROM \
             payment_refunds_on_removal($1, $2, $3::timestamp, $4::bigint::int)",
            &[
                SqlValue::Int64(listing),
                SqlValue::Text(stored(reason, 400)),
                SqlValue::Timestamp(now),
                SqlValue::Int64(AUTOMATIC_REFUND_HOURS),
            ],
        )
        .await?;
    let mut approved = Vec::new();
    for r in &rows {
        if r.get::<String>("refund_status")? == "approved" {
            approved.push(r.get("refund_id")?);
        }
    }
    Ok(approved)
}

/// Queues the job issuing each refund in `ids` (once per refund).
pub async fn enqueue(
    sql: &impl Sql,
    cache: &impl Cache,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<(), JobsError> {
    for id in ids {
        village_jobs::enqueue(sql, cache, now, job(*id)).await?;
    }
    Ok(())
}

/// The job issuing refund `id` (keyed by it).
pub fn job(id: i64) -> NewJob {
    NewJob::new(Queue::High, NAME, serde_json::json!({ "refund_id": id }))
        .idempotency_key(format!("{NAME}:{id}"))
        .max_attempts(10)
}

/// A seller asks for their money back (manual review).
pub async fn request(
    sql: &impl Sql,
    ctx: &RequestContext,
    payment: Uuid,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64, AppError> {
    let user = ctx.user_id().ok_or(AppError::Unauthorized)?;
    village_accounts::authz::refuse_while_impersonating(sql, ctx, "refund request").await?;
    let mut errors = Vec::new();
    let reason = village_platform::admin::require_reason(reason, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let status: String = sql
        .query_opt(
            "SELECT status FROM payments WHERE id = $1 AND user_id = $2",
            &[SqlValue::Uuid(payment), SqlValue::Uuid(user)],
        )
        .await?
        .ok_or(AppError::NotFound)?
        .get("status")?;
    if !matches!(status.as_str(), "succeeded" | "partially_refunded") {
        return Err(AppError::Conflict(format!(
            "a {status} payment cannot be refunded"
        )));
    }
    let row = sql
        .query_opt(
            "INSERT INTO payment_refunds (payment_id, amount_cents, kind, status, reason, \
                 requested_by, requested_at) \
             SELECT p.id, p.amount_cents - coalesce((SELECT -sum(amount_cents) FROM payment_ledger \
                        WHERE payment_id = p.id AND kind = 'refund'), 0), \
                    'manual', 'requested', $3, $2, $4::timestamp \
             FROM payments p WHERE p.id = $1 \
               AND NOT EXISTS (SELECT 1 FROM payment_refunds x WHERE x.payment_id = p.id \
                               AND x.status IN ('requested', 'approved')) \
             ON CONFLICT DO NOTHING \
             RETURNING id",
            &[
                SqlValue::Uuid(payment),
                SqlValue::Uuid(user),
                SqlValue::Text(reason),
                SqlValue::Timestamp(now),
            ],
        )
        .await?
        .ok_or_else(|| AppError::Conflict("a refund for this payment is already open".into()))?;
    Ok(row.get("id")?)
}

/// A refund as staff review it.
#[derive(Debug, Clone, Serialize)]
pub struct RefundRow {
    pub id: i64,
    pub payment_id: Uuid,
    pub listing_id: Option<i64>,
    pub amount_cents: i64,
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub requested_by: Option<Uuid>,
    pub requested_at: DateTime<Utc>,
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_reason: Option<String>,
    pub stripe_refund_id: Option<String>,
    pub issued_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
}

pub async fn list(
    sql: &impl Sql,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<RefundRow>, SqlError> {
    let rows = sql
        .query(
            "SELECT r.id, r.payment_id, p.listing_id, r.amount_cents, r.kind, r.status, r.reason, \
                    r.requested_by, r.requested_at, r.decided_by, r.decided_at, r.decision_reason, \
                    r.stripe_refund_id, r.issued_at, r.failure \
             FROM payment_refunds r JOIN payments p ON p.id = r.payment_id \
             WHERE ($1::text IS NULL OR r.status = $1) ORDER BY r.id DESC LIMIT $2",
            &[
                status.map_or(SqlValue::Null, |s| SqlValue::Text(s.to_owned())),
                SqlValue::Int64(limit),
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(RefundRow {
                id: r.get("id")?,
                payment_id: r.get("payment_id")?,
                listing_id: r.get("listing_id")?,
                amount_cents: i64::from(r.get::<i32>("amount_cents")?),
                kind: r.get("kind")?,
                status: r.get("status")?,
                reason: r.get("reason")?,
                requested_by: r.get("requested_by")?,
                requested_at: r.get("requested_at")?,
                decided_by: r.get("decided_by")?,
                decided_at: r.get("decided_at")?,
                decision_reason: r.get("decision_reason")?,
                stripe_refund_id: r.get("stripe_refund_id")?,
                issued_at: r.get("issued_at")?,
                failure: r.get("failure")?,
            })
        })
        .collect()
}

/// Staff refund `amount_cents` (all that is left when `None`) of `payment`:
/// approved at once, audited in the same statement. Returns the refund id.
pub async fn by_staff(
    sql: &impl Sql,
    entry: &AuditEntry,
    payment: Uuid,
    amount_cents: Option<i64>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<i64, AppError> {
    let left: Option<i64> = sql
        .query_opt(
            "SELECT p.status, (p.amount_cents - coalesce((SELECT -sum(amount_cents) FROM payment_ledger \
                    WHERE payment_id = p.id AND kind = 'refund'), 0) - \
                    coalesce((SELECT sum(amount_cents) FROM payment_refunds \
                    WHERE payment_id = p.id AND status = 'approved'), 0))::bigint AS left_cents \
             FROM payments p WHERE p.id = $1",
            &[SqlValue::Uuid(payment)],
        )
        .await?
        .ok_or(AppError::NotFound)?
        .get("left_cents")?;
    let left = left.unwrap_or(0);
    let amount = amount_cents.unwrap_or(left);
    if amount <= 0 || amount > left {
        return Err(AppError::Validation(vec![FieldError::new(
            "amount_cents",
            format!("from 1 to {left} (what is left to refund)"),
        )]));
    }
    let row = sql
        .query_opt(
            "WITH r AS ( \
                 INSERT INTO payment_refunds (payment_id, amount_cents, kind, status, reason, \
                     requested_by, requested_at, decided_by, decided_at, decision_reason) \
                 SELECT id, $2::bigint, 'manual', 'approved', $3, $4, $5::timestamp, $4, $5::timestamp, $3 \
                 FROM payments WHERE id = $1 AND status IN ('succeeded', 'partially_refunded') \
                 RETURNING id) \
             SELECT r.id, audit_record($6, NULL, jsonb_build_object('refund_id', r.id, \
                 'payment_id', $1::uuid, 'amount_cents', $2::bigint)) AS audit_id FROM r",
            &[
                SqlValue::Uuid(payment),
                SqlValue::Int64(amount),
                SqlValue::Text(reason.to_owned()),
                entry.actor_user_id.map_or(SqlValue::Null, SqlValue::Uuid),
                SqlValue::Timestamp(now),
                entry.as_param(),
            ],
        )
        .await?
        .ok_or_else(|| AppError::Conflict("this payment cannot be refunded".into()))?;
    Ok(row.get("id")?)
}

/// Staff approve or reject requested refund `id`, audited with the change.
pub async fn decide(
    sql: &impl Sql,
    entry: &AuditEntry,
    id: i64,
    approve: bool,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let rows = sql
        .query(
            "WITH r AS ( \
                 UPDATE payment_refunds SET status = $2, decided_by = $3, decided_at = $4::timestamp, \
                     decision_reason = $5 \
                 WHERE id = $1 AND status = 'requested' RETURNING id, payment_id, amount_cents) \
             SELECT audit_record($6, jsonb_build_object('status', 'requested'), \
                 jsonb_build_object('status', $2::text, 'payment_id', r.payment_id, \
                 'amount_cents', r.amount_cents)) AS audit_id FROM r",
            &[
                SqlValue::Int64(id),
                SqlValue::Text(if approve { "approved" } else { "rejected" }.to_owned()),
                entry.actor_user_id.map_or(SqlValue::Null, SqlValue::Uuid),
                SqlValue::Timestamp(now),
                SqlValue::Text(reason.to_owned()),
                entry.as_param(),
            ],
        )
        .await?;
    if rows.is_empty() {
        let exists = sql
            .query_opt(
                "SELECT status FROM payment_refunds WHERE id = $1",
                &[SqlValue::Int64(id)],
            )
            .await?;
        return match exists {
            None => Err(AppError::NotFound),
            Some(r) => Err(AppError::Conflict(format!(
                "the refund is {}, not awaiting a decision",
                r.get::<String>("status")?
            ))),
        };
    }
    Ok(())
}

/// `payments.refund`: issues approved refund `refund_id` at Stripe.
pub struct IssueRefund<'a, S, H, K> {
    pub sql: &'a S,
    pub http: &'a H,
    pub clock: &'a K,
    pub config: &'a Config,
    pub mail: &'a Mail<'a, H>,
}

impl<S: Sql, H: HttpClient, K: Clock> IssueRefund<'_, S, H, K> {
    async fn issue(&self, id: i64) -> Result<(), JobError> {
        let now = self.clock.now();
        let retry = |e: SqlError| JobError::Retry(e.to_string());
        let Some(row) = self
            .sql
            .query_opt(
                "SELECT r.status, r.amount_cents, r.kind, r.reason, r.seller_notified_at IS NOT NULL AS told, \
                        p.id AS payment_id, p.stripe_payment_intent_id, p.user_id, p.currency, \
                        p.purpose, l.title \
                 FROM payment_refunds r JOIN payments p ON p.id = r.payment_id \
                 LEFT JOIN marketplace_listings l ON l.id = p.listing_id WHERE r.id = $1",
                &[SqlValue::Int64(id)],
            )
            .await
            .map_err(retry)?
        else {
            return Err(JobError::Permanent(format!("no refund {id}")));
        };
        let status: String = row.get("status").map_err(retry)?;
        if status != "approved" {
            // Issued by an earlier run, or never approved: nothing to do.
            return Ok(());
        }
        let payment: Uuid = row.get("payment_id").map_err(retry)?;
        let amount = i64::from(row.get::<i32>("amount_cents").map_err(retry)?);
        let Some(intent) = row
            .get::<Option<String>>("stripe_payment_intent_id")
            .map_err(retry)?
        else {
            let e = StripeError::Decode(format!("payment {payment} has no payment intent"));
            return self.failed(id, payment, &e).await;
        };
        let stripe = Stripe {
            http: self.http,
            config: self.config,
        };
        let metadata = BTreeMap::from([
            ("refund_row", id.to_string()),
            ("payment_id", payment.to_string()),
        ]);
        let refund = match stripe
            .create_refund(&intent, amount, &metadata, &format!("village-refund-{id}"))
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_transient() => return Err(JobError::Retry(e.to_string())),
            Err(e) => return self.failed(id, payment, &e).await,
        };
        if matches!(refund.status.as_str(), "failed" | "canceled") {
            let e = StripeError::Api {
                status: 200,
                kind: "refund".into(),
                code: None,
                message: format!("the refund is {}", refund.status),
            };
            return self.failed(id, payment, &e).await;
        }
        self.sql
            .execute(
                "UPDATE payment_refunds SET status = 'issued', stripe_refund_id = $2, \
                     issued_at = $3::timestamp WHERE id = $1 AND status = 'approved'",
                &[
                    SqlValue::Int64(id),
                    SqlValue::Text(refund.id.clone()),
                    SqlValue::Timestamp(now),
                ],
            )
            .await
            .map_err(retry)?;
        if matches!(refund.status.as_str(), "succeeded" | "pending") {
            // Stripe takes it from the balance at once, pending or not (a
            // later failure is booked back by `charge.refund.updated`).
            ledger::record(
                self.sql,
                &Entry {
                    payment: Some(payment),
                    kind: Kind::Refund,
                    amount_cents: -refund.amount,
                    currency: &refund.currency,
                    stripe_object_id: &refund.id,
                    occurred_at: crate::unix(refund.created).unwrap_or(now),
                },
                now,
            )
            .await
            .map_err(retry)?;
            ledger::settle_refunds(self.sql, payment, now)
                .await
                .map_err(retry)?;
        }
        if !row.get::<bool>("told").map_err(retry)?
            && let Some(user) = row.get::<Option<Uuid>>("user_id").map_err(retry)?
        {
            let title: Option<String> = row.get("title").map_err(retry)?;
            let reason: String = row.get("reason").map_err(retry)?;
            let text = format!(
                "We have refunded {} for your listing “{}” ({}).\n\nReason: {reason}\n\n\
                 The money reaches your card within 5–10 business days. Reference: refund {id}.",
                dollars(amount),
                title.as_deref().unwrap_or("(deleted)"),
                row.get::<String>("purpose").map_err(retry)?,
            );
            let sent = self
                .mail
                .user(self.sql, user, "Your Village Homepage refund", &text)
                .await
                .map_err(retry)?;
            if sent {
                self.sql
                    .execute(
                        "UPDATE payment_refunds SET seller_notified_at = $2::timestamp WHERE id = $1",
                        &[SqlValue::Int64(id), SqlValue::Timestamp(now)],
                    )
                    .await
                    .map_err(retry)?;
            }
        }
        village_platform::log::event(
            "INFO",
            "refund issued",
            serde_json::json!({ "refund_id": id, "payment_id": payment, "amount_cents": amount,
                                "stripe_refund_id": refund.id }),
        );
        Ok(())
    }

    /// Stripe refused for good: the row says why, ops are told.
    async fn failed(&self, id: i64, payment: Uuid, e: &StripeError) -> Result<(), JobError> {
        let now = self.clock.now();
        self.sql
            .execute(
                "UPDATE payment_refunds SET status = 'failed', failure = $2, decided_at = \
                     coalesce(decided_at, $3::timestamp) WHERE id = $1 AND status = 'approved'",
                &[
                    SqlValue::Int64(id),
                    SqlValue::Text(stored(&e.to_string(), 500)),
                    SqlValue::Timestamp(now),
                ],
            )
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        self.mail
            .ops(
                "A refund failed at Stripe",
                &format!("Refund {id} of payment {payment} failed: {e}. Review it in /admin/api/payments/refunds."),
                serde_json::json!({ "refund_id": id, "payment_id": payment, "error": e.to_string() }),
            )
            .await;
        Err(JobError::Permanent(format!("refund {id}: {e}")))
    }
}

impl<S: Sql, H: HttpClient, K: Clock> JobHandler for IssueRefund<'_, S, H, K> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let id = job
            .payload
            .get("refund_id")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| JobError::Permanent("payload needs refund_id".into()))?;
        self.issue(id).await
    }
}

/// Approved refunds not yet issued, approved at least `grace` ago (a
/// removal's, a lost enqueue, a dead job after an outage): their ids, to
/// queue.
pub async fn waiting(
    sql: &impl Sql,
    now: DateTime<Utc>,
    grace: Duration,
) -> Result<Vec<i64>, SqlError> {
    let rows = sql
        .query(
            "SELECT id FROM payment_refunds WHERE status = 'approved' \
               AND coalesce(decided_at, requested_at) <= $1::timestamp ORDER BY id LIMIT 500",
            &[SqlValue::Timestamp(now - grace)],
        )
        .await?;
    rows.iter().map(|r| r.get("id")).collect()
}
