//! Connecting Meta: `GET /social/connect` sends a signed-in visitor to
//! Meta's consent dialog; `GET /social/callback` exchanges the code for a
//! long-lived token, reads who they are on Facebook and any Instagram
//! business account, seals the token and queues the first fetch.
//!
//! The state is `user.expiry.nonce` signed with HMAC-SHA256 under a key
//! derived from the app secret, and also set in a `SameSite=Lax` cookie:
//! the callback needs both to match, for this user, within ten minutes.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::Mac;
use uuid::Uuid;
use village_jobs::{NewJob, Queue};
use village_platform::AppError;
use village_platform::boundary::stored;
use village_platform::cache::Cache;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlValue};

use crate::Config;
use crate::graph::GraphError;

pub const STATE_COOKIE: &str = "vh_social_state";
const STATE_TTL_MINUTES: i64 = 10;

fn mac(config: &Config, text: &str) -> Vec<u8> {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(
        format!("village-social-state:{}", config.meta.app_secret).as_bytes(),
    )
    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(text.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// A fresh state for `user`.
pub fn state_for(config: &Config, user: Uuid, now: DateTime<Utc>) -> Result<String, AppError> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| AppError::Internal(format!("randomness: {e}")))?;
    let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let body = format!(
        "{}.{}.{}",
        user.simple(),
        (now + Duration::minutes(STATE_TTL_MINUTES)).timestamp(),
        enc.encode(nonce)
    );
    Ok(format!("{body}.{}", enc.encode(mac(config, &body))))
}

/// Whether `state` is ours, unexpired, for `user`.
pub fn state_is_valid(config: &Config, state: &str, user: Uuid, now: DateTime<Utc>) -> bool {
    let Some((body, sig)) = state.rsplit_once('.') else {
        return false;
    };
    let Ok(sig) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(
        format!("village-social-state:{}", config.meta.app_secret).as_bytes(),
    )
    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(body.as_bytes());
    if m.verify_slice(&sig).is_err() {
        return false;
    }
    let mut parts = body.split('.');
    let (Some(who), Some(exp)) = (parts.next(), parts.next()) else {
        return false;
    };
    who == user.simple().to_string() && exp.parse::<i64>().is_ok_and(|e| e > now.timestamp())
}

/// Where to send the browser, and the state for the cookie.
pub fn start(
    config: &Config,
    user: Uuid,
    now: DateTime<Utc>,
) -> Result<(String, String), AppError> {
    if config.meta.app_id.is_empty() || config.meta.app_secret.is_empty() {
        return Err(AppError::Unavailable {
            dependency: "meta",
            detail: "the Facebook app is not configured".into(),
        });
    }
    let state = state_for(config, user, now)?;
    let url = config
        .meta
        .dialog_url(&config.redirect_uri(), &state, crate::SCOPES)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((url, state))
}

fn refused(what: &str) -> AppError {
    AppError::Validation(vec![village_platform::error::FieldError::new(
        "state",
        what.to_owned(),
    )])
}

/// Completes a connection for `user` from the callback's `code`.
#[allow(clippy::too_many_arguments)] // the ports, the callback's parts and the clock
pub async fn complete(
    sql: &impl Sql,
    cache: &impl Cache,
    http: &impl HttpClient,
    config: &Config,
    user: Uuid,
    code: &str,
    state: &str,
    cookie_state: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    if cookie_state != Some(state) || !state_is_valid(config, state, user, now) {
        return Err(refused(
            "this connection attempt expired or was not started here; start again from the widget",
        ));
    }
    if code.is_empty() || code.len() > 2048 {
        return Err(refused("Meta sent no authorization code"));
    }
    let meta_down = |e: GraphError| AppError::Unavailable {
        dependency: "meta",
        detail: e.to_string(),
    };
    // A code Meta refuses as an invalid parameter (code 100: used already,
    // the callback page reloaded; or expired) is the visitor's to retry.
    // Anything else — our app secret or redirect URI refused — is ours.
    let short = config
        .meta
        .exchange_code(http, code, &config.redirect_uri())
        .await
        .map_err(|e| match e {
            GraphError::Refused { code: 100, .. } => {
                refused("Meta no longer accepts this authorization; connect again from the widget")
            }
            other => meta_down(other),
        })?;
    let long = config
        .meta
        .long_lived(http, &short.access_token)
        .await
        .map_err(meta_down)?;
    let me = config
        .meta
        .me(http, &long.access_token)
        .await
        .map_err(meta_down)?;
    // No Instagram business account is not an error: Facebook alone.
    let instagram = config
        .meta
        .instagram(http, &long.access_token)
        .await
        .unwrap_or(None);
    let sealed = config
        .keys
        .seal(&long.access_token, user)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let expires = now
        + Duration::seconds(
            long.expires_in
                .unwrap_or(60 * 86_400)
                .clamp(60, 90 * 86_400),
        );
    sql.execute(
        "INSERT INTO social_connections (user_id, meta_user_id, name, instagram_user_id, \
             instagram_username, token_key_id, token_sealed, token_expires_at, scopes, status, \
             stale_since, stale_notified_at, last_refreshed_at, last_error, connected_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', NULL, NULL, $10, NULL, $10) \
         ON CONFLICT (user_id) DO UPDATE SET meta_user_id = EXCLUDED.meta_user_id, \
             name = EXCLUDED.name, instagram_user_id = EXCLUDED.instagram_user_id, \
             instagram_username = EXCLUDED.instagram_username, token_key_id = EXCLUDED.token_key_id, \
             token_sealed = EXCLUDED.token_sealed, token_expires_at = EXCLUDED.token_expires_at, \
             scopes = EXCLUDED.scopes, status = 'active', stale_since = NULL, \
             stale_notified_at = NULL, last_refreshed_at = EXCLUDED.last_refreshed_at, last_error = NULL",
        &[
            SqlValue::Uuid(user),
            SqlValue::Text(stored(&me.id, 64)),
            SqlValue::Text(stored(&me.name, 200)),
            instagram.as_ref().map_or(SqlValue::Null, |i| SqlValue::Text(i.id.clone())),
            instagram.as_ref().map_or(SqlValue::Null, |i| SqlValue::Text(i.username.clone())),
            SqlValue::Text(sealed.key_id),
            SqlValue::Bytes(sealed.bytes),
            SqlValue::Timestamp(expires),
            SqlValue::Text(crate::SCOPES.into()),
            SqlValue::Timestamp(now),
        ],
    )
    .await
    .map_err(|e| {
        if e.is_unique_violation() {
            AppError::Conflict("this Facebook account is connected to another Village account".into())
        } else {
            e.into()
        }
    })?;
    // Posts of this Facebook account archived by an earlier lapse are live
    // again (another account's stay archived).
    sql.execute(
        "UPDATE social_posts SET archived = false \
         WHERE user_id = $1 AND meta_user_id = $2 AND removed_at IS NULL",
        &[SqlValue::Uuid(user), SqlValue::Text(stored(&me.id, 64))],
    )
    .await?;
    village_jobs::enqueue(
        sql,
        cache,
        now,
        NewJob::new(
            Queue::Default,
            crate::jobs::FETCH_POSTS,
            serde_json::json!({ "user_id": user }),
        )
        .max_attempts(3),
    )
    .await
    .map_err(|e| AppError::Internal(format!("failed to queue the first fetch: {e}")))?;
    Ok(())
}

/// The user removes the connection: the token and every cached post go.
pub async fn disconnect(sql: &impl Sql, user: Uuid) -> Result<(), AppError> {
    sql.execute(
        "WITH p AS (DELETE FROM social_posts WHERE user_id = $1) \
         DELETE FROM social_connections WHERE user_id = $1",
        &[SqlValue::Uuid(user)],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            meta: crate::graph::Meta {
                app_id: "123".into(),
                app_secret: "s3cret".into(),
                www_origin: "https://www.facebook.com".into(),
                graph_origin: "https://graph.facebook.com".into(),
            },
            keys: crate::tokens::KeyRing::try_from(
                "k1=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            )
            .expect("keys"),
            public_base_url: "https://village.example".into(),
        }
    }

    #[test]
    fn states_are_bound_to_their_user_and_expire() {
        let c = config();
        let now = Utc::now();
        let alice = Uuid::new_v4();
        let state = state_for(&c, alice, now).expect("state");
        assert!(state_is_valid(&c, &state, alice, now));
        assert!(
            !state_is_valid(&c, &state, Uuid::new_v4(), now),
            "another user"
        );
        assert!(
            !state_is_valid(&c, &state, alice, now + Duration::minutes(11)),
            "expired"
        );
        let forged = state.replacen(
            &alice.simple().to_string(),
            &Uuid::new_v4().simple().to_string(),
            1,
        );
        assert!(!state_is_valid(&c, &forged, alice, now));
    }

    #[test]
    fn the_dialog_asks_for_the_widgets_scopes_and_our_callback() {
        let (url, state) = start(&config(), Uuid::new_v4(), Utc::now()).expect("starts");
        let url = url::Url::parse(&url).expect("url");
        assert_eq!(url.path(), "/v21.0/dialog/oauth");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["scope"], crate::SCOPES);
        assert_eq!(q["redirect_uri"], "https://village.example/social/callback");
        assert_eq!(q["state"], state);
    }
}
