use std::time::Duration;

/// How a handler's failures are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts before the job is dead-lettered (the first run counts).
    pub max_attempts: i32,
    /// Delay after the first failure; doubled after each further one.
    pub base_delay: Duration,
    /// The delay never exceeds this.
    pub max_delay: Duration,
    /// ± this fraction of the delay is random, so failed jobs do not return
    /// in lockstep and hammer a recovering dependency together.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(60 * 60),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based); `unit` is a
    /// random number in [0, 1).
    pub fn backoff(&self, attempt: i32, unit: f64) -> Duration {
        let exp = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        let raw = self.base_delay.as_secs_f64() * f64::from(2u32.saturating_pow(exp));
        let capped = raw.min(self.max_delay.as_secs_f64());
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Duration::from_secs_f64((capped * factor).max(0.0))
    }
}

/// A random number in [0, 1) from the platform's entropy (WASI random in a
/// component); falls back to the middle, i.e. no jitter, if it is unavailable.
pub fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(100),
            jitter: 0.0,
        };
        let secs: Vec<u64> = (1..=6).map(|a| p.backoff(a, 0.5).as_secs()).collect();
        assert_eq!(secs, vec![10, 20, 40, 80, 100, 100]);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = RetryPolicy::default();
        let low = p.backoff(3, 0.0).as_secs_f64();
        let high = p.backoff(3, 0.999_999).as_secs_f64();
        assert!((31.9..=32.1).contains(&low), "{low}");
        assert!((47.9..=48.1).contains(&high), "{high}");
        for _ in 0..100 {
            let d = p.backoff(3, random_unit()).as_secs_f64();
            assert!((32.0..=48.0).contains(&d), "{d}");
        }
    }
}
