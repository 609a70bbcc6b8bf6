use std::fmt;

/// The queues. Each has its own worker component (SCREENSHOT: the native
/// screenshot host), so each can be scaled and paused on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Queue {
    High,
    Default,
    Low,
    Bulk,
    Screenshot,
}

impl Queue {
    pub const ALL: [Queue; 5] = [
        Queue::High,
        Queue::Default,
        Queue::Low,
        Queue::Bulk,
        Queue::Screenshot,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Queue::High => "HIGH",
            Queue::Default => "DEFAULT",
            Queue::Low => "LOW",
            Queue::Bulk => "BULK",
            Queue::Screenshot => "SCREENSHOT",
        }
    }

    pub fn parse(s: &str) -> Option<Queue> {
        Self::ALL
            .into_iter()
            .find(|q| q.as_str().eq_ignore_ascii_case(s))
    }

    /// The queues a worker of this queue drains, first to last.
    ///
    /// HIGH and DEFAULT always go before BULK (and LOW): a LOW or BULK worker
    /// that wakes while user-facing work is due takes that work first, so
    /// when workers are saturated, bulk work waits rather than user-facing
    /// work. SCREENSHOT is consumed only by the screenshot host.
    pub fn drain_order(self) -> &'static [Queue] {
        match self {
            Queue::High => &[Queue::High],
            Queue::Default => &[Queue::High, Queue::Default],
            Queue::Low => &[Queue::High, Queue::Default, Queue::Low],
            Queue::Bulk => &[Queue::High, Queue::Default, Queue::Bulk],
            Queue::Screenshot => &[Queue::Screenshot],
        }
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
