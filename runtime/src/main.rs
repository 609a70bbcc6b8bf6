//! `village`: run a Spin application locally (`village up`, `village build`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
/// mimalloc: the runtime allocates and frees many small objects per
/// request (stores, resource tables, headers); measured faster than glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use village_runtime::{Options, describe_routes, start};

#[derive(Parser)]
#[command(
    name = "village",
    version,
    about = "A Spin-compatible runtime for Village Homepage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the application (as `spin up`).
    Up(UpArgs),
    /// Run every component's build command (as `spin build`).
    Build {
        /// The manifest, or a folder holding spin.toml.
        #[arg(short = 'f', long = "from", default_value = "spin.toml")]
        from: PathBuf,
        /// Build only these components.
        #[arg(short = 'c', long = "component-id")]
        components: Vec<String>,
    },
}

#[derive(clap::Args)]
struct UpArgs {
    /// The manifest, or a folder holding spin.toml.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    from: PathBuf,
    /// The address the HTTP trigger listens on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Run only these components (repeat the flag for several).
    #[arg(short = 'c', long = "component-id")]
    components: Vec<String>,
    /// Set an application variable: NAME=VALUE.
    #[arg(long = "variable", value_parser = parse_pair)]
    variables: Vec<(String, String)>,
    /// Pass an environment variable to every component: KEY=VALUE.
    #[arg(short = 'e', long = "env", value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// Largest linear memory one instance may use, in MiB.
    #[arg(long, default_value_t = 128)]
    max_instance_memory_mb: usize,
    /// Time budget of one request or event, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Largest request body handed to a component, in MiB; a larger one is
    /// answered 413 before the component runs. Spin has no such limit (a
    /// component bounds its own bodies): this is `village`'s, kept on purpose.
    #[arg(long, default_value_t = 10)]
    max_request_body_mb: usize,
    /// Seconds a client may take to send a request's head; an idle
    /// keep-alive connection is closed after as long.
    #[arg(long, default_value_t = 10)]
    header_read_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// A Spin runtime-config file. `village` reads its
    /// `[outbound_networking] block_networks` (Spin's semantics); any other
    /// table is refused rather than silently ignored.
    #[arg(long = "runtime-config-file")]
    runtime_config_file: Option<PathBuf>,
    /// Apply pending database migrations first (to the database named by the
    /// `db_user`, `db_password`, `db_host`, `db_name`, `db_sslmode`
    /// application variables).
    #[arg(long)]
    migrate: bool,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VILLAGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Build { from, components } => {
            village_runtime::build::run(&manifest_file(from), &components)
        }
        Command::Up(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("failed to start the async runtime")?
            .block_on(up(args)),
    }
}

fn manifest_file(from: PathBuf) -> PathBuf {
    if from.is_dir() {
        from.join("spin.toml")
    } else {
        from
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let mut options = Options::new(manifest_file(args.from));
    options.components = args.components;
    options.variables = args.variables.into_iter().collect::<BTreeMap<_, _>>();
    options.env = args.env;
    options.max_instance_memory = args.max_instance_memory_mb << 20;
    options.timeout = Duration::from_millis(args.timeout_ms);
    options.max_request_body = args.max_request_body_mb << 20;
    options.header_read_timeout = Duration::from_secs(args.header_read_timeout_secs.max(1));
    options.max_connections = args.max_connections.max(1);
    if let Some(path) = &args.runtime_config_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("failed to parse {}", path.display()))?;
        if let Some(other) = table.keys().find(|k| *k != "outbound_networking") {
            anyhow::bail!(
                "{}: [{other}] is not supported by village (only [outbound_networking])",
                path.display()
            );
        }
        options.blocked_networks =
            village_runtime::blocked_networks::BlockedNetworks::from_runtime_config(&table)?;
    }
    if args.migrate {
        let url = database_url(&options)?;
        let report = village_migrate::migrate(&url)
            .await
            .context("failed to migrate the database")?;
        println!("Migrations: {report}");
    }
    let mut running = start(options, args.listen).await?;
    println!("Serving http://{}", running.addr);
    println!("Available Routes:");
    for line in describe_routes(&running.app, running.addr) {
        println!("{line}");
    }
    tokio::select! {
        _ = shutdown_signal() => {
            println!("Shutting down: finishing in-flight requests");
            running.stop().await;
            Ok(())
        }
        why = running.trigger_failure() => {
            // As `spin up`: a trigger that stops stops the application.
            println!("A trigger exited unexpectedly. Terminating.");
            running.stop().await;
            anyhow::bail!("{why}")
        }
    }
}

/// The project's database, from its application variables `db_user`,
/// `db_password`, `db_host`, `db_name` and `db_sslmode` (the same ones its components'
/// `database_url` templates use).
fn database_url(options: &Options) -> anyhow::Result<String> {
    let manifest = village_runtime::manifest::Manifest::load(&options.manifest)?;
    let vars =
        village_runtime::variables::Variables::resolve(&manifest, &options.variables, |k| {
            std::env::var(k).ok()
        })?;
    let get = |name: &str| {
        vars.app_value(name)
            .map(str::to_owned)
            .with_context(|| format!("--migrate needs the application variable `{name}`"))
    };
    // TLS as the components connect (`db_sslmode`; verified unless `disable`).
    let sslmode = vars.app_value("db_sslmode").unwrap_or("require");
    Ok(format!(
        "postgres://{}:{}@{}/{}?sslmode={sslmode}",
        get("db_user")?,
        get("db_password")?,
        get("db_host")?,
        get("db_name")?
    ))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!("cannot listen for SIGINT either: {e}");
            }
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => if let Err(e) = r { tracing::error!("SIGINT handler failed: {e}") },
    }
}
