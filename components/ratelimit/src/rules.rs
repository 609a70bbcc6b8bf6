//! Rules: how many requests per window an action allows per subject, what
//! to do when Redis cannot count, and when repeated violations earn a ban.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use village_platform::cache::{self, Cache};
use village_platform::sql::{Sql, SqlError};

/// Who a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The client address.
    Ip,
    /// The signed-in user (the rule does not apply to anonymous callers).
    User,
    /// The anonymous-visitor id.
    Anon,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ip => "ip",
            Scope::User => "user",
            Scope::Anon => "anon",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ip" => Ok(Scope::Ip),
            "user" => Ok(Scope::User),
            "anon" => Ok(Scope::Anon),
            other => Err(format!("unknown scope `{other}` (ip, user, anon)")),
        }
    }
}

/// What a rule does when Redis cannot count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Let the request through (reads: better served than safe).
    Open,
    /// Refuse it (sign-in, `/bootstrap`: better safe than served).
    Closed,
}

/// A rule as stored in `rate_limit_rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub action: String,
    pub scope: Scope,
    /// Requests allowed per window (and at once, as a burst).
    pub limit_count: u32,
    pub window_seconds: u32,
    pub fail_mode: FailMode,
    /// Refusals within `ban_seconds` that earn a ban of `ban_seconds`.
    pub ban_after_violations: Option<u32>,
    pub ban_seconds: Option<u32>,
    pub enabled: bool,
    pub description: String,
}

/// The cached rules (all of them, one JSON array), under the cache
/// namespace.
pub const CACHE_KEY: &str = "ratelimit:rules:v1";
pub const CACHE_TTL_SECS: i64 = 30;

/// Every rule, from Postgres.
pub async fn load(sql: &impl Sql) -> Result<Vec<Rule>, SqlError> {
    let row = sql
        .query_opt(
            "SELECT coalesce(jsonb_agg(rate_limit_rule_json(r) ORDER BY r.action, r.scope), \
                             '[]'::jsonb) AS rules \
             FROM rate_limit_rules r",
            &[],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("aggregate returned no row".into()))?;
    serde_json::from_value(row.get("rules")?)
        .map_err(|e| SqlError::Decode(format!("rate_limit_rules: {e}")))
}

/// Fills the cache (best effort: a failure costs the next request a query).
pub async fn fill(cache: &impl Cache, rules: &[Rule]) {
    cache::put_json(cache, &cache.key(CACHE_KEY), &rules, CACHE_TTL_SECS).await;
}

/// Drops the cached rules after a change; a lost invalidation heals within
/// the TTL.
pub async fn invalidate(cache: &impl Cache) {
    cache::forget(cache, &cache.key(CACHE_KEY), CACHE_TTL_SECS).await;
}
