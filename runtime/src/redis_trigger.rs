//! The Redis trigger: subscribes to every `[[trigger.redis]]` channel and runs
//! the component once per message. A lost subscription is re-established
//! with backoff; messages published while it was down are lost, as in Spin
//! (which is why the job system never relies on a wake-up alone).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use crate::app::App;

/// Subscribes per address; returns when `shutdown` turns true.
pub async fn run(app: Arc<App>, shutdown: watch::Receiver<bool>) {
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
        let Some(template) = t.address.clone().or_else(|| app_address.clone()) else {
            continue; // validation guarantees an address; nothing to do without one
        };
        let address = match app.shared.variables.render(&template) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("redis trigger for `{}`: {e}", t.component);
                continue;
            }
        };
        // Spin renders application variables in both `address` and `channel`.
        let channel = match app.shared.variables.render(&t.channel) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("redis trigger for `{}`: {e}", t.component);
                continue;
            }
        };
        subscriptions
            .entry(address)
            .or_default()
            .entry(channel)
            .or_default()
            .push(t.component.clone());
    }
    let tasks: Vec<_> = subscriptions
        .into_iter()
        .map(|(address, channels)| {
            tokio::spawn(subscribe_loop(
                app.clone(),
                address,
                channels,
                shutdown.clone(),
            ))
        })
        .collect();
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!("redis trigger task failed: {e}");
        }
    }
}

async fn subscribe_loop(
    app: Arc<App>,
    address: String,
    channels: BTreeMap<String, Vec<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        match subscribe_once(&app, &address, &channels, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                let shown = app.shared.variables.redact(&e.to_string());
                tracing::warn!("redis trigger: {shown}; retrying in {backoff:?}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn subscribe_once(
    app: &Arc<App>,
    address: &str,
    channels: &BTreeMap<String, Vec<String>>,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = redis::Client::open(address)?;
    let mut pubsub = client.get_async_pubsub().await?;
    for channel in channels.keys() {
        pubsub.subscribe(channel).await?;
    }
    tracing::info!(
        "redis trigger: subscribed to {:?}",
        channels.keys().collect::<Vec<_>>()
    );
    let mut messages = pubsub.on_message();
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else { anyhow::bail!("subscription closed") };
                let channel = msg.get_channel_name().to_owned();
                let payload: Vec<u8> = msg.get_payload_bytes().to_vec();
                for component in channels.get(&channel).into_iter().flatten() {
                    let app = app.clone();
                    let component = component.clone();
                    let payload = payload.clone();
                    tokio::spawn(async move {
                        if let Err(e) = app.invoke_redis(&component, payload).await {
                            tracing::error!(component = %component, "{}", app.shared.variables.redact(&format!("{e:#}")));
                        }
                    });
                }
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}
