//! Merging a visitor's anonymous data into their account — only with consent.
//!
//! When someone signs in from a browser whose anonymous id owns data (today:
//! a saved layout and settings), `offer` records a merge offer and the auth
//! component shows a consent page. Accepting moves the data into the account
//! and deletes the anonymous row; declining leaves it to expire. Either way
//! the decision, the consent text's version, the time, IP and user agent go
//! to `account_merge_audit` (kept 90 days), and the browser gets a new
//! anonymous id so the old data no longer follows it.
//!
//! Later features that keep per-visitor data (feed subscriptions, …) add
//! their rows to the accept statement below.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use village_platform::sql::{Sql, SqlError, SqlValue};

/// The version of the consent text on the merge page. Change it whenever the
/// text changes: the audit rows say which text a visitor agreed to.
pub const CONSENT_VERSION: &str = "merge-consent-2026-11";
/// An unanswered offer lapses after a day.
const OFFER_TTL_HOURS: i64 = 24;

/// Offers a merge when the anonymous id owns data; returns the offer id.
pub async fn offer(
    sql: &impl Sql,
    user_id: Uuid,
    anon_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, SqlError> {
    let row = sql
        .query_opt(
            "INSERT INTO merge_offers (user_id, anonymous_user_id, created_at, expires_at) \
             SELECT $1, u.id, $3, $4 FROM users u \
             WHERE u.anon_id = $2 AND u.is_anonymous AND u.id <> $1 \
               AND EXISTS (SELECT 1 FROM user_preferences p WHERE p.user_id = u.id) \
             RETURNING id",
            &[
                SqlValue::Uuid(user_id),
                SqlValue::Uuid(anon_id),
                SqlValue::Timestamp(now),
                SqlValue::Timestamp(now + Duration::hours(OFFER_TTL_HOURS)),
            ],
        )
        .await?;
    row.map(|r| r.get("id")).transpose()
}

/// What an open offer would merge, for the consent page.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingOffer {
    pub id: Uuid,
    pub widgets: usize,
    pub has_settings: bool,
}

/// The user's newest undecided, unexpired offer.
pub async fn pending(
    sql: &impl Sql,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<PendingOffer>, SqlError> {
    let row = sql
        .query_opt(
            "SELECT o.id, p.layout, p.settings FROM merge_offers o \
             JOIN user_preferences p ON p.user_id = o.anonymous_user_id \
             WHERE o.user_id = $1 AND o.decided_at IS NULL AND o.expires_at > $2 \
             ORDER BY o.created_at DESC LIMIT 1",
            &[SqlValue::Uuid(user_id), SqlValue::Timestamp(now)],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let layout: serde_json::Value = row.get("layout")?;
    let settings: serde_json::Value = row.get("settings")?;
    Ok(Some(PendingOffer {
        id: row.get("id")?,
        widgets: layout
            .get("widgets")
            .and_then(|w| w.as_array())
            .map_or(0, Vec::len),
        has_settings: settings.as_object().is_some_and(|o| !o.is_empty()),
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Decline,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accept => "accepted",
            Decision::Decline => "declined",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("this merge offer is unknown, expired or already answered")]
    NoSuchOffer,
    #[error(transparent)]
    Sql(#[from] SqlError),
}

/// Records the decision and, on accept, merges — one statement, so the data,
/// the offer and the audit row change together or not at all. Returns the
/// `account_merge_audit` id.
pub async fn decide(
    sql: &impl Sql,
    offer_id: Uuid,
    user_id: Uuid,
    decision: Decision,
    origin: &crate::login::Origin,
    now: DateTime<Utc>,
) -> Result<i64, MergeError> {
    let text = |v: &Option<String>| v.clone().map(SqlValue::Text).unwrap_or(SqlValue::Null);
    let params = [
        SqlValue::Uuid(offer_id),
        SqlValue::Uuid(user_id),
        SqlValue::Timestamp(now),
        SqlValue::Text(CONSENT_VERSION.into()),
        text(&origin.ip),
        text(&origin.user_agent),
    ];
    let statement = match decision {
        // The account's settings keep keys the anonymous ones lack; the
        // anonymous layout replaces the account's, being the one the visitor
        // just built and chose to keep; the stocks watchlist joins the
        // account's, after its symbols, up to the 10 a watchlist holds
        // (`village_stocks::watchlist::MAX_SYMBOLS`; symbols the account
        // already watches are not repeated).
        Decision::Accept => {
            "WITH offer AS ( \
                 UPDATE merge_offers SET decided_at = $3 \
                 WHERE id = $1 AND user_id = $2 AND decided_at IS NULL AND expires_at > $3 \
                 RETURNING anonymous_user_id), \
             moved AS ( \
                 INSERT INTO user_preferences (user_id, schema_version, layout, settings, updated_at) \
                 SELECT $2, p.schema_version, p.layout, p.settings, $3 \
                 FROM user_preferences p JOIN offer o ON p.user_id = o.anonymous_user_id \
                 ON CONFLICT (user_id) DO UPDATE SET schema_version = EXCLUDED.schema_version, \
                     layout = EXCLUDED.layout, \
                     settings = user_preferences.settings || EXCLUDED.settings, \
                     updated_at = EXCLUDED.updated_at \
                 RETURNING 1), \
             watched AS ( \
                 INSERT INTO stock_watchlists (user_id, symbol, position, added_at) \
                 SELECT $2, w.symbol, \
                        (SELECT coalesce(max(position) + 1, 0) FROM stock_watchlists WHERE user_id = $2) \
                          + row_number() OVER (ORDER BY w.position, w.symbol), \
                        w.added_at \
                 FROM stock_watchlists w JOIN offer o ON w.user_id = o.anonymous_user_id \
                 WHERE NOT EXISTS (SELECT 1 FROM stock_watchlists a \
                                   WHERE a.user_id = $2 AND a.symbol = w.symbol) \
                 ORDER BY w.position, w.symbol \
                 LIMIT greatest(0, 10 - (SELECT count(*) FROM stock_watchlists WHERE user_id = $2)) \
                 ON CONFLICT (user_id, symbol) DO NOTHING \
                 RETURNING 1), \
             audit AS ( \
                 INSERT INTO account_merge_audit \
                     (user_id, anonymous_user_id, decision, consent_version, merged, decided_at, ip, user_agent) \
                 SELECT $2, anonymous_user_id, 'accepted', $4, \
                        jsonb_build_object('preferences', (SELECT count(*) FROM moved), \
                                           'watchlist', (SELECT count(*) FROM watched)), $3, $5, $6 \
                 FROM offer RETURNING id), \
             gone AS ( \
                 DELETE FROM users WHERE is_anonymous AND id IN (SELECT anonymous_user_id FROM offer)) \
             SELECT id FROM audit"
        }
        Decision::Decline => {
            "WITH offer AS ( \
                 UPDATE merge_offers SET decided_at = $3 \
                 WHERE id = $1 AND user_id = $2 AND decided_at IS NULL AND expires_at > $3 \
                 RETURNING anonymous_user_id) \
             INSERT INTO account_merge_audit \
                 (user_id, anonymous_user_id, decision, consent_version, decided_at, ip, user_agent) \
             SELECT $2, anonymous_user_id, 'declined', $4, $3, $5, $6 FROM offer RETURNING id"
        }
    };
    let row = sql
        .query_opt(statement, &params)
        .await?
        .ok_or(MergeError::NoSuchOffer)?;
    Ok(row.get("id")?)
}
