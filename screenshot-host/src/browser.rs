//! The browser pool: one headless Chromium, used by at most `contexts`
//! captures at a time (a semaphore), each in a browser context of its own
//! (own cookies, cache, storage, proxy), disposed after it.
//!
//! The browser is recycled — a new process, a new profile — when:
//! - it died or stopped answering (a health probe every few seconds): it is
//!   killed at once, and the captures it was running fail as "browser lost"
//!   (their jobs run again; see `runner`);
//! - all its processes together hold more than the memory limit: it takes
//!   no new capture, finishes those it has, and is replaced — no job
//!   notices.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chromiumoxide::Browser;
use chromiumoxide::browser::BrowserConfig;
use chromiumoxide::handler::viewport::Viewport;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use village_screenshots::{FULL_HEIGHT, FULL_WIDTH};

/// How often the watchdog looks at the browser.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// A browser that takes longer to answer a version query is hung.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub chromium: PathBuf,
    pub contexts: usize,
    pub memory_limit_bytes: u64,
    pub navigation_timeout: Duration,
}

/// One running Chromium.
pub struct Instance {
    pub browser: Browser,
    pub pid: u32,
    pub generation: u64,
    /// False once the DevTools connection ended (the browser died).
    pub alive: Rc<Cell<bool>>,
    /// Takes no new captures: it is being replaced.
    pub draining: Cell<bool>,
    pub in_flight: Cell<usize>,
    _profile: tempfile::TempDir,
    _handler: tokio::task::JoinHandle<()>,
}

impl Instance {
    /// Kills the browser's processes; the pool replaces it at the next
    /// lease or look.
    pub fn kill(&self) {
        self.alive.set(false);
        kill_tree(self.pid);
    }
}

/// A capture's hold on the pool: a context slot and the browser to use.
pub struct Lease {
    pub instance: Rc<Instance>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.instance
            .in_flight
            .set(self.instance.in_flight.get().saturating_sub(1));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("Chromium did not start: {0}")]
    Launch(String),
}

pub struct Pool {
    config: PoolConfig,
    permits: Arc<Semaphore>,
    current: RefCell<Option<Rc<Instance>>>,
    /// One launch at a time.
    launching: tokio::sync::Mutex<()>,
    generation: Cell<u64>,
    /// Browsers replaced, by cause (for `/metrics`).
    pub recycled_for_memory: Cell<u64>,
    pub recycled_for_health: Cell<u64>,
    /// The last measured size of the browser's processes.
    pub rss_bytes: Cell<u64>,
    pub peak_rss_bytes: Cell<u64>,
}

impl Pool {
    pub fn new(config: PoolConfig) -> Rc<Pool> {
        Rc::new(Pool {
            permits: Arc::new(Semaphore::new(config.contexts.max(1))),
            config,
            current: RefCell::new(None),
            launching: tokio::sync::Mutex::new(()),
            generation: Cell::new(0),
            recycled_for_memory: Cell::new(0),
            recycled_for_health: Cell::new(0),
            rss_bytes: Cell::new(0),
            peak_rss_bytes: Cell::new(0),
        })
    }

    pub fn memory_limit(&self) -> u64 {
        self.config.memory_limit_bytes
    }

    pub fn capacity(&self) -> usize {
        self.config.contexts.max(1)
    }

    /// Context slots free right now.
    pub fn free(&self) -> usize {
        self.permits.available_permits()
    }

    pub fn in_use(&self) -> usize {
        self.capacity() - self.free()
    }

    /// Whether a live browser is up (for `/readyz`).
    pub fn ready(&self) -> bool {
        self.current
            .borrow()
            .as_ref()
            .is_some_and(|i| i.alive.get())
    }

    /// The running browser's process id (tests kill it).
    pub fn browser_pid(&self) -> Option<u32> {
        self.current.borrow().as_ref().map(|i| i.pid)
    }

    /// Waits for a free context slot, then hands out the live browser
    /// (launching one if there is none, or the last is being replaced and
    /// has finished its captures).
    pub async fn lease(self: &Rc<Self>) -> Result<Lease, PoolError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Launch("the pool is closed".into()))?;
        let instance = self.usable().await?;
        instance.in_flight.set(instance.in_flight.get() + 1);
        Ok(Lease {
            instance,
            _permit: permit,
        })
    }

    /// Launches the browser now (at start-up), so the first capture does
    /// not wait for it.
    pub async fn warm(self: &Rc<Self>) -> Result<(), PoolError> {
        self.usable().await.map(|_| ())
    }

    async fn usable(self: &Rc<Self>) -> Result<Rc<Instance>, PoolError> {
        loop {
            let _launching = self.launching.lock().await;
            let current = self.current.borrow().clone();
            match current {
                Some(i) if i.alive.get() && !i.draining.get() => return Ok(i),
                Some(i) if i.alive.get() && i.in_flight.get() > 0 => {
                    // Being replaced: its last captures finish first, so
                    // two browsers never run side by side.
                    drop(_launching);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                old => {
                    if let Some(old) = old {
                        old.kill();
                    }
                    let fresh = Rc::new(self.launch().await?);
                    *self.current.borrow_mut() = Some(fresh.clone());
                    return Ok(fresh);
                }
            }
        }
    }

    async fn launch(&self) -> Result<Instance, PoolError> {
        let profile = tempfile::Builder::new()
            .prefix("screenshot-host-profile")
            .tempdir()
            .map_err(|e| PoolError::Launch(format!("profile directory: {e}")))?;
        let config = BrowserConfig::builder()
            .chrome_executable(on_path(&self.config.chromium))
            .no_sandbox()
            .disable_default_args()
            .args(CHROMIUM_SWITCHES.map(str::to_owned))
            .args(CHROMIUM_SETTINGS)
            .window_size(FULL_WIDTH, FULL_HEIGHT)
            .viewport(Viewport {
                width: FULL_WIDTH,
                height: FULL_HEIGHT,
                device_scale_factor: Some(1.0),
                emulating_mobile: false,
                is_landscape: true,
                has_touch: false,
            })
            .respect_https_errors()
            .request_timeout(self.config.navigation_timeout)
            .launch_timeout(Duration::from_secs(30))
            .user_data_dir(profile.path())
            .build()
            .map_err(PoolError::Launch)?;
        let (mut browser, mut handler) = Browser::launch(config)
            .await
            .map_err(|e| PoolError::Launch(e.to_string()))?;
        let pid = browser
            .get_mut_child()
            .and_then(|c| c.inner.id())
            .ok_or_else(|| PoolError::Launch("no process id".into()))?;
        let alive = Rc::new(Cell::new(true));
        let flag = alive.clone();
        let handler_task = tokio::task::spawn_local(async move {
            // The handler drives the DevTools connection; it ends when the
            // browser goes away. A malformed message is not the end.
            while let Some(event) = handler.next().await {
                if let Err(e) = event
                    && matches!(e, chromiumoxide::error::CdpError::Ws(_))
                {
                    break;
                }
            }
            flag.set(false);
        });
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        tracing::info!(pid, generation, "browser started");
        Ok(Instance {
            browser,
            pid,
            generation,
            alive,
            draining: Cell::new(false),
            in_flight: Cell::new(0),
            _profile: profile,
            _handler: handler_task,
        })
    }

    /// The watchdog: every [`WATCH_EVERY`], measures the browser and probes
    /// it; replaces a dead or hung one at once, a bloated one gracefully.
    pub async fn watch(self: Rc<Self>) {
        let mut last_probe = Instant::now();
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            let Some(instance) = self.current.borrow().clone() else {
                continue;
            };
            let rss = tree_rss(instance.pid);
            self.rss_bytes.set(rss);
            self.peak_rss_bytes.set(self.peak_rss_bytes.get().max(rss));
            if !instance.alive.get() || !process_exists(instance.pid) {
                tracing::warn!(pid = instance.pid, "browser died; replacing it");
                self.recycled_for_health
                    .set(self.recycled_for_health.get() + 1);
                instance.kill();
                let _ = self.usable().await;
                continue;
            }
            if rss > self.config.memory_limit_bytes && !instance.draining.get() {
                tracing::warn!(
                    pid = instance.pid,
                    rss_mb = rss >> 20,
                    limit_mb = self.config.memory_limit_bytes >> 20,
                    "browser over its memory limit; replacing it after its captures"
                );
                instance.draining.set(true);
                self.recycled_for_memory
                    .set(self.recycled_for_memory.get() + 1);
            }
            if last_probe.elapsed() >= Duration::from_secs(5) {
                last_probe = Instant::now();
                let probe = tokio::time::timeout(PROBE_TIMEOUT, instance.browser.version()).await;
                if !matches!(probe, Ok(Ok(_))) {
                    // Counted and replaced at the next look, as dead.
                    tracing::warn!(pid = instance.pid, "browser stopped answering; killing it");
                    instance.kill();
                }
            }
        }
    }

    /// Kills the browser (shutdown).
    pub fn close(&self) {
        if let Some(i) = self.current.borrow_mut().take() {
            i.kill();
        }
    }
}

/// Chromium's flags: headless, no GPU, small shared memory, and nothing
/// that leaves the proxy. Every context sets its own proxy; the default
/// one is a closed port, so nothing outside a capture's context (nor a
/// pop-up that escapes one) reaches the network. `<-loopback>` removes
/// Chromium's implicit "loopback goes direct". Chromium resolves no name
/// itself (`--host-resolver-rules`: the proxy resolves, and checks), and
/// WebRTC may not send UDP around the proxy. The pop-up blocker stays on.
///
/// chromiumoxide adds the leading `--` (a key given with dashes would
/// reach Chromium as `----key`, which it ignores): keys here have none.
/// Switches, then `key=value` settings.
pub const CHROMIUM_SWITCHES: [&str; 17] = [
    "disable-gpu",
    "disable-dev-shm-usage",
    "disable-background-networking",
    "disable-background-timer-throttling",
    "disable-backgrounding-occluded-windows",
    "disable-renderer-backgrounding",
    "disable-breakpad",
    "disable-component-update",
    "disable-default-apps",
    "disable-domain-reliability",
    "disable-sync",
    "disable-quic",
    "no-first-run",
    "no-default-browser-check",
    "use-mock-keychain",
    "hide-scrollbars",
    "mute-audio",
];

pub const CHROMIUM_SETTINGS: [(&str, &str); 8] = [
    (
        "disable-features",
        "TranslateUI,MediaRouter,OptimizationHints,AutofillServerCommunication,InterestFeedContentSuggestions",
    ),
    ("password-store", "basic"),
    ("force-color-profile", "srgb"),
    ("lang", "en-US"),
    ("proxy-server", "http://127.0.0.1:9"),
    ("proxy-bypass-list", "<-loopback>"),
    ("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
    ("force-webrtc-ip-handling-policy", "disable_non_proxied_udp"),
];

/// A bare name (`chromium`) looked up on `PATH`, as a shell would.
fn on_path(binary: &std::path::Path) -> PathBuf {
    if binary.components().count() > 1 {
        return binary.to_owned();
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| binary.to_owned())
}

fn process_exists(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| stat_state(&s).is_none_or(|c| c != 'Z'))
        .unwrap_or(false)
}

/// The state letter and parent pid of a `/proc/<pid>/stat` line.
fn stat_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn stat_ppid(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `pid` and every process below it.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat"))
                && let Some(pp) = stat_ppid(&stat)
            {
                parents.push((p, pp));
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found
}

/// Memory of `pid` and its descendants, in bytes: their proportional set
/// size (PSS: each shared page divided among the processes sharing it), so
/// Chromium's many processes mapping the same binary and shared memory are
/// not counted many times over as RSS would. Falls back to RSS where the
/// kernel has no `smaps_rollup`.
pub fn tree_rss(pid: u32) -> u64 {
    process_tree(pid).into_iter().map(process_memory).sum()
}

fn process_memory(pid: u32) -> u64 {
    let kib = |text: &str, field: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    if let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        && let Some(pss) = kib(&rollup, "Pss:")
    {
        return pss * 1024;
    }
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// SIGKILLs `pid` and its descendants (Chromium's renderers and zygotes
/// would otherwise outlive a killed browser process).
pub fn kill_tree(pid: u32) {
    for p in process_tree(pid).into_iter().rev() {
        if let Ok(p) = i32::try_from(p) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
