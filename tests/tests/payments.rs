//! Payments against real Postgres and Redis and a stateful local Stripe
//! (`localstripe`, with its own signed webhook deliveries), and Mailgun's
//! wire format: a purchase to a live listing, a declined card, duplicate and
//! out-of-order events, forged, stale and rotated signatures, refunds
//! automatic and manual, a chargeback's evidence, the reconciliation, and
//! the ledger never counting money twice. The same flows over HTTP, on
//! `village` and on Spin, are `payments_end_to_end` at the bottom.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;
use village_e2e::stripe::{
    CARD_DECLINED, CARD_OK, LocalStripe, PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET, delivery,
};
use village_e2e::stub::{Recorded, Reply, StubServer, providers};
use village_jobs::{Queue, Registry, drain};
use village_marketplace::listings::{self, Actor, PlaceInput, RawListing};
use village_payments::checkout::{self, Checkout};
use village_payments::notify::Mail;
use village_payments::{Config, Purpose};
use village_platform::RequestContext;
use village_platform::blob::{BlobStore, SqlBlobStore};
use village_platform::clock::SystemClock;
use village_platform::mail::Mailgun;
use village_platform::native::{NativeCache, NativeHttp, NativeSql, test_ports};
use village_platform::session::Principal;
use village_platform::sql::{Sql, SqlValue};

struct World {
    sql: NativeSql,
    cache: NativeCache,
    stripe: LocalStripe,
    /// Where localstripe delivers its signed events (recorded, answered 200).
    hooks: StubServer,
    mail: StubServer,
    http: NativeHttp,
    config: Config,
    seller: Uuid,
}

fn as_user(id: Uuid) -> RequestContext {
    let mut ctx = RequestContext::from_headers(&http::HeaderMap::new(), "payments");
    ctx.principal = Some(Principal {
        user_id: id,
        session_id: Uuid::new_v4(),
        impersonator: None,
        cohort_key: Uuid::new_v4(),
        analytics_consent: false,
    });
    ctx
}

async fn count(sql: &NativeSql, statement: &str) -> i64 {
    sql.query_opt(statement, &[])
        .await
        .expect("query")
        .expect("row")
        .get("n")
        .expect("n")
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

impl World {
    async fn new() -> World {
        let url = village_migrate::testing::fresh_database()
            .await
            .expect("test database");
        let (sql, cache) = test_ports(&url).await;
        let stripe = LocalStripe::start().await;
        let hooks =
            StubServer::start(|_: &Recorded| Reply::json(200, &json!({"received": true}))).await;
        stripe
            .register_webhook(&format!("{}/webhooks/stripe", hooks.url()), WEBHOOK_SECRET)
            .await;
        let mail = providers::mailgun(Arc::new(AtomicBool::new(false))).await;
        let seller: Uuid = sql
            .query_opt(
                "INSERT INTO users (is_anonymous, email, display_name) \
                 VALUES (false, 'seller@example.com', 'Sam Seller') RETURNING id",
                &[],
            )
            .await
            .expect("insert")
            .expect("row")
            .get("id")
            .expect("id");
        let config = Config {
            api_base: stripe.base.clone(),
            secret_key: SECRET_KEY.into(),
            publishable_key: PUBLISHABLE_KEY.into(),
            js_url: format!("{}/js.stripe.com/v3/", stripe.base),
            webhook_secrets: vec![WEBHOOK_SECRET.into()],
            currency: "usd".into(),
            mail_from: "Village <noreply@village.test>".into(),
            ops_email: "ops@village.test".into(),
            public_base_url: "https://village.test".into(),
        };
        World {
            sql,
            cache,
            stripe,
            hooks,
            mail,
            http: NativeHttp::new(Duration::from_secs(10)),
            config,
            seller,
        }
    }

    fn mailer(&self) -> Mail<'_, NativeHttp> {
        Mail {
            relay: Mailgun {
                base_url: self.mail.url(),
                domain: providers::MAILGUN_DOMAIN.into(),
                api_key: providers::MAILGUN_KEY.into(),
            },
            http: &self.http,
            from: self.config.mail_from.clone(),
            ops: self.config.ops_email.clone(),
        }
    }

    /// A draft of the seller's in `category` (published when `publish`).
    async fn listing(&self, title: &str, category: &str, publish: bool) -> i64 {
        let raw = RawListing {
            title: Some(title.into()),
            body: Some(format!("{title}, in good shape.")),
            category: Some(category.into()),
            place: PlaceInput::Point(43.615, -116.2023),
            contact_method: Some("email".into()),
            contact_value: Some("seller@example.com".into()),
            ..RawListing::default()
        };
        let fields = listings::check(&self.sql, raw)
            .await
            .expect("valid listing");
        let id = listings::create(&self.sql, self.seller, &fields, Utc::now())
            .await
            .expect("created");
        if publish {
            let ctx = as_user(self.seller);
            let actor = Actor {
                ctx: &ctx,
                user: self.seller,
                moderator: false,
            };
            listings::publish(&self.sql, &actor, id, Utc::now())
                .await
                .expect("published");
        }
        id
    }

    async fn try_checkout(
        &self,
        listing: i64,
        purpose: Purpose,
    ) -> Result<Checkout, village_platform::AppError> {
        checkout::start(
            &self.sql,
            &self.cache,
            &self.http,
            &self.config,
            &as_user(self.seller),
            listing,
            purpose,
            Utc::now(),
        )
        .await
    }

    async fn checkout(&self, listing: i64, purpose: Purpose) -> Checkout {
        self.try_checkout(listing, purpose)
            .await
            .expect("checkout starts")
    }

    /// Waits for localstripe's signed delivery of `kind` about `intent`.
    async fn delivered(&self, kind: &str, intent: &str) -> Recorded {
        let mut found = None;
        until(&format!("localstripe's {kind} for {intent}"), || {
            found = self.hooks.requests().into_iter().find(|r| {
                let v = r.json();
                v["type"] == kind && v["data"]["object"]["id"] == intent
            });
            let done = found.is_some();
            async move { done }
        })
        .await;
        found.expect("found")
    }

    /// Hands a delivery to `/webhooks/stripe`'s handler; its status.
    async fn deliver(&self, body: &[u8], signature: Option<&str>) -> u16 {
        let mut headers = http::HeaderMap::new();
        if let Some(s) = signature {
            headers.insert(
                "stripe-signature",
                http::HeaderValue::from_str(s).expect("header"),
            );
        }
        match village_payments::webhook::handle(
            &http::Method::POST,
            &headers,
            body,
            &self.sql,
            &self.cache,
            &self.config.webhook_secrets,
            Utc::now(),
        )
        .await
        {
            Ok(r) => r.status().as_u16(),
            Err(e) => e.status().as_u16(),
        }
    }

    /// Stripe's `charge.refunded` for the charge behind `confirmed` (an
    /// intent as Stripe.js got it back), signed and delivered: localstripe
    /// never sends one.
    async fn charge_refunded(&self, confirmed: &Value, event_id: &str) -> u16 {
        let charge = self
            .stripe
            .get(&format!("/v1/charges/{}", charge_of(confirmed)))
            .await;
        let (body, sig) = delivery(
            WEBHOOK_SECRET,
            Utc::now().timestamp(),
            event_id,
            "charge.refunded",
            charge,
        );
        self.deliver(&body, Some(&sig)).await
    }

    async fn forward(&self, r: &Recorded) -> u16 {
        self.deliver(&r.body, r.header("stripe-signature")).await
    }

    /// Runs the payments jobs queued so far (all on HIGH, reconciliation on
    /// DEFAULT).
    async fn drain(&self) -> village_jobs::DrainReport {
        let mail = self.mailer();
        let blobs = SqlBlobStore { sql: &self.sql };
        let registry = Registry::new()
            .with(village_payments::events::ApplyEvent {
                sql: &self.sql,
                cache: &self.cache,
                http: &self.http,
                clock: &SystemClock,
                config: &self.config,
                mail: &mail,
            })
            .with(village_payments::refunds::IssueRefund {
                sql: &self.sql,
                http: &self.http,
                clock: &SystemClock,
                config: &self.config,
                mail: &mail,
            })
            .with(village_payments::disputes::GatherEvidence {
                sql: &self.sql,
                blobs: &blobs,
                clock: &SystemClock,
                mail: &mail,
            });
        drain(
            &self.sql,
            &self.cache,
            &SystemClock,
            &registry,
            Queue::High,
            "test",
            Duration::from_secs(60),
            100,
        )
        .await
        .expect("drain")
    }

    /// A purchase paid with a good card, its event delivered and applied.
    async fn paid(&self, listing: i64, purpose: Purpose) -> (Checkout, Value) {
        let c = self.checkout(listing, purpose).await;
        let (status, confirmed) = self.stripe.pay(&c.payment_intent, CARD_OK).await;
        assert_eq!(status, 200, "{confirmed}");
        assert_eq!(confirmed["status"], "succeeded", "{confirmed}");
        let event = self
            .delivered("payment_intent.succeeded", &c.payment_intent)
            .await;
        assert_eq!(self.forward(&event).await, 200);
        self.drain().await;
        (c, confirmed)
    }

    async fn listing_status(&self, id: i64) -> String {
        self.sql
            .query_opt(
                "SELECT status FROM marketplace_listings WHERE id = $1",
                &[SqlValue::Int64(id)],
            )
            .await
            .expect("query")
            .expect("row")
            .get("status")
            .expect("status")
    }

    async fn payment(&self, id: Uuid) -> (String, Option<String>) {
        let r = self
            .sql
            .query_opt(
                "SELECT status, failure_message FROM payments WHERE id = $1",
                &[SqlValue::Uuid(id)],
            )
            .await
            .expect("query")
            .expect("row");
        (
            r.get("status").expect("status"),
            r.get("failure_message").expect("failure"),
        )
    }

    async fn ledger(&self, payment: Uuid) -> Vec<(String, i64)> {
        self.sql
            .query(
                "SELECT kind, amount_cents FROM payment_ledger WHERE payment_id = $1 ORDER BY id",
                &[SqlValue::Uuid(payment)],
            )
            .await
            .expect("query")
            .iter()
            .map(|r| {
                (
                    r.get("kind").expect("kind"),
                    r.get("amount_cents").expect("amount"),
                )
            })
            .collect()
    }
}

fn charge_of(confirmed: &Value) -> String {
    match &confirmed["latest_charge"] {
        Value::String(s) => s.clone(),
        other => other["id"].as_str().expect("charge id").to_owned(),
    }
}

#[tokio::test]
async fn a_paid_posting_goes_live_only_once_stripe_confirms_it_and_events_apply_once_in_any_order()
{
    let w = World::new().await;
    // Vehicles is a paid category ($5): publishing without paying refuses.
    let car = w.listing("Sedan", "vehicles", false).await;
    let ctx = as_user(w.seller);
    let actor = Actor {
        ctx: &ctx,
        user: w.seller,
        moderator: false,
    };
    let refused = listings::publish(&w.sql, &actor, car, Utc::now()).await;
    assert!(
        matches!(&refused, Err(village_platform::AppError::Conflict(m)) if m.contains("/api/payments/checkout")),
        "{refused:?}"
    );

    // Checkout: an intent with our metadata; opening it again resumes it.
    let c = w.checkout(car, Purpose::Posting).await;
    assert_eq!(c.amount_cents, 500);
    assert!(c.client_secret.starts_with(&c.payment_intent), "{c:?}");
    let again = w.checkout(car, Purpose::Posting).await;
    assert_eq!(
        (again.payment_id, &again.payment_intent),
        (c.payment_id, &c.payment_intent)
    );
    let intent = w
        .stripe
        .get(&format!("/v1/payment_intents/{}", c.payment_intent))
        .await;
    assert_eq!(intent["amount"], 500);
    assert_eq!(intent["metadata"]["listing_id"], car.to_string());
    assert_eq!(intent["metadata"]["purpose"], "posting");
    assert_eq!(intent["metadata"]["user_id"], w.seller.to_string());
    assert_eq!(intent["metadata"]["payment_id"], c.payment_id.to_string());
    assert_eq!(w.listing_status(car).await, "draft");

    // Stripe.js confirms; localstripe delivers `payment_intent.succeeded`.
    let (status, confirmed) = w.stripe.pay(&c.payment_intent, CARD_OK).await;
    assert_eq!(status, 200, "{confirmed}");
    let event = w
        .delivered("payment_intent.succeeded", &c.payment_intent)
        .await;
    // Until the job runs, nothing is live: the webhook only records.
    assert_eq!(w.forward(&event).await, 200);
    assert_eq!(w.listing_status(car).await, "draft");
    // A redelivery records and queues nothing new.
    assert_eq!(w.forward(&event).await, 200);
    assert_eq!(
        count(&w.sql, "SELECT count(*) AS n FROM stripe_events").await,
        1
    );
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) AS n FROM delayed_jobs WHERE handler = 'payments.stripe_event'"
        )
        .await,
        1
    );
    let report = w.drain().await;
    assert_eq!(report.succeeded, 1, "{report:?}");
    assert_eq!(w.listing_status(car).await, "active");
    assert_eq!(w.payment(c.payment_id).await.0, "succeeded");
    let charge = charge_of(&confirmed);
    assert_eq!(w.ledger(c.payment_id).await, [("charge".to_owned(), 500)]);
    let expires = async |sql: &NativeSql| {
        {
            sql.query_opt(
                "SELECT expires_at FROM marketplace_listings WHERE id = $1",
                &[SqlValue::Int64(car)],
            )
            .await
            .expect("query")
            .expect("row")
            .get::<chrono::DateTime<Utc>>("expires_at")
            .expect("expires")
        }
    };
    let first_expiry = expires(&w.sql).await;
    assert!((first_expiry - Utc::now()).num_days() >= 29);

    // Out of order: a `payment_failed` arriving after the success (Stripe
    // guarantees no order) re-reads the intent, which succeeded: nothing
    // moves backwards. The same success under a new event id changes
    // nothing either.
    let now = Utc::now().timestamp();
    let (body, sig) = delivery(
        WEBHOOK_SECRET,
        now,
        "evt_late_failure",
        "payment_intent.payment_failed",
        json!({"id": c.payment_intent, "object": "payment_intent", "status": "requires_payment_method"}),
    );
    assert_eq!(w.deliver(&body, Some(&sig)).await, 200);
    let (body, sig) = delivery(
        WEBHOOK_SECRET,
        now,
        "evt_second_success",
        "payment_intent.succeeded",
        json!({"id": c.payment_intent, "object": "payment_intent", "status": "succeeded"}),
    );
    assert_eq!(w.deliver(&body, Some(&sig)).await, 200);
    let report = w.drain().await;
    assert_eq!(report.succeeded, 2, "{report:?}");
    assert_eq!(w.payment(c.payment_id).await.0, "succeeded");
    assert_eq!(w.listing_status(car).await, "active");
    assert_eq!(expires(&w.sql).await, first_expiry, "fulfilled once");
    assert_eq!(w.ledger(c.payment_id).await, [("charge".to_owned(), 500)]);
    assert_eq!(
        count(&w.sql, "SELECT count(*) AS n FROM payment_ledger").await,
        1,
        "charge {charge} counted once"
    );

    // A declined card: the attempt fails, says why, and the listing stays
    // a draft.
    let van = w.listing("Van", "vehicles", false).await;
    let c = w.checkout(van, Purpose::Posting).await;
    let (status, declined) = w.stripe.pay(&c.payment_intent, CARD_DECLINED).await;
    assert_eq!(status, 402, "{declined}");
    let event = w
        .delivered("payment_intent.payment_failed", &c.payment_intent)
        .await;
    assert_eq!(w.forward(&event).await, 200);
    w.drain().await;
    let (status, why) = w.payment(c.payment_id).await;
    assert_eq!(status, "failed");
    assert!(why.is_some_and(|m| m.contains("declined")));
    assert_eq!(w.listing_status(van).await, "draft");
    assert!(w.ledger(c.payment_id).await.is_empty());
    // Checkout again resumes the same attempt (a new card, same intent).
    assert_eq!(
        w.checkout(van, Purpose::Posting).await.payment_id,
        c.payment_id
    );
}

#[tokio::test]
async fn forged_stale_and_rotated_signatures_are_told_apart() {
    let mut w = World::new().await;
    let now = Utc::now().timestamp();
    let object = json!({"id": "pi_unknown", "object": "payment_intent", "status": "succeeded"});
    let kind = "payment_intent.succeeded";
    let (body, forged) = delivery("whsec_forger", now, "evt_forged", kind, object.clone());
    assert_eq!(w.deliver(&body, Some(&forged)).await, 400);
    assert_eq!(w.deliver(&body, None).await, 400);
    let (body, stale) = delivery(WEBHOOK_SECRET, now - 301, "evt_stale", kind, object.clone());
    assert_eq!(w.deliver(&body, Some(&stale)).await, 400);
    // A signed body that was altered fails too.
    let (body, sig) = delivery(WEBHOOK_SECRET, now, "evt_tampered", kind, object.clone());
    let mut altered = body.clone();
    let at = altered.len() - 3;
    altered[at] = b' ';
    assert_eq!(w.deliver(&altered, Some(&sig)).await, 400);
    assert_eq!(
        count(&w.sql, "SELECT count(*) AS n FROM stripe_events").await,
        0,
        "nothing refused was recorded"
    );
    // During a rotation, the previous secret's signatures still pass.
    w.config.webhook_secrets = vec!["whsec_new".into(), WEBHOOK_SECRET.into()];
    let (body, old) = delivery(WEBHOOK_SECRET, now, "evt_by_old", kind, object.clone());
    assert_eq!(w.deliver(&body, Some(&old)).await, 200);
    let (body, new) = delivery("whsec_new", now, "evt_by_new", kind, object.clone());
    assert_eq!(w.deliver(&body, Some(&new)).await, 200);
    // After it, only the new one.
    w.config.webhook_secrets = vec!["whsec_new".into()];
    let (body, old) = delivery(WEBHOOK_SECRET, now, "evt_too_late", kind, object);
    assert_eq!(w.deliver(&body, Some(&old)).await, 400);
    assert_eq!(
        count(&w.sql, "SELECT count(*) AS n FROM stripe_events").await,
        2
    );
    // An intent Stripe does not know can never be applied: the events
    // dead-letter, are marked failed, and the scheduler's sweep leaves them
    // alone (it would otherwise queue them every five minutes forever).
    let report = w.drain().await;
    assert_eq!(
        (report.succeeded, report.dead),
        (0, 2),
        "pi_unknown is not at Stripe: {report:?}"
    );
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) AS n FROM stripe_events WHERE failed_at IS NOT NULL \
             AND outcome LIKE 'failed: %'"
        )
        .await,
        2
    );
    let later = Utc::now() + chrono::Duration::hours(1);
    let due = village_payments::scheduler::due(&w.sql, later)
        .await
        .expect("due");
    assert!(
        due.iter()
            .all(|j| j.handler != village_payments::events::NAME),
        "{:?}",
        due.iter().map(|j| &j.handler).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_price_change_replaces_an_open_attempt_and_a_refund_applied_first_wins() {
    let w = World::new().await;
    // The fee changes while a checkout is open: the old attempt and its
    // intent are canceled, a new one starts at the new price.
    let car = w.listing("Roadster", "vehicles", false).await;
    let old = w.checkout(car, Purpose::Posting).await;
    w.sql
        .execute(
            "UPDATE marketplace_categories SET fee_cents = 700 WHERE slug = 'vehicles'",
            &[],
        )
        .await
        .expect("price changed");
    let new = w.checkout(car, Purpose::Posting).await;
    assert_ne!(new.payment_id, old.payment_id);
    assert_eq!(new.amount_cents, 700);
    assert_eq!(w.payment(old.payment_id).await.0, "canceled");
    let stale = w
        .stripe
        .get(&format!("/v1/payment_intents/{}", old.payment_intent))
        .await;
    assert_eq!(stale["status"], "canceled", "{stale}");

    // Paid, then refunded in Stripe's dashboard, and Stripe's events come
    // the other way round: the refund is applied before the success.
    let (status, confirmed) = w.stripe.pay(&new.payment_intent, CARD_OK).await;
    assert_eq!(status, 200, "{confirmed}");
    let success = w
        .delivered("payment_intent.succeeded", &new.payment_intent)
        .await;
    // Paid already: checkout says so rather than offering to pay again.
    let again = w.try_checkout(car, Purpose::Posting).await;
    assert!(
        matches!(&again, Err(village_platform::AppError::Conflict(m)) if m.contains("paid already")),
        "{again:?}"
    );
    let (status, refund) = w
        .stripe
        .post(
            "/v1/refunds",
            &[("payment_intent", new.payment_intent.as_str())],
        )
        .await;
    assert_eq!(status, 200, "{refund}");
    assert_eq!(w.charge_refunded(&confirmed, "evt_refund_first").await, 200);
    w.drain().await;
    assert_eq!(w.forward(&success).await, 200);
    w.drain().await;
    assert_eq!(w.payment(new.payment_id).await.0, "refunded");
    assert_eq!(w.listing_status(car).await, "draft", "nothing bought stays");
    let mut ledger = w.ledger(new.payment_id).await;
    ledger.sort();
    assert_eq!(
        ledger,
        [("charge".to_owned(), 700), ("refund".to_owned(), -700)]
    );
}

#[tokio::test]
async fn staff_removal_refunds_automatically_within_a_day_and_asks_for_review_after() {
    let w = World::new().await;
    let car = w.listing("Pickup", "vehicles", false).await;
    let (c, confirmed) = w.paid(car, Purpose::Posting).await;
    assert_eq!(w.listing_status(car).await, "active");

    // Staff remove it an hour later: refunded in full, automatically.
    let later = Utc::now() + chrono::Duration::hours(1);
    let ids = village_payments::refunds::on_listing_removed(&w.sql, car, "scam report", later)
        .await
        .expect("refunds recorded");
    assert_eq!(ids.len(), 1);
    village_payments::refunds::enqueue(&w.sql, &w.cache, &ids, Utc::now())
        .await
        .expect("queued");
    let report = w.drain().await;
    assert_eq!(report.succeeded, 1, "{report:?}");
    let refunds = w
        .stripe
        .get(&format!("/v1/refunds?charge={}", charge_of(&confirmed)))
        .await;
    assert_eq!(
        refunds["data"].as_array().map(Vec::len),
        Some(1),
        "{refunds}"
    );
    assert_eq!(refunds["data"][0]["amount"], 500);
    assert_eq!(w.payment(c.payment_id).await.0, "refunded");
    assert_eq!(
        w.ledger(c.payment_id).await,
        [("charge".to_owned(), 500), ("refund".to_owned(), -500)]
    );
    // The seller was told, by email through the relay.
    let told = w.mail.requests_to("/v3/");
    assert!(
        told.iter().any(|r| {
            let body = String::from_utf8_lossy(&r.body);
            body.contains("seller%40example.com") && body.contains("refunded")
        }),
        "{told:?}"
    );
    // Stripe's own `charge.refunded` for it, and the job again: nothing
    // is counted twice, nothing refunded twice.
    assert_eq!(w.charge_refunded(&confirmed, "evt_refunded").await, 200);
    village_payments::refunds::enqueue(&w.sql, &w.cache, &ids, Utc::now())
        .await
        .expect("queued");
    w.drain().await;
    assert_eq!(
        w.ledger(c.payment_id).await,
        [("charge".to_owned(), 500), ("refund".to_owned(), -500)]
    );
    let refunds = w
        .stripe
        .get(&format!("/v1/refunds?charge={}", charge_of(&confirmed)))
        .await;
    assert_eq!(refunds["data"].as_array().map(Vec::len), Some(1));

    // Paid more than 24 hours before the removal: a request for review.
    let truck = w.listing("Truck", "vehicles", false).await;
    let (c2, _) = w.paid(truck, Purpose::Posting).await;
    let day_later = Utc::now() + chrono::Duration::hours(25);
    let ids =
        village_payments::refunds::on_listing_removed(&w.sql, truck, "sold elsewhere", day_later)
            .await
            .expect("recorded");
    assert!(ids.is_empty(), "nothing automatic");
    let pending = village_payments::refunds::list(&w.sql, Some("requested"), 10)
        .await
        .expect("list");
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].payment_id, pending[0].kind.as_str()),
        (c2.payment_id, "manual")
    );
    // Staff approve it (reason required, audited): the job refunds it.
    let staff: Uuid = w
        .sql
        .query_opt(
            "INSERT INTO users (is_anonymous, display_name) VALUES (false, 'Support') RETURNING id",
            &[],
        )
        .await
        .expect("insert")
        .expect("row")
        .get("id")
        .expect("id");
    let blobs = SqlBlobStore { sql: &w.sql };
    let services = village_payments::admin::Services {
        sql: &w.sql,
        cache: &w.cache,
        blobs: &blobs,
        now: Utc::now(),
    };
    let actor = village_platform::admin::Actor {
        user_id: Some(staff),
        label: format!("user:{staff}"),
    };
    let admin = |method: &'static http::Method, path: String, body: Value| {
        let services = &services;
        let actor = &actor;
        async move {
            let body = body.to_string().into_bytes();
            let r = village_payments::admin::handle(
                village_payments::admin::AdminRequest {
                    method,
                    path: &path,
                    query: "",
                    body: &body,
                },
                services,
                actor,
                &as_user(staff),
            )
            .await;
            match r {
                Ok(r) => (
                    r.status().as_u16(),
                    serde_json::from_slice::<Value>(r.body()).unwrap_or(Value::Null),
                ),
                Err(e) => (e.status().as_u16(), Value::Null),
            }
        }
    };
    let id = pending[0].id;
    let (status, _) = admin(
        &http::Method::POST,
        format!("/refunds/{id}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(status, 400, "a reason is required");
    let (status, answer) = admin(
        &http::Method::POST,
        format!("/refunds/{id}/approve"),
        json!({"reason": "goodwill: sold the same day"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) AS n FROM audit_log WHERE action = 'refund.approve' AND reason LIKE 'goodwill%'"
        )
        .await,
        1
    );
    let (status, _) = admin(
        &http::Method::POST,
        format!("/refunds/{id}/reject"),
        json!({"reason": "changed my mind"}),
    )
    .await;
    assert_eq!(status, 409, "decided once");
    w.drain().await;
    assert_eq!(w.payment(c2.payment_id).await.0, "refunded");

    // A seller's own request is a review item; rejecting it refunds nothing.
    let lamp = w.listing("Lamp", "vehicles", false).await;
    let (c3, _) = w.paid(lamp, Purpose::Posting).await;
    let r = village_payments::refunds::request(
        &w.sql,
        &as_user(w.seller),
        c3.payment_id,
        Some("posted by mistake"),
        Utc::now(),
    )
    .await
    .expect("requested");
    let (status, _) = admin(
        &http::Method::POST,
        format!("/refunds/{r}/reject"),
        json!({"reason": "the listing ran its full term"}),
    )
    .await;
    assert_eq!(status, 200);
    w.drain().await;
    assert_eq!(w.payment(c3.payment_id).await.0, "succeeded");
    // While impersonating, no refund request is taken.
    let mut impersonated = as_user(w.seller);
    if let Some(p) = impersonated.principal.as_mut() {
        p.impersonator = Some(staff);
    }
    let refused = village_payments::refunds::request(
        &w.sql,
        &impersonated,
        c3.payment_id,
        Some("again"),
        Utc::now(),
    )
    .await;
    assert!(matches!(
        refused,
        Err(village_platform::AppError::Forbidden(_))
    ));

    // The figures: three charges, two refunds, by category and month.
    let (status, summary) = admin(&http::Method::GET, "/summary".into(), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(summary["months"][0]["charged_cents"], 1500, "{summary}");
    assert_eq!(summary["months"][0]["refunded_cents"], 1000, "{summary}");
    let rate = summary["months"][0]["refund_rate"].as_f64().expect("rate");
    assert!((rate - 2.0 / 3.0).abs() < 1e-9, "{summary}");
    assert_eq!(
        summary["revenue_by_category"][0]["category"],
        "Cars and trucks"
    );
    assert_eq!(summary["revenue_by_category"][0]["net_cents"], 500);
}

#[tokio::test]
async fn a_listing_that_cannot_take_its_payment_is_refunded_and_promotions_rank_first() {
    let w = World::new().await;
    // Paid, then withdrawn before Stripe's event arrived: a technical
    // failure to publish, refunded automatically.
    let car = w.listing("Coupe", "vehicles", false).await;
    let c = w.checkout(car, Purpose::Posting).await;
    w.stripe.pay(&c.payment_intent, CARD_OK).await;
    let ctx = as_user(w.seller);
    let actor = Actor {
        ctx: &ctx,
        user: w.seller,
        moderator: false,
    };
    listings::publish(
        &w.sql,
        &actor,
        w.listing("Other", "furniture", false).await,
        Utc::now(),
    )
    .await
    .expect("a free one publishes");
    w.sql
        .execute(
            "UPDATE marketplace_listings SET status = 'removed' WHERE id = $1",
            &[SqlValue::Int64(car)],
        )
        .await
        .expect("withdrawn");
    let event = w
        .delivered("payment_intent.succeeded", &c.payment_intent)
        .await;
    assert_eq!(w.forward(&event).await, 200);
    w.drain().await;
    assert_eq!(w.payment(c.payment_id).await.0, "refunded");
    assert_eq!(w.listing_status(car).await, "removed");

    // Promotions are off by default (the `promoted_listings` flag).
    let table = w.listing("Oak table", "furniture", true).await;
    let refused = w.try_checkout(table, Purpose::Featured).await;
    assert!(
        matches!(&refused, Err(village_platform::AppError::Conflict(_))),
        "{refused:?}"
    );
    w.sql
        .execute(
            "UPDATE feature_flags SET enabled = true, rollout_percent = 100 WHERE key = 'promoted_listings'",
            &[],
        )
        .await
        .expect("flag on");
    village_flags::store::invalidate(&w.cache).await;
    let (c, _) = w.paid(table, Purpose::Featured).await;
    assert_eq!(c.amount_cents, 500);
    let featured_until: chrono::DateTime<Utc> = w
        .sql
        .query_opt(
            "SELECT featured_until FROM marketplace_listings WHERE id = $1",
            &[SqlValue::Int64(table)],
        )
        .await
        .expect("query")
        .expect("row")
        .get("featured_until")
        .expect("set");
    let days = (featured_until - Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "{days} hours");
    // Featured first in a search around it, though others are nearer.
    for i in 0..3 {
        w.listing(&format!("Chair {i}"), "furniture", true).await;
    }
    let search =
        village_marketplace::search::SearchQuery::from_query("lat=43.615&lon=-116.2023&radius=10")
            .check(&w.sql)
            .await
            .expect("search");
    let promoted = search
        .promoted(&w.sql, Utc::now(), 3)
        .await
        .expect("promoted");
    assert_eq!(promoted.iter().map(|h| h.id).collect::<Vec<_>>(), [table]);
    assert!(promoted[0].featured);
    // Its term ends: no longer first.
    let after = featured_until + chrono::Duration::minutes(1);
    assert!(
        search
            .promoted(&w.sql, after, 3)
            .await
            .expect("promoted")
            .is_empty()
    );
    // A bump moves it to the top of the newest.
    let chair = w.listing("Chair last", "furniture", true).await;
    let newest = village_marketplace::search::SearchQuery::from_query(
        "lat=43.615&lon=-116.2023&radius=10&sort=newest",
    )
    .check(&w.sql)
    .await
    .expect("search");
    let first = |page: village_marketplace::search::Page| page.listings[0].id;
    assert_eq!(first(newest.run(&w.sql).await.expect("page")), chair);
    w.paid(table, Purpose::Bump).await;
    assert_eq!(first(newest.run(&w.sql).await.expect("page")), table);
    assert_eq!(
        count(&w.sql, "SELECT count(*) AS n FROM listing_promotions").await,
        2
    );
}

#[tokio::test]
async fn a_chargeback_gathers_its_evidence_and_the_reconciliation_finds_what_differs() {
    let w = World::new().await;
    let car = w.listing("Hatchback", "vehicles", false).await;
    let (c, confirmed) = w.paid(car, Purpose::Posting).await;
    let charge = charge_of(&confirmed);
    let now = Utc::now().timestamp();
    let dispute = json!({
        "id": "dp_1Test", "object": "dispute", "amount": 500, "currency": "usd",
        "charge": charge, "payment_intent": c.payment_intent, "reason": "fraudulent",
        "status": "needs_response", "created": now,
        "evidence_details": {"due_by": now + 7 * 86_400, "has_evidence": false, "past_due": false,
                             "submission_count": 0},
        "balance_transactions": [{"id": "txn_dispute_1", "object": "balance_transaction",
            "amount": -500, "fee": 1500, "currency": "usd", "created": now, "type": "adjustment",
            "source": "dp_1Test"}],
        "is_charge_refundable": false, "livemode": false,
    });
    let (body, sig) = delivery(
        WEBHOOK_SECRET,
        now,
        "evt_dispute",
        "charge.dispute.created",
        dispute.clone(),
    );
    assert_eq!(w.deliver(&body, Some(&sig)).await, 200);
    assert_eq!(w.deliver(&body, Some(&sig)).await, 200);
    let report = w.drain().await;
    assert_eq!((report.succeeded, report.dead), (2, 0), "{report:?}");
    assert_eq!(w.payment(c.payment_id).await.0, "disputed");
    assert_eq!(
        w.ledger(c.payment_id).await,
        [("charge".to_owned(), 500), ("dispute".to_owned(), -500)]
    );
    let key: String = w
        .sql
        .query_opt(
            "SELECT evidence_key FROM payment_disputes WHERE stripe_dispute_id = 'dp_1Test'",
            &[],
        )
        .await
        .expect("query")
        .expect("row")
        .get("evidence_key")
        .expect("evidence gathered");
    let blob = SqlBlobStore { sql: &w.sql }
        .get(&key)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(blob.content_type, "application/json");
    let evidence: Value = serde_json::from_slice(&blob.bytes).expect("json");
    assert_eq!(evidence["listing"]["title"], "Hatchback");
    assert_eq!(
        evidence["payment"]["stripe_payment_intent_id"],
        c.payment_intent
    );
    assert_eq!(evidence["dispute"]["reason"], "fraudulent");
    let events: Vec<&str> = evidence["timeline"]["stripe_events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(events.contains(&"payment_intent.succeeded"), "{events:?}");
    assert!(events.contains(&"charge.dispute.created"), "{events:?}");
    assert_eq!(
        evidence["timeline"]["ledger"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(evidence["contact"]["thread"].is_array());
    // Ops were alerted, once, with the deadline and where the package is.
    let alerts: Vec<String> = w
        .mail
        .requests_to("/v3/")
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .filter(|b| b.contains("chargeback"))
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains("ops%40village.test"));

    // Reconciliation: a refund, then today's balance transactions against
    // the ledger — the charge and refund match.
    let truck = w.listing("Truck", "vehicles", false).await;
    let (c2, _) = w.paid(truck, Purpose::Posting).await;
    let ids = village_payments::refunds::on_listing_removed(&w.sql, truck, "dupe", Utc::now())
        .await
        .expect("refund");
    village_payments::refunds::enqueue(&w.sql, &w.cache, &ids, Utc::now())
        .await
        .expect("queued");
    w.drain().await;
    assert_eq!(w.payment(c2.payment_id).await.0, "refunded");
    let mail = w.mailer();
    let reconcile = village_payments::reconcile::Reconcile {
        sql: &w.sql,
        http: &w.http,
        clock: &SystemClock,
        config: &w.config,
        mail: &mail,
    };
    let today = Utc::now().date_naive();
    let clean = reconcile.day(today).await.expect("reconciled");
    // The dispute is ours only (localstripe keeps no disputes): it is the
    // one ledger row Stripe has no transaction for.
    assert_eq!(clean.transactions, 3, "{clean:?}");
    let kinds: Vec<(&str, &str)> = clean
        .discrepancies
        .iter()
        .map(|d| (d.kind, d.stripe_object_id.as_str()))
        .collect();
    assert_eq!(kinds, [("missing_in_stripe", "txn_dispute_1")]);
    // Now the ledger disagrees three ways.
    w.sql
        .execute(
            "UPDATE payment_ledger SET amount_cents = 450 WHERE payment_id = $1 AND kind = 'charge'",
            &[SqlValue::Uuid(c2.payment_id)],
        )
        .await
        .expect("tampered");
    w.sql
        .execute(
            "DELETE FROM payment_ledger WHERE payment_id = $1 AND kind = 'refund'",
            &[SqlValue::Uuid(c2.payment_id)],
        )
        .await
        .expect("lost");
    w.sql
        .execute(
            "INSERT INTO payment_ledger (kind, amount_cents, currency, stripe_object_id, occurred_at, recorded_at) \
             VALUES ('charge', 700, 'usd', 'ch_ghost', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc')",
            &[],
        )
        .await
        .expect("ghost");
    let found = reconcile.day(today).await.expect("reconciled");
    let mut kinds: Vec<&str> = found.discrepancies.iter().map(|d| d.kind).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "amount_mismatch",
            "missing_in_ledger",
            "missing_in_stripe",
            "missing_in_stripe"
        ],
        "{found:?}"
    );
    // Run again: the same discrepancies, recorded once.
    reconcile.day(today).await.expect("reconciled");
    assert_eq!(
        count(&w.sql, "SELECT count(*) AS n FROM payment_discrepancies").await,
        4
    );
    assert_eq!(
        count(
            &w.sql,
            "SELECT discrepancies::bigint AS n FROM payment_reconciliations"
        )
        .await,
        4
    );
    let reconciliation_mails = w
        .mail
        .requests_to("/v3/")
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("reconciliation"))
        .count();
    assert_eq!(
        reconciliation_mails, 2,
        "ops told of new discrepancies only"
    );

    // The seller wins: Stripe reinstates the funds, a second balance
    // transaction on the same dispute, booked once more (and only once).
    let mut won = dispute.clone();
    won["status"] = json!("won");
    won["balance_transactions"] = json!([
        {"id": "txn_dispute_1", "object": "balance_transaction", "amount": -500, "fee": 1500,
         "currency": "usd", "created": now, "type": "adjustment", "source": "dp_1Test"},
        {"id": "txn_dispute_2", "object": "balance_transaction", "amount": 500, "fee": -1500,
         "currency": "usd", "created": now + 60, "type": "adjustment", "source": "dp_1Test"}
    ]);
    for (event, kind) in [
        ("evt_reinstated", "charge.dispute.funds_reinstated"),
        ("evt_closed", "charge.dispute.closed"),
    ] {
        let (body, sig) = delivery(WEBHOOK_SECRET, now + 60, event, kind, won.clone());
        assert_eq!(w.deliver(&body, Some(&sig)).await, 200);
    }
    w.drain().await;
    assert_eq!(
        w.ledger(c.payment_id).await,
        [
            ("charge".to_owned(), 500),
            ("dispute".to_owned(), -500),
            ("dispute".to_owned(), 500)
        ]
    );
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) AS n FROM payment_disputes WHERE status = 'won'"
        )
        .await,
        1
    );
    // A late `created` (another delivery) after the close does not reopen it.
    let (body, sig) = delivery(
        WEBHOOK_SECRET,
        Utc::now().timestamp(),
        "evt_dispute_late",
        "charge.dispute.created",
        dispute,
    );
    assert_eq!(w.deliver(&body, Some(&sig)).await, 200);
    w.drain().await;
    assert_eq!(
        count(
            &w.sql,
            "SELECT count(*) AS n FROM payment_disputes WHERE status = 'won'"
        )
        .await,
        1
    );
    // One chargeback this month: $5 withdrawn, $5 given back.
    let summary = village_payments::ledger::summary(&w.sql, 1, Utc::now())
        .await
        .expect("summary");
    let month = &summary.months[0];
    assert_eq!(
        (
            month.chargebacks,
            month.chargeback_cents,
            month.reinstated_cents
        ),
        (1, 500, 500)
    );
}

// ---------------------------------------------------------------------------
// Over HTTP, on the selected runtime (village, or Spin with
// VILLAGE_E2E_RUNTIME=spin): localstripe delivers its signed events to the
// app's /webhooks/stripe, the workers apply them.
// ---------------------------------------------------------------------------

/// Polls `statement` (a `count(*)`) until it answers `n` (up to a minute:
/// the work happens in jobs), then asserts it.
async fn settles(app: &village_e2e::TestApp, statement: &str, n: i64, what: &str) {
    for _ in 0..300 {
        if app.count(statement).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.count(statement).await, n, "{what}");
}

#[tokio::test]
async fn payments_end_to_end() {
    let stripe = LocalStripe::start().await;
    let mail = providers::mailgun(Arc::new(AtomicBool::new(false))).await;
    let vars: Vec<(&str, String)> = stripe
        .variables()
        .into_iter()
        .chain([
            ("mailgun_base_url", mail.url()),
            ("mailgun_domain", providers::MAILGUN_DOMAIN.to_owned()),
            ("mailgun_api_key", providers::MAILGUN_KEY.to_owned()),
            ("ops_email", "ops@village.test".to_owned()),
        ])
        .collect();
    let app = village_e2e::spawn_app_with(|o| {
        for (k, v) in vars {
            o.variables.insert(k.into(), v);
        }
    })
    .await;
    stripe
        .register_webhook(&app.url("/webhooks/stripe"), WEBHOOK_SECRET)
        .await;
    let (seller_id, seller) = app.signed_in_as(&[]).await;
    app.execute(&format!(
        "UPDATE users SET email = 'seller@example.com' WHERE id = '{seller_id}'"
    ))
    .await;
    let post = |path: String, body: Value, cookie: String| {
        let req = app
            .client
            .post(app.url(&path))
            .header("content-type", "application/json")
            .header("cookie", cookie)
            .body(body.to_string());
        async move {
            let r = req.send().await.expect("answered");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let get = |path: String, cookie: String| {
        let req = app.client.get(app.url(&path)).header("cookie", cookie);
        async move {
            let r = req.send().await.expect("answered");
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
    };

    // A draft of the seller's near Boise.
    let draft = async |title: &str, category: &str| {
        let (status, created) = post(
            "/api/marketplace/listings".into(),
            json!({"title": title, "body": "In good shape", "category": category,
                   "lat": 43.615, "lon": -116.2023,
                   "contact_method": "email", "contact_value": "seller@example.com"}),
            seller.clone(),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        created["listing"]["id"].as_i64().expect("id")
    };

    // A draft in a paid category; publishing points at checkout.
    let car = draft("Sedan", "vehicles").await;
    let (status, why) = post(
        format!("/api/marketplace/listings/{car}/publish"),
        json!({}),
        seller.clone(),
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        why["detail"]
            .as_str()
            .is_some_and(|d| d.contains("checkout")),
        "{why}"
    );
    // The page's Publish button leads to checkout instead.
    let r = app
        .client
        .post(app.url(&format!("/marketplace/listings/{car}/publish")))
        .header("cookie", seller.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/payments/checkout?listing={car}&purpose=posting").as_str())
    );

    // The checkout page loads Stripe.js from where the settings say.
    let (status, page) = get(
        format!("/payments/checkout?listing={car}&purpose=posting"),
        seller.clone(),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("$5.00"), "{page}");
    assert!(page.contains(&format!("{}/js.stripe.com/v3/", stripe.base)));
    let csp = app
        .client
        .get(app.url(&format!("/payments/checkout?listing={car}&purpose=posting")))
        .header("cookie", seller.clone())
        .send()
        .await
        .expect("answered")
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        csp.contains(&format!("script-src 'self' {};", stripe.base)),
        "Stripe.js may load: {csp}"
    );
    assert!(
        csp.contains(&format!("connect-src 'self' {}", stripe.base)),
        "{csp}"
    );
    let (status, _) = get(
        "/payments/checkout?listing=oops&purpose=posting".into(),
        seller.clone(),
    )
    .await;
    assert_eq!(status, 400);
    // Bad input: field errors.
    let (status, problem) = post(
        "/api/payments/checkout".into(),
        json!({"purpose": "gold"}),
        seller.clone(),
    )
    .await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["listing_id", "purpose"], "{problem}");

    let (status, checkout) = post(
        "/api/payments/checkout".into(),
        json!({"listing_id": car, "purpose": "posting"}),
        seller.clone(),
    )
    .await;
    assert_eq!(status, 201, "{checkout}");
    assert_eq!(checkout["publishable_key"], PUBLISHABLE_KEY);
    let intent = checkout["payment_intent"]
        .as_str()
        .expect("intent")
        .to_owned();
    let payment = checkout["payment_id"].as_str().expect("payment").to_owned();
    let (status, confirmed) = stripe.pay(&intent, CARD_OK).await;
    assert_eq!(status, 200, "{confirmed}");

    // Stripe's signed event → /webhooks/stripe → job → live listing.
    let mut view = Value::Null;
    for _ in 0..300 {
        let (_, body) = get(format!("/api/payments/{payment}"), seller.clone()).await;
        view = serde_json::from_str(&body).unwrap_or(Value::Null);
        if view["fulfilled"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["fulfilled"], true, "{view}");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM marketplace_listings WHERE id = {car} AND status = 'active'"
        ))
        .await,
        1
    );
    // Someone else's payment is not theirs to see.
    let (_, stranger) = app.signed_in_as(&[]).await;
    let (status, _) = get(format!("/api/payments/{payment}"), stranger).await;
    assert_eq!(status, 404);

    // A forged delivery is refused and records nothing.
    let (body, forged) = delivery(
        "whsec_forger",
        Utc::now().timestamp(),
        "evt_forged",
        "payment_intent.succeeded",
        json!({"id": intent, "object": "payment_intent"}),
    );
    let r = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", forged)
        .body(body)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 400);
    assert_eq!(
        app.count("SELECT count(*) FROM stripe_events WHERE id = 'evt_forged'")
            .await,
        0
    );

    // Support refund it (manage_refunds): issued by a job, booked once.
    let (_, support) = app.signed_in_as(&["support"]).await;
    let (status, _) = post(
        format!("/admin/api/payments/{payment}/refunds"),
        json!({}),
        support.clone(),
    )
    .await;
    assert_eq!(status, 400, "a reason is required");
    let (status, answer) = post(
        format!("/admin/api/payments/{payment}/refunds"),
        json!({"reason": "customer asked the same day"}),
        support.clone(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let (_, ops) = app.signed_in_as(&["ops"]).await;
    let (status, _) = get("/admin/api/payments".into(), ops).await;
    assert_eq!(status, 403, "ops lack manage_refunds");
    settles(
        &app,
        &format!("SELECT count(*) FROM payments WHERE id = '{payment}' AND status = 'refunded'"),
        1,
        "refunded by the job",
    )
    .await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM payment_ledger WHERE kind = 'refund' AND amount_cents = -500"
        )
        .await,
        1
    );
    let (status, summary) = get("/admin/api/payments/summary".into(), support.clone()).await;
    assert_eq!(status, 200);
    let summary: Value = serde_json::from_str(&summary).expect("json");
    assert_eq!(summary["months"][0]["charged_cents"], 500, "{summary}");
    assert_eq!(summary["months"][0]["refunded_cents"], 500, "{summary}");
    let refunds = stripe
        .get(&format!("/v1/refunds?payment_intent={intent}"))
        .await;
    assert_eq!(
        refunds["data"].as_array().map(Vec::len),
        Some(1),
        "{refunds}"
    );

    // Promotions, once ops switch `promoted_listings` on: a featured
    // listing ranks above the search's results.
    let (status, _) = post(
        "/api/payments/checkout".into(),
        json!({"listing_id": car, "purpose": "featured"}),
        seller.clone(),
    )
    .await;
    assert_eq!(status, 409, "promotions are off by default");
    let (_, flag_admin) = app.signed_in_as(&["ops"]).await;
    let r = app
        .client
        .patch(app.url("/admin/api/flags/promoted_listings"))
        .header("cookie", flag_admin)
        .header("content-type", "application/json")
        .body(
            json!({"enabled": true, "rollout_percent": 100, "reason": "launch promotions"})
                .to_string(),
        )
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let table = draft("Oak table", "furniture").await;
    let (status, _) = post(
        format!("/api/marketplace/listings/{table}/publish"),
        json!({}),
        seller.clone(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, feature) = post(
        "/api/payments/checkout".into(),
        json!({"listing_id": table, "purpose": "featured"}),
        seller.clone(),
    )
    .await;
    assert_eq!(status, 201, "{feature}");
    let feature_intent = feature["payment_intent"]
        .as_str()
        .expect("intent")
        .to_owned();
    let feature_payment = feature["payment_id"].as_str().expect("id").to_owned();
    assert_eq!(stripe.pay(&feature_intent, CARD_OK).await.0, 200);
    let mut promoted = Value::Null;
    for _ in 0..300 {
        let (_, body) = get(
            "/api/marketplace/listings?lat=43.615&lon=-116.2023&radius=5".into(),
            seller.clone(),
        )
        .await;
        promoted = serde_json::from_str(&body).unwrap_or(Value::Null);
        if promoted["promoted"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(promoted["promoted"][0]["id"], table, "{promoted}");
    assert_eq!(promoted["promoted"][0]["featured"], true, "{promoted}");

    // Staff remove it the same day: its promotion is refunded
    // automatically, queued by `payments-scheduler`.
    let (status, _) = post(
        format!("/api/marketplace/listings/{table}/remove"),
        json!({"reason": "counterfeit goods"}),
        support.clone(),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM payment_refunds WHERE payment_id = '{feature_payment}' \
             AND kind = 'automatic' AND status = 'approved'"
        ))
        .await,
        1
    );
    app.fire_cron("payments-scheduler").await;
    settles(
        &app,
        &format!(
            "SELECT count(*) FROM payments WHERE id = '{feature_payment}' AND status = 'refunded'"
        ),
        1,
        "refunded after the sweep",
    )
    .await;
    // Ops see the event lag and refunds owed in /q/metrics.
    let (status, metrics) = get("/q/metrics".into(), String::new()).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("village_stripe_events_pending 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("village_payment_refunds_waiting 0\n"),
        "{metrics}"
    );
    let lag: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("village_stripe_webhook_lag_seconds "))
        .and_then(|v| v.parse().ok())
        .expect("lag gauge");
    assert!((0.0..60.0).contains(&lag), "{lag}");
    let refunds = stripe
        .get(&format!("/v1/refunds?payment_intent={feature_intent}"))
        .await;
    assert_eq!(
        refunds["data"].as_array().map(Vec::len),
        Some(1),
        "{refunds}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM payment_ledger WHERE kind = 'refund'")
            .await,
        2,
        "each refund booked once"
    );
    app.stop().await;
}
