//! Runs Spin's conformance suite against a Spin-compatible CLI, with the
//! suite's services provided locally (no Docker).
//!
//! ```text
//! conformance-runner --suite DIR --components DIR --cli PATH [--expect-fail NAME]... [--only NAME]
//! ```
//!
//! - `--suite`: the suite's source (`tests/conformance/suite`): each test is a
//!   folder of `tests/` with a `spin.toml` template and a `test.json5`.
//! - `--components`: the built test components (`<crate_name>.wasm`, core
//!   modules for `wasm32-unknown-unknown`, as the suite packages them; the
//!   runtime componentizes them, as Spin does).
//! - `--cli`: the runtime, run exactly as Spin's own harness runs `spin`:
//!   `<cli> up --listen 127.0.0.1:<port>` in a folder holding `spin.toml`
//!   and `component.wasm`. Nothing is translated but the binary's path.
//! - `--expect-fail`: a test known to fail on this runtime (an interface it
//!   does not provide): the run fails if such a test passes, so the list
//!   stays true.
//!
//! Services, each started once on a free loopback port and stopped at the
//! end: a throwaway Postgres cluster (`spin_dev` re-created and loaded with
//! the suite's SQL before each test that needs it), a Redis (flushed before
//! each test), mosquitto (anonymous), and HTTP and TCP echo servers. Tests run
//! one at a time; each prints one line, and the last line says how many
//! behaved as expected.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use conformance_tests::config::{Invocation, Precondition};

struct Args {
    suite: PathBuf,
    components: PathBuf,
    cli: PathBuf,
    expect_fail: BTreeSet<String>,
    only: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let (mut suite, mut components, mut cli) = (None, None, None);
    let mut expect_fail = BTreeSet::new();
    let mut only = None;
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--suite" => suite = Some(PathBuf::from(value()?)),
            "--components" => components = Some(PathBuf::from(value()?)),
            "--cli" => cli = Some(PathBuf::from(value()?)),
            "--expect-fail" => {
                expect_fail.insert(value()?);
            }
            "--only" => only = Some(value()?),
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(Args {
        suite: suite.context("--suite")?,
        components: components.context("--components")?,
        cli: cli.context("--cli")?,
        expect_fail,
        only,
    })
}

/// The wasm file each component folder of the suite builds to.
fn component_file(dir: &str) -> anyhow::Result<&'static str> {
    Ok(match dir {
        "key-value" => "key_value.wasm",
        "outbound-mqtt" => "outbound_mqtt_test_component.wasm",
        "outbound-redis" => "outbound_redis_test_component.wasm",
        "outbound-wasi-http-v0.2.0" => "wasi_http_rust_0_2_0.wasm",
        "postgres" => "postgres_test_component.wasm",
        "request-shape" => "request_shape.wasm",
        "sqlite" => "sqlite_test_component.wasm",
        "tcp-sockets" => "tcp_sockets_test_component.wasm",
        "variables" => "variables.wasm",
        other => bail!("unknown suite component {other}"),
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16, limit: Duration, child: &mut Child, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited early ({status})");
        }
        if Instant::now() > deadline {
            bail!("{what} did not listen on {port} within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process stopped (SIGTERM to it, or to its process group, then
/// SIGKILL) when dropped.
struct Guard {
    child: Child,
    name: String,
    /// Signal the whole process group (a runtime and its trigger processes).
    group: bool,
}

impl Guard {
    fn stop(&mut self) {
        let pid = self.child.id();
        let mut target = if self.group {
            format!("-{pid}")
        } else {
            pid.to_string()
        };
        let signalled = Command::new("kill")
            .args(["-TERM", "--", &target])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !signalled {
            // No such group (the leader already gone): the process alone.
            target = pid.to_string();
            let _ = Command::new("kill")
                .args(["-TERM", &target])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM: killing it", self.name);
        let _ = Command::new("kill")
            .args(["-KILL", "--", &target])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The suite's services, on this machine.
///
/// Postgres is stopped with `pg_ctl stop -m fast` (the server runs under
/// `runuser`, which a signal to the wrapper may not reach) before the other
/// guards drop.
struct Services {
    ports: HashMap<u16, u16>,
    work: PathBuf,
    pg_bin: PathBuf,
    pg_port: u16,
    redis_port: u16,
    _guards: Vec<Guard>,
}

fn as_postgres_user(cmd: &mut Command) -> Command {
    // Postgres refuses to run as root: run its tools as `postgres` then.
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if is_root {
        let mut wrapped = Command::new("runuser");
        wrapped
            .args(["-u", "postgres", "--"])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        wrapped
    } else {
        let mut plain = Command::new(cmd.get_program());
        plain.args(cmd.get_args());
        plain
    }
}

fn postgres_bin() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL's binaries (/usr/lib/postgresql)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("no initdb under /usr/lib/postgresql")
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop_postgres();
    }
}

impl Services {
    fn start(work: &Path) -> anyhow::Result<Services> {
        let mut guards = Vec::new();
        let mut ports = HashMap::new();

        // Postgres: a throwaway cluster, trust authentication, loopback only.
        let pg_bin = postgres_bin()?;
        let data = work.join("pg");
        std::fs::create_dir_all(&data)?;
        if Command::new("id").arg("-u").output()?.stdout.trim_ascii() == b"0" {
            Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(work)
                .status()?;
        }
        let out = as_postgres_user(
            Command::new(pg_bin.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "-D"])
                .arg(&data),
        )
        .output()?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let pg_port = free_port()?;
        let child = as_postgres_user(
            Command::new(pg_bin.join("postgres"))
                .arg("-D")
                .arg(&data)
                .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
                .args(["-c", &format!("unix_socket_directories={}", work.display())])
                .args(["-p", &pg_port.to_string()]),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
        let mut pg = Guard {
            child,
            name: "postgres".into(),
            group: false,
        };
        wait_for_port(pg_port, Duration::from_secs(30), &mut pg.child, "postgres")?;
        guards.push(pg);
        ports.insert(5432, pg_port);

        // Redis, without persistence.
        let redis_port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &redis_port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(work)
            .stdout(Stdio::null())
            .spawn()
            .context("redis-server")?;
        let mut redis = Guard {
            child,
            name: "redis".into(),
            group: false,
        };
        wait_for_port(
            redis_port,
            Duration::from_secs(10),
            &mut redis.child,
            "redis",
        )?;
        guards.push(redis);
        ports.insert(6379, redis_port);

        // mosquitto, anonymous (the suite's broker accepts anyone too).
        let mqtt_port = free_port()?;
        let conf = work.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("mosquitto")?;
        let mut mqtt = Guard {
            child,
            name: "mosquitto".into(),
            group: false,
        };
        wait_for_port(
            mqtt_port,
            Duration::from_secs(10),
            &mut mqtt.child,
            "mosquitto",
        )?;
        guards.push(mqtt);
        ports.insert(1883, mqtt_port);

        ports.insert(80, http_echo()?);
        ports.insert(7, tcp_echo()?);
        Ok(Services {
            ports,
            work: work.to_path_buf(),
            pg_bin,
            pg_port,
            redis_port,
            _guards: guards,
        })
    }

    fn stop_postgres(&self) {
        let _ = as_postgres_user(
            Command::new(self.pg_bin.join("pg_ctl"))
                .args(["stop", "-m", "fast", "-w", "-D"])
                .arg(self.work.join("pg")),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    }

    fn psql(&self, db: &str, sql_file: Option<&Path>, command: Option<&str>) -> anyhow::Result<()> {
        let mut cmd = Command::new(self.pg_bin.join("psql"));
        cmd.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-p", &self.pg_port.to_string(), "-d", db]);
        if let Some(f) = sql_file {
            cmd.arg("-f").arg(f);
        }
        if let Some(c) = command {
            cmd.args(["-c", c]);
        }
        let out = cmd.output()?;
        if !out.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// `spin_dev`, fresh, loaded with the suite's SQL (the test inserts rows
    /// and counts them, so every run starts from the same tables).
    fn reset_postgres(&self, suite: &Path) -> anyhow::Result<()> {
        self.psql(
            "postgres",
            None,
            Some("DROP DATABASE IF EXISTS spin_dev WITH (FORCE)"),
        )?;
        self.psql("postgres", None, Some("CREATE DATABASE spin_dev"))?;
        let init = suite.join("crates/test-environment/services/postgres-init");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&init)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        for f in files {
            self.psql("spin_dev", Some(&f), None)?;
        }
        Ok(())
    }

    fn reset_redis(&self) -> anyhow::Result<()> {
        let status = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.redis_port.to_string(),
                "FLUSHALL",
            ])
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "redis FLUSHALL failed");
        Ok(())
    }
}

/// An HTTP/1.0 echo server: a POST's body comes back as `text/plain`.
fn http_echo() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = echo_http(stream);
            });
        }
    });
    Ok(port)
}

fn echo_http(stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut out = stream;
    out.write_all(b"HTTP/1.0 200 OK\r\nContent-type: text/plain\r\n\r\n")?;
    out.write_all(&body)?;
    out.flush()
}

/// A TCP echo server.
fn tcp_echo() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => return,
                };
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    Ok(port)
}

/// Replaces `%{key=value}` with what `replace` answers.
fn substitute(
    text: &str,
    mut replace: impl FnMut(&str, &str) -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("%{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .context("unclosed %{ in a template")?
            + start;
        let (key, value) = rest[start + 2..end]
            .split_once('=')
            .context("a template is %{key=value}")?;
        out.push_str(&replace(key, value)?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn run_test(
    test: &conformance_tests::Test,
    args: &Args,
    services: &Services,
) -> anyhow::Result<()> {
    let dir = services.work.join("tests").join(&test.name);
    std::fs::create_dir_all(&dir)?;
    let mut component = None;
    let manifest = substitute(
        &std::fs::read_to_string(&test.manifest)?,
        |key, value| match key {
            "source" => {
                component = Some(value.to_owned());
                Ok("component.wasm".into())
            }
            "port" => {
                let guest: u16 = value.parse()?;
                Ok(services
                    .ports
                    .get(&guest)
                    .with_context(|| format!("no service for port {guest}"))?
                    .to_string())
            }
            other => bail!("unknown template key {other}"),
        },
    )?;
    std::fs::write(dir.join("spin.toml"), manifest)?;
    let component = component.context("the manifest names no component")?;
    std::fs::copy(
        args.components.join(component_file(&component)?),
        dir.join("component.wasm"),
    )
    .with_context(|| format!("the built component {component}"))?;
    for pre in &test.config.preconditions {
        match pre {
            Precondition::Postgres => services.reset_postgres(&args.suite)?,
            Precondition::Redis => services.reset_redis()?,
            _ => {}
        }
    }

    let port = free_port()?;
    let child = Command::new(&args.cli)
        .args(["up", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(&dir)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout.log"))?)
        .stderr(std::fs::File::create(dir.join("stderr.log"))?)
        .process_group(0)
        .spawn()
        .with_context(|| format!("running {}", args.cli.display()))?;
    let mut runtime = Guard {
        child,
        name: "the runtime".into(),
        group: true,
    };
    let outcome = (|| {
        wait_for_port(
            port,
            Duration::from_secs(120),
            &mut runtime.child,
            "the runtime",
        )?;
        for invocation in &test.config.invocations {
            let Invocation::Http(invocation) = invocation;
            let mut request = invocation.request.clone();
            request.substitute(|key, value| {
                anyhow::ensure!(key == "port", "unknown template key {key}");
                let guest: u16 = value.parse()?;
                Ok(services.ports.get(&guest).map(|p| p.to_string()))
            })?;
            let actual = request.send(|r| r.send("localhost", port))?;
            conformance_tests::assertions::assert_response(&invocation.response, &actual)?;
        }
        Ok(())
    })();
    runtime.stop();
    outcome.map_err(|e: anyhow::Error| {
        let log = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let tail = |s: String| {
            s.lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n      ")
        };
        e.context(format!(
            "stderr (last lines):\n      {}\n    stdout (last lines):\n      {}",
            tail(log("stderr.log")),
            tail(log("stdout.log"))
        ))
    })
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let work = std::env::temp_dir().join(format!("village-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = (|| {
        let services = Services::start(&work)?;
        let mut tests: Vec<_> = conformance_tests::tests_iter(args.suite.join("tests"))?
            .filter(|t| args.only.as_ref().is_none_or(|o| *o == t.name))
            .collect();
        tests.sort_by(|a, b| a.name.cmp(&b.name));
        let (mut as_expected, mut surprises) = (0, Vec::new());
        let mut passed = 0;
        for test in &tests {
            let outcome = run_test(test, &args, &services);
            let expected_to_fail = args.expect_fail.contains(&test.name);
            match (&outcome, expected_to_fail) {
                (Ok(()), false) => println!("conformance {}: pass", test.name),
                (Ok(()), true) => println!(
                    "conformance {}: pass (listed as failing: take it off the list)",
                    test.name
                ),
                (Err(e), true) => println!(
                    "conformance {}: fail, as listed: {}",
                    test.name,
                    first_line(e)
                ),
                (Err(e), false) => println!("conformance {}: FAIL: {e:#}", test.name),
            }
            if outcome.is_ok() {
                passed += 1;
            }
            if outcome.is_ok() != expected_to_fail {
                as_expected += 1;
            } else {
                surprises.push(test.name.clone());
            }
        }
        println!(
            "conformance: {passed} of {} tests pass on {}; {as_expected} as expected{}",
            tests.len(),
            args.cli.display(),
            if surprises.is_empty() {
                String::new()
            } else {
                format!(", not as expected: {}", surprises.join(", "))
            }
        );
        anyhow::ensure!(
            surprises.is_empty(),
            "conformance results differ from what is expected"
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn first_line(e: &anyhow::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}
