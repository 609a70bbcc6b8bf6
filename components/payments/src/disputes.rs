//! `payments.dispute_evidence`: a chargeback's evidence package — the
//! listing's content and history, its audit rows, how buyers reached the
//! seller, and the payment's whole timeline (events, ledger, refunds,
//! promotions) — one JSON document in blob storage
//! (`payments/disputes/{stripe dispute id}.json`), its key on the dispute
//! row; ops are alerted once with where to find it and the deadline.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use village_jobs::{Job, JobError, JobHandler};
use village_platform::blob::{Blob, BlobStore};
use village_platform::clock::Clock;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::notify::Mail;

pub const NAME: &str = "payments.dispute_evidence";

/// The job gathering dispute row `id`'s evidence (keyed by it).
pub fn job(id: i64) -> village_jobs::NewJob {
    village_jobs::NewJob::new(village_jobs::Queue::High, NAME, json!({ "dispute_id": id }))
        .idempotency_key(format!("{NAME}:{id}"))
        .max_attempts(10)
}

pub struct GatherEvidence<'a, S, B, H, K> {
    pub sql: &'a S,
    pub blobs: &'a B,
    pub clock: &'a K,
    pub mail: &'a Mail<'a, H>,
}

fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(e.to_string())
}

/// The rows of `statement` (each selecting one `doc` jsonb) as a list.
async fn docs(sql: &impl Sql, statement: &str, params: &[SqlValue]) -> Result<Value, SqlError> {
    let rows = sql.query(statement, params).await?;
    Ok(Value::Array(
        rows.iter()
            .map(|r| r.get::<Value>("doc"))
            .collect::<Result<_, _>>()?,
    ))
}

/// The evidence for dispute row `id`.
pub async fn package(sql: &impl Sql, id: i64, now: DateTime<Utc>) -> Result<Value, SqlError> {
    let dispute = sql
        .query_opt(
            "SELECT to_jsonb(d) AS doc, d.payment_id, d.stripe_dispute_id FROM payment_disputes d WHERE d.id = $1",
            &[SqlValue::Int64(id)],
        )
        .await?
        .ok_or_else(|| SqlError::Decode(format!("no dispute {id}")))?;
    let payment_id: Option<uuid::Uuid> = dispute.get("payment_id")?;
    let pid = payment_id.map_or(SqlValue::Null, SqlValue::Uuid);
    let payment = docs(
        sql,
        "SELECT to_jsonb(p) AS doc FROM payments p WHERE p.id = $1",
        std::slice::from_ref(&pid),
    )
    .await?;
    let listing = docs(
        sql,
        "SELECT jsonb_build_object('id', l.id, 'title', l.title, 'body_markdown', l.body_markdown, \
                'price_cents', l.price_cents, 'category', c.name, 'place', l.place_name, \
                'status', l.status, 'created_at', l.created_at, 'published_at', l.published_at, \
                'expires_at', l.expires_at, 'ended_at', l.ended_at, 'removed_reason', l.removed_reason, \
                'seller_id', l.seller_id, 'seller_name', u.display_name, \
                'contact_method', l.contact_method, \
                'images', (SELECT coalesce(jsonb_agg(i.key ORDER BY i.position), '[]'::jsonb) \
                           FROM marketplace_listing_images i WHERE i.listing_id = l.id)) AS doc \
         FROM payments p JOIN marketplace_listings l ON l.id = p.listing_id \
         JOIN marketplace_categories c ON c.id = l.category_id JOIN users u ON u.id = l.seller_id \
         WHERE p.id = $1",
        std::slice::from_ref(&pid),
    )
    .await?;
    let audit = docs(
        sql,
        "SELECT to_jsonb(a) - 'ip' - 'user_agent' AS doc FROM audit_log a \
         WHERE (a.target_type = 'marketplace_listing' AND a.target_id = \
                (SELECT listing_id::text FROM payments WHERE id = $1)) \
            OR (a.target_type IN ('payment', 'payment_refund') AND a.after->>'payment_id' = $1::uuid::text) \
            OR (a.after->>'payment_id' = $1::uuid::text) \
         ORDER BY a.id LIMIT 1000",
        std::slice::from_ref(&pid),
    )
    .await?;
    let events = docs(
        sql,
        "SELECT jsonb_build_object('id', e.id, 'type', e.type, 'created', e.created, \
                'received_at', e.received_at, 'processed_at', e.processed_at, 'outcome', e.outcome) AS doc \
         FROM stripe_events e, payments p WHERE p.id = $1 AND ( \
               e.payload #>> '{data,object,id}' IN (p.stripe_payment_intent_id, p.stripe_charge_id) \
            OR e.payload #>> '{data,object,payment_intent}' = p.stripe_payment_intent_id \
            OR e.payload #>> '{data,object,charge}' = p.stripe_charge_id) \
         ORDER BY e.created, e.id LIMIT 1000",
        std::slice::from_ref(&pid),
    )
    .await?;
    let ledger = docs(
        sql,
        "SELECT to_jsonb(l) AS doc FROM payment_ledger l WHERE l.payment_id = $1 ORDER BY l.id",
        std::slice::from_ref(&pid),
    )
    .await?;
    let refunds = docs(
        sql,
        "SELECT to_jsonb(r) AS doc FROM payment_refunds r WHERE r.payment_id = $1 ORDER BY r.id",
        std::slice::from_ref(&pid),
    )
    .await?;
    let promotions = docs(
        sql,
        "SELECT to_jsonb(x) AS doc FROM listing_promotions x WHERE x.payment_id = $1",
        std::slice::from_ref(&pid),
    )
    .await?;
    Ok(json!({
        "generated_at": now,
        "dispute": dispute.get::<Value>("doc")?,
        "payment": payment.get(0).cloned().unwrap_or(Value::Null),
        "listing": listing.get(0).cloned().unwrap_or(Value::Null),
        "audit": audit,
        "contact": {
            "how_buyers_reach_the_seller": "the listing's own contact (email or phone), shown to signed-in visitors",
            "thread": [],
            "note": "the marketplace keeps no messages between buyers and sellers"
        },
        "timeline": { "stripe_events": events, "ledger": ledger, "refunds": refunds, "promotions": promotions },
    }))
}

impl<S: Sql, B: BlobStore, H: HttpClient, K: Clock> GatherEvidence<'_, S, B, H, K> {
    async fn gather(&self, id: i64) -> Result<(), JobError> {
        let now = self.clock.now();
        let doc = package(self.sql, id, now).await.map_err(retry)?;
        let stripe_id = doc
            .pointer("/dispute/stripe_dispute_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect::<String>();
        let key = format!("payments/disputes/{id}-{stripe_id}.json");
        let bytes = serde_json::to_vec_pretty(&doc).map_err(retry)?;
        self.blobs
            .put(
                &key,
                &Blob {
                    content_type: "application/json".into(),
                    bytes,
                    metadata: Default::default(),
                },
            )
            .await
            .map_err(retry)?;
        let alert = self
            .sql
            .query_opt(
                "UPDATE payment_disputes SET evidence_key = $2, evidence_at = $3::timestamp, \
                     ops_alerted_at = coalesce(ops_alerted_at, $3::timestamp) \
                 WHERE id = $1 RETURNING (ops_alerted_at = $3::timestamp) AS first, amount_cents, \
                     currency, reason, evidence_due_by, payment_id",
                &[
                    SqlValue::Int64(id),
                    SqlValue::Text(key.clone()),
                    SqlValue::Timestamp(now),
                ],
            )
            .await
            .map_err(retry)?
            .ok_or_else(|| JobError::Permanent(format!("no dispute {id}")))?;
        if alert.get::<bool>("first").map_err(retry)? {
            let amount: i32 = alert.get("amount_cents").map_err(retry)?;
            let due: Option<DateTime<Utc>> = alert.get("evidence_due_by").map_err(retry)?;
            let reason: Option<String> = alert.get("reason").map_err(retry)?;
            self.mail
                .ops(
                    "A chargeback was opened",
                    &format!(
                        "Stripe dispute {stripe_id} ({}, reason {}) on payment {}. Evidence package: \
                         blob {key} (GET /admin/api/payments/disputes/{id}/evidence). Respond in \
                         Stripe before {}.",
                        crate::dollars(i64::from(amount)),
                        reason.as_deref().unwrap_or("unspecified"),
                        alert
                            .get::<Option<uuid::Uuid>>("payment_id")
                            .map_err(retry)?
                            .map_or_else(|| "(unknown)".to_owned(), |p| p.to_string()),
                        due.map_or_else(|| "the deadline Stripe shows".to_owned(), |d| d.to_rfc3339()),
                    ),
                    json!({ "dispute_id": id, "stripe_dispute_id": stripe_id, "evidence_key": key }),
                )
                .await;
        }
        Ok(())
    }
}

impl<S: Sql, B: BlobStore, H: HttpClient, K: Clock> JobHandler for GatherEvidence<'_, S, B, H, K> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let id = job
            .payload
            .get("dispute_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| JobError::Permanent("payload needs dispute_id".into()))?;
        self.gather(id).await
    }
}
