//! Signed-in sessions as every function sees them.
//!
//! A signed-in browser carries two cookies: `vu_access`, our own access token
//! (an HS256 JWT, 15 minutes, verified with the secret Spin variable
//! `session_signing_key`), and `vu_refresh`, an opaque rotating refresh token
//! (`Path=/auth`, so only the auth component ever sees it). Verifying the JWT
//! is not enough on its own: the session row is checked too, so logout and
//! an admin's revocation take effect at once rather than when the token
//! expires. Issuing tokens and rotating refresh tokens live in
//! `village-accounts`; this module only answers "who is this?".

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::sql::{Sql, SqlError, SqlValue};

/// The access-token cookie.
pub const ACCESS_COOKIE: &str = "vu_access";
/// The refresh-token cookie (path `/auth`).
pub const REFRESH_COOKIE: &str = "vu_refresh";
/// Access tokens live 15 minutes.
pub const ACCESS_TTL_SECS: i64 = 15 * 60;
/// Both session cookies live as long as a session can (30 days); the access
/// cookie outlives its JWT so a page can tell "expired, refresh me" from
/// "never signed in".
pub const SESSION_COOKIE_MAX_AGE: i64 = 30 * 24 * 3600;
/// `iss` and `aud` of our own tokens: nothing else's JWT is accepted.
pub const ISSUER: &str = "village-homepage";
/// Clock skew tolerated when checking `exp`, in seconds.
const LEEWAY_SECS: i64 = 5;

/// The HMAC key access tokens are signed with.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(redacted)")
    }
}

impl SigningKey {
    /// HMAC-SHA256 of `message` under this key, for `purpose` (a label that
    /// keeps one use's values from standing in for another's).
    pub fn mac(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        use hmac::Mac;
        // HMAC takes a key of any length: `new_from_slice` cannot fail.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(message);
        mac.finalize().into_bytes().into()
    }
}

impl TryFrom<&str> for SigningKey {
    type Error = String;

    /// At least 32 bytes, the HS256 block of security the RFC asks for.
    fn try_from(s: &str) -> Result<Self, String> {
        if s.len() < 32 {
            return Err("session_signing_key must be at least 32 characters".into());
        }
        Ok(SigningKey(s.as_bytes().to_vec()))
    }
}

/// What our access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The acting user: the impersonated user while impersonating.
    pub sub: Uuid,
    /// The session (refresh-token family) the token belongs to.
    pub sid: Uuid,
    /// The real user behind an impersonation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imp: Option<Uuid>,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is invalid: {0}")]
    Invalid(String),
}

impl TokenError {
    /// A short machine-readable reason for logs and the audit trail.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Expired => "expired",
            TokenError::Invalid(_) => "invalid",
        }
    }
}

/// Signs an access token for `sub` in session `sid`.
pub fn issue_access(
    key: &SigningKey,
    sub: Uuid,
    sid: Uuid,
    imp: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<String, TokenError> {
    let claims = AccessClaims {
        sub,
        sid,
        imp,
        iat: now.timestamp(),
        exp: now.timestamp() + ACCESS_TTL_SECS,
        iss: ISSUER.into(),
        aud: ISSUER.into(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&key.0),
    )
    .map_err(|e| TokenError::Invalid(format!("failed to sign: {e}")))
}

/// Verifies signature, algorithm, issuer and audience, then expiry against
/// `now` (the clock port, so tests control time).
pub fn verify_access(
    key: &SigningKey,
    token: &str,
    now: DateTime<Utc>,
) -> Result<AccessClaims, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Expiry is checked below against the injected clock.
    validation.validate_exp = false;
    let data =
        jsonwebtoken::decode::<AccessClaims>(token, &DecodingKey::from_secret(&key.0), &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
    if data.claims.exp + LEEWAY_SECS < now.timestamp() {
        return Err(TokenError::Expired);
    }
    Ok(data.claims)
}

/// A signed-in caller whose session is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who the request acts as (the impersonated user while impersonating).
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// The admin really behind the request while impersonating.
    pub impersonator: Option<Uuid>,
    /// The acting user's stable feature-flag cohort key: the first anonymous
    /// id they had (`users.cohort_key`), so flags do not flip on sign-in.
    pub cohort_key: Uuid,
    /// Whether the acting user agreed to analytics.
    pub analytics_consent: bool,
}

impl Principal {
    pub fn is_impersonating(&self) -> bool {
        self.impersonator.is_some()
    }
}

/// The outcome of looking at a request's access cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// No access cookie.
    Anonymous,
    SignedIn(Principal),
    /// A well-signed token past its expiry: a refresh may renew it.
    Expired,
    /// A token that does not verify, or whose session is over.
    Rejected(String),
}

/// Verifies the access cookie's token and checks its session is live.
pub async fn authenticate(
    sql: &impl Sql,
    key: &SigningKey,
    token: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Authentication, SqlError> {
    let Some(token) = token else {
        return Ok(Authentication::Anonymous);
    };
    let claims = match verify_access(key, token, now) {
        Ok(c) => c,
        Err(TokenError::Expired) => return Ok(Authentication::Expired),
        Err(e) => return Ok(Authentication::Rejected(e.to_string())),
    };
    // The session must be live, and the token must say what the session
    // says: who it belongs to and whom it is impersonating. The same query
    // reads what every request wants to know of the acting user.
    let row = sql
        .query_opt(
            "SELECT s.user_id, s.impersonating_user_id, \
                    coalesce(u.cohort_key, u.anon_id, u.id) AS cohort_key, \
                    u.analytics_consent_at IS NOT NULL AS analytics_consent \
             FROM sessions s JOIN users u ON u.id = coalesce(s.impersonating_user_id, s.user_id) \
             WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
            &[SqlValue::Uuid(claims.sid), SqlValue::Timestamp(now)],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Authentication::Rejected("the session has ended".into()));
    };
    let owner: Uuid = row.get("user_id")?;
    let impersonating: Option<Uuid> = row.get("impersonating_user_id")?;
    let expected = match impersonating {
        Some(target) => (target, Some(owner)),
        None => (owner, None),
    };
    if (claims.sub, claims.imp) != expected {
        return Ok(Authentication::Rejected(
            "the token does not match its session".into(),
        ));
    }
    Ok(Authentication::SignedIn(Principal {
        user_id: claims.sub,
        session_id: claims.sid,
        impersonator: claims.imp,
        cohort_key: row.get("cohort_key")?,
        analytics_consent: row.get("analytics_consent")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::try_from("0123456789abcdef0123456789abcdef").expect("key")
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("timestamp")
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let (sub, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let token = issue_access(&key(), sub, sid, None, at(1_000_000)).expect("sign");
        let claims = verify_access(&key(), &token, at(1_000_000 + 60)).expect("valid");
        assert_eq!((claims.sub, claims.sid, claims.imp), (sub, sid, None));
        assert_eq!(
            verify_access(&key(), &token, at(1_000_000 + ACCESS_TTL_SECS + 60)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_token_signed_with_another_key_or_tampered_with_is_invalid() {
        let token = issue_access(&key(), Uuid::new_v4(), Uuid::new_v4(), None, at(1_000_000))
            .expect("sign");
        let other = SigningKey::try_from("another key, also 32 bytes long!!").expect("key");
        assert!(matches!(
            verify_access(&other, &token, at(1_000_000)),
            Err(TokenError::Invalid(_))
        ));
        // Swap the payload for one naming somebody else.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged = issue_access(&other, Uuid::new_v4(), Uuid::new_v4(), None, at(1_000_000))
            .expect("sign");
        parts[1] = forged.split('.').nth(1).expect("payload").to_owned();
        assert!(matches!(
            verify_access(&key(), &parts.join("."), at(1_000_000)),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        // `alg: none` must never be accepted, whatever the payload says.
        let token = issue_access(&key(), Uuid::new_v4(), Uuid::new_v4(), None, at(1_000_000))
            .expect("sign");
        let payload = token.split('.').nth(1).expect("payload");
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(matches!(
            verify_access(&key(), &none, at(1_000_000)),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(SigningKey::try_from("too short").is_err());
    }
}
