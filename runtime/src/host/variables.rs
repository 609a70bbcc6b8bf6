//! Spin variables: `fermyon:spin/variables@2.0.0` and the WASI config store
//! Spin 3 also serves them through. Both read the calling component's own
//! variables only, rendered at start-up from application variables.

use crate::bindings::spin_host::fermyon::spin2_0_0::variables as v2;
use crate::bindings::spin_host::wasi::config::store as config;
use crate::state::InstanceState;

impl v2::Host for InstanceState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, v2::Error>> {
        Ok(match self.component.variables.get(&name) {
            Some(value) => Ok(value.clone()),
            None => Err(v2::Error::Undefined(format!(
                "no variable `{name}` for component `{}`",
                self.component.id
            ))),
        })
    }
}

impl config::Host for InstanceState {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<String>, config::Error>> {
        Ok(Ok(self.component.variables.get(&key).cloned()))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, config::Error>> {
        Ok(Ok(self
            .component
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()))
    }
}
