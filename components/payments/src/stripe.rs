//! Stripe's REST API, the few calls we make: form-encoded requests with the
//! secret key as a bearer token, an `Idempotency-Key` on every create, and
//! the JSON objects we read (only the fields we use; Stripe adds fields
//! freely, so unknown ones are ignored).

use std::collections::BTreeMap;

use serde::Deserialize;
use village_platform::http_client::{HttpClient, HttpError};

use crate::Config;

/// The API version whose object shapes we read (`latest_charge` on a
/// Payment Intent).
pub const API_VERSION: &str = "2024-06-20";

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe could not be reached or did not answer in time: worth a retry.
    #[error("stripe unreachable: {0}")]
    Transport(#[from] HttpError),
    /// Stripe answered with an error object.
    #[error("stripe answered {status}: {message}")]
    Api {
        status: u16,
        kind: String,
        code: Option<String>,
        message: String,
    },
    #[error("stripe's answer could not be read: {0}")]
    Decode(String),
}

impl StripeError {
    /// Worth trying again: the network, a rate limit, Stripe's own failure,
    /// a key being rotated (401) and a concurrent request holding the same
    /// idempotency key (409) — a retry then gets that request's answer.
    pub fn is_transient(&self) -> bool {
        match self {
            StripeError::Transport(_) | StripeError::Decode(_) => true,
            StripeError::Api { status, .. } => matches!(*status, 401 | 409 | 429) || *status >= 500,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    /// An id, or the expanded charge.
    #[serde(default)]
    pub latest_charge: Option<serde_json::Value>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub last_payment_error: Option<ErrorBody>,
}

impl PaymentIntent {
    pub fn charge_id(&self) -> Option<String> {
        match &self.latest_charge {
            Some(serde_json::Value::String(id)) => Some(id.clone()),
            Some(serde_json::Value::Object(o)) => o.get("id")?.as_str().map(str::to_owned),
            _ => None,
        }
    }

    /// When the charge was made (Unix seconds), when it came expanded.
    pub fn charge_created(&self) -> Option<i64> {
        self.latest_charge.as_ref()?.get("created")?.as_i64()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    /// `pending`, `succeeded`, `failed`, `canceled`, `requires_action`.
    pub status: String,
    #[serde(default)]
    pub charge: Option<String>,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BalanceTransaction {
    pub id: String,
    pub amount: i64,
    #[serde(default)]
    pub fee: i64,
    pub currency: String,
    pub created: i64,
    /// `charge`, `refund`, `adjustment` (disputes), `stripe_fee`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The charge, refund or dispute behind it (an id).
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

/// A client over `http` with `config`'s base and key.
pub struct Stripe<'a, H> {
    pub http: &'a H,
    pub config: &'a Config,
}

impl<H: HttpClient> Stripe<'_, H> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_base.trim_end_matches('/'))
    }

    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        method: http::Method,
        path: &str,
        form: Option<Vec<(String, String)>>,
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeError> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.config.secret_key),
            )
            .header("Stripe-Version", API_VERSION);
        if let Some(key) = idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        let body = match form {
            Some(pairs) => {
                builder = builder.header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                );
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish()
                    .into_bytes()
            }
            None => Vec::new(),
        };
        let request = builder
            .body(body)
            .map_err(|e| StripeError::Decode(format!("request: {e}")))?;
        let response = self.http.send(request).await?;
        let status = response.status();
        if !status.is_success() {
            let body: Option<ErrorEnvelope> = serde_json::from_slice(response.body()).ok();
            let e = body.map(|b| b.error);
            return Err(StripeError::Api {
                status: status.as_u16(),
                kind: e
                    .as_ref()
                    .and_then(|e| e.kind.clone())
                    .unwrap_or_else(|| "api_error".into()),
                code: e.as_ref().and_then(|e| e.code.clone()),
                message: e
                    .and_then(|e| e.message)
                    .unwrap_or_else(|| format!("HTTP {status}")),
            });
        }
        serde_json::from_slice(response.body()).map_err(|e| StripeError::Decode(e.to_string()))
    }

    /// `POST /v1/payment_intents`: `amount` in cents, card payments,
    /// `metadata` as Stripe's `metadata[key]` fields.
    pub async fn create_payment_intent(
        &self,
        amount_cents: i64,
        currency: &str,
        metadata: &BTreeMap<&str, String>,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        let mut form = vec![
            ("amount".to_owned(), amount_cents.to_string()),
            ("currency".to_owned(), currency.to_owned()),
            ("payment_method_types[]".to_owned(), "card".to_owned()),
        ];
        form.extend(metadata_fields(metadata));
        self.send(
            http::Method::POST,
            "/v1/payment_intents",
            Some(form),
            Some(idempotency_key),
        )
        .await
    }

    /// The intent, its latest charge expanded (the ledger dates a charge
    /// by when Stripe made it).
    pub async fn payment_intent(&self, id: &str) -> Result<PaymentIntent, StripeError> {
        self.send(
            http::Method::GET,
            &format!(
                "/v1/payment_intents/{}?expand%5B%5D=latest_charge",
                path_id(id)?
            ),
            None,
            None,
        )
        .await
    }

    /// `POST /v1/payment_intents/{id}/cancel` (an attempt replaced).
    pub async fn cancel_payment_intent(&self, id: &str) -> Result<PaymentIntent, StripeError> {
        self.send(
            http::Method::POST,
            &format!("/v1/payment_intents/{}/cancel", path_id(id)?),
            Some(Vec::new()),
            None,
        )
        .await
    }

    /// `POST /v1/refunds` of `amount_cents` of the intent's charge.
    pub async fn create_refund(
        &self,
        payment_intent: &str,
        amount_cents: i64,
        metadata: &BTreeMap<&str, String>,
        idempotency_key: &str,
    ) -> Result<Refund, StripeError> {
        let mut form = vec![
            ("payment_intent".to_owned(), payment_intent.to_owned()),
            ("amount".to_owned(), amount_cents.to_string()),
        ];
        form.extend(metadata_fields(metadata));
        self.send(
            http::Method::POST,
            "/v1/refunds",
            Some(form),
            Some(idempotency_key),
        )
        .await
    }

    /// Every refund of a charge (`GET /v1/refunds?charge=`), paged.
    pub async fn refunds_of(&self, charge: &str) -> Result<Vec<Refund>, StripeError> {
        let charge = path_id(charge)?;
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/v1/refunds?charge={charge}&limit=100");
            if let Some(a) = &after {
                path.push_str(&format!("&starting_after={}", path_id(a)?));
            }
            let page: List<Refund> = self.send(http::Method::GET, &path, None, None).await?;
            after = page.data.last().map(|r| r.id.clone());
            all.extend(page.data);
            if !page.has_more || after.is_none() || all.len() >= 1000 {
                return Ok(all);
            }
        }
    }

    /// Balance transactions, newest first, from `starting_after` on.
    pub async fn balance_transactions(
        &self,
        starting_after: Option<&str>,
    ) -> Result<List<BalanceTransaction>, StripeError> {
        let mut path = "/v1/balance_transactions?limit=100".to_owned();
        if let Some(a) = starting_after {
            path.push_str(&format!("&starting_after={}", path_id(a)?));
        }
        self.send(http::Method::GET, &path, None, None).await
    }
}

/// `metadata` as Stripe's form fields `metadata[key]=value`.
fn metadata_fields(metadata: &BTreeMap<&str, String>) -> impl Iterator<Item = (String, String)> {
    metadata
        .iter()
        .map(|(k, v)| (format!("metadata[{k}]"), v.clone()))
}

/// Whether `id` has a Stripe id's shape: 1–255 letters, digits and `_`
/// (what may go in a path, a key or a column unchecked).
pub fn is_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A Stripe id as it may appear in a path.
fn path_id(id: &str) -> Result<&str, StripeError> {
    if is_id(id) {
        Ok(id)
    } else {
        Err(StripeError::Decode(format!("not a Stripe id: {id:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_paths_are_plain() {
        assert!(path_id("pi_3Nabc_09").is_ok());
        for bad in ["", "pi/../x", "pi?x=1", "ch 1", "é"] {
            assert!(path_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn latest_charge_is_an_id_or_an_expanded_object() {
        let pi: PaymentIntent = serde_json::from_value(serde_json::json!({
            "id": "pi_1", "amount": 500, "currency": "usd", "status": "succeeded",
            "latest_charge": "ch_1", "unknown_field": {"ignored": true}
        }))
        .expect("parses");
        assert_eq!(pi.charge_id().as_deref(), Some("ch_1"));
        let pi: PaymentIntent = serde_json::from_value(serde_json::json!({
            "id": "pi_1", "amount": 500, "currency": "usd", "status": "succeeded",
            "latest_charge": {"id": "ch_2", "object": "charge"}
        }))
        .expect("parses");
        assert_eq!(pi.charge_id().as_deref(), Some("ch_2"));
    }
}
