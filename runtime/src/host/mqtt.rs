//! `fermyon:spin/mqtt@2.0.0`: linked for every component, as in Spin, so a
//! component importing it starts; `village` does not provide an MQTT client,
//! so an address the component may not reach answers Spin's refusal and
//! any other call says MQTT is not provided (runtime/README).

use wasmtime::component::Resource;

use crate::bindings::spin_host::fermyon::spin2_0_0::mqtt::{self as mqtt, Error, Payload, Qos};
use crate::state::InstanceState;

/// Never created: no connection is ever opened.
pub struct MqttConnection;

impl mqtt::Host for InstanceState {}

impl mqtt::HostConnection for InstanceState {
    async fn open(
        &mut self,
        address: String,
        _username: String,
        _password: String,
        _keep_alive_interval_in_secs: u64,
    ) -> wasmtime::Result<Result<Resource<MqttConnection>, Error>> {
        if self.component.allow_list.allows_url(&address).is_err() {
            // Spin's words: the whole address as the guest gave it.
            return Ok(Err(Error::ConnectionFailed(format!(
                "address {address} is not permitted"
            ))));
        }
        Ok(Err(Error::Other(
            "MQTT is not provided by village (runtime/README): run under `spin up`".into(),
        )))
    }

    async fn publish(
        &mut self,
        _conn: Resource<MqttConnection>,
        _topic: String,
        _payload: Payload,
        _qos: Qos,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(Err(Error::Other("MQTT is not provided by village".into())))
    }

    async fn drop(&mut self, conn: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}
