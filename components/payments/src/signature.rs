//! `Stripe-Signature` as Stripe documents it: `t=<unix seconds>` and one or
//! more `v1=<hex>` (other schemes, such as `v0`, are ignored), each an
//! HMAC-SHA256 with the endpoint's secret over `"{t}.{raw body}"`. A
//! signature by the current or, during a rotation, the previous secret is
//! accepted; the timestamp must be within five minutes of now, so a captured
//! delivery cannot be replayed later. Signatures are compared in constant
//! time (`Mac::verify_slice`).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far the signed timestamp may be from now, either way.
pub const TOLERANCE_SECS: u64 = 300;
/// The most `v1` signatures looked at (Stripe sends one per active
/// secret: two during a roll); a longer header is refused unread, so a
/// forged delivery costs one MAC per secret, never one per candidate.
pub const MAX_SIGNATURES: usize = 8;
/// The longest header read.
pub const MAX_HEADER: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header has no timestamp or no v1 signature")]
    Malformed,
    #[error("the signature's timestamp is more than {TOLERANCE_SECS} seconds from now")]
    Stale,
    #[error("no v1 signature matches the endpoint's secrets")]
    Mismatch,
    #[error("no webhook secret is configured")]
    NoSecret,
}

/// Checks `header` against `body` and `secrets` at `now`.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let secrets: Vec<&str> = secrets
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    if header.len() > MAX_HEADER {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp: Option<&str> = None;
    let mut signatures: Vec<[u8; 32]> = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t),
            Some(("v1", hex_sig)) => {
                // A malformed one cannot match; others may.
                let mut bytes = [0u8; 32];
                if hex::decode_to_slice(hex_sig, &mut bytes).is_ok() {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let (Some(t), false) = (timestamp, signatures.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    if signatures.len() > MAX_SIGNATURES {
        return Err(SignatureError::Malformed);
    }
    let seconds: i64 = t.parse().map_err(|_| SignatureError::Malformed)?;
    if now.timestamp().abs_diff(seconds) > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        // One MAC per secret; each candidate compared in constant time.
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|_| SignatureError::NoSecret)?;
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(body);
        for signature in &signatures {
            if mac.clone().verify_slice(signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// The header Stripe would send for `body` at `t` with `secret` (tests and
/// the local tools sign deliveries with it).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_764_547_200, 0).single().expect("time")
    }

    fn secrets(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_current_signature_by_either_secret_passes() {
        let body = br#"{"id":"evt_1"}"#;
        let t = now().timestamp();
        let by_new = sign("whsec_new", t, body);
        let by_old = sign("whsec_old", t, body);
        let both = secrets(&["whsec_new", "whsec_old"]);
        assert_eq!(verify(Some(&by_new), body, &both, now()), Ok(()));
        assert_eq!(verify(Some(&by_old), body, &both, now()), Ok(()));
        // Once the rotation ends, the old secret's signatures fail.
        assert_eq!(
            verify(Some(&by_old), body, &secrets(&["whsec_new"]), now()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn any_of_several_v1_signatures_may_match_and_v0_is_ignored() {
        let body = b"{}";
        let t = now().timestamp();
        let good = sign("whsec_a", t, body);
        let good_hex = good.split("v1=").nth(1).expect("v1");
        let header = format!("t={t},v0=deadbeef,v1={},v1={good_hex}", "00".repeat(32));
        assert_eq!(
            verify(Some(&header), body, &secrets(&["whsec_a"]), now()),
            Ok(())
        );
        let only_v0 = format!("t={t},v0={good_hex}");
        assert_eq!(
            verify(Some(&only_v0), body, &secrets(&["whsec_a"]), now()),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn forged_stale_and_tampered_deliveries_fail() {
        let body = br#"{"id":"evt_1","amount":500}"#;
        let s = secrets(&["whsec_a"]);
        let t = now().timestamp();
        assert_eq!(
            verify(Some(&sign("whsec_forger", t, body)), body, &s, now()),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                Some(&sign("whsec_a", t, body)),
                br#"{"id":"evt_1","amount":5}"#,
                &s,
                now()
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&sign("whsec_a", t - 301, body)), body, &s, now()),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&sign("whsec_a", t + 301, body)), body, &s, now()),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&sign("whsec_a", t - 299, body)), body, &s, now()),
            Ok(())
        );
        assert_eq!(verify(None, body, &s, now()), Err(SignatureError::Missing));
        assert_eq!(
            verify(Some("garbage"), body, &s, now()),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some(&sign("", t, body)), body, &secrets(&[""]), now()),
            Err(SignatureError::NoSecret)
        );
        // A secret pasted with a newline still verifies.
        assert_eq!(
            verify(
                Some(&sign("whsec_a", t, body)),
                body,
                &secrets(&["whsec_a\n"]),
                now()
            ),
            Ok(())
        );
        // An absurd timestamp is stale, not a panic.
        assert_eq!(
            verify(
                Some(&format!("t={},v1={}", i64::MIN, "00".repeat(32))),
                body,
                &s,
                now()
            ),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn a_header_stuffed_with_candidates_is_refused_unread() {
        let body = b"{}";
        let t = now().timestamp();
        let good = sign("whsec_a", t, body);
        let stuffed = format!("{good}{}{}", ",v1=".repeat(600), "00".repeat(32));
        assert_eq!(
            verify(Some(&stuffed), body, &secrets(&["whsec_a"]), now()),
            Err(SignatureError::Malformed)
        );
        let many = format!("{good}{}", format!(",v1={}", "00".repeat(32)).repeat(8));
        assert_eq!(
            verify(Some(&many), body, &secrets(&["whsec_a"]), now()),
            Err(SignatureError::Malformed),
            "nine candidates"
        );
    }
}
