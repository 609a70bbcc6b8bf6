//! Starting a purchase: a paid category's posting fee or a promotion, for a
//! listing of the buyer's own.
//!
//! Each attempt is a `payments` row with its own idempotency key, written
//! before Stripe is called; the Payment Intent is created with that key and
//! metadata naming the payment, listing, category, purpose and user. If
//! Stripe fails mid-way, the next try reuses the row and the key, so Stripe
//! answers with the same intent: one attempt never becomes two charges.
//! Opening checkout again for the same listing and purpose resumes the open
//! attempt (a declined card can be retried on the same intent). Nothing is
//! published here: the listing changes only when the webhook says the
//! payment succeeded ([`crate::fulfil`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use village_platform::cache::Cache;
use village_platform::error::FieldError;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Row, Sql, SqlError, SqlValue};
use village_platform::{AppError, RequestContext};

use crate::stripe::{Stripe, StripeError};
use crate::{Config, Purpose};

/// What the page needs to confirm the payment with Stripe.js.
#[derive(Debug, Clone, Serialize)]
pub struct Checkout {
    pub payment_id: Uuid,
    pub listing_id: i64,
    pub purpose: Purpose,
    pub description: String,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub payment_intent: String,
    pub client_secret: String,
    pub publishable_key: String,
}

/// What a purchase is for, checked against the listing and prices.
#[derive(Debug, Clone)]
pub struct Offer {
    pub listing_id: i64,
    pub listing_title: String,
    pub category_id: i64,
    pub purpose: Purpose,
    pub description: String,
    pub amount_cents: i64,
}

/// What `user` may buy for listing `listing_id` with `purpose`: 404 when
/// the listing is not theirs, 409 when it cannot be bought now (a free
/// category, an ended listing, a promotion switched off).
pub async fn offer(
    sql: &impl Sql,
    user: Uuid,
    listing_id: i64,
    purpose: Purpose,
    promotions_on: bool,
) -> Result<Offer, AppError> {
    let row = sql
        .query_opt(
            "SELECT l.title, l.status, l.archived_at IS NOT NULL AS archived, l.category_id, \
                    c.name AS category_name, c.fee_cents, \
                    p.name AS product_name, p.price_cents, p.active AS product_active \
             FROM marketplace_listings l \
             JOIN marketplace_categories c ON c.id = l.category_id \
             LEFT JOIN payment_products p ON p.kind = $3 \
             WHERE l.id = $1 AND l.seller_id = $2",
            &[
                SqlValue::Int64(listing_id),
                SqlValue::Uuid(user),
                SqlValue::Text(purpose.as_str().to_owned()),
            ],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let status: String = row.get("status")?;
    let archived: bool = row.get("archived")?;
    let title: String = row.get("title")?;
    let conflict = |why: String| Err(AppError::Conflict(why));
    let (description, amount_cents) = match purpose {
        Purpose::Posting => {
            let fee: i32 = row.get("fee_cents")?;
            let category: String = row.get("category_name")?;
            if fee <= 0 {
                return conflict(format!(
                    "“{category}” is a free category: publish the listing directly"
                ));
            }
            if archived || !matches!(status.as_str(), "draft" | "expired" | "active") {
                return conflict(format!("a {status} listing cannot be published or renewed"));
            }
            let verb = if status == "active" {
                "Renew"
            } else {
                "Publish"
            };
            (
                format!("{verb} in “{category}” for 30 days"),
                i64::from(fee),
            )
        }
        promotion => {
            if !promotions_on {
                return conflict("promotions are not available right now".into());
            }
            let active: Option<bool> = row.get("product_active")?;
            if active != Some(true) {
                return conflict(format!(
                    "the {} promotion is not on sale",
                    promotion.as_str()
                ));
            }
            if status != "active" || archived {
                return conflict(format!(
                    "only an active listing can be promoted (this one is {status})"
                ));
            }
            let price: i32 = row.get("price_cents")?;
            (row.get("product_name")?, i64::from(price))
        }
    };
    Ok(Offer {
        listing_id,
        listing_title: title,
        category_id: row.get("category_id")?,
        purpose,
        description,
        amount_cents,
    })
}

fn unavailable(e: StripeError) -> AppError {
    // Stripe's own words stay in the log; the buyer learns to try again.
    village_platform::log::event(
        "ERROR",
        "creating a payment intent failed",
        serde_json::json!({ "error": e.to_string() }),
    );
    AppError::Unavailable {
        dependency: "payments",
        detail: "Stripe could not be reached; nothing was charged, please try again".into(),
    }
}

struct Attempt {
    id: Uuid,
    category_id: i64,
    amount_cents: i64,
    currency: String,
    status: String,
    idempotency_key: String,
    payment_intent: Option<String>,
}

impl TryFrom<&Row> for Attempt {
    type Error = SqlError;

    fn try_from(r: &Row) -> Result<Self, SqlError> {
        Ok(Attempt {
            id: r.get("id")?,
            category_id: r.get("category_id")?,
            amount_cents: i64::from(r.get::<i32>("amount_cents")?),
            currency: r.get("currency")?,
            status: r.get("status")?,
            idempotency_key: r.get("idempotency_key")?,
            payment_intent: r.get("stripe_payment_intent_id")?,
        })
    }
}

/// The open attempt for this listing and purpose, or a new one.
async fn attempt(
    sql: &impl Sql,
    user: Uuid,
    offer: &Offer,
    currency: &str,
    now: DateTime<Utc>,
) -> Result<Attempt, AppError> {
    let id = Uuid::new_v4();
    // Two tabs racing insert one row (the partial unique index); both
    // then read the same one.
    sql.execute(
        "INSERT INTO payments (id, user_id, listing_id, category_id, purpose, amount_cents, \
             currency, idempotency_key, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6::bigint, $7, $8, $9::timestamp, $9::timestamp) \
         ON CONFLICT (listing_id, purpose) WHERE status IN ('created', 'failed') DO NOTHING",
        &[
            SqlValue::Uuid(id),
            SqlValue::Uuid(user),
            SqlValue::Int64(offer.listing_id),
            SqlValue::Int64(offer.category_id),
            SqlValue::Text(offer.purpose.as_str().to_owned()),
            SqlValue::Int64(offer.amount_cents),
            SqlValue::Text(currency.to_owned()),
            SqlValue::Text(format!("village-payment-{id}")),
            SqlValue::Timestamp(now),
        ],
    )
    .await?;
    let row = sql
        .query_opt(
            "SELECT id, category_id, amount_cents, currency, status, idempotency_key, \
                    stripe_payment_intent_id \
             FROM payments WHERE listing_id = $1 AND purpose = $2 AND status IN ('created', 'failed')",
            &[
                SqlValue::Int64(offer.listing_id),
                SqlValue::Text(offer.purpose.as_str().to_owned()),
            ],
        )
        .await?
        .ok_or_else(|| AppError::Conflict("the purchase changed meanwhile; try again".into()))?;
    Ok(Attempt::try_from(&row)?)
}

/// Starts (or resumes) `user`'s purchase of `purpose` for `listing_id`.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    sql: &impl Sql,
    cache: &impl Cache,
    http: &impl HttpClient,
    config: &Config,
    ctx: &RequestContext,
    listing_id: i64,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Checkout, AppError> {
    let user = ctx.user_id().ok_or(AppError::Unauthorized)?;
    // Money moves only on the payer's own behalf (policy P3).
    village_accounts::authz::refuse_while_impersonating(sql, ctx, "payment").await?;
    if !config.configured() {
        return Err(AppError::Unavailable {
            dependency: "payments",
            detail: "online payments are not configured".into(),
        });
    }
    let promotions_on = purpose.is_promotion()
        && village_flags::visitor::is_enabled(
            sql,
            cache,
            &village_flags::visitor::Visitor::of(ctx),
            crate::PROMOTIONS_FLAG,
            now,
        )
        .await;
    let offer = offer(sql, user, listing_id, purpose, promotions_on).await?;
    let stripe = Stripe { http, config };
    let mut attempt = attempt(sql, user, &offer, &config.currency, now).await?;
    let mut current = match &attempt.payment_intent {
        Some(pi) => Some(stripe.payment_intent(pi).await.map_err(unavailable)?),
        None => None,
    };
    if let Some(pi) = &current
        && matches!(
            pi.status.as_str(),
            "succeeded" | "processing" | "requires_capture"
        )
    {
        return Err(AppError::Conflict(
            "this is paid already: the listing changes as soon as Stripe confirms the payment"
                .into(),
        ));
    }
    // The open attempt no longer matches what is on offer (the price or
    // the listing's category changed since), or Stripe canceled its
    // intent: it is canceled and a new one starts, so nobody pays an old
    // price or for a category the listing has left.
    let stale = attempt.amount_cents != offer.amount_cents
        || attempt.category_id != offer.category_id
        || attempt.currency != config.currency
        || current.as_ref().is_some_and(|pi| pi.status == "canceled");
    if stale {
        if let Some(pi) = current.as_ref().filter(|pi| pi.status != "canceled")
            && let Err(e) = stripe.cancel_payment_intent(&pi.id).await
        {
            return Err(unavailable(e));
        }
        sql.execute(
            "UPDATE payments SET status = 'canceled', updated_at = $2::timestamp \
             WHERE id = $1 AND status IN ('created', 'failed')",
            &[SqlValue::Uuid(attempt.id), SqlValue::Timestamp(now)],
        )
        .await?;
        attempt = self::attempt(sql, user, &offer, &config.currency, now).await?;
        current = None;
    }
    let intent = match current {
        Some(pi) => pi,
        None => {
            let metadata = BTreeMap::from([
                ("payment_id", attempt.id.to_string()),
                ("listing_id", offer.listing_id.to_string()),
                ("category_id", offer.category_id.to_string()),
                ("purpose", purpose.as_str().to_owned()),
                ("user_id", user.to_string()),
            ]);
            let intent = stripe
                .create_payment_intent(
                    attempt.amount_cents,
                    &attempt.currency,
                    &metadata,
                    &attempt.idempotency_key,
                )
                .await
                .map_err(unavailable)?;
            sql.execute(
                "UPDATE payments SET stripe_payment_intent_id = $2, updated_at = $3::timestamp \
                 WHERE id = $1 AND stripe_payment_intent_id IS NULL",
                &[
                    SqlValue::Uuid(attempt.id),
                    SqlValue::Text(intent.id.clone()),
                    SqlValue::Timestamp(now),
                ],
            )
            .await?;
            intent
        }
    };
    let client_secret = intent.client_secret.clone().ok_or_else(|| {
        AppError::Internal("Stripe returned a payment intent without a client secret".into())
    })?;
    Ok(Checkout {
        payment_id: attempt.id,
        listing_id,
        purpose,
        description: offer.description,
        amount_cents: attempt.amount_cents,
        currency: attempt.currency,
        status: attempt.status,
        payment_intent: intent.id,
        client_secret,
        publishable_key: config.publishable_key.clone(),
    })
}

/// A payment as its buyer sees it (the page polls it after confirming).
#[derive(Debug, Clone, Serialize)]
pub struct PaymentView {
    pub id: Uuid,
    pub listing_id: Option<i64>,
    pub purpose: String,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub failure_message: Option<String>,
    pub fulfilled: bool,
    pub fulfilment_note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub refunded_cents: i64,
}

/// `user`'s payment `id` (404 for anyone else's).
pub async fn view(sql: &impl Sql, user: Uuid, id: Uuid) -> Result<PaymentView, AppError> {
    let r = sql
        .query_opt(
            "SELECT p.id, p.listing_id, p.purpose, p.amount_cents, p.currency, p.status, \
                    p.failure_message, p.fulfilled_at IS NOT NULL AS fulfilled, p.fulfilment_note, \
                    p.created_at, \
                    coalesce((SELECT -sum(amount_cents) FROM payment_ledger \
                              WHERE payment_id = p.id AND kind = 'refund'), 0)::bigint AS refunded \
             FROM payments p WHERE p.id = $1 AND p.user_id = $2",
            &[SqlValue::Uuid(id), SqlValue::Uuid(user)],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(PaymentView {
        id: r.get("id")?,
        listing_id: r.get("listing_id")?,
        purpose: r.get("purpose")?,
        amount_cents: i64::from(r.get::<i32>("amount_cents")?),
        currency: r.get("currency")?,
        status: r.get("status")?,
        failure_message: r.get("failure_message")?,
        fulfilled: r.get("fulfilled")?,
        fulfilment_note: r.get("fulfilment_note")?,
        created_at: r.get("created_at")?,
        refunded_cents: r.get("refunded")?,
    })
}

/// A purpose named by a form or body, or the field error.
pub fn purpose_field(value: Option<&str>) -> Result<Purpose, FieldError> {
    value
        .and_then(Purpose::parse)
        .ok_or_else(|| FieldError::new("purpose", "one of posting, featured, bump, highlight"))
}
