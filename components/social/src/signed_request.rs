//! Meta's `signed_request` (the deauthorize and data-deletion callbacks,
//! <https://developers.facebook.com/docs/development/create-an-app/app-dashboard/data-deletion-callback>):
//! `base64url(HMAC-SHA256(app secret, payload part)) "." base64url(JSON)`,
//! the JSON naming `"algorithm": "HMAC-SHA256"` and the app-scoped
//! `user_id`. The signature is checked in constant time before the
//! payload is trusted for anything.

use base64::Engine;
use hmac::Mac;
use serde::Deserialize;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignedRequestError {
    #[error("not a signed request")]
    Malformed,
    #[error("the signature does not match")]
    BadSignature,
    #[error("unsupported algorithm {0:?}")]
    Algorithm(String),
    /// `issued_at` missing, or too old or too far ahead to be a live call:
    /// a captured request cannot be replayed later.
    #[error("the request is not current (issued_at)")]
    Stale,
}

/// How old a signed request may be.
pub const MAX_AGE_SECS: i64 = 24 * 3600;
/// Clock skew allowed the other way.
pub const MAX_AHEAD_SECS: i64 = 300;

/// The payload fields the callbacks use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Payload {
    pub algorithm: String,
    pub user_id: String,
    #[serde(default)]
    pub issued_at: Option<i64>,
}

fn b64(s: &str) -> Result<Vec<u8>, SignedRequestError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| SignedRequestError::Malformed)
}

/// Verifies and reads a signed request with `app_secret`, issued within a
/// day of `now`.
pub fn verify(
    signed_request: &str,
    app_secret: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Payload, SignedRequestError> {
    if app_secret.is_empty() || signed_request.len() > 8192 {
        return Err(SignedRequestError::Malformed);
    }
    let (sig, payload) = signed_request
        .split_once('.')
        .ok_or(SignedRequestError::Malformed)?;
    let sig = b64(sig)?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes())
        .map_err(|_| SignedRequestError::Malformed)?;
    mac.update(payload.as_bytes());
    mac.verify_slice(&sig)
        .map_err(|_| SignedRequestError::BadSignature)?;
    let p: Payload =
        serde_json::from_slice(&b64(payload)?).map_err(|_| SignedRequestError::Malformed)?;
    if !p.algorithm.eq_ignore_ascii_case("HMAC-SHA256") {
        return Err(SignedRequestError::Algorithm(p.algorithm));
    }
    if p.user_id.is_empty() || p.user_id.len() > 64 {
        return Err(SignedRequestError::Malformed);
    }
    let age = p
        .issued_at
        .map(|at| now.timestamp() - at)
        .ok_or(SignedRequestError::Stale)?;
    if !(-MAX_AHEAD_SECS..=MAX_AGE_SECS).contains(&age) {
        return Err(SignedRequestError::Stale);
    }
    Ok(p)
}

/// Signs a payload as Meta does (tests and local tools).
pub fn sign(payload: &serde_json::Value, app_secret: &str) -> String {
    let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let body = enc.encode(payload.to_string());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body.as_bytes());
    format!("{}.{body}", enc.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_789_990_100, 0).expect("valid")
    }

    fn payload() -> serde_json::Value {
        serde_json::json!({"algorithm": "HMAC-SHA256", "expires": 1_790_000_000,
                           "issued_at": 1_789_990_000, "user_id": "10223344"})
    }

    #[test]
    fn a_request_signed_with_the_app_secret_verifies() {
        let p = verify(&sign(&payload(), "app-secret"), "app-secret", now()).expect("verifies");
        assert_eq!(p.user_id, "10223344");
    }

    #[test]
    fn another_secret_or_an_altered_payload_is_refused() {
        let signed = sign(&payload(), "app-secret");
        assert_eq!(
            verify(&signed, "other", now()),
            Err(SignedRequestError::BadSignature)
        );
        let (sig, _) = signed.split_once('.').expect("two parts");
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"algorithm":"HMAC-SHA256","user_id":"999"}"#);
        assert_eq!(
            verify(&format!("{sig}.{forged}"), "app-secret", now()),
            Err(SignedRequestError::BadSignature)
        );
        assert_eq!(
            verify("garbage", "app-secret", now()),
            Err(SignedRequestError::Malformed)
        );
        assert_eq!(
            verify(&signed, "", now()),
            Err(SignedRequestError::Malformed)
        );
    }

    #[test]
    fn other_algorithms_are_refused_even_when_signed() {
        let mut p = payload();
        p["algorithm"] = "none".into();
        assert_eq!(
            verify(&sign(&p, "s"), "s", now()),
            Err(SignedRequestError::Algorithm("none".into()))
        );
    }

    #[test]
    fn an_old_or_undated_request_cannot_be_replayed() {
        let signed = sign(&payload(), "s");
        let later = now() + chrono::Duration::days(2);
        assert_eq!(verify(&signed, "s", later), Err(SignedRequestError::Stale));
        let mut undated = payload();
        undated.as_object_mut().expect("object").remove("issued_at");
        assert_eq!(
            verify(&sign(&undated, "s"), "s", now()),
            Err(SignedRequestError::Stale)
        );
    }
}
