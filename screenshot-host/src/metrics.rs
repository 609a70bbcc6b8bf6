//! The host's own numbers, in the Prometheus text format (0.0.4): captures
//! by outcome, capture time, the pool, the browser's memory and recycling,
//! and how long the oldest due SCREENSHOT job has waited (queue lag).

use std::cell::{Cell, RefCell};
use std::fmt::Write;
use std::time::Duration;

/// Capture-time bucket upper bounds, in seconds.
pub const BUCKETS: [f64; 11] = [0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 45.0, 60.0];

#[derive(Default)]
pub struct Metrics {
    pub captured: Cell<u64>,
    /// Failures by cause: the page's, transient, the browser's.
    pub failed_page: Cell<u64>,
    pub failed_transient: Cell<u64>,
    pub failed_browser: Cell<u64>,
    /// Jobs handed back at shutdown.
    pub handed_back: Cell<u64>,
    buckets: RefCell<[u64; BUCKETS.len() + 1]>,
    sum_seconds: Cell<f64>,
    count: Cell<u64>,
}

/// What the pool and queue look like when scraped.
pub struct Gauges {
    pub contexts: usize,
    pub in_use: usize,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub memory_limit_bytes: u64,
    pub recycled_for_memory: u64,
    pub recycled_for_health: u64,
    pub queue_pending: i64,
    pub queue_lag_seconds: f64,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

impl Metrics {
    pub fn observe(&self, elapsed: Duration) {
        let s = elapsed.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets.borrow_mut()[i] += 1;
        self.sum_seconds.set(self.sum_seconds.get() + s);
        bump(&self.count);
    }

    pub fn captured(&self) {
        bump(&self.captured);
    }

    pub fn failed(&self, error: &crate::capture::CaptureError) {
        use crate::capture::CaptureError as E;
        bump(match error {
            E::Page(_) => &self.failed_page,
            E::Transient(_) => &self.failed_transient,
            E::BrowserLost(_) => &self.failed_browser,
        });
    }

    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let outcomes = [
            ("captured", self.captured.get()),
            ("failed_page", self.failed_page.get()),
            ("failed_transient", self.failed_transient.get()),
            ("failed_browser", self.failed_browser.get()),
        ];
        family(
            &mut out,
            "village_screenshot_captures_total",
            "counter",
            "Captures that ended, by outcome.",
            outcomes.map(|(o, n)| (format!("{{outcome=\"{o}\"}}"), n.to_string())),
        );
        let total: u64 = outcomes.iter().map(|(_, n)| n).sum();
        let ratio = if total == 0 {
            1.0
        } else {
            self.captured.get() as f64 / total as f64
        };
        let one = |value: String| [(String::new(), value)];
        family(
            &mut out,
            "village_screenshot_success_ratio",
            "gauge",
            "Captured over all ended captures since start.",
            one(ratio.to_string()),
        );
        let buckets = self.buckets.borrow();
        let mut cumulative = 0;
        let mut samples: Vec<(String, String)> = BUCKETS
            .iter()
            .map(|b| b.to_string())
            .chain(["+Inf".to_owned()])
            .zip(buckets.iter())
            .map(|(le, n)| {
                cumulative += n;
                (format!("_bucket{{le=\"{le}\"}}"), cumulative.to_string())
            })
            .collect();
        samples.push(("_sum".into(), self.sum_seconds.get().to_string()));
        samples.push(("_count".into(), self.count.get().to_string()));
        family(
            &mut out,
            "village_screenshot_capture_seconds",
            "histogram",
            "Time from a free context to the pictures.",
            samples,
        );
        for (name, kind, help, value) in [
            (
                "pool_contexts",
                "gauge",
                "Browser contexts the pool may use at once.",
                g.contexts.to_string(),
            ),
            (
                "pool_in_use",
                "gauge",
                "Browser contexts capturing now.",
                g.in_use.to_string(),
            ),
            (
                "browser_rss_bytes",
                "gauge",
                "Memory (PSS) of the browser and its processes.",
                g.rss_bytes.to_string(),
            ),
            (
                "browser_peak_rss_bytes",
                "gauge",
                "The most the browser's processes held at once since start.",
                g.peak_rss_bytes.to_string(),
            ),
            (
                "browser_memory_limit_bytes",
                "gauge",
                "The browser is recycled above this.",
                g.memory_limit_bytes.to_string(),
            ),
            (
                "queue_pending",
                "gauge",
                "SCREENSHOT jobs due and waiting.",
                g.queue_pending.to_string(),
            ),
            (
                "queue_lag_seconds",
                "gauge",
                "How long the oldest due SCREENSHOT job has waited.",
                g.queue_lag_seconds.to_string(),
            ),
            (
                "handed_back_total",
                "counter",
                "Jobs handed back to the queue at shutdown.",
                self.handed_back.get().to_string(),
            ),
        ] {
            family(
                &mut out,
                &format!("village_screenshot_{name}"),
                kind,
                help,
                one(value),
            );
        }
        family(
            &mut out,
            "village_screenshot_browser_recycled_total",
            "counter",
            "Browsers replaced, by cause.",
            [
                (
                    "{cause=\"memory\"}".to_owned(),
                    g.recycled_for_memory.to_string(),
                ),
                (
                    "{cause=\"health\"}".to_owned(),
                    g.recycled_for_health.to_string(),
                ),
            ],
        );
        out
    }
}

/// One metric family: its `HELP` and `TYPE` lines, then each sample as
/// `name<suffix> value` (the suffix: labels, or `_bucket{...}`, `_sum`...).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, String)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (suffix, value) in samples {
        let _ = writeln!(out, "{name}{suffix} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_counts_every_capture() {
        let m = Metrics::default();
        m.observe(Duration::from_millis(400));
        m.observe(Duration::from_millis(2500));
        m.observe(Duration::from_secs(90));
        m.captured();
        let text = m.render(&Gauges {
            contexts: 4,
            in_use: 1,
            rss_bytes: 10,
            peak_rss_bytes: 15,
            memory_limit_bytes: 20,
            recycled_for_memory: 0,
            recycled_for_health: 2,
            queue_pending: 3,
            queue_lag_seconds: 1.5,
        });
        assert!(text.contains("village_screenshot_capture_seconds_bucket{le=\"0.5\"} 1\n"));
        assert!(text.contains("village_screenshot_capture_seconds_bucket{le=\"3\"} 2\n"));
        assert!(text.contains("village_screenshot_capture_seconds_bucket{le=\"60\"} 2\n"));
        assert!(text.contains("village_screenshot_capture_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("village_screenshot_capture_seconds_count 3\n"));
        assert!(text.contains("village_screenshot_pool_in_use 1\n"));
        assert!(text.contains("village_screenshot_queue_lag_seconds 1.5\n"));
        assert!(text.contains("village_screenshot_browser_recycled_total{cause=\"health\"} 2\n"));
        assert!(text.contains("village_screenshot_success_ratio 1\n"));
    }
}
