//! Sessions and their rotating refresh tokens.
//!
//! A session is a refresh-token family. Each refresh spends the presented
//! token and issues the next one in the same family; presenting a spent token
//! again means it was copied, so the whole family is revoked (OAuth 2.0
//! Security BCP, "refresh token rotation") — except within a short grace
//! window, where concurrent refreshes (two tabs) get the same successor.
//! Tokens are stored as SHA-256 hashes: the database never holds one that
//! works.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use village_platform::session::SigningKey;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::oidc::{random_token, sha256};

/// A session (and so a refresh token) lasts at most 30 days.
pub const SESSION_TTL_DAYS: i64 = 30;

/// A fresh session's ids and its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub session_id: Uuid,
    pub refresh_token: String,
}

pub async fn create(
    sql: &impl Sql,
    user_id: Uuid,
    ip: Option<&str>,
    user_agent: Option<&str>,
    now: DateTime<Utc>,
) -> Result<NewSession, SqlError> {
    let refresh_token = random_token();
    let row = sql
        .query_opt(
            "WITH s AS ( \
                 INSERT INTO sessions (user_id, created_at, last_refreshed_at, expires_at, ip, user_agent) \
                 VALUES ($1, $2, $2, $3, $4, $5) RETURNING id), \
             t AS ( \
                 INSERT INTO refresh_tokens (token_hash, session_id, issued_at) \
                 SELECT $6, id, $2 FROM s) \
             SELECT id FROM s",
            &[
                SqlValue::Uuid(user_id),
                SqlValue::Timestamp(now),
                SqlValue::Timestamp(now + Duration::days(SESSION_TTL_DAYS)),
                opt(ip),
                opt(user_agent),
                SqlValue::Bytes(sha256(&refresh_token)),
            ],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("INSERT … RETURNING gave no row".into()))?;
    Ok(NewSession {
        session_id: row.get("id")?,
        refresh_token,
    })
}

fn opt(v: Option<&str>) -> SqlValue {
    v.map(|s| SqlValue::Text(s.to_owned()))
        .unwrap_or(SqlValue::Null)
}

/// A successful rotation.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub impersonating: Option<Uuid>,
    pub refresh_token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("unknown refresh token")]
    Unknown,
    /// A spent token came back: the family is now revoked.
    #[error("refresh token reused; its session has been revoked")]
    Reused { session_id: Uuid, user_id: Uuid },
    #[error("the session has ended")]
    Ended,
    #[error(transparent)]
    Sql(#[from] SqlError),
}

/// How long a just-spent refresh token still refreshes — to the same
/// successor: two tabs (or a retried request) refreshing at once must not
/// look like a stolen token. Outside it, a spent token is reuse.
pub const REFRESH_GRACE_SECS: i64 = 30;

/// The successor of refresh token `token`: derived from it under the
/// server's key, so a concurrent refresh within the grace window can be
/// handed the same successor without any token being stored in clear.
pub fn successor(key: &SigningKey, token: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(key.mac("refresh-token-successor", token.as_bytes()))
}

/// Spends `token` and issues its successor, in one statement so two
/// concurrent refreshes cannot both spend it. A token of a session that has
/// ended is not spent (so it is not later mistaken for reuse). Within
/// [`REFRESH_GRACE_SECS`] of being spent, `token` refreshes again to the
/// same successor (as long as that one is unspent); later, or once the
/// chain has moved on, presenting it is reuse and revokes the session.
pub async fn rotate(
    sql: &impl Sql,
    key: &SigningKey,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Rotated, RefreshError> {
    let hash = sha256(token);
    let next = successor(key, token);
    let row = sql
        .query_opt(
            "WITH spent AS ( \
                 UPDATE refresh_tokens t SET rotated_at = $2 FROM sessions s \
                 WHERE t.token_hash = $1 AND t.rotated_at IS NULL AND s.id = t.session_id \
                   AND s.revoked_at IS NULL AND s.expires_at > $2 \
                 RETURNING t.session_id), \
             live AS ( \
                 SELECT s.id, s.user_id, s.impersonating_user_id FROM sessions s \
                 JOIN spent ON s.id = spent.session_id), \
             fresh AS ( \
                 INSERT INTO refresh_tokens (token_hash, session_id, issued_at) \
                 SELECT $3, id, $2 FROM live RETURNING session_id), \
             touched AS ( \
                 UPDATE sessions SET last_refreshed_at = $2 \
                 WHERE id IN (SELECT session_id FROM fresh)) \
             SELECT id, user_id, impersonating_user_id FROM live",
            &[
                SqlValue::Bytes(hash.clone()),
                SqlValue::Timestamp(now),
                SqlValue::Bytes(sha256(&next)),
            ],
        )
        .await?;
    if let Some(row) = row {
        return Ok(Rotated {
            session_id: row.get("id")?,
            user_id: row.get("user_id")?,
            impersonating: row.get("impersonating_user_id")?,
            refresh_token: next,
        });
    }
    // Nothing rotated: say why, and punish reuse.
    let known = sql
        .query_opt(
            "SELECT t.session_id, t.rotated_at, s.user_id FROM refresh_tokens t \
             JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
            &[SqlValue::Bytes(hash)],
        )
        .await?;
    let Some(known) = known else {
        return Err(RefreshError::Unknown);
    };
    let rotated: Option<DateTime<Utc>> = known.get("rotated_at")?;
    if let Some(at) = rotated
        && now - at <= chrono::Duration::seconds(REFRESH_GRACE_SECS)
        && let Some(again) = sql
            .query_opt(
                "SELECT s.id, s.user_id, s.impersonating_user_id FROM refresh_tokens t \
                 JOIN sessions s ON s.id = t.session_id \
                 WHERE t.token_hash = $1 AND t.rotated_at IS NULL \
                   AND s.revoked_at IS NULL AND s.expires_at > $2",
                &[SqlValue::Bytes(sha256(&next)), SqlValue::Timestamp(now)],
            )
            .await?
    {
        return Ok(Rotated {
            session_id: again.get("id")?,
            user_id: again.get("user_id")?,
            impersonating: again.get("impersonating_user_id")?,
            refresh_token: next,
        });
    }
    if rotated.is_some() {
        let session_id: Uuid = known.get("session_id")?;
        revoke(sql, session_id, "refresh_token_reuse", now).await?;
        return Err(RefreshError::Reused {
            session_id,
            user_id: known.get("user_id")?,
        });
    }
    Err(RefreshError::Ended)
}

/// Ends one session (logout, reuse). Returns whether it was live.
pub async fn revoke(
    sql: &impl Sql,
    session_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, SqlError> {
    let n = sql
        .execute(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
             WHERE id = $1 AND revoked_at IS NULL",
            &[
                SqlValue::Uuid(session_id),
                SqlValue::Timestamp(now),
                SqlValue::Text(reason.to_owned()),
            ],
        )
        .await?;
    Ok(n > 0)
}

/// Ends every live session of a user; returns how many.
pub async fn revoke_all(
    sql: &impl Sql,
    user_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64, SqlError> {
    sql.execute(
        "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
         WHERE user_id = $1 AND revoked_at IS NULL",
        &[
            SqlValue::Uuid(user_id),
            SqlValue::Timestamp(now),
            SqlValue::Text(reason.to_owned()),
        ],
    )
    .await
}
