//! Schema migrations for Village Homepage.
//!
//! The SQL files in `migrations/` are embedded at compile time and applied in
//! order by `refinery` (a well-kept migration runner that records what it
//! applied in `refinery_schema_history` and refuses edited or missing
//! migrations). Every run holds a Postgres advisory lock, so two pods — or a
//! Job and a developer — starting at once apply each migration exactly once.
//! In production this runs as a Kubernetes Job before each rollout; in
//! development `village up --migrate` and the test harness call [`migrate`].

use std::fmt;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

pub mod tls;

refinery::embed_migrations!("../../migrations");

/// The advisory lock key: any constant unique to this purpose ("VILLAGE1").
const LOCK_KEY: i64 = 0x5649_4c4c_4147_4531;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("failed to connect to Postgres: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("failed to set up TLS for Postgres: {0}")]
    Tls(String),
    #[error("failed to take the migration lock: {0}")]
    Lock(#[source] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Run(#[source] refinery::Error),
    #[error("failed to read migration history: {0}")]
    History(#[source] tokio_postgres::Error),
}

/// What a run applied.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub applied: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() {
            write!(f, "schema up to date")
        } else {
            write!(f, "applied {}", self.applied.join(", "))
        }
    }
}

/// One migration and whether this database has it.
#[derive(Debug, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: i64,
    pub name: String,
    pub applied: bool,
}

/// Connects as the application's components do: plain text only with
/// `sslmode=disable`, verified TLS otherwise (see [`tls`]).
async fn connect(url: &str) -> Result<Client, MigrateError> {
    let config: Config = url.parse().map_err(MigrateError::Connect)?;
    if config.get_ssl_mode() == SslMode::Disable {
        let (client, connection) = config.connect(NoTls).await.map_err(MigrateError::Connect)?;
        tokio::spawn(drive(connection));
        Ok(client)
    } else {
        let tls = tls::connector().map_err(MigrateError::Tls)?;
        let (client, connection) = config.connect(tls).await.map_err(MigrateError::Connect)?;
        tokio::spawn(drive(connection));
        Ok(client)
    }
}

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(e) = connection.await {
        eprintln!("migrate: connection ended: {e}");
    }
}

/// Applies every pending migration, holding the advisory lock throughout.
pub async fn migrate(url: &str) -> Result<Report, MigrateError> {
    let mut client = connect(url).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(MigrateError::Lock)?;
    let result = migrations::runner().run_async(&mut client).await;
    // The lock dies with the session anyway; unlocking early lets a waiting
    // pod proceed without waiting for this connection to close.
    if let Err(e) = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
    {
        eprintln!("migrate: failed to release the advisory lock (released on disconnect): {e}");
    }
    let report = result.map_err(MigrateError::Run)?;
    Ok(Report {
        applied: report
            .applied_migrations()
            .iter()
            .map(|m| format!("V{}__{}", m.version(), m.name()))
            .collect(),
    })
}

/// Lists every embedded migration and whether the database has applied it.
pub async fn status(url: &str) -> Result<Vec<MigrationStatus>, MigrateError> {
    let client = connect(url).await?;
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await
        .map_err(MigrateError::History)?
        .get(0);
    let applied: Vec<i64> = if exists {
        client
            .query("SELECT version::bigint FROM refinery_schema_history", &[])
            .await
            .map_err(MigrateError::History)?
            .iter()
            .map(|r| r.get(0))
            .collect()
    } else {
        Vec::new()
    };
    Ok(migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| MigrationStatus {
            version: i64::from(m.version()),
            name: m.name().to_owned(),
            applied: applied.contains(&i64::from(m.version())),
        })
        .collect())
}

/// Fresh databases for tests: one migrated template per schema version,
/// cloned per test (`CREATE DATABASE … TEMPLATE`), so every test starts from
/// the real schema in milliseconds and never sees another test's rows.
#[cfg(feature = "testing")]
pub mod testing {
    use super::*;

    /// The server tests use; override with `VILLAGE_TEST_PG`. The local
    /// cluster's certificate is a self-signed one, so tests say `disable`.
    pub fn admin_url() -> String {
        std::env::var("VILLAGE_TEST_PG").unwrap_or_else(|_| {
            "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into()
        })
    }

    /// `admin` with its database replaced by `db`, options kept.
    fn with_database(admin: &str, db: &str) -> String {
        let (url, query) = match admin.split_once('?') {
            Some((url, query)) => (url, format!("?{query}")),
            None => (admin, String::new()),
        };
        match url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{db}{query}"),
            None => format!("{url}/{db}{query}"),
        }
    }

    /// The database a URL names (the last path segment, before any options).
    pub fn database_name(url: &str) -> &str {
        let url = url.split_once('?').map_or(url, |(u, _)| u);
        url.rsplit_once('/').map_or(url, |(_, db)| db)
    }

    /// The template's name changes whenever the set of migrations does.
    fn template_name() -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
        for m in migrations::runner().get_migrations() {
            for b in format!("{}:{}:{};", m.version(), m.name(), m.checksum()).bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("village_template_{h:016x}")
    }

    /// Creates a new, migrated database and returns its URL.
    pub async fn fresh_database() -> Result<String, MigrateError> {
        let admin = admin_url();
        let client = connect(&admin).await?;
        let template = template_name();
        client
            .execute("SELECT pg_advisory_lock($1)", &[&(LOCK_KEY + 1)])
            .await
            .map_err(MigrateError::Lock)?;
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template])
            .await
            .map_err(MigrateError::History)?
            .is_some();
        if !exists {
            // Identifiers cannot be parameters; this name is built from hex above.
            client
                .batch_execute(&format!("CREATE DATABASE \"{template}\""))
                .await
                .map_err(MigrateError::History)?;
            migrate(&with_database(&admin, &template)).await?;
        }
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&(LOCK_KEY + 1)])
            .await
            .map_err(MigrateError::Lock)?;
        let name =
            format!("village_test_{}", std::process::id()) + &format!("_{:x}", rand_suffix());
        let mut attempt = 0;
        loop {
            match client
                .batch_execute(&format!(
                    "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
                ))
                .await
            {
                Ok(()) => break,
                // Another test's clone can briefly hold the template.
                Err(_) if attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => return Err(MigrateError::History(e)),
            }
        }
        // A clone does not inherit its template's per-database settings:
        // pin the time zone as migration V18 did, and JIT off as V25 did.
        client
            .batch_execute(&format!(
                "ALTER DATABASE \"{name}\" SET TimeZone = 'UTC'; \
                 ALTER DATABASE \"{name}\" SET jit = off"
            ))
            .await
            .map_err(MigrateError::History)?;
        Ok(with_database(&admin, &name))
    }

    fn rand_suffix() -> u128 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        nanos ^ u128::from(COUNTER.fetch_add(1, Ordering::SeqCst))
    }
}
