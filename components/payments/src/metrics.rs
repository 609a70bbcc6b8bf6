//! Payment gauges for `/q/metrics` (Prometheus text), read from Postgres:
//! how far behind Stripe's events we are, and refunds owed but not issued
//! (the refund target is one hour).
//!
//! - `village_stripe_events_pending`: verified events not yet applied.
//! - `village_stripe_webhook_lag_seconds`: over the last hour's events, the
//!   longest from Stripe creating one to our applying it (still waiting:
//!   until now).
//! - `village_payment_refunds_waiting` and
//!   `village_payment_refund_oldest_waiting_seconds`: approved refunds not
//!   yet issued, and how long the oldest has waited.

use chrono::{DateTime, Duration, Utc};
use village_platform::sql::{Sql, SqlError, SqlValue};

pub async fn render(sql: &impl Sql, now: DateTime<Utc>) -> Result<String, SqlError> {
    let r = sql
        .query_opt(
            "SELECT (SELECT count(*) FROM stripe_events WHERE processed_at IS NULL AND failed_at IS NULL) AS pending, \
                    (SELECT coalesce(max(extract(epoch FROM coalesce(processed_at, $1::timestamp) - created)), 0)::float8 \
                     FROM stripe_events WHERE received_at >= $2::timestamp AND failed_at IS NULL) AS lag, \
                    (SELECT count(*) FROM payment_refunds WHERE status = 'approved') AS waiting, \
                    (SELECT coalesce(max(extract(epoch FROM $1::timestamp - coalesce(decided_at, requested_at))), 0)::float8 \
                     FROM payment_refunds WHERE status = 'approved') AS oldest",
            &[
                SqlValue::Timestamp(now),
                SqlValue::Timestamp(now - Duration::hours(1)),
            ],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("no row".into()))?;
    let pending: i64 = r.get("pending")?;
    let lag: f64 = r.get("lag")?;
    let waiting: i64 = r.get("waiting")?;
    let oldest: f64 = r.get("oldest")?;
    Ok(format!(
        "# HELP village_stripe_events_pending Verified Stripe events not yet applied.\n\
         # TYPE village_stripe_events_pending gauge\n\
         village_stripe_events_pending {pending}\n\
         # HELP village_stripe_webhook_lag_seconds Longest time from Stripe creating an event to its application, over the last hour.\n\
         # TYPE village_stripe_webhook_lag_seconds gauge\n\
         village_stripe_webhook_lag_seconds {}\n\
         # HELP village_payment_refunds_waiting Approved refunds not yet issued.\n\
         # TYPE village_payment_refunds_waiting gauge\n\
         village_payment_refunds_waiting {waiting}\n\
         # HELP village_payment_refund_oldest_waiting_seconds How long the oldest approved refund has waited.\n\
         # TYPE village_payment_refund_oldest_waiting_seconds gauge\n\
         village_payment_refund_oldest_waiting_seconds {}\n",
        lag.max(0.0),
        oldest.max(0.0)
    ))
}
