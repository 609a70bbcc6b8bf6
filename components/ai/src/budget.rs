//! The monthly AI budget (`AiTaggingBudgetService` in the blueprint, policy
//! P10): the month's limit, what the month's calls cost, and what that
//! allows.
//!
//! | used      | level      | effect                                            |
//! |-----------|------------|---------------------------------------------------|
//! | < 75 %    | `Normal`   | batches of 20                                     |
//! | ≥ 75 %    | `Reduced`  | batches of 10; ops notified                       |
//! | ≥ 90 %    | `Deferred` | non-critical work waits for the 1st of next month |
//! | ≥ 100 %   | `Stopped`  | no calls at all until next month or a raise       |
//!
//! Months are calendar months in UTC. Spend is the sum of `ai_usage` rows,
//! so the state is recomputed from facts on every read, never drifted.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use village_platform::sql::{Sql, SqlError, SqlValue};

/// Articles per Messages API call at each level (the 10–20).
pub const FULL_BATCH: usize = 20;
pub const REDUCED_BATCH: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Normal,
    Reduced,
    Deferred,
    Stopped,
}

impl Level {
    /// The threshold (percent) that starts this level.
    pub fn threshold(self) -> Option<i32> {
        match self {
            Level::Normal => None,
            Level::Reduced => Some(75),
            Level::Deferred => Some(90),
            Level::Stopped => Some(100),
        }
    }
}

/// Whether work may wait for next month's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Deferred at 90 % (news tagging).
    NonCritical,
    /// Still done at 90 %, in small batches (fraud checks will be).
    Critical,
}

/// What the budget allows a caller to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Allowance {
    Proceed {
        batch_size: usize,
    },
    /// Schedule the work for `until` (the first instant of next month).
    Defer {
        until: DateTime<Utc>,
    },
    Stop,
}

/// One month's budget and spend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub month: NaiveDate,
    pub limit_cents: i64,
    /// What the month's calls cost, in micro-cents (1e-6 cent).
    pub spent_microcents: i64,
}

impl Budget {
    /// Spend as a fraction of the limit, in basis points (1/100 of a
    /// percent), exact in integers; a zero limit is fully used.
    pub fn used_basis_points(&self) -> i64 {
        if self.limit_cents <= 0 {
            return 10_000;
        }
        // spent / (limit × 1e6) × 10 000
        (i128::from(self.spent_microcents) * 10_000 / (i128::from(self.limit_cents) * 1_000_000))
            .try_into()
            .unwrap_or(i64::MAX)
    }

    pub fn level(&self) -> Level {
        match self.used_basis_points() {
            bp if bp >= 10_000 => Level::Stopped,
            bp if bp >= 9_000 => Level::Deferred,
            bp if bp >= 7_500 => Level::Reduced,
            _ => Level::Normal,
        }
    }

    /// Every threshold the month has reached, lowest first.
    pub fn thresholds_reached(&self) -> Vec<i32> {
        let level = self.level();
        [Level::Reduced, Level::Deferred, Level::Stopped]
            .into_iter()
            .filter(|l| *l <= level)
            .filter_map(Level::threshold)
            .collect()
    }

    pub fn spent_cents(&self) -> f64 {
        self.spent_microcents as f64 / 1e6
    }
}

/// The month `now` falls in (its first day).
pub fn month_of(now: DateTime<Utc>) -> NaiveDate {
    NaiveDate::from_ymd_opt(now.year(), now.month(), 1).unwrap_or(NaiveDate::MIN)
}

/// The first instant of the month after `now`'s.
pub fn next_month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

/// What `level` allows work of `priority`.
pub fn allowance(level: Level, priority: Priority, now: DateTime<Utc>) -> Allowance {
    match (level, priority) {
        (Level::Normal, _) => Allowance::Proceed {
            batch_size: FULL_BATCH,
        },
        (Level::Reduced, _) | (Level::Deferred, Priority::Critical) => Allowance::Proceed {
            batch_size: REDUCED_BATCH,
        },
        (Level::Deferred, Priority::NonCritical) => Allowance::Defer {
            until: next_month_start(now),
        },
        (Level::Stopped, _) => Allowance::Stop,
    }
}

/// A month as a statement parameter: ISO text, cast with `::text::date` so
/// the session's time zone never shifts it.
pub(crate) fn date(d: NaiveDate) -> SqlValue {
    SqlValue::Text(d.format("%Y-%m-%d").to_string())
}

/// The current month's budget, its row created with `default_limit_cents`
/// the first time anything asks.
pub async fn current(
    sql: &impl Sql,
    now: DateTime<Utc>,
    default_limit_cents: i64,
) -> Result<Budget, SqlError> {
    let month = month_of(now);
    let row = sql
        .query_opt(
            "WITH ins AS ( \
                 INSERT INTO ai_budgets (month, limit_cents) VALUES ($1::text::date, $2) \
                 ON CONFLICT (month) DO NOTHING RETURNING limit_cents) \
             SELECT coalesce((SELECT limit_cents FROM ins), \
                             (SELECT limit_cents FROM ai_budgets WHERE month = $1::text::date)) \
                        AS limit_cents, \
                    (SELECT coalesce(sum(cost_microcents), 0) FROM ai_usage \
                     WHERE month = $1::text::date)::bigint AS spent",
            &[date(month), SqlValue::Int64(default_limit_cents)],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("budget query returned no row".into()))?;
    Ok(Budget {
        month,
        limit_cents: row.get("limit_cents")?,
        spent_microcents: row.get("spent")?,
    })
}

/// One call's usage, as the API reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub purpose: &'static str,
    pub model: String,
    pub items: i32,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_microcents: i64,
}

pub async fn record_usage(
    sql: &impl Sql,
    usage: &Usage,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    sql.execute(
        "INSERT INTO ai_usage (month, purpose, model, items, input_tokens, output_tokens, \
                               cost_microcents, recorded_at) \
         VALUES ($1::text::date, $2, $3, $4, $5, $6, $7, $8)",
        &[
            date(month_of(now)),
            SqlValue::Text(usage.purpose.into()),
            SqlValue::Text(usage.model.clone()),
            SqlValue::Int32(usage.items),
            SqlValue::Int64(usage.input_tokens),
            SqlValue::Int64(usage.output_tokens),
            SqlValue::Int64(usage.cost_microcents),
            SqlValue::Timestamp(now),
        ],
    )
    .await?;
    Ok(())
}

/// Sets the current month's limit and writes the audit row (`entry`, a
/// serialised `AuditEntry`) in the same statement. Returns the limit before.
pub async fn set_limit(
    sql: &impl Sql,
    now: DateTime<Utc>,
    limit_cents: i64,
    default_limit_cents: i64,
    entry: SqlValue,
) -> Result<i64, SqlError> {
    let month = date(month_of(now));
    let row = sql
        .query_opt(
            "WITH old AS ( \
                 SELECT coalesce((SELECT ai_budget_json(b) FROM ai_budgets b \
                                  WHERE month = $1::text::date), \
                                 jsonb_build_object('month', $1::text::date, \
                                                    'limit_cents', $3::bigint)) AS j), \
             up AS ( \
                 INSERT INTO ai_budgets (month, limit_cents, updated_at) \
                 VALUES ($1::text::date, $2, now()) \
                 ON CONFLICT (month) DO UPDATE SET limit_cents = EXCLUDED.limit_cents, \
                                                   updated_at = now() \
                 RETURNING ai_budget_json(ai_budgets) AS j), \
             audit AS (SELECT audit_record($4, (SELECT j FROM old), up.j) AS id FROM up) \
             SELECT ((SELECT j FROM old)->>'limit_cents')::bigint AS before FROM up, audit",
            &[
                month,
                SqlValue::Int64(limit_cents),
                SqlValue::Int64(default_limit_cents),
                entry,
            ],
        )
        .await?
        .ok_or_else(|| SqlError::Decode("budget update returned no row".into()))?;
    row.get("before")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit_cents: i64, spent_cents: i64) -> Budget {
        Budget {
            month: NaiveDate::from_ymd_opt(2026, 11, 1).expect("date"),
            limit_cents,
            spent_microcents: spent_cents * 1_000_000,
        }
    }

    #[test]
    fn levels_change_exactly_at_the_thresholds() {
        assert_eq!(budget(100, 74).level(), Level::Normal);
        assert_eq!(budget(100, 75).level(), Level::Reduced);
        assert_eq!(budget(100, 89).level(), Level::Reduced);
        assert_eq!(budget(100, 90).level(), Level::Deferred);
        assert_eq!(budget(100, 99).level(), Level::Deferred);
        assert_eq!(budget(100, 100).level(), Level::Stopped);
        assert_eq!(budget(0, 0).level(), Level::Stopped);
        assert_eq!(budget(100, 95).thresholds_reached(), vec![75, 90]);
        assert!(budget(100, 10).thresholds_reached().is_empty());
    }

    #[test]
    fn allowances_follow_the_policy() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 14, 8, 0, 0)
            .single()
            .expect("t");
        let next = Utc
            .with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
            .single()
            .expect("t");
        let p = Priority::NonCritical;
        assert_eq!(
            allowance(Level::Normal, p, now),
            Allowance::Proceed { batch_size: 20 }
        );
        assert_eq!(
            allowance(Level::Reduced, p, now),
            Allowance::Proceed { batch_size: 10 }
        );
        assert_eq!(
            allowance(Level::Deferred, p, now),
            Allowance::Defer { until: next }
        );
        assert_eq!(
            allowance(Level::Deferred, Priority::Critical, now),
            Allowance::Proceed { batch_size: 10 }
        );
        assert_eq!(
            allowance(Level::Stopped, Priority::Critical, now),
            Allowance::Stop
        );
    }
}
