//! The loaded application: one engine, every component compiled and
//! pre-instantiated once, and a fresh store per request or event.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body;
use wasmtime::component::{HasSelf, InstancePre, Linker, ResourceTable};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::allowed_hosts::AllowList;
use crate::bindings::cron_handler::{CronHandlerPre, fermyon::spin_cron::cron_types::Metadata};
use crate::bindings::redis_handler::RedisHandlerPre;
use crate::bindings::spin_host::SpinHost;
use crate::files;
use crate::host::outbound_http::OutboundHooks;
use crate::manifest::{Manifest, RouteSetting};
use crate::routes::{RoutePattern, Router};
use crate::state::{ComponentConfig, InstanceState, Shared};
use crate::variables::Variables;

/// How often the epoch advances; the unit of the execution time limit.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Bytes of each pooled memory, table and async stack kept resident between
/// instances (see `build_engine`).
const KEEP_RESIDENT_MEMORY: usize = 512 << 10;
const KEEP_RESIDENT_TABLE: usize = 64 << 10;
const KEEP_RESIDENT_STACK: usize = 64 << 10;
/// What a guest may print per call before output is dropped.
const OUTPUT_CAPACITY: usize = 1 << 20;

/// Looks up a process environment variable (injectable for tests).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Everything `village up` (or a test) can set.
#[derive(Clone)]
pub struct Options {
    pub manifest: PathBuf,
    /// Run only these components (and the triggers that name them); empty: all.
    pub components: Vec<String>,
    /// `--variable NAME=VALUE`.
    pub variables: BTreeMap<String, String>,
    /// `-e/--env KEY=VALUE`, passed to every component's environment.
    pub env: Vec<(String, String)>,
    /// Linear memory a single instance may grow to.
    pub max_instance_memory: usize,
    /// Wall-clock budget of one request or event.
    pub timeout: Duration,
    /// Largest request body accepted.
    pub max_request_body: usize,
    /// Instances that may be alive at once (the pool's size).
    pub max_concurrent_instances: u32,
    /// Looks up `SPIN_VARIABLE_*`; the process environment by default.
    pub env_lookup: EnvLookup,
    /// How long a client may take to send a request's head (and how long
    /// an idle keep-alive connection is kept).
    pub header_read_timeout: Duration,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// `[outbound_networking] block_networks` from `--runtime-config-file`.
    pub blocked_networks: crate::blocked_networks::BlockedNetworks,
}

impl Options {
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        Self {
            manifest: manifest.into(),
            components: Vec::new(),
            variables: BTreeMap::new(),
            env: Vec::new(),
            max_instance_memory: 128 << 20,
            timeout: Duration::from_secs(30),
            max_request_body: 10 << 20,
            max_concurrent_instances: 200,
            env_lookup: Arc::new(|k| std::env::var(k).ok()),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            blocked_networks: Default::default(),
        }
    }
}

/// A component ready to run: its pre-instantiation and typed entry points.
pub struct Loaded {
    pub config: Arc<ComponentConfig>,
    pub proxy: Option<ProxyPre<InstanceState>>,
    pub redis: Option<RedisHandlerPre<InstanceState>>,
    pub cron: Option<CronHandlerPre<InstanceState>>,
}

/// One HTTP route, for start-up printing and for service chaining.
#[derive(Debug, Clone)]
pub struct HttpRoute {
    pub component: String,
    pub pattern: Option<RoutePattern>,
}

pub struct App {
    pub engine: Engine,
    pub manifest: Manifest,
    pub manifest_dir: PathBuf,
    pub options: Options,
    pub shared: Arc<Shared>,
    pub components: HashMap<String, Loaded>,
    pub router: Router,
    pub http_routes: Vec<HttpRoute>,
    _files: Option<files::Staging>,
}

/// Whether a guest socket may use `addr`, as Spin decides: never a TCP
/// listener; a TCP connection when `tcp://addr` is allowed; UDP traffic
/// when `udp://addr` is. wasmtime 48 also asks before the implicit bind a
/// connect or send performs (the wildcard address, port 0): that bind is
/// allowed, any other is not.
fn socket_allowed(
    allow: &AllowList,
    addr: SocketAddr,
    used: wasmtime_wasi::sockets::SocketAddrUse,
) -> bool {
    use wasmtime_wasi::sockets::SocketAddrUse;
    let implicit_bind = addr.ip().is_unspecified() && addr.port() == 0;
    let scheme = match used {
        SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => return implicit_bind,
        SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => return false,
        SocketAddrUse::TcpConnect => "tcp",
        SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => "udp",
    };
    allow.allows(scheme, &addr.ip().to_string(), Some(addr.port()))
}

impl App {
    /// Loads the manifest, resolves variables, compiles and links components.
    pub async fn load(options: Options) -> anyhow::Result<Arc<App>> {
        let manifest_path = resolve_manifest_path(&options.manifest)?;
        let manifest = Manifest::load(&manifest_path)?;
        let manifest_dir = manifest_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let variables =
            Variables::resolve(&manifest, &options.variables, |k| (options.env_lookup)(k))?;
        crate::compiled::prune();

        for id in &options.components {
            if !manifest.component.contains_key(id) {
                bail!(
                    "--component-id {id}: no component `{id}` in {}",
                    manifest_path.display()
                );
            }
        }
        let selected =
            |id: &str| options.components.is_empty() || options.components.iter().any(|c| c == id);

        let engine = build_engine(&options)?;
        let mut linker: Linker<InstanceState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        SpinHost::add_to_linker::<InstanceState, HasSelf<InstanceState>>(&mut linker, |s| s)?;

        let http_components: Vec<&str> = manifest
            .trigger
            .http
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        let redis_components: Vec<&str> = manifest
            .trigger
            .redis
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        let cron_components: Vec<&str> = manifest
            .trigger
            .cron
            .iter()
            .map(|t| t.component.as_str())
            .collect();

        let staging = files::Staging::new()?;
        let mut components = HashMap::new();
        let triggered = manifest.triggered_components();
        for (id, def) in &manifest.component {
            if !selected(id) || !triggered.contains(id.as_str()) {
                continue;
            }
            let at = |what: &str| format!("component `{id}`: {what}");
            let allowed: Vec<String> = def
                .allowed_outbound_hosts
                .iter()
                .map(|t| variables.render(t))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow!(at(&format!("allowed_outbound_hosts: {e}"))))?;
            let allow_list = AllowList::parse(allowed.iter().map(String::as_str))
                .map_err(|e| anyhow!(at(&format!("allowed_outbound_hosts: {e}"))))?;
            let component_vars = def
                .variables
                .iter()
                .map(|(k, t)| variables.render(t).map(|v| (k.clone(), v)))
                .collect::<Result<BTreeMap<_, _>, _>>()
                .map_err(|e| anyhow!(at(&format!("variables: {e}"))))?;
            let mut environment: Vec<(String, String)> = def
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            environment.extend(options.env.iter().cloned());
            let mounts = staging
                .mount(id, &manifest_dir, &def.files, &def.exclude_files)
                .with_context(|| at("failed to prepare `files`"))?;

            let source = def.source_path(&manifest_dir);
            let component = crate::compiled::load(&engine, &source).with_context(|| {
                at(&format!(
                    "failed to load {} (run `village build` or the README's build step)",
                    source.display()
                ))
            })?;
            let pre: InstancePre<InstanceState> =
                linker.instantiate_pre(&component).map_err(|e| {
                    anyhow!(at(&format!(
                        "imports something this runtime does not provide: {e:#}"
                    )))
                })?;
            let proxy = if http_components.contains(&id.as_str()) {
                Some(ProxyPre::new(pre.clone()).map_err(|e| {
                    anyhow!(at(&format!(
                        "has an HTTP trigger but does not export wasi:http/incoming-handler: {e:#}"
                    )))
                })?)
            } else {
                None
            };
            let redis = if redis_components.contains(&id.as_str()) {
                Some(RedisHandlerPre::new(pre.clone()).map_err(|e| {
                    anyhow!(at(&format!(
                        "has a Redis trigger but does not export fermyon:spin/inbound-redis: {e:#}"
                    )))
                })?)
            } else {
                None
            };
            let cron = if cron_components.contains(&id.as_str()) {
                Some(CronHandlerPre::new(pre.clone()).map_err(|e| {
                    anyhow!(at(&format!(
                        "has a cron trigger but does not export handle-cron-event: {e:#}"
                    )))
                })?)
            } else {
                None
            };
            let config = Arc::new(ComponentConfig {
                id: id.clone(),
                allow_list,
                variables: component_vars,
                environment,
                mounts,
                key_value_stores: def.key_value_stores.clone(),
                sqlite_databases: def.sqlite_databases.clone(),
            });
            components.insert(
                id.clone(),
                Loaded {
                    config,
                    proxy,
                    redis,
                    cron,
                },
            );
        }

        let mut routes = Vec::new();
        let mut http_routes = Vec::new();
        for t in &manifest.trigger.http {
            if !components.contains_key(&t.component) {
                continue;
            }
            match &t.route {
                RouteSetting::Path(p) => {
                    let pattern = RoutePattern::parse(p).map_err(|e| anyhow!(e))?;
                    routes.push((pattern.clone(), t.component.clone()));
                    http_routes.push(HttpRoute {
                        component: t.component.clone(),
                        pattern: Some(pattern),
                    });
                }
                RouteSetting::Private(_) => {
                    http_routes.push(HttpRoute {
                        component: t.component.clone(),
                        pattern: None,
                    });
                }
            }
        }
        let router = Router::new(routes).map_err(|e| anyhow!(e))?;
        // Spin 3 no longer serves under a base path: it refuses any `base`
        // but `/` (the field is deprecated), and so does `village`.
        if let Some(base) = manifest
            .application
            .trigger
            .http
            .as_ref()
            .and_then(|h| h.base.as_deref())
            .filter(|b| *b != "/")
        {
            bail!(
                "[application.trigger.http] base = {base:?}: the deprecated `base` field may only be \"/\" (Spin 3 refuses any other); put the prefix in each route instead"
            );
        }

        let shared = Arc::new(Shared {
            variables,
            pg: Default::default(),
            redis: Default::default(),
            state_dir: manifest_dir.join(".spin"),
            key_value: crate::host::key_value::KvStores::new(manifest_dir.join(".spin")),
            app: OnceLock::new(),
            blocked_networks: options.blocked_networks.clone(),
        });
        let app = Arc::new(App {
            engine,
            manifest,
            manifest_dir,
            options,
            shared: shared.clone(),
            components,
            router,
            http_routes,
            _files: Some(staging),
        });
        // Set exactly once, right here; the cell cannot already be full.
        if shared.app.set(Arc::downgrade(&app)).is_err() {
            bail!("application back-reference was set twice");
        }
        spawn_epoch_ticker(&app.engine);
        Ok(app)
    }

    fn component(&self, id: &str) -> anyhow::Result<&Loaded> {
        self.components
            .get(id)
            .ok_or_else(|| anyhow!("no component `{id}` is running"))
    }

    /// A fresh store for one call: WASI context, limits, deadline.
    fn new_store(&self, loaded: &Loaded) -> anyhow::Result<Store<InstanceState>> {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(&loaded.config.environment)
            // As Spin: sockets reach only what `allowed_outbound_hosts`
            // allows (`tcp://`, `udp://` destinations), nothing may listen
            // on TCP, and names cannot be resolved from the guest.
            .allow_ip_name_lookup(false)
            .allow_tcp(true)
            .allow_udp(true)
            .socket_addr_check({
                // The component's shared config, not a copy of its list:
                // this runs for every instance.
                let config = loaded.config.clone();
                let blocked = self.shared.blocked_networks.clone();
                move |addr, used| {
                    let allowed = socket_allowed(&config.allow_list, addr, used)
                        && (addr.ip().is_unspecified() || !blocked.is_blocked(addr.ip()));
                    Box::pin(async move { allowed })
                }
            });
        for (host, guest) in &loaded.config.mounts {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("failed to mount {}", host.display()))?;
        }
        let state = InstanceState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHooks {
                component: loaded.config.clone(),
                shared: self.shared.clone(),
            },
            limits: StoreLimitsBuilder::new()
                .memory_size(self.options.max_instance_memory)
                .instances(64)
                .build(),
            component: loaded.config.clone(),
            shared: self.shared.clone(),
            stdout,
            stderr,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let ticks = (self.options.timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        Ok(store)
    }

    /// Runs an HTTP component for a request whose Spin headers are already set.
    pub async fn invoke_http<B>(
        &self,
        component: &str,
        request: http::Request<B>,
    ) -> anyhow::Result<http::Response<HyperOutgoingBody>>
    where
        B: Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static,
    {
        let loaded = self.component(component)?;
        let pre = loaded
            .proxy
            .clone()
            .ok_or_else(|| anyhow!("component `{component}` has no HTTP trigger"))?;
        let mut store = self.new_store(loaded)?;
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let out = store.data_mut().http().new_response_outparam(tx)?;
        let id = component.to_owned();
        let task = tokio::spawn(async move {
            let result = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            }
            .await;
            flush_output(&id, store.data());
            if let Err(e) = &result {
                tracing::error!(component = %id, "request failed: {}", store.data().shared.variables.redact(&format!("{e:?}")));
            }
            result
        });
        match rx.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(anyhow!(
                "component `{component}` answered with error {code:?}"
            )),
            Err(_) => match task.await {
                Ok(Ok(())) => Err(anyhow!(
                    "component `{component}` returned without setting a response"
                )),
                Ok(Err(e)) => {
                    Err(anyhow::Error::from(e).context(format!("component `{component}` failed")))
                }
                Err(join) => Err(anyhow!("component `{component}` task failed: {join}")),
            },
        }
    }

    /// Runs a Redis-triggered component for one message.
    pub async fn invoke_redis(&self, component: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        let loaded = self.component(component)?;
        let pre = loaded
            .redis
            .clone()
            .ok_or_else(|| anyhow!("component `{component}` has no Redis trigger"))?;
        let mut store = self.new_store(loaded)?;
        let result = async {
            let handler = pre.instantiate_async(&mut store).await?;
            handler
                .fermyon_spin_inbound_redis()
                .call_handle_message(&mut store, &payload)
                .await?
                .map_err(|e| anyhow!("handler returned {e:?}"))
        }
        .await;
        flush_output(component, store.data());
        result.with_context(|| format!("component `{component}` failed to handle a Redis message"))
    }

    /// Runs a cron component for one scheduled instant (seconds since epoch).
    pub async fn invoke_cron(&self, component: &str, timestamp: u64) -> anyhow::Result<()> {
        let loaded = self.component(component)?;
        let pre = loaded
            .cron
            .clone()
            .ok_or_else(|| anyhow!("component `{component}` has no cron trigger"))?;
        let mut store = self.new_store(loaded)?;
        let result = async {
            let handler = pre.instantiate_async(&mut store).await?;
            handler
                .call_handle_cron_event(&mut store, Metadata { timestamp })
                .await?
                .map_err(|e| anyhow!("handler returned {e:?}"))
        }
        .await;
        flush_output(component, store.data());
        result.with_context(|| format!("component `{component}` failed to handle a cron event"))
    }

    /// Service chaining: a request to `http://<id>.spin.internal/…`.
    pub async fn chain(
        &self,
        component: &str,
        mut request: http::Request<wasmtime_wasi_http::WasiBody>,
    ) -> anyhow::Result<http::Response<HyperOutgoingBody>> {
        if !self.http_routes.iter().any(|r| r.component == component) {
            bail!("no HTTP component `{component}` to chain to");
        }
        let path = request.uri().path().to_owned();
        // Spin routes a chained request as if by a synthetic `/...` route:
        // the whole path is its path info, from no client, for `localhost`.
        let synthetic = RoutePattern::parse("/...").map_err(|e| anyhow!(e))?;
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let matched = crate::routes::RouteMatch {
            params: Vec::new(),
            path_info: path,
        };
        let client: SocketAddr = ([0, 0, 0, 0], 0).into();
        let full_url = format!("http://localhost{path_and_query}");
        crate::http_trigger::set_spin_headers(
            request.headers_mut(),
            &crate::http_trigger::SpinHeaders {
                full_url: &full_url,
                pattern: Some(&synthetic),
                matched: Some(&matched),
                client,
            },
        );
        self.invoke_http(component, request).await
    }

    /// Creates a store and instantiates an HTTP component without calling it;
    /// returns how long instantiation took. For benchmarks and diagnostics.
    pub async fn time_instantiation(&self, component: &str) -> anyhow::Result<Duration> {
        let loaded = self.component(component)?;
        let pre = loaded
            .proxy
            .clone()
            .ok_or_else(|| anyhow!("component `{component}` has no HTTP trigger"))?;
        let started = std::time::Instant::now();
        let mut store = self.new_store(loaded)?;
        pre.instantiate_async(&mut store).await?;
        Ok(started.elapsed())
    }

    /// The time budget given to a request or event.
    pub fn timeout(&self) -> Duration {
        self.options.timeout
    }
}

fn resolve_manifest_path(path: &Path) -> anyhow::Result<PathBuf> {
    let p = if path.is_dir() {
        path.join("spin.toml")
    } else {
        path.to_path_buf()
    };
    if !p.exists() {
        bail!("no manifest at {}", p.display());
    }
    Ok(p)
}

fn build_engine(options: &Options) -> anyhow::Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    let n = options.max_concurrent_instances;
    let mut pool = PoolingAllocationConfig::default();
    // A component is several core instances (the program, libc shims) with
    // usually one memory; size the pool so `n` requests can run at once.
    pool.total_component_instances(n)
        .total_core_instances(n * 8)
        .total_memories(n * 2)
        .total_tables(n * 8)
        .total_stacks(n)
        .max_memories_per_component(4)
        .max_memory_size(options.max_instance_memory)
        // Reset the first pages of each slot with memset instead of madvise:
        // on a small VM, madvise's TLB shootdowns cost more than zeroing the
        // few hundred KiB a request touches (with the components' 256 KiB
        // stack, see .cargo/config.toml). Measured with village-bench.
        // With Linux's PAGEMAP_SCAN (6.7+; `Auto` falls back without it)
        // only the pages an instance actually dirtied are reset: another
        // ~8 % of throughput on this machine.
        .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
        .table_keep_resident(KEEP_RESIDENT_TABLE)
        .async_stack_keep_resident(KEEP_RESIDENT_STACK)
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("failed to create the wasmtime engine")
}

/// Advances the epoch so deadlines fire; ends when the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("village-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
        .unwrap_or_else(|e| {
            tracing::error!("failed to start the epoch ticker, time limits are off: {e}")
        });
}

/// Writes what the guest printed, each line prefixed with the component id.
fn flush_output(component: &str, state: &InstanceState) {
    let vars = &state.shared.variables;
    for (pipe, is_err) in [(&state.stdout, false), (&state.stderr, true)] {
        let contents = pipe.contents();
        if contents.is_empty() {
            continue;
        }
        let text = vars.redact(&String::from_utf8_lossy(&contents));
        for line in text.lines() {
            if is_err {
                eprintln!("[{component}] {line}");
            } else {
                println!("[{component}] {line}");
            }
        }
    }
}

/// Collects a response body; for tests and service callers that want bytes.
pub async fn collect_body(body: HyperOutgoingBody) -> anyhow::Result<Bytes> {
    Ok(body.collect().await.map_err(|e| anyhow!("{e}"))?.to_bytes())
}
