//! What every instance's `Store` holds, and what all instances share.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::allowed_hosts::AllowList;
use crate::app::App;
use crate::host::outbound_http::OutboundHooks;
use crate::host::postgres::PgPools;
use crate::host::redis::RedisClients;
use crate::variables::Variables;

/// A component's configuration as resolved at start-up.
#[derive(Debug)]
pub struct ComponentConfig {
    pub id: String,
    pub allow_list: AllowList,
    /// Component variables, rendered from their templates.
    pub variables: BTreeMap<String, String>,
    pub environment: Vec<(String, String)>,
    /// `(host directory, guest path)` mounted read-only.
    pub mounts: Vec<(PathBuf, String)>,
    /// The key-value stores and SQLite databases it may open.
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
}

/// State shared by every instance of the application.
pub struct Shared {
    pub variables: Variables,
    pub pg: PgPools,
    pub redis: RedisClients,
    /// Spin's state folder for the app (`<manifest folder>/.spin`): the
    /// default key-value store and SQLite database live there.
    pub state_dir: PathBuf,
    pub key_value: crate::host::key_value::KvStores,
    /// The application itself, for `*.spin.internal` service chaining. Set
    /// once the app is built; weak so the app can be dropped.
    pub app: OnceLock<Weak<App>>,
    /// Networks no outbound connection may reach (runtime config).
    pub blocked_networks: crate::blocked_networks::BlockedNetworks,
}

/// The data of one instance's `Store`: a fresh one per request or event.
pub struct InstanceState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub hooks: OutboundHooks,
    pub limits: StoreLimits,
    pub component: Arc<ComponentConfig>,
    pub shared: Arc<Shared>,
    /// The guest's stdout and stderr, written to the log when the call ends.
    pub stdout: MemoryOutputPipe,
    pub stderr: MemoryOutputPipe,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
