//! `fermyon:spin/mqtt@2.0.0` with `rumqttc` (the MQTT client Spin uses), as
//! Spin 3.6.3 provides it: the address is an `mqtt://host:port?client_id=…`
//! URL the component's `allowed_outbound_hosts` must allow (else
//! `connection-failed("address … is not permitted")`, Spin's words); an
//! unparsable one is `invalid-address`. The broker is reached when the guest
//! first publishes; `publish` returns once the broker has the message as
//! the QoS asks (sent for at-most-once, `PUBACK` for at-least-once,
//! `PUBCOMP` for exactly-once), or with `connection-failed` — bounded here
//! by [`PUBLISH_TIMEOUT`] where Spin waits without limit.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS};
use tokio::sync::Mutex;
use wasmtime::component::Resource;

use crate::bindings::spin_host::fermyon::spin2_0_0::mqtt::{self as mqtt, Error, Payload, Qos};
use crate::state::InstanceState;

/// Requests buffered between the client handle and its event loop.
const CHANNEL_CAPACITY: usize = 1000;
/// How long one publish may take, connecting included.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// A guest's connection: the client and the event loop that carries it.
pub struct MqttConnection {
    client: AsyncClient,
    events: Mutex<EventLoop>,
}

impl MqttConnection {
    async fn publish(&self, topic: String, payload: Vec<u8>, qos: QoS) -> Result<(), Error> {
        self.client
            .publish(topic, qos, false, payload)
            .await
            .map_err(|e| Error::Other(e.to_string()))?;
        let mut events = self.events.lock().await;
        let delivered = async {
            loop {
                let event = events
                    .poll()
                    .await
                    .map_err(|e| Error::ConnectionFailed(e.to_string()))?;
                let done = matches!(
                    (qos, event),
                    (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_)))
                        | (QoS::AtLeastOnce, Event::Incoming(Incoming::PubAck(_)))
                        | (QoS::ExactlyOnce, Event::Incoming(Incoming::PubComp(_)))
                );
                if done {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(PUBLISH_TIMEOUT, delivered)
            .await
            .unwrap_or_else(|_| {
                Err(Error::ConnectionFailed(format!(
                    "the broker did not take the message within {PUBLISH_TIMEOUT:?}"
                )))
            })
    }
}

impl mqtt::Host for InstanceState {}

impl mqtt::HostConnection for InstanceState {
    async fn open(
        &mut self,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> wasmtime::Result<Result<Resource<MqttConnection>, Error>> {
        if self.component.allow_list.allows_url(&address).is_err() {
            // Spin's words: the whole address as the guest gave it.
            return Ok(Err(Error::ConnectionFailed(format!(
                "address {address} is not permitted"
            ))));
        }
        let mut options = match MqttOptions::parse_url(address.as_str()) {
            Ok(o) => o,
            Err(e) => {
                tracing::info!(component = %self.component.id, "MQTT address refused: {e}");
                return Ok(Err(Error::InvalidAddress));
            }
        };
        options.set_credentials(username, password);
        options.set_keep_alive(Duration::from_secs(keep_alive_interval_in_secs));
        let (client, events) = AsyncClient::new(options, CHANNEL_CAPACITY);
        Ok(Ok(self.table.push(MqttConnection {
            client,
            events: Mutex::new(events),
        })?))
    }

    async fn publish(
        &mut self,
        conn: Resource<MqttConnection>,
        topic: String,
        payload: Payload,
        qos: Qos,
    ) -> wasmtime::Result<Result<(), Error>> {
        let qos = match qos {
            Qos::AtMostOnce => QoS::AtMostOnce,
            Qos::AtLeastOnce => QoS::AtLeastOnce,
            Qos::ExactlyOnce => QoS::ExactlyOnce,
        };
        Ok(self.table.get(&conn)?.publish(topic, payload, qos).await)
    }

    async fn drop(&mut self, conn: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}
