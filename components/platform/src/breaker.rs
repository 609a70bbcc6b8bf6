//! The Redis circuit breaker. A hung or dead Redis made every request wait
//! out its Redis calls (seconds each), and nothing remembered that Redis was
//! down. The breaker remembers: once [`THRESHOLD`] calls in a row fail for
//! want of Redis (or err after [`SLOW`] or more: a timeout), it *opens* for
//! [`OPEN_FOR`] and every Redis call fails at once, as if Redis were down — each caller's fail-open or
//! fail-closed rule then applies as before. When the window ends, one
//! request *probes* (the others keep failing fast for [`PROBE_WINDOW`]);
//! a healthy answer closes the breaker, a failed one opens it again. (The
//! store has no compare-and-set: two requests may probe at once; and a
//! request reads the state once, so one already past the gate finishes
//! its calls.)
//!
//! A component instance lives for one request, so the state lives in the
//! Spin key-value store `default` (local to the pod: each replica learns on
//! its own) — see `spin::SpinCache`. This module is the pure decision.

use serde::{Deserialize, Serialize};

/// An error after this long is a timeout: Redis is not answering.
pub const SLOW: std::time::Duration = std::time::Duration::from_millis(250);
/// Failures in a row that open the breaker (one blip does not: while it is
/// open, sign-in and `/bootstrap` refuse everyone).
pub const THRESHOLD: u32 = 2;
/// How long the breaker stays open after a failure, in milliseconds.
pub const OPEN_FOR_MS: u64 = 5_000;
/// How long one probe has before another request may probe, in milliseconds.
pub const PROBE_WINDOW_MS: u64 = 2_000;
/// [`OPEN_FOR_MS`] as a duration.
pub const OPEN_FOR: std::time::Duration = std::time::Duration::from_millis(OPEN_FOR_MS);
/// [`PROBE_WINDOW_MS`] as a duration.
pub const PROBE_WINDOW: std::time::Duration = std::time::Duration::from_millis(PROBE_WINDOW_MS);

/// The stored state: closed when `open_until_ms` is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerState {
    /// Unix milliseconds until which calls fail fast.
    pub open_until_ms: u64,
    /// Failures in a row.
    pub failures: u32,
}

/// What to do with a Redis call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Call Redis.
    Call,
    /// The window has ended: call Redis as the probe; `claim` is the state
    /// to store first, so that other requests keep failing fast meanwhile.
    Probe { claim: BreakerState },
    /// Fail at once.
    FailFast,
}

impl BreakerState {
    pub fn is_open(&self) -> bool {
        self.open_until_ms != 0
    }

    /// The gate for a call at `now_ms`.
    pub fn gate(&self, now_ms: u64) -> Gate {
        if !self.is_open() {
            Gate::Call
        } else if now_ms < self.open_until_ms {
            Gate::FailFast
        } else {
            Gate::Probe {
                claim: BreakerState {
                    open_until_ms: now_ms + PROBE_WINDOW_MS,
                    failures: self.failures,
                },
            }
        }
    }

    /// The state after a call that `failed` (Redis unavailable, or an error
    /// that took [`SLOW`] or longer: a timeout); `None` when nothing changed
    /// (nothing to store).
    pub fn after(&self, failed: bool, now_ms: u64) -> Option<BreakerState> {
        if failed {
            let failures = self.failures.saturating_add(1);
            // Open at the threshold, and again after a failed probe.
            let open = failures >= THRESHOLD || self.is_open();
            Some(BreakerState {
                open_until_ms: if open { now_ms + OPEN_FOR_MS } else { 0 },
                failures,
            })
        } else if self.is_open() || self.failures > 0 {
            Some(BreakerState::default())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_opens_the_breaker_and_calls_fail_fast_until_the_window_ends() {
        let closed = BreakerState::default();
        assert_eq!(closed.gate(1_000), Gate::Call);
        assert_eq!(closed.after(false, 1_000), None, "healthy: nothing stored");
        let once = closed.after(true, 1_000).expect("counted");
        assert!(!once.is_open(), "one blip does not open it");
        assert_eq!(once.gate(1_000), Gate::Call);
        assert_eq!(once.after(false, 1_000), Some(BreakerState::default()));
        let open = once.after(true, 1_000).expect("opens");
        assert_eq!(open.open_until_ms, 1_000 + OPEN_FOR_MS);
        assert_eq!(open.gate(1_001), Gate::FailFast);
        assert_eq!(open.gate(1_000 + OPEN_FOR_MS - 1), Gate::FailFast);
    }

    #[test]
    fn one_request_probes_after_the_window_and_its_outcome_decides() {
        let once = BreakerState::default().after(true, 0).expect("counted");
        let open = once.after(true, 0).expect("opens");
        let Gate::Probe { claim } = open.gate(OPEN_FOR_MS) else {
            panic!("the window has ended: probe");
        };
        // While the probe runs, everyone else still fails fast.
        assert_eq!(claim.gate(OPEN_FOR_MS + 1), Gate::FailFast);
        // A healthy probe closes it...
        assert_eq!(
            claim.after(false, OPEN_FOR_MS + 5),
            Some(BreakerState::default())
        );
        // ...a failed one opens it for another window.
        let again = claim.after(true, OPEN_FOR_MS + 5).expect("reopens");
        assert_eq!(again.open_until_ms, 2 * OPEN_FOR_MS + 5);
        assert_eq!(again.failures, 3);
    }
}
