//! The check: every rule of an action that applies to the caller, counted
//! by GCRA in one Redis script (so concurrent requests on any pod are
//! counted exactly), bans enforced first, violations recorded, and a fail
//! mode per rule for when Redis cannot count.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use village_platform::cache::{Cache, CacheArg, CacheValue};
use village_platform::guard::Verdict;
use village_platform::sql::{Sql, SqlError, SqlValue};
use village_platform::{AppError, RequestContext};

use crate::rules::{self, FailMode, Rule, Scope};

/// The subjects a request can be counted as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subjects {
    pub ip: Option<String>,
    pub user: Option<Uuid>,
    pub anon: Option<Uuid>,
}

impl Subjects {
    pub fn of(ctx: &RequestContext) -> Self {
        Subjects {
            ip: ctx.client_ip.clone(),
            user: ctx.principal.as_ref().map(|p| p.user_id),
            anon: Some(ctx.anon_id.as_uuid()),
        }
    }

    pub fn get(&self, scope: Scope) -> Option<String> {
        match scope {
            Scope::Ip => self.ip.clone(),
            Scope::User => self.user.map(|u| u.to_string()),
            Scope::Anon => self.anon.map(|u| u.to_string()),
        }
    }
}

/// What the check decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// No rule of the action applies to this caller.
    Unlimited,
    /// Within every limit; the figures are those of the tightest rule.
    Allowed {
        limit: u32,
        window_seconds: u32,
        remaining: u32,
        reset_secs: u64,
    },
    /// Over a rule's limit.
    Limited {
        scope: Scope,
        subject: String,
        limit: u32,
        window_seconds: u32,
        /// The ban the rule gives, if it bans (for the record).
        ban_seconds: u32,
        retry_after_secs: u64,
        /// Refusals of this subject in the current violation window.
        violations: i64,
        /// This refusal earned a ban.
        banned_now: bool,
    },
    /// Under a temporary ban.
    Banned {
        scope: Scope,
        subject: String,
        retry_after_secs: u64,
    },
    /// Redis could not count; the rules' fail mode decided.
    Degraded { refused: bool },
}

/// The whole check in one round trip: the script reads the cached rules
/// (`KEYS[1]`, JSON), keeps the action's enabled rules whose subject the
/// caller has, enforces their bans, then runs GCRA over all of them at once
/// in Redis time (the same clock for every pod). A rule's keys are built
/// here as `<prefix><action>:<scope>:<subject>:(tat:<limit>/<window> |
/// violations | ban)` — the arrival time is kept per rule shape, so a
/// changed rule starts counting afresh.
///
/// ARGV: key prefix, action, then the ip, user and anon subjects ('' when
/// absent). Replies: `{-1}` the rules are not cached; `{-2}` no rule
/// applies; `{0, limit, remaining, reset µs, window s}` allowed (counted
/// against every rule); `{1, scope, retry µs, violations, banned, limit,
/// window s, ban s}` refused (nothing counted); `{2, scope, ban ms left}`
/// banned. Scopes are 1 ip, 2 user, 3 anon.
const CHECK: &str = r#"
local raw = redis.call('GET', KEYS[1])
if not raw then return {-1} end
local prefix, action = ARGV[1], ARGV[2]
local subjects = { ip = ARGV[3], user = ARGV[4], anon = ARGV[5] }
local codes = { ip = 1, user = 2, anon = 3 }
local num = function(v) if type(v) == 'number' then return v end return 0 end
local rules = {}
for _, r in ipairs(cjson.decode(raw)) do
  local subject = subjects[r.scope]
  if r.action == action and r.enabled and subject and subject ~= '' then
    local base = prefix .. action .. ':' .. r.scope .. ':' .. subject .. ':'
    rules[#rules + 1] = {
      code = codes[r.scope], limit = r.limit_count, window_s = r.window_seconds,
      window = r.window_seconds * 1000000, ban_after = num(r.ban_after_violations),
      ban_s = num(r.ban_seconds),
      tat = base .. 'tat:' .. r.limit_count .. '/' .. r.window_seconds,
      violations = base .. 'violations', ban = base .. 'ban' }
  end
end
if #rules == 0 then return {-2} end
for _, r in ipairs(rules) do
  local left = redis.call('PTTL', r.ban)
  if left > 0 then return {2, r.code, left} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local best, tats = nil, {}
for i, r in ipairs(rules) do
  local interval = r.window / r.limit
  local tat = tonumber(redis.call('GET', r.tat) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval
  local used = new_tat - now
  if used > r.window + 0.5 then
    local v = redis.call('INCR', r.violations)
    if v == 1 then
      redis.call('PEXPIRE', r.violations, math.max(r.ban_s * 1000, r.window_s * 1000))
    end
    local banned = 0
    if r.ban_after > 0 and v >= r.ban_after then
      redis.call('SET', r.ban, '1', 'PX', r.ban_s * 1000)
      redis.call('DEL', r.violations)
      banned = 1
    end
    return {1, r.code, math.ceil(used - r.window), v, banned, r.limit, r.window_s, r.ban_s}
  end
  tats[i] = new_tat
  local remaining = math.floor((r.window - used) / interval + 1e-6)
  if best == nil or remaining < best[2] then
    best = {0, r.limit, remaining, math.ceil(used), r.window_s}
  end
end
for i, r in ipairs(rules) do
  redis.call('SET', r.tat, string.format('%.0f', tats[i]),
             'PX', math.ceil((tats[i] - now) / 1000) + 1)
end
return best
"#;

/// A subject's key for a rule: `rl:<action>:<scope>:<subject>:<what>`
/// (arrival time, violations, ban), under the cache namespace.
pub fn subject_key(
    cache: &impl Cache,
    action: &str,
    scope: &str,
    subject: &str,
    what: &str,
) -> String {
    cache.key(&format!("rl:{action}:{scope}:{subject}:{what}"))
}

fn ints(reply: &[CacheValue]) -> Vec<i64> {
    reply
        .iter()
        .map(|v| match v {
            CacheValue::Int(i) => *i,
            _ => -1,
        })
        .collect()
}

fn secs_from_micros(us: i64) -> u64 {
    (us.max(0) as u64).div_ceil(1_000_000)
}

fn scope_of(code: i64) -> Result<Scope, SqlError> {
    match code {
        1 => Ok(Scope::Ip),
        2 => Ok(Scope::User),
        3 => Ok(Scope::Anon),
        other => Err(SqlError::Decode(format!(
            "rate-limit reply names scope {other}"
        ))),
    }
}

/// Checks `action` for `subjects`: one Redis round trip while the rules are
/// cached; on a miss the rules (and active bans) are loaded from Postgres
/// into Redis and the check runs again.
pub async fn check(
    sql: &impl Sql,
    cache: &impl Cache,
    action: &str,
    subjects: &Subjects,
    now: DateTime<Utc>,
) -> Result<Decision, SqlError> {
    let text = |s: Option<String>| CacheArg::from(s.unwrap_or_default());
    let args = [
        CHECK.into(),
        CacheArg::Int(1),
        cache.key(rules::CACHE_KEY).into(),
        cache.key("rl:").into(),
        action.into(),
        text(subjects.get(Scope::Ip)),
        text(subjects.get(Scope::User)),
        text(subjects.get(Scope::Anon)),
    ];
    let mut reply = Vec::new();
    for attempt in 0..2 {
        reply = match cache.execute("EVAL", &args).await {
            Ok(r) => ints(&r),
            Err(e) => return degraded(sql, action, subjects, &e.to_string()).await,
        };
        if reply.as_slice() != [-1] || attempt == 1 {
            break;
        }
        let rules = rules::load(sql).await?;
        rules::fill(cache, &rules).await;
        restore_bans(sql, cache, now).await;
    }
    let subject = |scope: Scope| subjects.get(scope).unwrap_or_default();
    match reply.as_slice() {
        // Still not cached (the fill failed): no rule can be applied.
        [-1] | [-2] => Ok(Decision::Unlimited),
        [0, limit, remaining, reset, window] => Ok(Decision::Allowed {
            limit: *limit as u32,
            window_seconds: *window as u32,
            remaining: (*remaining).max(0) as u32,
            reset_secs: secs_from_micros(*reset),
        }),
        [1, scope, retry, violations, banned, limit, window, ban] => {
            let scope = scope_of(*scope)?;
            let decision = Decision::Limited {
                scope,
                subject: subject(scope),
                limit: *limit as u32,
                window_seconds: *window as u32,
                ban_seconds: *ban as u32,
                retry_after_secs: secs_from_micros(*retry).max(1),
                violations: *violations,
                banned_now: *banned == 1,
            };
            record_violation(sql, action, &decision, now).await;
            Ok(decision)
        }
        [2, scope, left_ms] => {
            let scope = scope_of(*scope)?;
            Ok(Decision::Banned {
                scope,
                subject: subject(scope),
                retry_after_secs: ((*left_ms).max(0) as u64).div_ceil(1000),
            })
        }
        other => Err(SqlError::Decode(format!(
            "unexpected rate-limit reply {other:?}"
        ))),
    }
}

/// The first refusal of a violation window, and a refusal that earns a
/// ban, are written to Postgres; the refusals in between are counted in
/// Redis only, so a flood meets Redis, not the database.
async fn record_violation(sql: &impl Sql, action: &str, decision: &Decision, now: DateTime<Utc>) {
    let Decision::Limited {
        scope,
        subject,
        violations,
        banned_now,
        ban_seconds,
        ..
    } = decision
    else {
        return;
    };
    if *violations != 1 && !banned_now {
        return;
    }
    let result = sql
        .execute(
            "WITH v AS ( \
                 INSERT INTO rate_limit_violations (action, scope, subject, occurred_at, violations) \
                 VALUES ($1, $2, $3, $4, $5::bigint)) \
             INSERT INTO rate_limit_bans (action, scope, subject, reason, created_at, expires_at) \
             SELECT $1, $2, $3, 'automatic: ' || $5::bigint || ' refusals', $4, \
                    $4 + make_interval(secs => $6) \
             WHERE $7",
            &[
                SqlValue::Text(action.to_owned()),
                SqlValue::Text(scope.as_str().into()),
                SqlValue::Text(subject.clone()),
                SqlValue::Timestamp(now),
                SqlValue::Int64(*violations),
                SqlValue::Float64(f64::from(*ban_seconds)),
                SqlValue::Bool(*banned_now),
            ],
        )
        .await;
    if let Err(e) = result {
        village_platform::log::event(
            "WARNING",
            "rate-limit violation not recorded",
            serde_json::json!({ "action": action, "error": e.to_string() }),
        );
    }
}

/// Puts Postgres's active bans back into Redis (after a Redis restart the
/// keys are gone, but the bans are not over). Runs with each cache refill.
async fn restore_bans(sql: &impl Sql, cache: &impl Cache, now: DateTime<Utc>) {
    let Ok(rows) = sql
        .query(
            "SELECT action, scope, subject, \
                    ceil(extract(epoch FROM expires_at - $1) * 1000)::bigint AS left_ms \
             FROM rate_limit_bans WHERE lifted_at IS NULL AND expires_at > $1 \
             ORDER BY expires_at DESC LIMIT 1000",
            &[SqlValue::Timestamp(now)],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let (Ok(action), Ok(scope), Ok(subject), Ok(left_ms)) = (
            row.get::<String>("action"),
            row.get::<String>("scope"),
            row.get::<String>("subject"),
            row.get::<i64>("left_ms"),
        ) else {
            continue;
        };
        let key = subject_key(cache, &action, &scope, &subject, "ban");
        let _ = cache
            .execute(
                "SET",
                &[
                    key.into(),
                    "1".into(),
                    "PX".into(),
                    CacheArg::Int(left_ms.max(1)),
                ],
            )
            .await;
    }
}

/// Redis is down: rules and bans come from Postgres, and each applicable
/// rule's fail mode decides. The choice is logged once per action and
/// outage (re-announced every 15 minutes while it lasts), not per request:
/// instances keep nothing between requests, so the notice is a row.
async fn degraded(
    sql: &impl Sql,
    action: &str,
    subjects: &Subjects,
    why: &str,
) -> Result<Decision, SqlError> {
    let rules: Vec<Rule> = rules::load(sql)
        .await?
        .into_iter()
        .filter(|r| r.enabled && r.action == action)
        .filter(|r| subjects.get(r.scope).is_some())
        .collect();
    if rules.is_empty() {
        return Ok(Decision::Unlimited);
    }
    let ban = sql
        .query_opt(
            "SELECT scope, subject, \
                    ceil(extract(epoch FROM expires_at - now()))::bigint AS left_secs \
             FROM rate_limit_bans \
             WHERE action = $1 AND lifted_at IS NULL AND expires_at > now() \
               AND ((scope = 'ip' AND subject = $2) OR (scope = 'user' AND subject = $3) \
                    OR (scope = 'anon' AND subject = $4)) \
             ORDER BY expires_at DESC LIMIT 1",
            &[
                SqlValue::Text(action.to_owned()),
                subjects
                    .get(Scope::Ip)
                    .map_or(SqlValue::Null, SqlValue::Text),
                subjects
                    .get(Scope::User)
                    .map_or(SqlValue::Null, SqlValue::Text),
                subjects
                    .get(Scope::Anon)
                    .map_or(SqlValue::Null, SqlValue::Text),
            ],
        )
        .await?;
    if let Some(ban) = ban {
        return Ok(Decision::Banned {
            scope: ban
                .get::<String>("scope")?
                .parse()
                .map_err(SqlError::Decode)?,
            subject: ban.get("subject")?,
            retry_after_secs: ban.get::<i64>("left_secs")?.max(1) as u64,
        });
    }
    let refused = rules.iter().any(|r| r.fail_mode == FailMode::Closed);
    let first = sql
        .query_opt(
            "INSERT INTO rate_limit_outage_notices (action, noticed_at) VALUES ($1, now()) \
             ON CONFLICT (action) DO UPDATE SET noticed_at = now() \
             WHERE rate_limit_outage_notices.noticed_at < now() - interval '15 minutes' \
             RETURNING action",
            &[SqlValue::Text(action.to_owned())],
        )
        .await?;
    if first.is_some() {
        village_platform::log::event(
            "ERROR",
            &format!(
                "redis is down: rate limits on `{action}` fail {}",
                if refused { "closed" } else { "open" }
            ),
            serde_json::json!({ "action": action, "refusing": refused, "error": why }),
        );
    }
    Ok(Decision::Degraded { refused })
}

fn header(
    name: &'static str,
    value: impl ToString,
) -> Option<(http::HeaderName, http::HeaderValue)> {
    http::HeaderValue::from_str(&value.to_string())
        .ok()
        .map(|v| (http::HeaderName::from_static(name), v))
}

impl Decision {
    /// The answer's `RateLimit-*` headers and, when refused, the error.
    pub fn verdict(&self) -> Verdict {
        match self {
            Decision::Unlimited | Decision::Degraded { refused: false } => Verdict::pass(),
            Decision::Allowed {
                limit,
                window_seconds,
                remaining,
                reset_secs,
            } => Verdict {
                headers: [
                    header("ratelimit-limit", limit),
                    header("ratelimit-remaining", remaining),
                    header("ratelimit-reset", reset_secs),
                    header("ratelimit-policy", format!("{limit};w={window_seconds}")),
                ]
                .into_iter()
                .flatten()
                .collect(),
                refusal: None,
            },
            Decision::Limited {
                limit,
                window_seconds,
                retry_after_secs,
                ..
            } => Verdict {
                headers: [
                    header("ratelimit-limit", limit),
                    header("ratelimit-remaining", 0),
                    header("ratelimit-reset", retry_after_secs),
                    header("ratelimit-policy", format!("{limit};w={window_seconds}")),
                ]
                .into_iter()
                .flatten()
                .collect(),
                refusal: Some(AppError::TooManyRequests {
                    retry_after_secs: *retry_after_secs,
                }),
            },
            Decision::Banned {
                retry_after_secs, ..
            } => Verdict {
                headers: Vec::new(),
                refusal: Some(AppError::TooManyRequests {
                    retry_after_secs: *retry_after_secs,
                }),
            },
            Decision::Degraded { refused: true } => Verdict {
                headers: Vec::new(),
                refusal: Some(AppError::Unavailable {
                    dependency: "redis",
                    detail: "rate limits cannot be counted".into(),
                }),
            },
        }
    }
}

/// The pre-handler gate: the route's action (see [`crate::routes`];
/// `None`: not limited), checked for the request's caller. A database error while checking is
/// the caller's 503, not a pass.
pub async fn gate(
    sql: &impl Sql,
    cache: &impl Cache,
    action: Option<&str>,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Verdict {
    let Some(action) = action else {
        return Verdict::pass();
    };
    match check(sql, cache, action, &Subjects::of(ctx), now).await {
        Ok(d) => d.verdict(),
        Err(e) => Verdict {
            headers: Vec::new(),
            refusal: Some(e.into()),
        },
    }
}
