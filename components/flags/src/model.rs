//! A flag's definition and its evaluation: pure functions, the same answer
//! on every pod for the same flag and visitor.

use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A flag as stored in `feature_flags`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagDef {
    pub key: String,
    pub description: String,
    pub enabled: bool,
    /// 0–100: the share of cohorts that see the feature while enabled.
    pub rollout_percent: u8,
    /// Users who see the feature whatever the rollout (QA, rollback tests).
    pub allow_user_ids: Vec<Uuid>,
    /// Off for everyone, allow-list included.
    pub kill_switch: bool,
    pub updated_at: DateTime<Utc>,
}

/// Why a flag came out the way it did: logged with each evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The kill switch is on.
    Killed,
    /// The user is on the allow-list.
    AllowList,
    /// The flag is switched off.
    Disabled,
    /// The visitor's bucket is below the rollout percentage (on) or not (off).
    Rollout,
    /// No such flag: off.
    Unknown,
    /// Neither Redis nor Postgres could say: off.
    Unavailable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Killed => "killed",
            Reason::AllowList => "allow_list",
            Reason::Disabled => "disabled",
            Reason::Rollout => "rollout",
            Reason::Unknown => "unknown",
            Reason::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    pub on: bool,
    pub reason: Reason,
}

impl Evaluation {
    pub const fn off(reason: Reason) -> Self {
        Evaluation { on: false, reason }
    }
}

/// The visitor's bucket for a flag, 0–99: the first 8 bytes of
/// MD5(`<flag key>:<cohort key>`) as a big-endian integer, modulo 100.
/// Keyed by flag too, so one visitor is not first in line for every rollout.
pub fn bucket(flag_key: &str, cohort: Uuid) -> u8 {
    let digest = Md5::new()
        .chain_update(flag_key.as_bytes())
        .chain_update(b":")
        .chain_update(cohort.hyphenated().to_string().as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 2^64 mod 100 = 16: the modulo bias is below 1e-18.
    (u64::from_be_bytes(first) % 100) as u8
}

/// Evaluates `flag` for a visitor in `cohort`, signed in as `user` (if any).
/// Precedence: kill switch, allow-list, enabled switch, rollout bucket.
pub fn evaluate(flag: &FlagDef, cohort: Uuid, user: Option<Uuid>) -> Evaluation {
    if flag.kill_switch {
        return Evaluation::off(Reason::Killed);
    }
    if user.is_some_and(|u| flag.allow_user_ids.contains(&u)) {
        return Evaluation {
            on: true,
            reason: Reason::AllowList,
        };
    }
    if !flag.enabled {
        return Evaluation::off(Reason::Disabled);
    }
    Evaluation {
        on: bucket(&flag.key, cohort) < flag.rollout_percent,
        reason: Reason::Rollout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(percent: u8) -> FlagDef {
        FlagDef {
            key: "new_widget".into(),
            description: String::new(),
            enabled: true,
            rollout_percent: percent,
            allow_user_ids: Vec::new(),
            kill_switch: false,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }

    /// Deterministic, well-spread cohort keys (v4-shaped UUIDs from a
    /// counter through a SplitMix64 step), so the test is reproducible.
    fn cohorts(n: u64) -> Vec<Uuid> {
        (0..n)
            .map(|i| {
                let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                uuid::Builder::from_random_bytes(
                    ((u128::from(z) << 64) | u128::from(i)).to_be_bytes(),
                )
                .into_uuid()
            })
            .collect()
    }

    #[test]
    fn the_bucket_is_stable_and_in_range() {
        let c = Uuid::parse_str("6f1c1d2e-4b5a-4c3d-9e8f-0a1b2c3d4e5f").expect("uuid");
        let b = bucket("stocks_widget", c);
        assert!(b < 100);
        assert_eq!(bucket("stocks_widget", c), b, "same inputs, same bucket");
        // Pinned: a change of hash or mapping would reshuffle every cohort
        // in production. MD5("stocks_widget:6f1c…4e5f")[..8] mod 100.
        let digest = Md5::digest(format!("stocks_widget:{c}"));
        let expected = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 100;
        assert_eq!(u64::from(b), expected);
    }

    #[test]
    fn the_share_in_the_cohort_matches_the_percentage_and_only_grows() {
        let ids = cohorts(100_000);
        let mut previous: Option<Vec<bool>> = None;
        for percent in [0u8, 1, 5, 10, 25, 50, 75, 90, 99, 100] {
            let f = flag(percent);
            let on: Vec<bool> = ids.iter().map(|c| evaluate(&f, *c, None).on).collect();
            let share = on.iter().filter(|v| **v).count() as f64 / ids.len() as f64 * 100.0;
            assert!(
                (share - f64::from(percent)).abs() <= 1.0,
                "{percent}%: {share:.2}% of 100,000 visitors"
            );
            if let Some(prev) = previous {
                assert!(
                    prev.iter().zip(&on).all(|(was, is)| !was || *is),
                    "raising to {percent}% turned somebody off"
                );
            }
            previous = Some(on);
        }
    }

    #[test]
    fn the_kill_switch_beats_the_allow_list_which_beats_everything_else() {
        let user = Uuid::new_v4();
        let cohort = Uuid::new_v4();
        let mut f = flag(0);
        f.enabled = false;
        f.allow_user_ids = vec![user];
        assert_eq!(
            evaluate(&f, cohort, Some(user)),
            Evaluation {
                on: true,
                reason: Reason::AllowList
            }
        );
        assert_eq!(
            evaluate(&f, cohort, None),
            Evaluation::off(Reason::Disabled),
            "anonymous visitors are never on an allow-list"
        );
        assert_eq!(
            evaluate(&f, cohort, Some(Uuid::new_v4())),
            Evaluation::off(Reason::Disabled)
        );
        f.kill_switch = true;
        f.enabled = true;
        f.rollout_percent = 100;
        assert_eq!(
            evaluate(&f, cohort, Some(user)),
            Evaluation::off(Reason::Killed)
        );
    }

    #[test]
    fn the_bucket_depends_on_the_flag() {
        let ids = cohorts(1_000);
        let same = ids
            .iter()
            .filter(|c| bucket("a_flag", **c) == bucket("b_flag", **c))
            .count();
        assert!(same < 50, "{same} of 1000 share a bucket across flags");
    }
}
