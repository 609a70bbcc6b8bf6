//! The real Spin CLI as the end-to-end runtime (`VILLAGE_E2E_RUNTIME=spin`).
//!
//! Production is Spin 3.6.3 (SpinKube's shim), so every end-to-end test also
//! runs against `spin up` with the project's own `spin.toml` and `.wasm`
//! files: the same tests, one switch (issue #13). The binary is `spin` on
//! `PATH` (or `VILLAGE_SPIN`), with its cron trigger plugin installed:
//! `scripts/test` installs both from `../shared/spin/`.
//!
//! Each app is its own `spin up` in its own process group, killed as a group
//! when the app is dropped (Spin runs its triggers, the cron plugin among
//! them, as child processes). Its output is kept and printed when a test
//! fails.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

/// How long `spin up` may take to serve (it compiles every component on a
/// cold cache) and a cron run to finish.
const START_TIMEOUT: Duration = Duration::from_secs(180);
const CRON_TIMEOUT: Duration = Duration::from_secs(90);

/// Whether the end-to-end tests run on the real Spin CLI.
pub fn selected() -> bool {
    std::env::var("VILLAGE_E2E_RUNTIME").is_ok_and(|v| v == "spin")
}

fn binary() -> PathBuf {
    std::env::var_os("VILLAGE_SPIN").map_or_else(|| PathBuf::from("spin"), PathBuf::from)
}

/// One `spin up`: its process group and everything it printed.
pub struct SpinProcess {
    child: Child,
    /// The process group (Spin's pid), kept: `Child::id` forgets it once
    /// the leader has been reaped, and its triggers may outlive it.
    group: Option<u32>,
    output: Arc<Output>,
}

#[derive(Default)]
struct Output {
    text: Mutex<String>,
    changed: Notify,
}

impl Output {
    fn contains(&self, needle: &dyn Fn(&str) -> bool) -> bool {
        self.text.lock().map(|t| needle(&t)).unwrap_or(false)
    }

    fn snapshot(&self) -> String {
        self.text.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

async fn collect(stream: impl AsyncRead + Unpin, output: Arc<Output>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut t) = output.text.lock() {
            t.push_str(&line);
            t.push('\n');
        }
        output.changed.notify_waiters();
    }
}

impl SpinProcess {
    /// `spin up -f <manifest> [--listen <addr>] --variable k=v...`, with
    /// nothing of the caller's environment that would change what Spin
    /// does: no `SPIN_VARIABLE_*`, no `RUST_BACKTRACE` (it changes error
    /// texts), no `.env` (it runs in a scratch directory).
    pub fn spawn(
        manifest: &Path,
        listen: Option<SocketAddr>,
        variables: &BTreeMap<String, String>,
        components: &[String],
    ) -> SpinProcess {
        Self::spawn_with(manifest, listen, variables, components, &[])
    }

    /// [`SpinProcess::spawn`], with more `spin up` arguments.
    pub fn spawn_with(
        manifest: &Path,
        listen: Option<SocketAddr>,
        variables: &BTreeMap<String, String>,
        components: &[String],
        extra: &[String],
    ) -> SpinProcess {
        let scratch = std::env::temp_dir().join("village-e2e-spin");
        std::fs::create_dir_all(&scratch).expect("a scratch directory for spin");
        let mut cmd = Command::new(binary());
        cmd.arg("up").arg("-f").arg(manifest);
        if let Some(addr) = listen {
            cmd.arg("--listen").arg(addr.to_string());
        }
        // As environment variables, Spin's other way in: a password on the
        // command line would show in `ps`.
        for (k, v) in variables {
            cmd.env(format!("SPIN_VARIABLE_{}", k.to_ascii_uppercase()), v);
        }
        for c in components {
            cmd.arg("-c").arg(c);
        }
        cmd.args(extra);
        for (k, _) in std::env::vars_os() {
            let name = k.to_string_lossy().to_ascii_lowercase();
            if let Some(var) = name.strip_prefix("spin_variable_")
                && !variables.contains_key(var)
            {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .env("OTEL_SDK_DISABLED", "true")
            .current_dir(&scratch)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run `{}` ({e}): install the Spin CLI with scripts/test (from ../shared/spin)",
                binary().display()
            )
        });
        let group = child.id();
        let output = Arc::new(Output::default());
        if let Some(out) = child.stdout.take() {
            tokio::spawn(collect(out, output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(collect(err, output.clone()));
        }
        SpinProcess {
            child,
            group,
            output,
        }
    }

    /// Waits until the output satisfies `done`; panics with the output if it
    /// does not within `limit` or if Spin exits first.
    pub async fn wait_for(&mut self, what: &str, limit: Duration, done: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.output.changed.notified();
            if self.output.contains(&done) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "spin exited ({status}) before {what}:\n{}",
                    self.output.snapshot()
                );
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "spin did not show {what} in {limit:?}:\n{}",
                    self.output.snapshot()
                );
            }
            // Output may also stop coming: look again at least every 200 ms.
            let _ = tokio::time::timeout(Duration::from_millis(200), changed).await;
        }
    }

    /// Everything Spin and the components printed so far.
    pub fn output(&self) -> String {
        self.output.snapshot()
    }

    /// Kills Spin and its trigger processes (the whole process group).
    pub fn kill(&mut self) {
        if let Some(pid) = self.group {
            // `kill` the command: the workspace has no unsafe code for libc.
            let status = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
            if !status.is_ok_and(|s| s.success()) {
                let _ = self.child.start_kill();
            }
        }
    }
}

impl Drop for SpinProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- spin output ---\n{}--- end of spin output ---",
                self.output()
            );
        }
        self.kill();
    }
}

/// A free loopback port for Spin to listen on (Spin's `--listen` takes no
/// port 0).
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address")
}

/// Serves the application (`components`, or all when empty) under
/// `spin up`; returns once it serves.
pub async fn up(
    manifest: &Path,
    variables: &BTreeMap<String, String>,
    components: &[String],
) -> (SpinProcess, SocketAddr) {
    up_with(manifest, variables, components, &[]).await
}

/// [`up`], with more `spin up` arguments (a runtime-config file, say).
pub async fn up_with(
    manifest: &Path,
    variables: &BTreeMap<String, String>,
    components: &[String],
    extra: &[String],
) -> (SpinProcess, SocketAddr) {
    let addr = free_addr();
    let mut spin = SpinProcess::spawn_with(manifest, Some(addr), variables, components, extra);
    spin.wait_for("that it serves", START_TIMEOUT, |out| {
        out.contains(&format!("Serving http://{addr}"))
    })
    .await;
    // Spin runs each trigger type in its own process: HTTP may serve before
    // the Redis trigger has subscribed, and a wake-up published then is
    // lost. It lists each channel once subscribed ("\t<addr>/<channel>: [..]").
    let channels = redis_channels(manifest, components);
    spin.wait_for("its Redis subscriptions", START_TIMEOUT, |out| {
        channels.iter().all(|c| out.contains(&format!("/{c}: [")))
    })
    .await;
    (spin, addr)
}

/// The channels the selected components' Redis triggers subscribe to.
fn redis_channels(manifest: &Path, components: &[String]) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).expect("the manifest");
    let doc: toml::Table = text.parse().expect("the manifest parses");
    doc.get("trigger")
        .and_then(|t| t.get("redis"))
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter(|t| {
            let component = t
                .get("component")
                .and_then(|c| c.as_str())
                .unwrap_or_default();
            components.is_empty() || components.iter().any(|c| c == component)
        })
        .filter_map(|t| t.get("channel").and_then(|c| c.as_str()).map(str::to_owned))
        .collect()
}

/// Runs one cron component once under Spin's cron trigger: a manifest of
/// just that component (the same `.wasm`, variables and allow-list) whose
/// schedule is one second of the minute a few seconds from now, killed as
/// soon as the component reports the run over
/// (`village_platform::log::cron_finished`), long before it could fire
/// again. Spin has no way to fire a cron trigger on demand.
pub async fn fire_cron(repo: &Path, component: &str, variables: &BTreeMap<String, String>) {
    let manifest = cron_manifest(repo, component);
    let mut spin = SpinProcess::spawn(&manifest.path, None, variables, &[]);
    let needle = format!("\"cron\":\"{component}\"");
    spin.wait_for(&format!("a run of {component}"), CRON_TIMEOUT, |out| {
        out.lines()
            .any(|l| l.contains("cron run finished") && l.contains(&needle))
    })
    .await;
    spin.kill();
    let out = spin.output();
    if let Some(line) = out
        .lines()
        .find(|l| l.contains("cron run finished") && l.contains(&needle))
        && !line.contains("\"error\":null")
    {
        panic!("cron {component} failed under spin: {line}\n{out}");
    }
}

struct TempManifest {
    dir: PathBuf,
    path: PathBuf,
}

impl Drop for TempManifest {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn cron_manifest(repo: &Path, component: &str) -> TempManifest {
    let text = std::fs::read_to_string(repo.join("spin.toml")).expect("spin.toml");
    let mut doc: toml::Table = text.parse().expect("spin.toml parses");
    let cron = doc
        .get("trigger")
        .and_then(|t| t.get("cron"))
        .and_then(|c| c.as_array())
        .and_then(|a| {
            a.iter()
                .find(|t| t.get("component").and_then(|c| c.as_str()) == Some(component))
        })
        .cloned()
        .unwrap_or_else(|| panic!("spin.toml has no cron trigger for {component}"));
    let mut cron = cron.as_table().cloned().expect("a cron trigger table");
    // Spin starts in about two seconds with its compiled-module cache warm;
    // a slower start waits for the same second of the next minute.
    let second = chrono::Timelike::second(&(chrono::Utc::now() + chrono::Duration::seconds(4)));
    cron.insert(
        "cron_expression".into(),
        format!("{second} * * * * *").into(),
    );
    let mut trigger = toml::Table::new();
    trigger.insert("cron".into(), toml::Value::Array(vec![cron.into()]));
    doc.insert("trigger".into(), trigger.into());
    let mut comp = doc
        .get("component")
        .and_then(|c| c.get(component))
        .and_then(|c| c.as_table())
        .cloned()
        .unwrap_or_else(|| panic!("spin.toml has no component {component}"));
    if let Some(src) = comp.get("source").and_then(|s| s.as_str()) {
        let abs = repo.join(src);
        comp.insert("source".into(), abs.display().to_string().into());
    }
    comp.remove("build");
    let mut components = toml::Table::new();
    components.insert(component.into(), comp.into());
    doc.insert("component".into(), components.into());
    let dir = std::env::temp_dir().join(format!(
        "village-cron-{component}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).expect("a directory for the cron manifest");
    let path = dir.join("spin.toml");
    std::fs::write(&path, toml::to_string(&doc).expect("manifest serialises"))
        .expect("cron manifest written");
    TempManifest { dir, path }
}
