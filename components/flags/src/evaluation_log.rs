//! The evaluation log: which visitor got which answer, for rollout
//! statistics. Written on every evaluation, so it must cost the request
//! nothing: the request appends one entry (all of its evaluations) to a
//! Redis list *after* its answer has gone out (`Cache::defer`), and the
//! `flags-flush` cron writes the list to Postgres every minute in batches
//! of [`MAX_BATCH`] entries, one statement each. A durable `INSERT` per
//! request would cost a WAL flush each (about 0.3 ms on this hardware).
//! The list is capped at [`MAX_BUFFER`] entries (the newest kept), so a
//! stopped cron cannot fill Redis.
//!
//! Consent is checked twice: an entry names the user only if they had
//! analytics consent when evaluated, and the flush keeps the name only if
//! they still have it — so a withdrawal between the two never becomes a
//! row, and the rows already written are purged at once
//! ([`crate::retention::purge_user`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use village_platform::cache::{Cache, CacheArg, CacheValue};
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::model::Evaluation;
use crate::visitor::Visitor;

/// The buffer: a list of JSON entries.
pub const BUFFER_KEY: &str = "flags:evaluations";
/// The most entries one flush statement writes.
pub const MAX_BATCH: i64 = 1_000;
/// The most batches one flush run writes.
pub const MAX_BATCHES: usize = 100;
/// The most entries the buffer holds.
pub const MAX_BUFFER: i64 = 200_000;

/// One request's evaluations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    /// When.
    t: DateTime<Utc>,
    /// The session hash.
    s: String,
    /// The user, only with analytics consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<Uuid>,
    /// `(flag, on, reason)`.
    e: Vec<(String, bool, String)>,
}

/// Appends the entry and keeps the newest [`MAX_BUFFER`].
const APPEND: &str = r#"
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
return 1
"#;

/// Logs one request's evaluations, after the answer has gone out.
/// Analytics, not a dependency: a failure is a warning, never a failed
/// request.
pub async fn record(
    cache: &impl Cache,
    visitor: &Visitor,
    now: DateTime<Utc>,
    evaluations: &BTreeMap<String, Evaluation>,
) {
    if evaluations.is_empty() {
        return;
    }
    let entry = Entry {
        t: now,
        s: visitor.session_hash.clone(),
        u: visitor.user_id.filter(|_| visitor.analytics_consent),
        e: evaluations
            .iter()
            .map(|(k, e)| (k.clone(), e.on, e.reason.as_str().to_owned()))
            .collect(),
    };
    let Ok(json) = serde_json::to_vec(&entry) else {
        return;
    };
    cache
        .defer(
            "EVAL",
            vec![
                APPEND.into(),
                CacheArg::Int(1),
                cache.key(BUFFER_KEY).into(),
                CacheArg::Bytes(json),
                CacheArg::Int(MAX_BUFFER),
            ],
        )
        .await;
}

/// Writes the buffer to Postgres, [`MAX_BATCH`] entries per statement, up
/// to [`MAX_BATCHES`] statements; returns the rows written. A batch whose
/// write fails goes back to the buffer.
pub async fn flush(sql: &impl Sql, cache: &impl Cache) -> Result<u64, SqlError> {
    let mut rows = 0;
    for _ in 0..MAX_BATCHES {
        let (written, taken) = flush_batch(sql, cache).await?;
        rows += written;
        if taken < MAX_BATCH as usize {
            break;
        }
    }
    Ok(rows)
}

/// One batch: `(rows written, entries taken)`.
async fn flush_batch(sql: &impl Sql, cache: &impl Cache) -> Result<(u64, usize), SqlError> {
    let taken = cache
        .execute(
            "LPOP",
            &[cache.key(BUFFER_KEY).into(), CacheArg::Int(MAX_BATCH)],
        )
        .await
        .map_err(|e| SqlError::Unavailable(format!("evaluation buffer: {e}")))?;
    let entries: Vec<Vec<u8>> = taken
        .into_iter()
        .filter_map(|v| match v {
            CacheValue::Bytes(b) => Some(b),
            _ => None,
        })
        .collect();
    if entries.is_empty() {
        return Ok((0, 0));
    }
    let taken = entries.len();
    match insert(sql, &entries).await {
        Ok(n) => Ok((n, taken)),
        Err(e) => {
            let mut back = vec![cache.key(BUFFER_KEY).into()];
            back.extend(entries.into_iter().map(CacheArg::Bytes));
            let _ = cache.execute("RPUSH", &back).await;
            Err(e)
        }
    }
}

/// One statement for a batch of entries; the user is kept only if they
/// still consent.
async fn insert(sql: &impl Sql, entries: &[Vec<u8>]) -> Result<u64, SqlError> {
    let batch: Vec<serde_json::Value> = entries
        .iter()
        .filter_map(|e| serde_json::from_slice(e).ok())
        .collect();
    sql.execute(
        "INSERT INTO feature_flag_evaluations \
             (flag_key, evaluated_at, session_hash, user_id, result, reason) \
         SELECT f->>0, (b->>'t')::timestamptz AT TIME ZONE 'UTC', b->>'s', u.id, (f->>1)::boolean, f->>2 \
         FROM jsonb_array_elements($1::jsonb) b \
         CROSS JOIN LATERAL jsonb_array_elements(b->'e') f \
         LEFT JOIN users u ON u.id = (b->>'u')::uuid AND u.analytics_consent_at IS NOT NULL",
        &[SqlValue::Json(serde_json::Value::Array(batch))],
    )
    .await
}
