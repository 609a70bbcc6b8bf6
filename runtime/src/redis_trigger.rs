//! The Redis trigger: subscribes to every `[[trigger.redis]]` channel and runs
//! the component once per message, as Spin 3.6.3's trigger does
//! (`crates/trigger-redis`):
//!
//! - one connection per address, made at start-up: an unreachable Redis
//!   stops the application from starting ("Redis trigger failed to connect
//!   to …");
//! - no reconnection: when a subscription ends (Redis restarted or killed)
//!   the trigger fails with "disconnected from …", and the application stops
//!   (`village up` exits non-zero, as `spin up` does when a trigger exits);
//!   the platform restarts it. Messages published meanwhile are lost, which
//!   is why the job system never relies on a wake-up alone;
//! - one message at a time per connection, each component subscribed to its
//!   channel run concurrently in a fresh instance; a failing or trapping
//!   component is logged and the next message is handled.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use tokio::sync::watch;

use crate::app::App;

/// One address's subscription, connected.
pub struct Subscriber {
    address: String,
    channels: BTreeMap<String, Vec<String>>,
    pubsub: redis::aio::PubSub,
}

/// Connects to every address and subscribes to its channels; fails as
/// Spin's trigger does when one cannot be reached.
pub async fn connect(app: &Arc<App>) -> anyhow::Result<Vec<Subscriber>> {
    let app_address = app
        .manifest
        .application
        .trigger
        .redis
        .as_ref()
        .map(|r| r.address.clone());
    // address -> channel -> components
    let mut subscriptions: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for t in &app.manifest.trigger.redis {
        if !app.components.contains_key(&t.component) {
            continue;
        }
        let template = t
            .address
            .clone()
            .or_else(|| app_address.clone())
            .with_context(|| format!("redis trigger for `{}` has no address", t.component))?;
        let address = app.shared.variables.render(&template).map_err(|e| {
            anyhow::anyhow!(
                "failed to resolve redis trigger address {template:?} for component {}: {e}",
                t.component
            )
        })?;
        // Spin renders application variables in both `address` and `channel`.
        let channel = app.shared.variables.render(&t.channel).map_err(|e| {
            anyhow::anyhow!(
                "failed to resolve redis trigger channel {:?}: {e}",
                t.channel
            )
        })?;
        subscriptions
            .entry(address)
            .or_default()
            .entry(channel)
            .or_default()
            .push(t.component.clone());
    }
    let mut subscribers = Vec::new();
    for (address, channels) in subscriptions {
        let shown = app.shared.variables.redact(&address);
        let client = redis::Client::open(address.as_str())
            .with_context(|| format!("invalid redis trigger address {shown}"))?;
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .with_context(|| format!("Redis trigger failed to connect to {shown}"))?;
        for channel in channels.keys() {
            pubsub.subscribe(channel).await.with_context(|| {
                format!("Redis trigger failed to subscribe to channel {channel:?} on {shown}")
            })?;
        }
        tracing::info!(
            "redis trigger: subscribed to {:?} on {shown}",
            channels.keys().collect::<Vec<_>>()
        );
        subscribers.push(Subscriber {
            address,
            channels,
            pubsub,
        });
    }
    Ok(subscribers)
}

/// Delivers messages until `shutdown` turns true (`Ok`) or a subscription
/// ends (`Err`: the application must stop, as under Spin).
pub async fn run(
    app: Arc<App>,
    subscribers: Vec<Subscriber>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if subscribers.is_empty() {
        return Ok(());
    }
    let listeners = subscribers
        .into_iter()
        .map(|s| Box::pin(listen(app.clone(), s, shutdown.clone())));
    let (first, _, _rest) = futures::future::select_all(listeners).await;
    first
}

async fn listen(
    app: Arc<App>,
    subscriber: Subscriber,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Subscriber {
        address,
        channels,
        mut pubsub,
    } = subscriber;
    let shown = app.shared.variables.redact(&address);
    let mut messages = pubsub.on_message();
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else {
                    anyhow::bail!("disconnected from {shown}");
                };
                let channel = msg.get_channel_name().to_owned();
                let payload: Vec<u8> = msg.get_payload_bytes().to_vec();
                let runs = channels.get(&channel).into_iter().flatten().map(|component| {
                    let app = app.clone();
                    let payload = payload.clone();
                    async move {
                        if let Err(e) = app.invoke_redis(component, payload).await {
                            tracing::error!(component = %component, "{}", app.shared.variables.redact(&format!("{e:#}")));
                        }
                    }
                });
                // One message at a time per connection, as Spin's trigger.
                futures::future::join_all(runs).await;
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}
