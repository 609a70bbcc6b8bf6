//! `village-runtime`: a Spin-compatible local runtime.
//!
//! It loads a Spin manifest (version 2) and runs the same `.wasm` components
//! that production runs under Spin 3.x / SpinKube: HTTP, Redis and cron
//! triggers; WASI 0.2, outbound `wasi:http`, Spin Postgres 4, Redis and
//! variables as host interfaces. [`start`] is the one start-up path, used by
//! the `village` binary and by in-process tests alike.

pub mod allowed_hosts;
pub mod app;
pub mod bindings;
pub mod blocked_networks;
pub mod build;
pub mod compiled;
pub mod cron_trigger;
pub mod files;
pub mod host;
pub mod http_trigger;
pub mod manifest;
pub mod redis_trigger;
pub mod routes;
pub mod state;
pub mod variables;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use app::{App, Options};

/// A running application: its address, and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
    /// Set when a trigger stops on its own (a Redis subscription lost): the
    /// application must then stop, as `spin up` does.
    failed: watch::Receiver<Option<String>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits until a trigger fails on its own; returns why.
    pub async fn trigger_failure(&mut self) -> String {
        loop {
            if let Some(why) = self.failed.borrow().clone() {
                return why;
            }
            if self.failed.changed().await.is_err() {
                // Every trigger ended without failing: nothing will fail now.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stops accepting, lets in-flight requests finish, stops the triggers.
    pub async fn stop(self) {
        // Receivers live in the tasks; if they are gone there is nothing to stop.
        if self.shutdown.send(true).is_err() {
            tracing::debug!("triggers had already stopped");
        }
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::error!("trigger task failed while stopping: {e}");
            }
        }
    }
}

/// Loads the application and starts its triggers; HTTP listens on `listen`
/// (port 0 picks a free port, see [`Running::addr`]).
pub async fn start(options: Options, listen: SocketAddr) -> anyhow::Result<Running> {
    let app = App::load(options).await?;
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let has_http = app.components.values().any(|c| c.proxy.is_some());
    let addr = if has_http {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("failed to listen on {listen}"))?;
        let addr = listener.local_addr()?;
        tasks.push(tokio::spawn(http_trigger::serve(
            app.clone(),
            listener,
            rx.clone(),
        )));
        addr
    } else {
        listen
    };
    let (fail, failed) = watch::channel(None);
    if app.components.values().any(|c| c.redis.is_some()) {
        let subscribers = redis_trigger::connect(&app).await?;
        let (app, rx) = (app.clone(), rx.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = redis_trigger::run(app, subscribers, rx).await {
                tracing::error!("redis trigger: {e:#}");
                fail.send_replace(Some(format!("{e:#}")));
            }
        }));
    }
    if app.components.values().any(|c| c.cron.is_some()) {
        tasks.push(tokio::spawn(cron_trigger::run(app.clone(), rx)));
    }
    Ok(Running {
        addr,
        app,
        shutdown,
        failed,
        tasks,
    })
}

/// The lines `village up` prints, as `spin up` does: where each route is served.
pub fn describe_routes(app: &App, addr: SocketAddr) -> Vec<String> {
    let mut lines = Vec::new();
    for route in &app.http_routes {
        match &route.pattern {
            Some(p) => lines.push(format!("  {}: http://{addr}{}", route.component, p.raw())),
            None => lines.push(format!(
                "  {}: (private: reachable as http://{}.spin.internal)",
                route.component, route.component
            )),
        }
    }
    lines
}
