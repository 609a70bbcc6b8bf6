//! The host's settings: flags, or the environment variables beside them
//! (what a Kubernetes Deployment sets). Object storage reads the same
//! names as the Spin variables the components read (`object_store_*`),
//! upper-cased, so one Secret serves both.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use village_platform::objects::{ObjectError, S3Config};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "screenshot-host",
    about = "Captures SCREENSHOT jobs with headless Chromium"
)]
pub struct Config {
    /// Postgres: the job table and the screenshot versions.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Redis: the SCREENSHOT queue's wake-ups (and the key namespace).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    #[arg(long, env = "SCREENSHOT_LISTEN", default_value = "127.0.0.1:3002")]
    pub listen: SocketAddr,
    /// The Chromium binary (Debian's `chromium`).
    #[arg(long, env = "CHROMIUM", default_value = "chromium")]
    pub chromium: PathBuf,
    /// Captures at once: browser contexts in use at a time. Four fit a 6 GB
    /// pod beside the browser's own processes (see `--browser-memory-mb`).
    #[arg(long, env = "SCREENSHOT_CONTEXTS", default_value_t = 4)]
    pub contexts: usize,
    /// The browser (all its processes) is recycled once it holds more: it
    /// stops taking captures, finishes those it has, and starts afresh.
    #[arg(long, env = "SCREENSHOT_BROWSER_MEMORY_MB", default_value_t = 3072)]
    pub browser_memory_mb: u64,
    /// Time for a page to load (its `load` event); a page that has not by
    /// then but has a document is captured as it is.
    #[arg(long, env = "SCREENSHOT_NAVIGATION_TIMEOUT_SECS", default_value_t = 20)]
    pub navigation_timeout_secs: u64,
    /// Time for a whole capture, from claiming a context to the images.
    #[arg(long, env = "SCREENSHOT_CAPTURE_TIMEOUT_SECS", default_value_t = 45)]
    pub capture_timeout_secs: u64,
    /// The most a page may download (every request it makes); more ends the
    /// capture as too large.
    #[arg(long, env = "SCREENSHOT_MAX_PAGE_MB", default_value_t = 32)]
    pub max_page_mb: u64,
    /// How long the page may settle after loading before the picture.
    #[arg(long, env = "SCREENSHOT_SETTLE_MS", default_value_t = 500)]
    pub settle_ms: u64,
    /// A `host` or `host:port` captured whatever its address (tests' local
    /// sites; never in production). Repeatable, or comma-separated.
    #[arg(
        long = "allow-host",
        env = "SCREENSHOT_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// The queue is polled this often even without a wake-up.
    #[arg(long, env = "SCREENSHOT_POLL_SECS", default_value_t = 5)]
    pub poll_secs: u64,
    /// On SIGTERM, captures under way get this long to finish; the rest go
    /// back to the queue.
    #[arg(long, env = "SCREENSHOT_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    /// The S3-compatible store's origin (path-style); with keys, images go
    /// to the bucket, else to the embedded store (Postgres).
    #[arg(long, env = "OBJECT_STORE_ENDPOINT", default_value = "")]
    pub object_store_endpoint: String,
    #[arg(long, env = "OBJECT_STORE_BUCKET", default_value = "village")]
    pub object_store_bucket: String,
    #[arg(long, env = "OBJECT_STORE_REGION", default_value = "us-east-1")]
    pub object_store_region: String,
    #[arg(long, env = "OBJECT_STORE_ACCESS_KEY", default_value = "")]
    pub object_store_access_key: String,
    #[arg(
        long,
        env = "OBJECT_STORE_SECRET_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub object_store_secret_key: String,
    /// This host's name in job locks (default: host name and process id).
    #[arg(long, env = "SCREENSHOT_WORKER_ID")]
    pub worker_id: Option<String>,
}

impl Config {
    /// A configuration for tests and the benchmark: everything at its
    /// default but the database and Redis.
    pub fn for_database(database_url: &str, redis_url: &str) -> Self {
        let mut c = Config::parse_from(["screenshot-host", "--database-url", database_url]);
        c.redis_url = redis_url.to_owned();
        c.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c
    }

    pub fn navigation_timeout(&self) -> Duration {
        Duration::from_secs(self.navigation_timeout_secs)
    }

    pub fn capture_timeout(&self) -> Duration {
        Duration::from_secs(self.capture_timeout_secs)
    }

    pub fn max_page_bytes(&self) -> u64 {
        self.max_page_mb << 20
    }

    pub fn browser_memory_bytes(&self) -> u64 {
        self.browser_memory_mb << 20
    }

    /// The bucket's settings, `None` for the embedded store.
    pub fn object_store(&self) -> Result<Option<S3Config>, ObjectError> {
        S3Config::from_lookup(|name| {
            Some(
                match name {
                    "object_store_endpoint" => &self.object_store_endpoint,
                    "object_store_bucket" => &self.object_store_bucket,
                    "object_store_region" => &self.object_store_region,
                    "object_store_access_key" => &self.object_store_access_key,
                    "object_store_secret_key" => &self.object_store_secret_key,
                    _ => return None,
                }
                .clone(),
            )
        })
    }

    /// The lock owner name: host name, process id and a per-start random
    /// part — a restarted container has the same host name and, as PID 1,
    /// the same pid, and must not pass for its predecessor (whose jobs the
    /// sweeper has to rescue).
    pub fn worker(&self) -> String {
        self.worker_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "screenshot-host".into());
            let boot = uuid::Uuid::new_v4().simple().to_string();
            format!(
                "screenshot-host:{host}:{}:{}",
                std::process::id(),
                &boot[..8]
            )
        })
    }

    pub fn allowed_hosts(&self) -> Vec<String> {
        village_platform::address::allowed_hosts(&self.allowed_hosts.join(","))
    }
}
