//! The buyer's side, served by the `payments` component.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/payments/checkout?listing={id}&purpose={p}` | the checkout page (Stripe.js) |
//! | POST | `/api/payments/checkout` `{listing_id, purpose}` | start or resume a purchase: the intent's client secret |
//! | GET | `/api/payments/{id}` | a purchase's state (the page polls it) |
//! | POST | `/api/payments/{id}/refund-request` `{reason}` | ask for a refund (manual review) |
//!
//! `purpose` is `posting` (a paid category's fee), `featured`, `bump` or
//! `highlight`. Signed-in sellers only, never while impersonating.

use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;
use village_platform::admin::parse_body;
use village_platform::cache::Cache;
use village_platform::error::FieldError;
use village_platform::http_client::HttpClient;
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::checkout::{self, Offer};
use crate::{Config, dollars, refunds};

pub struct PaymentRequest<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

pub struct Services<'a, S, C, H> {
    pub sql: &'a S,
    pub cache: &'a C,
    pub http: &'a H,
    pub config: &'a Config,
    pub now: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckoutBody {
    listing_id: Option<i64>,
    purpose: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    reason: Option<String>,
}

#[derive(Template)]
#[template(path = "checkout.html")]
struct CheckoutPage {
    offer: Option<Offer>,
    amount: String,
    js_url: String,
    problem: String,
}

/// Stripe.js's origin (script, frames, its API calls) for the CSP.
fn origin_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .unwrap_or_default()
}

/// The checkout page's Content-Security-Policy: the site's own, with
/// Stripe.js's origin for scripts and frames and Stripe's API for calls.
fn csp(config: &Config) -> String {
    let mut js = origin_of(&config.js_url);
    let api = origin_of(&config.api_base);
    if js == "https://js.stripe.com" {
        // Stripe's own CSP guidance: Stripe.js also loads from its subdomains.
        js.push_str(" https://*.js.stripe.com");
    }
    // Stripe.js loads from its origin, frames its card field from there and
    // calls Stripe's API (localstripe serves all three from one origin).
    format!(
        "default-src 'self'; script-src 'self' {js}; frame-src {js} https://hooks.stripe.com; \
         connect-src 'self' {api} {js}; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
}

fn page(t: &CheckoutPage, status: http::StatusCode, config: &Config) -> Result<Response, AppError> {
    let html = t
        .render()
        .map_err(|e| AppError::Internal(format!("rendering the checkout page: {e}")))?;
    let csp = csp(config);
    let mut r = web::html(status, html);
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, no-store"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&csp) {
        r.headers_mut().insert("content-security-policy", v);
    }
    Ok(r)
}

async fn checkout_page<S: Sql, C: Cache, H: HttpClient>(
    req: &PaymentRequest<'_>,
    s: &Services<'_, S, C, H>,
    ctx: &RequestContext,
) -> Result<Response, AppError> {
    let problem = |text: &str, status| {
        page(
            &CheckoutPage {
                offer: None,
                amount: String::new(),
                js_url: String::new(),
                problem: text.to_owned(),
            },
            status,
            s.config,
        )
    };
    let Some(user) = ctx.user_id() else {
        return problem(
            "Sign in on the homepage first: purchases belong to your account.",
            http::StatusCode::UNAUTHORIZED,
        );
    };
    let query = req.query.as_bytes();
    let listing = web::query_param(query, "listing").and_then(|v| v.parse::<i64>().ok());
    let purpose = checkout::purpose_field(web::query_param(query, "purpose").as_deref());
    let (Some(listing), Ok(purpose)) = (listing, purpose) else {
        return problem(
            "This checkout link is incomplete: it needs a listing and what to buy \
             (posting, featured, bump or highlight).",
            http::StatusCode::BAD_REQUEST,
        );
    };
    if !s.config.configured() {
        return problem(
            "Online payments are not available right now. Your listing is saved; try again later.",
            http::StatusCode::SERVICE_UNAVAILABLE,
        );
    }
    let promotions_on = purpose.is_promotion()
        && village_flags::visitor::is_enabled(
            s.sql,
            s.cache,
            &village_flags::visitor::Visitor::of(ctx),
            crate::PROMOTIONS_FLAG,
            s.now,
        )
        .await;
    match checkout::offer(s.sql, user, listing, purpose, promotions_on).await {
        Ok(offer) => page(
            &CheckoutPage {
                amount: dollars(offer.amount_cents),
                offer: Some(offer),
                js_url: s.config.js_url.clone(),
                problem: String::new(),
            },
            http::StatusCode::OK,
            s.config,
        ),
        Err(AppError::NotFound) => problem(
            "There is no such listing of yours.",
            http::StatusCode::NOT_FOUND,
        ),
        Err(AppError::Conflict(why)) => problem(&why, http::StatusCode::CONFLICT),
        Err(other) => Err(other),
    }
}

pub async fn handle<S: Sql, C: Cache, H: HttpClient>(
    req: PaymentRequest<'_>,
    s: &Services<'_, S, C, H>,
    ctx: &RequestContext,
) -> Result<Response, AppError> {
    use http::Method as M;
    let segments = web::path_segments(req.path);
    match (req.method, segments.as_slice()) {
        (&M::GET, ["payments", "checkout"]) => checkout_page(&req, s, ctx).await,
        (&M::POST, ["api", "payments", "checkout"]) => {
            let body: CheckoutBody = parse_body(req.body)?;
            let mut errors = Vec::new();
            if body.listing_id.is_none() {
                errors.push(FieldError::new("listing_id", "required"));
            }
            let purpose = checkout::purpose_field(body.purpose.as_deref())
                .map_err(|e| errors.push(e))
                .ok();
            let (Some(listing), Some(purpose), true) =
                (body.listing_id, purpose, errors.is_empty())
            else {
                return Err(AppError::Validation(errors));
            };
            let c = checkout::start(
                s.sql, s.cache, s.http, s.config, ctx, listing, purpose, s.now,
            )
            .await?;
            Ok(web::json(http::StatusCode::CREATED, &c))
        }
        (&M::GET, ["api", "payments", id]) => {
            let user = ctx.user_id().ok_or(AppError::Unauthorized)?;
            let id = Uuid::parse_str(id).map_err(|_| AppError::NotFound)?;
            let view = checkout::view(s.sql, user, id).await?;
            Ok(web::json(http::StatusCode::OK, &view))
        }
        (&M::POST, ["api", "payments", id, "refund-request"]) => {
            let id = Uuid::parse_str(id).map_err(|_| AppError::NotFound)?;
            let body: RefundBody = parse_body(req.body)?;
            let refund = refunds::request(s.sql, ctx, id, body.reason.as_deref(), s.now).await?;
            Ok(web::json(
                http::StatusCode::CREATED,
                &serde_json::json!({ "refund_id": refund, "status": "requested" }),
            ))
        }
        (_, ["payments", "checkout"]) => Err(AppError::MethodNotAllowed { allowed: "GET" }),
        (_, ["api", "payments", "checkout"]) => Err(AppError::MethodNotAllowed { allowed: "POST" }),
        _ => Err(AppError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(js: &str, api: &str) -> Config {
        Config {
            api_base: api.into(),
            secret_key: "sk_test".into(),
            publishable_key: "pk_test".into(),
            js_url: js.into(),
            webhook_secrets: Vec::new(),
            currency: "usd".into(),
            mail_from: String::new(),
            ops_email: String::new(),
            public_base_url: String::new(),
        }
    }

    #[test]
    fn the_checkout_csp_allows_stripe_and_nothing_else() {
        let prod = csp(&config(
            "https://js.stripe.com/v3/",
            "https://api.stripe.com",
        ));
        assert!(
            prod.contains("script-src 'self' https://js.stripe.com https://*.js.stripe.com;"),
            "{prod}"
        );
        assert!(
            prod.contains(
                "frame-src https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com;"
            ),
            "{prod}"
        );
        assert!(prod.contains("connect-src 'self' https://api.stripe.com https://js.stripe.com"));
        assert!(prod.contains("frame-ancestors 'none'"));
        let local = csp(&config(
            "http://127.0.0.1:8420/js.stripe.com/v3/",
            "http://127.0.0.1:8420",
        ));
        assert!(
            local.contains("script-src 'self' http://127.0.0.1:8420;"),
            "{local}"
        );
        assert!(!local.contains("*.js.stripe.com"));
        // A setting that is not a URL adds no source at all.
        let broken = csp(&config("not a url", ""));
        assert!(broken.contains("script-src 'self' ;"), "{broken}");
    }
}
