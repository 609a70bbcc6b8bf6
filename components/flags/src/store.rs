//! Where flag definitions come from on the hot path.
//!
//! Redis first (one `GET` of every definition as JSON, 30 s TTL, deleted on
//! every change so all pods see it at once); on a miss or a Redis outage,
//! Postgres (and, when Redis is up, the cache is refilled); when neither
//! answers, nothing: every flag evaluates off, which keeps every kill switch
//! killed.

use village_platform::cache::{self, Cache};
use village_platform::sql::{Sql, SqlError};

use crate::model::FlagDef;

/// The cached definitions (all flags, one JSON array), under the cache
/// namespace.
pub const CACHE_KEY: &str = "flags:definitions:v1";
/// How long a pod may act on definitions that have since changed when the
/// invalidation itself was lost.
pub const CACHE_TTL_SECS: i64 = 30;

/// Where the definitions came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Database,
    /// Neither answered: no definitions.
    Unavailable,
}

#[derive(Debug, Clone)]
pub struct Definitions {
    pub flags: Vec<FlagDef>,
    pub source: Source,
}

impl Definitions {
    pub fn get(&self, key: &str) -> Option<&FlagDef> {
        self.flags.iter().find(|f| f.key == key)
    }
}

/// Every definition, straight from Postgres, as one JSON array.
pub async fn load(sql: &impl Sql) -> Result<Vec<FlagDef>, SqlError> {
    let row = sql
        .query_opt(
            "SELECT coalesce(jsonb_agg(feature_flag_json(f) ORDER BY f.key), '[]'::jsonb) \
                 AS flags FROM feature_flags f",
            &[],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("aggregate returned no row".into()))?;
    let json: serde_json::Value = row.get("flags")?;
    serde_json::from_value(json).map_err(|e| SqlError::Decode(format!("feature_flags: {e}")))
}

/// The definitions, from wherever they can be had (see the module docs).
pub async fn definitions(sql: &impl Sql, cache: &impl Cache) -> Definitions {
    let key = cache.key(CACHE_KEY);
    let redis_up = match cache::get_json::<Vec<FlagDef>>(cache, &key).await {
        Ok(Some(flags)) => {
            return Definitions {
                flags,
                source: Source::Cache,
            };
        }
        Ok(None) => true,
        Err(_) => false,
    };
    match load(sql).await {
        Ok(flags) => {
            if redis_up {
                cache::put_json(cache, &key, &flags, CACHE_TTL_SECS).await;
            }
            Definitions {
                flags,
                source: Source::Database,
            }
        }
        Err(e) => {
            village_platform::log::event(
                "ERROR",
                "feature flags unavailable: every flag evaluates off",
                serde_json::json!({ "redis_up": redis_up, "error": e.to_string() }),
            );
            Definitions {
                flags: Vec::new(),
                source: Source::Unavailable,
            }
        }
    }
}

/// Drops the cached definitions: every pod reads the change on its next
/// evaluation. A lost invalidation is healed by the TTL.
pub async fn invalidate(cache: &impl Cache) {
    cache::forget(cache, &cache.key(CACHE_KEY), CACHE_TTL_SECS).await;
}

/// A flag read as a system-wide switch, for background work no visitor is
/// behind (the `ai_tagging` jobs): on when it is enabled, not killed, and
/// rolled out to anyone at all. Off when the flags cannot be read.
pub async fn system_switch(sql: &impl Sql, cache: &impl Cache, key: &str) -> bool {
    let defs = definitions(sql, cache).await;
    defs.get(key)
        .is_some_and(|f| f.enabled && !f.kill_switch && f.rollout_percent > 0)
}

/// A flag read for background work done *for* users it is on for (their
/// social posts, say): on while anyone at all can have it — rolled out
/// while enabled, or allow-listed (the usual first rollout) — and not
/// killed. Off when the flags cannot be read.
pub async fn on_for_anyone(sql: &impl Sql, cache: &impl Cache, key: &str) -> bool {
    let defs = definitions(sql, cache).await;
    defs.get(key).is_some_and(|f| {
        !f.kill_switch && ((f.enabled && f.rollout_percent > 0) || !f.allow_user_ids.is_empty())
    })
}
