//! Application and component variables, resolved as Spin resolves them.
//!
//! Application variables (`[variables]`) take their value from, in order: a
//! `--variable NAME=VALUE` flag, the `SPIN_VARIABLE_<NAME>` environment variable
//! (name upper-cased), the manifest default. A required variable with no value
//! stops start-up and is named. Component variables are templates over
//! application variables; a guest can read only its own component's variables.
//! Values of `secret = true` variables are redacted from anything we log.

use std::collections::BTreeMap;

use crate::manifest::{Manifest, render_template};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VariableError {
    #[error(
        "required variable `{name}` has no value: set SPIN_VARIABLE_{upper} or pass --variable {name}=…",
        upper = name.to_ascii_uppercase()
    )]
    MissingRequired { name: String },
    #[error("--variable {name}: no application variable `{name}` is defined in [variables]")]
    UnknownOverride { name: String },
}

#[derive(Debug, Clone)]
struct Value {
    value: String,
    secret: bool,
}

/// The resolved application variables.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    values: BTreeMap<String, Value>,
}

impl Variables {
    /// Resolves every application variable. `env` looks up process
    /// environment variables (injected so tests need not mutate the process).
    pub fn resolve(
        manifest: &Manifest,
        overrides: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, VariableError> {
        if let Some(name) = overrides
            .keys()
            .find(|k| !manifest.variables.contains_key(*k))
        {
            return Err(VariableError::UnknownOverride { name: name.clone() });
        }
        let mut values = BTreeMap::new();
        for (name, def) in &manifest.variables {
            let value = overrides
                .get(name)
                .cloned()
                .or_else(|| env(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())))
                .or_else(|| def.default.clone())
                .ok_or_else(|| VariableError::MissingRequired { name: name.clone() })?;
            values.insert(
                name.clone(),
                Value {
                    value,
                    secret: def.secret,
                },
            );
        }
        Ok(Self { values })
    }

    pub fn app_value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|v| v.value.as_str())
    }

    /// Renders a template (component variable, allowed host, redis address).
    pub fn render(&self, template: &str) -> Result<String, String> {
        render_template(template, |n| self.app_value(n).map(str::to_owned))
    }

    /// Replaces every non-trivial secret value in `text` with `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for v in self.values.values() {
            // A one- or two-character "secret" would blank out ordinary text.
            if v.secret && v.value.len() > 2 {
                out = out.replace(&v.value, "[redacted]");
            }
        }
        out
    }

    /// A printable summary for start-up: names with values, secrets hidden.
    pub fn summary(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(k, v)| {
                let shown = if v.secret {
                    "[redacted]".into()
                } else {
                    v.value.clone()
                };
                (k.clone(), shown)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest() -> Manifest {
        Manifest::parse(
            Path::new("spin.toml"),
            r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
region = { default = "eu" }
api_token = { required = true, secret = true }
[component.c]
source = "c.wasm"
variables = { greeting = "hello from {{ region }}" }
"#,
        )
        .expect("valid manifest")
    }

    #[test]
    fn flags_beat_environment_beat_defaults() {
        let m = manifest();
        let env = |k: &str| match k {
            "SPIN_VARIABLE_REGION" => Some("us".to_owned()),
            "SPIN_VARIABLE_API_TOKEN" => Some("tok-123456".to_owned()),
            _ => None,
        };
        let vars = Variables::resolve(&m, &BTreeMap::new(), env).expect("resolves");
        assert_eq!(vars.app_value("region"), Some("us"));
        let flags = BTreeMap::from([("region".to_owned(), "ap".to_owned())]);
        let vars = Variables::resolve(&m, &flags, env).expect("resolves");
        assert_eq!(vars.app_value("region"), Some("ap"));
        let vars = Variables::resolve(&m, &BTreeMap::new(), |k| {
            (k == "SPIN_VARIABLE_API_TOKEN").then(|| "t0k3n".to_owned())
        })
        .expect("resolves");
        assert_eq!(vars.app_value("region"), Some("eu"));
        assert_eq!(
            vars.render("hello from {{ region }}").as_deref(),
            Ok("hello from eu")
        );
    }

    #[test]
    fn a_missing_required_variable_is_named() {
        let err = Variables::resolve(&manifest(), &BTreeMap::new(), |_| None).expect_err("missing");
        assert_eq!(
            err,
            VariableError::MissingRequired {
                name: "api_token".into()
            }
        );
        assert!(err.to_string().contains("SPIN_VARIABLE_API_TOKEN"));
    }

    #[test]
    fn secrets_are_redacted_from_text_and_summaries() {
        let vars = Variables::resolve(&manifest(), &BTreeMap::new(), |k| {
            (k == "SPIN_VARIABLE_API_TOKEN").then(|| "sk_live_abc".to_owned())
        })
        .expect("resolves");
        assert_eq!(
            vars.redact("calling with sk_live_abc in eu"),
            "calling with [redacted] in eu"
        );
        let summary = vars.summary();
        assert!(summary.contains(&("api_token".into(), "[redacted]".into())));
        assert!(summary.contains(&("region".into(), "eu".into())));
    }

    #[test]
    fn an_override_of_an_undefined_variable_is_refused() {
        let flags = BTreeMap::from([("nope".to_owned(), "x".to_owned())]);
        let err =
            Variables::resolve(&manifest(), &flags, |_| Some("x".into())).expect_err("unknown");
        assert_eq!(
            err,
            VariableError::UnknownOverride {
                name: "nope".into()
            }
        );
    }
}
