//! Spin variables: `fermyon:spin/variables@2.0.0` and the WASI config store
//! Spin 3 also serves them through. Both read the calling component's own
//! variables only, rendered at start-up from application variables.
//!
//! Names are checked as Spin 3.6.3 checks them (`factor-variables`,
//! `expressions::Key::validate`), with its errors: an invalid name is
//! `invalid-name` from `fermyon:spin/variables` and "no value" from
//! `wasi:config/store`; a valid name the component does not declare is
//! `undefined`.

use crate::bindings::spin_host::fermyon::spin2_0_0::variables as v2;
use crate::bindings::spin_host::wasi::config::store as config;
use crate::state::InstanceState;

/// Why Spin refuses a variable name, in Spin's words; `None` when valid.
pub fn invalid_name(key: &str) -> Option<String> {
    let reason = if key.is_empty() {
        "must not be empty".to_owned()
    } else if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        format!(
            "invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        )
    } else if !key.starts_with(|c: char| c.is_ascii_lowercase()) {
        "must start with a lowercase ASCII letter".to_owned()
    } else if !key.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        "must end with a lowercase ASCII letter or digit".to_owned()
    } else if key.contains("__") {
        "must not contain multiple consecutive underscores".to_owned()
    } else {
        return None;
    };
    Some(format!("{key:?}: {reason}"))
}

impl v2::Host for InstanceState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, v2::Error>> {
        if let Some(why) = invalid_name(&name) {
            return Ok(Err(v2::Error::InvalidName(why)));
        }
        Ok(match self.component.variables.get(&name) {
            Some(value) => Ok(value.clone()),
            None => Err(v2::Error::Undefined(format!(
                "no variable for {:?}.{name:?}",
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
        // Spin answers "no value" for an invalid name as for an undefined one.
        if invalid_name(&key).is_some() {
            return Ok(Ok(None));
        }
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

#[cfg(test)]
mod tests {
    use super::invalid_name;

    #[test]
    fn names_are_checked_as_spin_checks_them() {
        for ok in ["a", "db_url", "x9", "a_b_c"] {
            assert_eq!(invalid_name(ok), None, "{ok}");
        }
        let cases = [
            ("", "\"\": must not be empty"),
            (
                "Foo",
                "\"Foo\": invalid character 'F'. Variable names may contain only lower-case letters, numbers, and underscores.",
            ),
            (
                "a-b",
                "\"a-b\": invalid character '-'. Variable names may contain only lower-case letters, numbers, and underscores.",
            ),
            ("9a", "\"9a\": must start with a lowercase ASCII letter"),
            ("_a", "\"_a\": must start with a lowercase ASCII letter"),
            (
                "a_",
                "\"a_\": must end with a lowercase ASCII letter or digit",
            ),
            (
                "a__b",
                "\"a__b\": must not contain multiple consecutive underscores",
            ),
        ];
        for (name, want) in cases {
            assert_eq!(invalid_name(name).as_deref(), Some(want), "{name:?}");
        }
    }
}
