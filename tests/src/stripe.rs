//! The local Stripe for tests: `localstripe` (PyPI, installed by
//! `scripts/setup.sh`'s `ensure_localstripe`) run by
//! `scripts/run-localstripe.py` on a free loopback port — one process per
//! test, so each starts with an empty Stripe — plus what a test needs to act
//! as Stripe.js (a card, confirming an intent) and as Stripe for the events
//! localstripe never sends (`charge.refunded`, disputes, Radar reviews):
//! events built in Stripe's documented shape and signed the way Stripe signs.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

pub const SECRET_KEY: &str = "sk_test_village_e2e";
pub const PUBLISHABLE_KEY: &str = "pk_test_village_e2e";
pub const WEBHOOK_SECRET: &str = "whsec_village_e2e";

/// Cards localstripe knows: one that pays, one that is declined.
pub const CARD_OK: &str = "4242424242424242";
/// Stripe's test card that attaches but whose charges are declined.
pub const CARD_DECLINED: &str = "4000000000000341";

pub struct LocalStripe {
    pub base: String,
    client: reqwest::Client,
    _child: tokio::process::Child,
}

fn python() -> String {
    std::env::var("VILLAGE_LOCALSTRIPE_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/village/tools/localstripe/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

impl LocalStripe {
    pub async fn start() -> LocalStripe {
        let port = crate::spin::free_addr().port();
        let script = crate::repo_root().join("scripts/run-localstripe.py");
        let child = tokio::process::Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("localstripe starts (run scripts/test, which installs it)");
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..150 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return LocalStripe {
                    base,
                    client: reqwest::Client::new(),
                    _child: child,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("localstripe did not listen on {port}");
    }

    /// The variables pointing the app at this Stripe.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        vec![
            ("stripe_api_base", self.base.clone()),
            ("stripe_secret_key", SECRET_KEY.to_owned()),
            ("stripe_publishable_key", PUBLISHABLE_KEY.to_owned()),
            ("stripe_js_url", format!("{}/js.stripe.com/v3/", self.base)),
            ("stripe_webhook_secret", WEBHOOK_SECRET.to_owned()),
        ]
    }

    /// Sends every event to `url`, signed with `secret`.
    pub async fn register_webhook(&self, url: &str, secret: &str) {
        let r = self
            .client
            .post(format!("{}/_config/webhooks/village", self.base))
            .form(&[("url", url), ("secret", secret)])
            .send()
            .await
            .expect("localstripe answers");
        assert!(r.status().is_success(), "webhook registered");
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .basic_auth(SECRET_KEY, Some(""))
            .form(form)
            .send()
            .await
            .expect("localstripe answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .basic_auth(SECRET_KEY, Some(""))
            .send()
            .await
            .expect("localstripe answers")
            .json()
            .await
            .expect("json")
    }

    /// What Stripe.js does on the checkout page: a card payment method,
    /// attached to the intent, confirmed. The confirm's status and answer
    /// (402 with a card error when declined).
    pub async fn pay(&self, intent: &str, card: &str) -> (u16, Value) {
        let (status, pm) = self
            .post(
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", card),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2031"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        assert_eq!(status, 200, "{pm}");
        let pm = pm["id"].as_str().expect("payment method id").to_owned();
        let (status, updated) = self
            .post(
                &format!("/v1/payment_intents/{intent}"),
                &[("payment_method", &pm)],
            )
            .await;
        assert_eq!(status, 200, "{updated}");
        self.post(&format!("/v1/payment_intents/{intent}/confirm"), &[])
            .await
    }
}

/// A Stripe event delivery: the body and its `Stripe-Signature` header,
/// signed with `secret` at `t` (Unix seconds).
pub fn delivery(secret: &str, t: i64, id: &str, kind: &str, object: Value) -> (Vec<u8>, String) {
    let body = serde_json::json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": t,
        "livemode": false,
        "pending_webhooks": 1,
        "type": kind,
        "data": { "object": object },
    })
    .to_string()
    .into_bytes();
    let header = village_payments::signature::sign(secret, t, &body);
    (body, header)
}
