//! One sign-in, from `/auth/<provider>/login` to its callback.
//!
//! `start` records the attempt (state, nonce, PKCE verifier, the visitor's
//! anonymous id, where to return) and answers the provider's URL; `finish`
//! consumes the attempt exactly once, exchanges the code, verifies the ID
//! token, finds or creates the account, opens a session and — when the
//! visitor had anonymous data — offers a merge. The attempt's state is also
//! kept in a cookie, and the callback must present both: a code and state
//! injected into somebody else's browser do not sign them in (login CSRF).

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use village_platform::AnonId;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlValue};

use crate::oidc::{self, LoginError, Provider, ProviderConfig, random_token, sha256};
use crate::sessions::{self, NewSession};

/// How long a visitor has to finish signing in at the provider.
pub const ATTEMPT_TTL_MINUTES: i64 = 10;
/// The cookie carrying the attempt's state back to the callback.
pub const STATE_COOKIE: &str = "vu_login";

/// A started sign-in: where to send the browser, and the state for the cookie.
#[derive(Debug)]
pub struct Started {
    pub redirect: String,
    pub state: String,
}

/// A local path to return to after signing in: anything else (another site,
/// `//host`, a backslash trick) becomes `/`.
pub fn safe_return_to(candidate: Option<&str>) -> String {
    match candidate {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control)
                && p.len() <= 512 =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

pub async fn start(
    sql: &impl Sql,
    cfg: &ProviderConfig,
    redirect_uri: &str,
    anon_id: Option<AnonId>,
    return_to: &str,
    now: DateTime<Utc>,
) -> Result<Started, LoginError> {
    let state = random_token();
    let nonce = random_token();
    let verifier = random_token();
    sql.execute(
        "INSERT INTO oauth_logins (state_hash, provider, nonce, code_verifier, anon_id, return_to, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            SqlValue::Bytes(sha256(&state)),
            SqlValue::Text(cfg.provider.as_str().into()),
            SqlValue::Text(nonce.clone()),
            SqlValue::Text(verifier.clone()),
            anon_id
                .map(|a| SqlValue::Uuid(a.as_uuid()))
                .unwrap_or(SqlValue::Null),
            SqlValue::Text(return_to.to_owned()),
            SqlValue::Timestamp(now),
            SqlValue::Timestamp(now + Duration::minutes(ATTEMPT_TTL_MINUTES)),
        ],
    )
    .await?;
    let redirect = oidc::authorization_url(cfg, redirect_uri, &state, &nonce, &verifier)?;
    Ok(Started { redirect, state })
}

/// What the provider sent to the callback (query or form post).
#[derive(Debug, Default, Clone)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// Where the request came from, for sessions and the audit log.
#[derive(Debug, Default, Clone)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A finished sign-in.
#[derive(Debug)]
pub struct SignedIn {
    pub user_id: Uuid,
    pub created: bool,
    pub session: NewSession,
    pub return_to: String,
    /// Set when the visitor had anonymous data: ask before merging it.
    pub merge_offer: Option<Uuid>,
}

struct Attempt {
    nonce: String,
    code_verifier: String,
    anon_id: Option<Uuid>,
    return_to: String,
}

/// Marks the attempt used and returns it — once. Wrong provider, expired,
/// reused or unknown states all look the same to the caller.
async fn consume(
    sql: &impl Sql,
    provider: Provider,
    state: &str,
    now: DateTime<Utc>,
) -> Result<Attempt, LoginError> {
    let row = sql
        .query_opt(
            "UPDATE oauth_logins SET consumed_at = $3 \
             WHERE state_hash = $1 AND provider = $2 AND consumed_at IS NULL AND expires_at > $3 \
             RETURNING nonce, code_verifier, anon_id, return_to",
            &[
                SqlValue::Bytes(sha256(state)),
                SqlValue::Text(provider.as_str().into()),
                SqlValue::Timestamp(now),
            ],
        )
        .await?
        .ok_or(LoginError::StateMismatch)?;
    Ok(Attempt {
        nonce: row.get("nonce")?,
        code_verifier: row.get("code_verifier")?,
        anon_id: row.get("anon_id")?,
        return_to: row.get("return_to")?,
    })
}

#[allow(clippy::too_many_arguments)] // one call site; each is a distinct input of the flow
pub async fn finish(
    sql: &impl Sql,
    http: &impl HttpClient,
    cfg: &ProviderConfig,
    redirect_uri: &str,
    callback: &Callback,
    cookie_state: Option<&str>,
    origin: &Origin,
    now: DateTime<Utc>,
) -> Result<SignedIn, LoginError> {
    let state = callback.state.as_deref().ok_or(LoginError::StateMismatch)?;
    if cookie_state != Some(state) {
        return Err(LoginError::StateMismatch);
    }
    let attempt = consume(sql, cfg.provider, state, now).await?;
    if let Some(error) = &callback.error {
        return Err(LoginError::ProviderDenied(error.clone()));
    }
    let code = callback
        .code
        .as_deref()
        .ok_or_else(|| LoginError::ProviderDenied("no authorization code".into()))?;
    let tokens =
        oidc::exchange_code(http, cfg, code, &attempt.code_verifier, redirect_uri, now).await?;
    let id_token = tokens
        .id_token
        .as_deref()
        .ok_or_else(|| LoginError::IdToken("the provider returned no ID token".into()))?;
    let claims = oidc::verify_id_token(http, cfg, id_token, &attempt.nonce, now).await?;
    if cfg.provider == Provider::Facebook {
        oidc::check_facebook_token(http, cfg, &tokens.access_token, &claims.sub).await?;
    }
    // Only an address the provider vouches for is kept.
    let email = claims
        .email
        .filter(|_| claims.email_verified || cfg.provider == Provider::Facebook);
    let (user_id, created) = find_or_create(
        sql,
        cfg.provider,
        &claims.sub,
        email.as_deref(),
        claims.name.as_deref(),
        attempt.anon_id,
    )
    .await?;
    let session = sessions::create(
        sql,
        user_id,
        origin.ip.as_deref(),
        origin.user_agent.as_deref(),
        now,
    )
    .await?;
    let merge_offer = match attempt.anon_id {
        Some(anon) => crate::merge::offer(sql, user_id, anon, now).await?,
        None => None,
    };
    Ok(SignedIn {
        user_id,
        created,
        session,
        return_to: attempt.return_to,
        merge_offer,
    })
}

/// The account for `(provider, subject)`, created on first sign-in. A new
/// account keeps the visitor's anonymous id as its flag cohort key. Accounts
/// are never linked by e-mail address: a second provider is a second account
/// (linking by address would let whoever controls one provider's address
/// take over the other account).
async fn find_or_create(
    sql: &impl Sql,
    provider: Provider,
    subject: &str,
    email: Option<&str>,
    name: Option<&str>,
    anon_id: Option<Uuid>,
) -> Result<(Uuid, bool), LoginError> {
    let text = |v: Option<&str>| {
        v.map(|s| SqlValue::Text(s.to_owned()))
            .unwrap_or(SqlValue::Null)
    };
    let row = sql
        .query_opt(
            "WITH found AS ( \
                 UPDATE user_identities SET last_login_at = now(), email = COALESCE($3, email) \
                 WHERE provider = $1 AND subject = $2 RETURNING user_id), \
             created AS ( \
                 INSERT INTO users (is_anonymous, email, display_name, cohort_key) \
                 SELECT false, \
                        CASE WHEN $3::text IS NULL OR EXISTS (SELECT 1 FROM users WHERE email = $3) \
                             THEN NULL ELSE $3 END, \
                        $4, $5 \
                 WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING id), \
             linked AS ( \
                 INSERT INTO user_identities (provider, subject, user_id, email) \
                 SELECT $1, $2, id, $3 FROM created RETURNING user_id) \
             SELECT user_id, false AS created FROM found \
             UNION ALL SELECT user_id, true AS created FROM linked",
            &[
                SqlValue::Text(provider.as_str().into()),
                SqlValue::Text(subject.to_owned()),
                text(email),
                text(name),
                anon_id.map(SqlValue::Uuid).unwrap_or(SqlValue::Null),
            ],
        )
        .await?
        .ok_or_else(|| {
            village_platform::sql::SqlError::Decode("sign-in upsert returned no row".into())
        })?;
    Ok((row.get("user_id")?, row.get("created")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(safe_return_to(Some("/market?q=1")), "/market?q=1");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "evil",
            "/a\r\nSet-Cookie: x=y",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_return_to(None), "/");
    }
}
