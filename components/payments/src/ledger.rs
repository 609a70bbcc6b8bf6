//! The ledger: every money movement one row, in signed integer cents with
//! the Stripe object behind it, written once whoever reports it first (a
//! webhook, the refund job, the reconciliation) — `(kind,
//! stripe_object_id)` is unique, so nothing is counted twice. The object is
//! the charge (`ch_`), the refund (`re_`; `re_…:reversed` when a refund
//! failed and the money came back), the dispute's balance transaction
//! (`txn_`: a chargeback and a won dispute's reinstatement are two) or the
//! fee's. And the figures ops read from it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use village_platform::sql::{Sql, SqlError, SqlValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Charge,
    Refund,
    Dispute,
    Fee,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Charge => "charge",
            Kind::Refund => "refund",
            Kind::Dispute => "dispute",
            Kind::Fee => "fee",
        }
    }
}

/// One movement.
pub struct Entry<'a> {
    pub payment: Option<Uuid>,
    pub kind: Kind,
    /// Money in positive, out negative.
    pub amount_cents: i64,
    pub currency: &'a str,
    pub stripe_object_id: &'a str,
    pub occurred_at: DateTime<Utc>,
}

/// Records `e` unless its Stripe object is already in the ledger; whether
/// it was new.
pub async fn record(sql: &impl Sql, e: &Entry<'_>, now: DateTime<Utc>) -> Result<bool, SqlError> {
    let n = sql
        .execute(
            "INSERT INTO payment_ledger (payment_id, kind, amount_cents, currency, \
                 stripe_object_id, occurred_at, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6::timestamp, $7::timestamp) \
             ON CONFLICT (kind, stripe_object_id) DO NOTHING",
            &[
                e.payment.map_or(SqlValue::Null, SqlValue::Uuid),
                SqlValue::Text(e.kind.as_str().to_owned()),
                SqlValue::Int64(e.amount_cents),
                SqlValue::Text(e.currency.to_owned()),
                SqlValue::Text(e.stripe_object_id.to_owned()),
                SqlValue::Timestamp(e.occurred_at),
                SqlValue::Timestamp(now),
            ],
        )
        .await?;
    Ok(n > 0)
}

/// Whether the ledger holds `kind` for Stripe object `id`.
pub async fn booked(sql: &impl Sql, kind: Kind, id: &str) -> Result<bool, SqlError> {
    Ok(sql
        .query_opt(
            "SELECT 1 AS one FROM payment_ledger WHERE kind = $1 AND stripe_object_id = $2",
            &[
                SqlValue::Text(kind.as_str().to_owned()),
                SqlValue::Text(id.to_owned()),
            ],
        )
        .await?
        .is_some())
}

/// Sets a paid payment's refund state from what the ledger holds:
/// `partially_refunded` or `refunded`, or back to `succeeded` when a failed
/// refund's money came back (a disputed one stays disputed).
pub async fn settle_refunds(
    sql: &impl Sql,
    payment: Uuid,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    sql.execute(
        "WITH r AS (SELECT coalesce(-sum(amount_cents), 0) AS refunded FROM payment_ledger \
                    WHERE payment_id = $1 AND kind = 'refund') \
         UPDATE payments SET updated_at = $2::timestamp, \
             status = CASE WHEN (SELECT refunded FROM r) >= amount_cents THEN 'refunded' \
                           WHEN (SELECT refunded FROM r) > 0 THEN 'partially_refunded' \
                           ELSE 'succeeded' END \
         WHERE id = $1 AND status IN ('succeeded', 'partially_refunded', 'refunded')",
        &[SqlValue::Uuid(payment), SqlValue::Timestamp(now)],
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryRevenue {
    pub month: String,
    pub category: String,
    pub charged_cents: i64,
    pub refunded_cents: i64,
    pub net_cents: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonthFigures {
    pub month: String,
    pub charged_cents: i64,
    pub refunded_cents: i64,
    /// Refunded over charged, 0–1 (0 when nothing was charged).
    pub refund_rate: f64,
    pub chargebacks: i64,
    /// Withdrawn by chargebacks, and given back when disputes were won.
    pub chargeback_cents: i64,
    pub reinstated_cents: i64,
    pub fees_cents: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub months: Vec<MonthFigures>,
    pub revenue_by_category: Vec<CategoryRevenue>,
}

/// The last `months` months (from `now`'s), by the ledger's dates.
pub async fn summary(sql: &impl Sql, months: i64, now: DateTime<Utc>) -> Result<Summary, SqlError> {
    let since = SqlValue::Timestamp(now);
    let span = SqlValue::Int64(months - 1);
    let rows = sql
        .query(
            "SELECT to_char(date_trunc('month', g.ledger_month), 'YYYY-MM') AS month, \
                    coalesce(sum(l.amount_cents) FILTER (WHERE l.kind = 'charge'), 0)::bigint AS charged, \
                    coalesce(-sum(l.amount_cents) FILTER (WHERE l.kind = 'refund'), 0)::bigint AS refunded, \
                    count(l.id) FILTER (WHERE l.kind = 'dispute' AND l.amount_cents < 0) AS chargebacks, \
                    coalesce(-sum(l.amount_cents) FILTER (WHERE l.kind = 'dispute' AND l.amount_cents < 0), 0)::bigint AS disputed, \
                    coalesce(sum(l.amount_cents) FILTER (WHERE l.kind = 'dispute' AND l.amount_cents > 0), 0)::bigint AS reinstated, \
                    coalesce(-sum(l.amount_cents) FILTER (WHERE l.kind = 'fee'), 0)::bigint AS fees \
             FROM generate_series(date_trunc('month', $1::timestamp) - make_interval(months => $2::bigint::int), \
                                  date_trunc('month', $1::timestamp), interval '1 month') AS g(ledger_month) \
             LEFT JOIN payment_ledger l ON date_trunc('month', l.occurred_at) = g.ledger_month \
             GROUP BY g.ledger_month ORDER BY g.ledger_month DESC",
            &[since.clone(), span.clone()],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let charged: i64 = r.get("charged")?;
        let refunded: i64 = r.get("refunded")?;
        out.push(MonthFigures {
            month: r.get("month")?,
            charged_cents: charged,
            refunded_cents: refunded,
            refund_rate: if charged > 0 {
                refunded as f64 / charged as f64
            } else {
                0.0
            },
            chargebacks: r.get("chargebacks")?,
            chargeback_cents: r.get("disputed")?,
            reinstated_cents: r.get("reinstated")?,
            fees_cents: r.get("fees")?,
        });
    }
    let rows = sql
        .query(
            "SELECT to_char(date_trunc('month', l.occurred_at), 'YYYY-MM') AS month, c.name AS category, \
                    coalesce(sum(l.amount_cents) FILTER (WHERE l.kind = 'charge'), 0)::bigint AS charged, \
                    coalesce(-sum(l.amount_cents) FILTER (WHERE l.kind = 'refund'), 0)::bigint AS refunded, \
                    coalesce(sum(l.amount_cents), 0)::bigint AS net \
             FROM payment_ledger l JOIN payments p ON p.id = l.payment_id \
             JOIN marketplace_categories c ON c.id = p.category_id \
             WHERE l.occurred_at >= date_trunc('month', $1::timestamp) - make_interval(months => $2::bigint::int) \
             GROUP BY 1, 2 ORDER BY 1 DESC, 3 DESC, 2",
            &[since, span],
        )
        .await?;
    let revenue_by_category = rows
        .iter()
        .map(|r| {
            Ok(CategoryRevenue {
                month: r.get("month")?,
                category: r.get("category")?,
                charged_cents: r.get("charged")?,
                refunded_cents: r.get("refunded")?,
                net_cents: r.get("net")?,
            })
        })
        .collect::<Result<_, SqlError>>()?;
    Ok(Summary {
        months: out,
        revenue_by_category,
    })
}
