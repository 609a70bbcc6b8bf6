//! The Spin application manifest, version 2 (`spin.toml`).
//!
//! Parsing is strict in the way Spin's own `spin-manifest` crate is: an unknown
//! field is an error that names the file, the table and the field, so a typo in
//! `spin.toml` fails here before it fails on a cluster. After parsing,
//! [`Manifest::validate`] checks the references between tables (triggers name
//! components that exist, templates name variables that exist, routes are unique).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::routes::RoutePattern;

/// A manifest problem, always naming the file and the place in it.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {location}: {message}")]
    Field {
        path: PathBuf,
        location: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub spin_manifest_version: u32,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, Component>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub trigger: ApplicationTriggers,
}

/// `[application.trigger.<type>]`: settings shared by all triggers of a type.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationTriggers {
    #[serde(default)]
    pub http: Option<HttpAppSettings>,
    #[serde(default)]
    pub redis: Option<RedisAppSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAppSettings {
    #[serde(default)]
    pub base: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisAppSettings {
    pub address: String,
}

/// An application variable: `{ default = "…" }`, `{ required = true }`, either
/// optionally with `secret = true`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
    #[serde(default)]
    pub redis: Vec<RedisTrigger>,
    #[serde(default)]
    pub cron: Vec<CronTrigger>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    #[serde(default)]
    pub id: Option<String>,
    pub route: RouteSetting,
    pub component: String,
    #[serde(default)]
    pub executor: Option<HttpExecutor>,
}

/// `route = "/path"` or `route = { private = true }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteSetting {
    Path(String),
    Private(PrivateRoute),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateRoute {
    pub private: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExecutor {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTrigger {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    pub channel: String,
    pub component: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    #[serde(default)]
    pub id: Option<String>,
    pub component: String,
    pub cron_expression: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    #[serde(default)]
    pub description: Option<String>,
    pub source: ComponentSource,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<FileMount>,
    #[serde(default)]
    pub exclude_files: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub ai_models: Vec<String>,
    #[serde(default)]
    pub build: Option<BuildConfig>,
    /// Tool-specific metadata; Spin ignores it, and so do we.
    #[serde(default)]
    pub tool: Option<toml::Table>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ComponentSource {
    Local(String),
    Remote(RemoteSource),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSource {
    pub url: String,
    pub digest: String,
}

/// `files = ["static/**"]` or `files = [{ source = "dir", destination = "/" }]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileMount {
    Pattern(String),
    Placement(FilePlacement),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePlacement {
    pub source: String,
    pub destination: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    pub command: String,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads, parses and validates a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates manifest text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ManifestError> {
        let value: toml::Value = toml::from_str(text).map_err(|e| ManifestError::Syntax {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
        let manifest: Manifest =
            serde_path_to_error::deserialize(value).map_err(|e| ManifestError::Field {
                path: path.to_owned(),
                location: display_location(&e.path().to_string()),
                message: e.inner().to_string(),
            })?;
        manifest.validate(path)?;
        Ok(manifest)
    }

    fn validate(&self, path: &Path) -> Result<(), ManifestError> {
        let err = |location: String, message: String| ManifestError::Field {
            path: path.to_owned(),
            location,
            message,
        };
        if self.spin_manifest_version != 2 {
            return Err(err(
                "spin_manifest_version".into(),
                format!(
                    "only manifest version 2 is supported, found {}",
                    self.spin_manifest_version
                ),
            ));
        }
        for (name, var) in &self.variables {
            let at = format!("variables.{name}");
            if !is_variable_name(name) {
                return Err(err(
                    at,
                    "variable names are lower-case letters, digits and underscores, starting with a letter".into(),
                ));
            }
            if var.required && var.default.is_some() {
                return Err(err(
                    at,
                    "a variable is either `required` or has a `default`, not both".into(),
                ));
            }
            if !var.required && var.default.is_none() {
                return Err(err(
                    at,
                    "a variable needs a `default` or `required = true`".into(),
                ));
            }
        }
        for (id, component) in &self.component {
            let at = format!("component.{id}");
            if !is_component_id(id) {
                return Err(err(
                    at,
                    "component ids are kebab-case: lower-case letters, digits and dashes".into(),
                ));
            }
            if let ComponentSource::Remote(_) = component.source {
                return Err(err(
                    format!("{at}.source"),
                    "remote (url + digest) sources are not supported by this runtime; build the component locally".into(),
                ));
            }
            for (name, template) in &component.variables {
                if !is_variable_name(name) {
                    return Err(err(
                        format!("{at}.variables.{name}"),
                        "variable names are lower-case letters, digits and underscores".into(),
                    ));
                }
                self.check_template(template)
                    .map_err(|m| err(format!("{at}.variables.{name}"), m))?;
            }
            for (i, host) in component.allowed_outbound_hosts.iter().enumerate() {
                let here = || format!("{at}.allowed_outbound_hosts[{i}]");
                self.check_template(host).map_err(|m| err(here(), m))?;
                // Entries without templates can be checked now; templated ones
                // are checked once their variables have values.
                if !host.contains("{{") {
                    crate::allowed_hosts::AllowedHost::parse(host).map_err(|m| err(here(), m))?;
                }
            }
            // Without a runtime-config file Spin defines one key-value
            // store and one SQLite database, both `default`; it refuses a
            // manifest naming any other at start-up, and so do we.
            for (field, list) in [
                ("key_value_stores", &component.key_value_stores),
                ("sqlite_databases", &component.sqlite_databases),
            ] {
                if let Some(label) = list.iter().find(|l| *l != "default") {
                    return Err(err(
                        format!("{at}.{field}"),
                        format!(
                            "unknown label {label:?}: only \"default\" is defined (this runtime has no runtime-config file)"
                        ),
                    ));
                }
            }
            if !component.ai_models.is_empty() {
                return Err(err(
                    format!("{at}.ai_models"),
                    "this runtime does not provide Spin's LLM interface; remove it or run under `spin up`".into(),
                ));
            }
        }

        let known = |c: &str| self.component.contains_key(c);
        let mut routes = BTreeMap::<String, usize>::new();
        for (i, trigger) in self.trigger.http.iter().enumerate() {
            let at = format!("trigger.http[{i}]");
            if !known(&trigger.component) {
                return Err(err(
                    format!("{at}.component"),
                    format!("no component `{}` is defined", trigger.component),
                ));
            }
            if let Some(executor) = &trigger.executor
                && executor.kind != "spin"
                && executor.kind != "wasi"
            {
                return Err(err(
                    format!("{at}.executor"),
                    format!("unsupported executor `{}`", executor.kind),
                ));
            }
            match &trigger.route {
                RouteSetting::Path(route) => {
                    let pattern =
                        RoutePattern::parse(route).map_err(|m| err(format!("{at}.route"), m))?;
                    if let Some(first) = routes.insert(pattern.canonical(), i) {
                        return Err(err(
                            format!("{at}.route"),
                            format!(
                                "duplicate route `{route}`: trigger.http[{first}] already serves it"
                            ),
                        ));
                    }
                }
                RouteSetting::Private(p) if !p.private => {
                    return Err(err(
                        format!("{at}.route"),
                        "`{ private = false }` is not a route: give a path or `private = true`"
                            .into(),
                    ));
                }
                RouteSetting::Private(_) => {}
            }
        }
        let app_redis = self.application.trigger.redis.as_ref();
        for (i, trigger) in self.trigger.redis.iter().enumerate() {
            let at = format!("trigger.redis[{i}]");
            if !known(&trigger.component) {
                return Err(err(
                    format!("{at}.component"),
                    format!("no component `{}` is defined", trigger.component),
                ));
            }
            self.check_template(&trigger.channel)
                .map_err(|m| err(format!("{at}.channel"), m))?;
            match trigger
                .address
                .as_deref()
                .or(app_redis.map(|r| r.address.as_str()))
            {
                Some(address) => self
                    .check_template(address)
                    .map_err(|m| err(format!("{at}.address"), m))?,
                None => {
                    return Err(err(
                        format!("{at}.address"),
                        "no address: set it here or in [application.trigger.redis]".into(),
                    ));
                }
            }
        }
        for (i, trigger) in self.trigger.cron.iter().enumerate() {
            let at = format!("trigger.cron[{i}]");
            if !known(&trigger.component) {
                return Err(err(
                    format!("{at}.component"),
                    format!("no component `{}` is defined", trigger.component),
                ));
            }
            crate::cron_trigger::parse_schedule(&trigger.cron_expression)
                .map_err(|m| err(format!("{at}.cron_expression"), m))?;
        }
        Ok(())
    }

    /// Checks that every `{{ name }}` in a template names an application variable.
    fn check_template(&self, template: &str) -> Result<(), String> {
        for name in template_names(template)? {
            if !self.variables.contains_key(name) {
                return Err(format!(
                    "template refers to `{{{{ {name} }}}}` but no such application variable is defined in [variables]"
                ));
            }
        }
        Ok(())
    }

    /// The names of components that some trigger runs.
    pub fn triggered_components(&self) -> BTreeSet<&str> {
        let t = &self.trigger;
        t.http
            .iter()
            .map(|h| h.component.as_str())
            .chain(t.redis.iter().map(|r| r.component.as_str()))
            .chain(t.cron.iter().map(|c| c.component.as_str()))
            .collect()
    }
}

impl Component {
    /// The path of the component's Wasm file, relative to the manifest's folder.
    pub fn source_path(&self, base: &Path) -> PathBuf {
        match &self.source {
            ComponentSource::Local(p) => base.join(p),
            // Rejected by validation; kept total for callers.
            ComponentSource::Remote(r) => base.join(&r.url),
        }
    }
}

/// The `{{ name }}` references in a template, in order.
pub fn template_names(template: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed `{{{{` in `{template}`"))?;
        let name = after[..end].trim();
        if !is_variable_name(name) {
            return Err(format!("`{{{{ {name} }}}}` is not a variable name"));
        }
        names.push(name);
        rest = &after[end + 2..];
    }
    Ok(names)
}

/// Renders a template whose names were checked by validation.
pub fn render_template(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed `{{{{` in `{template}`"))?;
        let name = after[..end].trim();
        let value = lookup(name).ok_or_else(|| format!("variable `{name}` has no value"))?;
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_component_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.ends_with('-')
}

/// serde_path_to_error prints `trigger.http[0].route`; a lone `.` means the root.
fn display_location(path: &str) -> String {
    if path == "." || path.is_empty() {
        "(top level)".into()
    } else {
        path.to_owned()
    }
}
