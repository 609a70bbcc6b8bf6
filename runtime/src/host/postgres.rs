//! `spin:postgres/postgres@4.0.0` on pooled tokio-postgres connections,
//! behaving as Spin 3.6.3's host does (`crates/factor-outbound-pg` at v3.6.3):
//!
//! - the address is a tokio-postgres connection string, in URL or
//!   `key=value` form; every TCP host in it must be allowed as
//!   `postgres://host:port` (5432 when no port is given);
//! - `sslmode=disable` connects in plain text; otherwise (`prefer`, the
//!   default, or `require`) the client asks for TLS and verifies the
//!   server's certificate and name against the system's roots. `prefer`
//!   falls back to plain only when the server offers no TLS: a server that
//!   offers TLS with a certificate we cannot verify is an error, as under
//!   Spin (whose client is `native-tls`; ours is rustls, see runtime/README);
//! - values convert as in [`super::postgres_types`].
//!
//! One pool per connection string, created on first use. A guest connection
//! resource holds one pooled client for its lifetime, so `BEGIN … COMMIT`
//! across calls works; a client the guest left inside a transaction is closed
//! instead of returned to the pool (Spin would hand it to the next request:
//! a difference on purpose, listed in runtime/README).

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::Mutex;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::ToSql;
use wasmtime::component::Resource;

use super::postgres_types::{self, ParamError};
use crate::allowed_hosts::AllowList;
use crate::bindings::spin_host::spin::postgres::postgres::{
    self as pg, DbError, ParameterValue, QueryError, RowSet,
};
use crate::state::InstanceState;

/// Pool size per database. Small on purpose: a 2-core host gains nothing from
/// more concurrent queries, and Postgres' default `max_connections` (100) is
/// shared by every pod and by the test suite's many databases.
const POOL_SIZE: usize = 16;
/// How long `open` waits for a connection before telling the guest it failed;
/// short so `/readyz` answers quickly when Postgres is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct PgPools {
    pools: Mutex<HashMap<String, Pool>>,
}

impl PgPools {
    async fn get(
        &self,
        address: &str,
        config: tokio_postgres::Config,
    ) -> Result<deadpool_postgres::Object, String> {
        let pool = {
            let mut pools = self.pools.lock().await;
            match pools.get(address) {
                Some(p) => p.clone(),
                None => {
                    let pool = create_pool(config)?;
                    pools.insert(address.to_owned(), pool.clone());
                    pool
                }
            }
        };
        // Spin's text: the pool error and its causes, in anyhow's format.
        // Neither carries the password.
        pool.get()
            .await
            .map_err(|e| format!("{:?}", anyhow::Error::from(e)))
    }
}

fn create_pool(mut config: tokio_postgres::Config) -> Result<Pool, String> {
    config.connect_timeout(CONNECT_TIMEOUT);
    // Spin's recycling: each checkout resets what the last guest left in the
    // session (settings, temporary tables, advisory locks).
    let mgr_config = ManagerConfig {
        recycling_method: RecyclingMethod::Clean,
    };
    let manager = if config.get_ssl_mode() == SslMode::Disable {
        Manager::from_config(config, tokio_postgres::NoTls, mgr_config)
    } else {
        Manager::from_config(config, village_migrate::tls::connector()?, mgr_config)
    };
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .wait_timeout(Some(CONNECT_TIMEOUT * 2))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| format!("{e}"))
}

/// Parses a guest's address and checks it against the component's
/// allow-list, with Spin's errors.
// The error is the WIT value handed straight to the guest: boxing it would
// only be undone at the call site.
#[allow(clippy::result_large_err)]
fn parse_address(
    address: &str,
    allow_list: &AllowList,
) -> Result<tokio_postgres::Config, pg::Error> {
    let config: tokio_postgres::Config = address
        .parse()
        .map_err(|e: tokio_postgres::Error| pg::Error::ConnectionFailed(e.to_string()))?;
    // `hostaddr` makes the client connect to an address no host name
    // shows: the allow-list could not see where it goes. Spin does not check
    // it at all (a hole, not a behaviour to copy): refused here.
    if !config.get_hostaddrs().is_empty() {
        return Err(pg::Error::ConnectionFailed(
            "hostaddr is not permitted: name the host in `host`".into(),
        ));
    }
    let ports = config.get_ports();
    for (i, host) in config.get_hosts().iter().enumerate() {
        match host {
            Host::Tcp(name) => {
                // The client pairs hosts with ports by position and uses a
                // single port for every host; that is the port checked.
                let port = ports.get(i).or(ports.first()).copied();
                if !allow_list.allows("postgres", name, Some(port.unwrap_or(5432))) {
                    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                    return Err(pg::Error::ConnectionFailed(format!(
                        "address postgres://{name}{port} is not permitted"
                    )));
                }
            }
            Host::Unix(_) => {
                return Err(pg::Error::ConnectionFailed(
                    "Unix sockets are not supported on WebAssembly".into(),
                ));
            }
        }
    }
    Ok(config)
}

/// A guest's connection: one pooled client.
pub struct PgConnection {
    client: Option<deadpool_postgres::Object>,
    in_transaction: bool,
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        if self.in_transaction
            && let Some(client) = self.client.take()
        {
            // Detach from the pool and close: its transaction dies with it.
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

impl PgConnection {
    fn track_transaction(&mut self, statement: &str) {
        let head: String = statement
            .trim_start()
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_uppercase();
        if head.starts_with("BEGIN") || head.starts_with("START") {
            self.in_transaction = true;
        } else if head.starts_with("COMMIT")
            || head.starts_with("ROLLBACK")
            || head.starts_with("END")
        {
            self.in_transaction = false;
        }
    }
}

/// Which call a parameter error surfaces in: Spin reports an invalid value
/// as `bad-parameter` from `query` and `value-conversion-failed` from
/// `execute`.
#[derive(Clone, Copy)]
enum Call {
    Query,
    Execute,
}

type Params = Vec<Box<dyn ToSql + Send + Sync>>;

/// Converts the guest's parameters; `Err(Err(trap))` where Spin's host panics.
fn params(call: Call, values: Vec<ParameterValue>) -> Result<Result<Params, pg::Error>, String> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        match postgres_types::to_sql_parameter(v) {
            Ok(p) => out.push(p),
            Err(ParamError::Invalid(text)) => {
                return Ok(Err(match call {
                    Call::Query => pg::Error::BadParameter(text),
                    Call::Execute => pg::Error::ValueConversionFailed(text),
                }));
            }
            Err(ParamError::Trap(why)) => return Err(why),
        }
    }
    Ok(Ok(out))
}

fn refs(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

impl PgConnection {
    #[allow(clippy::result_large_err)] // the guest's WIT error, as above
    fn client(&mut self, statement: &str) -> Result<&deadpool_postgres::Object, pg::Error> {
        self.track_transaction(statement);
        self.client
            .as_ref()
            .ok_or_else(|| pg::Error::ConnectionFailed("connection closed".into()))
    }
}

/// What `query` and `execute` both start with: the guest's parameters
/// converted, its pooled client, and the statement prepared once per pooled
/// connection (Spin prepares on every call: the same types are inferred,
/// one round trip fewer).
#[allow(clippy::result_large_err, clippy::type_complexity)] // the guest's WIT error
async fn prepare<'a>(
    state: &'a mut InstanceState,
    conn: &Resource<PgConnection>,
    call: Call,
    statement: &str,
    params: Vec<ParameterValue>,
) -> wasmtime::Result<
    Result<
        (
            &'a deadpool_postgres::Object,
            tokio_postgres::Statement,
            Params,
        ),
        pg::Error,
    >,
> {
    let params = match self::params(call, params).map_err(wasmtime::Error::msg)? {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let client = match state.table.get_mut(conn)?.client(statement) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    Ok(match client.prepare_cached(statement).await {
        Ok(stmt) => Ok((client, stmt, params)),
        Err(e) => Err(query_error(&e)),
    })
}

impl pg::Host for InstanceState {}

impl pg::HostConnection for InstanceState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, pg::Error>> {
        let config = match parse_address(&address, &self.component.allow_list) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(component = %self.component.id, "postgres connection refused: {e:?}");
                return Ok(Err(e));
            }
        };
        match self.shared.pg.get(&address, config).await {
            Ok(client) => Ok(Ok(self.table.push(PgConnection {
                client: Some(client),
                in_transaction: false,
            })?)),
            Err(e) => Ok(Err(pg::Error::ConnectionFailed(
                self.shared.variables.redact(&e),
            ))),
        }
    }

    async fn query(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, pg::Error>> {
        let (client, stmt, params) =
            match prepare(self, &conn, Call::Query, &statement, params).await? {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
        let rows = match client.query(&stmt, &refs(&params)).await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(query_error(&e))),
        };
        Ok(match postgres_types::rows(&rows) {
            Ok(values) => Ok(RowSet {
                columns: postgres_types::columns(&rows),
                rows: values,
            }),
            Err(text) => Err(pg::Error::QueryFailed(QueryError::Text(text))),
        })
    }

    async fn execute(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, pg::Error>> {
        let (client, stmt, params) =
            match prepare(self, &conn, Call::Execute, &statement, params).await? {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
        let done = client.execute(&stmt, &refs(&params)).await;
        Ok(done.map_err(|e| query_error(&e)))
    }

    async fn drop(&mut self, conn: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

/// A failed statement as Spin reports it: the driver's error in its Debug
/// form, and for a server error the structured fields, extras in Spin's
/// order (`where_` spelled as Spin spells it).
fn query_error(e: &tokio_postgres::Error) -> pg::Error {
    let as_text = format!("{e:?}");
    match e.as_db_error() {
        Some(db) => {
            let line = db.line().map(|l| l.to_string());
            let extras = [
                ("column", db.column()),
                ("constraint", db.constraint()),
                ("routine", db.routine()),
                ("hint", db.hint()),
                ("table", db.table()),
                ("datatype", db.datatype()),
                ("schema", db.schema()),
                ("file", db.file()),
                ("line", line.as_deref()),
                ("where_", db.where_()),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
            .collect();
            pg::Error::QueryFailed(QueryError::DbError(DbError {
                as_text,
                severity: db.severity().to_owned(),
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
                detail: db.detail().map(str::to_owned),
                extras,
            }))
        }
        None => pg::Error::QueryFailed(QueryError::Text(as_text)),
    }
}
