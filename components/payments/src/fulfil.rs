//! What a succeeded payment buys, applied exactly once: one statement
//! claims the payment (`fulfilled_at`), changes the listing and — when the
//! listing can no longer take it (withdrawn, removed, archived, moved to
//! another category) — records the automatic refund instead. A retry after
//! a crash finds the claim and does nothing twice.
//!
//! - posting: a draft or expired listing is published for 30 days; an
//!   active one is renewed, 30 days past its current expiry.
//! - featured / highlight: the listing's `featured_until` /
//!   `highlighted_until` moves the product's duration past the later of
//!   now and what is left (buying twice adds up).
//! - bump: `published_at` becomes now (first among the newest).

use chrono::{DateTime, Utc};
use uuid::Uuid;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::Purpose;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fulfilment {
    /// The listing was published, renewed or promoted now.
    Applied,
    /// Done before (or the payment has not succeeded).
    Nothing,
    /// The listing could not take it: refund `refund_id` was recorded
    /// (`None` if one already existed).
    Refunding { refund_id: Option<i64> },
}

/// The CTE `r`: when the listing could not take it (`l` empty), the
/// automatic refund of what is left of payment `p` (less what was refunded
/// already), once per payment.
macro_rules! refund_owed {
    ($reason:literal) => {
        concat!(
            "r AS ( \
                INSERT INTO payment_refunds (payment_id, amount_cents, kind, status, reason, requested_at) \
                SELECT p.id, p.amount_cents - coalesce((SELECT -sum(g.amount_cents) FROM payment_ledger g \
                           WHERE g.payment_id = p.id AND g.kind = 'refund'), 0), \
                       'automatic', 'approved', '",
            $reason,
            "', $2::timestamp \
                FROM p WHERE NOT EXISTS (SELECT 1 FROM l) \
                  AND p.amount_cents > coalesce((SELECT -sum(g.amount_cents) FROM payment_ledger g \
                           WHERE g.payment_id = p.id AND g.kind = 'refund'), 0) \
                ON CONFLICT (payment_id) WHERE kind = 'automatic' DO NOTHING \
                RETURNING id) "
        )
    };
}

const POSTING: &str = concat!(
    "\
    WITH p AS ( \
        UPDATE payments SET fulfilled_at = $2::timestamp, updated_at = $2::timestamp \
        WHERE id = $1 AND fulfilled_at IS NULL AND status IN ('succeeded', 'partially_refunded') \
          AND purpose = 'posting' \
        RETURNING id, listing_id, category_id, amount_cents), \
    l AS ( \
        UPDATE marketplace_listings m SET status = 'active', updated_at = $2::timestamp, \
            published_at = CASE WHEN m.status = 'active' THEN m.published_at ELSE $2::timestamp END, \
            expires_at = CASE WHEN m.status = 'active' THEN greatest(m.expires_at, $2::timestamp) \
                              ELSE $2::timestamp END + interval '30 days', \
            reminded_at = NULL, ended_at = NULL \
        FROM p WHERE m.id = p.listing_id AND m.category_id = p.category_id \
          AND m.status IN ('draft', 'expired', 'active') AND m.archived_at IS NULL \
        RETURNING m.id), \
    ",
    refund_owed!("the listing could not be published after payment"),
    " \
    SELECT (SELECT count(*) FROM p) AS claimed, (SELECT count(*) FROM l) AS applied, \
           (SELECT id FROM r) AS refund_id"
);

const PROMOTION: &str = concat!(
    "\
    WITH p AS ( \
        UPDATE payments SET fulfilled_at = $2::timestamp, updated_at = $2::timestamp \
        WHERE id = $1 AND fulfilled_at IS NULL AND status IN ('succeeded', 'partially_refunded') \
          AND purpose = $3 \
        RETURNING id, listing_id, amount_cents), \
    d AS (SELECT make_interval(days => coalesce(duration_days, 0)) AS span \
          FROM payment_products WHERE kind = $3), \
    l AS ( \
        UPDATE marketplace_listings m SET updated_at = $2::timestamp, \
            featured_until = CASE WHEN $3 = 'featured' \
                THEN greatest(m.featured_until, $2::timestamp) + (SELECT span FROM d) \
                ELSE m.featured_until END, \
            highlighted_until = CASE WHEN $3 = 'highlight' \
                THEN greatest(m.highlighted_until, $2::timestamp) + (SELECT span FROM d) \
                ELSE m.highlighted_until END, \
            published_at = CASE WHEN $3 = 'bump' THEN $2::timestamp ELSE m.published_at END \
        FROM p WHERE m.id = p.listing_id AND m.status = 'active' AND m.archived_at IS NULL \
        RETURNING m.id, m.featured_until, m.highlighted_until), \
    promo AS ( \
        INSERT INTO listing_promotions (listing_id, kind, payment_id, starts_at, ends_at) \
        SELECT l.id, $3, p.id, $2::timestamp, \
               CASE $3 WHEN 'featured' THEN l.featured_until \
                       WHEN 'highlight' THEN l.highlighted_until ELSE $2::timestamp END \
        FROM l, p RETURNING id), \
    ",
    refund_owed!("the listing could not be promoted after payment"),
    " \
    SELECT (SELECT count(*) FROM p) AS claimed, (SELECT count(*) FROM promo) AS applied, \
           (SELECT id FROM r) AS refund_id"
);

/// Applies succeeded payment `payment` (once).
pub async fn fulfil(
    sql: &impl Sql,
    payment: Uuid,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Fulfilment, SqlError> {
    let row = match purpose {
        Purpose::Posting => {
            sql.query_opt(
                POSTING,
                &[SqlValue::Uuid(payment), SqlValue::Timestamp(now)],
            )
            .await?
        }
        promotion => {
            sql.query_opt(
                PROMOTION,
                &[
                    SqlValue::Uuid(payment),
                    SqlValue::Timestamp(now),
                    SqlValue::Text(promotion.as_str().to_owned()),
                ],
            )
            .await?
        }
    }
    .ok_or_else(|| SqlError::Decode("the fulfilment statement returned no row".into()))?;
    let claimed: i64 = row.get("claimed")?;
    let applied: i64 = row.get("applied")?;
    Ok(match (claimed, applied) {
        (0, _) => Fulfilment::Nothing,
        (_, 0) => {
            sql.execute(
                "UPDATE payments SET fulfilment_note = 'the listing could not take it: refunded' \
                 WHERE id = $1",
                &[SqlValue::Uuid(payment)],
            )
            .await?;
            Fulfilment::Refunding {
                refund_id: row.get("refund_id")?,
            }
        }
        _ => Fulfilment::Applied,
    })
}
