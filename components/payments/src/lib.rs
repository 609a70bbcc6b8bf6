//! Payments through Stripe (issue #19; blueprint §3.5.1).
//!
//! - [`checkout`]: a seller buys a paid category's posting or a promotion —
//!   a Payment Intent created here with metadata and an idempotency key per
//!   attempt, confirmed by Stripe.js on the page.
//! - [`webhook`]: `POST /webhooks/stripe` verifies `Stripe-Signature`
//!   ([`signature`]), records the event once and queues it; [`events`]
//!   applies it in a job, re-reading the object from Stripe where order
//!   matters; [`fulfil`] publishes or promotes the listing once paid.
//! - [`refunds`]: automatic (staff removal, failed publication, within 24
//!   hours of payment) or for manual review; issued by a job.
//! - [`disputes`]: a chargeback's evidence package in blob storage.
//! - [`ledger`] and [`reconcile`]: every money movement once, and the daily
//!   check against Stripe's balance transactions.
//! - [`api`] (the seller's pages and API), [`admin`] (`/admin/api/payments`),
//!   [`metrics`] (webhook lag, refunds waiting).
//!
//! Stripe is reached through [`stripe`], its base URL and keys Spin
//! variables; tests point it at `localstripe` (a stateful Stripe).

pub mod admin;
pub mod api;
pub mod checkout;
pub mod disputes;
pub mod events;
pub mod fulfil;
pub mod ledger;
pub mod metrics;
pub mod notify;
pub mod reconcile;
pub mod refunds;
pub mod scheduler;
pub mod signature;
#[cfg(feature = "spin")]
pub mod spin_components;
pub mod stripe;
pub mod webhook;

use serde::Serialize;

/// The kill switch and rollout of paid promotions (migration V9).
pub const PROMOTIONS_FLAG: &str = "promoted_listings";

/// How long after payment a refund is automatic (policy P3); later
/// requests go to manual review.
pub const AUTOMATIC_REFUND_HOURS: i64 = 24;

/// What a payment buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// A paid category's fee: publishes (or renews) the listing for 30 days.
    Posting,
    Featured,
    Bump,
    Highlight,
}

impl Purpose {
    pub const ALL: [Purpose; 4] = [
        Purpose::Posting,
        Purpose::Featured,
        Purpose::Bump,
        Purpose::Highlight,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Posting => "posting",
            Purpose::Featured => "featured",
            Purpose::Bump => "bump",
            Purpose::Highlight => "highlight",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Purpose::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn is_promotion(self) -> bool {
        self != Purpose::Posting
    }
}

/// Everything payments need from settings (Spin variables `stripe_*`).
#[derive(Clone)]
pub struct Config {
    /// `https://api.stripe.com` in production; localstripe in tests.
    pub api_base: String,
    pub secret_key: String,
    pub publishable_key: String,
    /// Stripe.js (`https://js.stripe.com/v3/`; localstripe serves its own).
    pub js_url: String,
    /// The endpoint's signing secret and, during a rotation, the previous
    /// one: a signature by either is accepted.
    pub webhook_secrets: Vec<String>,
    pub currency: String,
    /// Where sellers and ops are emailed from, and ops' address.
    pub mail_from: String,
    pub ops_email: String,
    pub public_base_url: String,
}

impl std::fmt::Debug for Config {
    // Keys and secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_base", &self.api_base)
            .field("publishable_key", &self.publishable_key)
            .field("currency", &self.currency)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Whether purchases can start (a key and an API base are set).
    pub fn configured(&self) -> bool {
        !self.secret_key.trim().is_empty()
            && !self.api_base.trim().is_empty()
            && !self.publishable_key.trim().is_empty()
    }
}

/// A Stripe timestamp (Unix seconds); `None` for one out of range (or the
/// zero a missing field reads as).
pub(crate) fn unix(seconds: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    chrono::Utc
        .timestamp_opt(seconds, 0)
        .single()
        .filter(|_| seconds > 0)
}

/// Money for people: `$12.50`.
pub fn dollars(cents: i64) -> String {
    format!(
        "{}${}.{:02}",
        if cents < 0 { "-" } else { "" },
        cents.abs() / 100,
        cents.abs() % 100
    )
}
