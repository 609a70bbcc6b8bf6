//! `village build`: runs each component's `[component.<id>.build] command`,
//! in its `workdir` (relative to the manifest), one after another, as
//! `spin build` does. The first failing command stops the build.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::manifest::Manifest;

pub fn run(manifest_path: &Path, only: &[String]) -> anyhow::Result<()> {
    let manifest = Manifest::load(manifest_path)?;
    // `spin.toml` alone has the empty path as its parent: the current folder.
    let base = manifest_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for (id, component) in &manifest.component {
        if !only.is_empty() && !only.contains(id) {
            continue;
        }
        let Some(build) = &component.build else {
            println!("{id}: no build command");
            continue;
        };
        let workdir = build
            .workdir
            .as_deref()
            .map(|w| base.join(w))
            .unwrap_or_else(|| base.to_path_buf());
        println!("Building component {id} with `{}`", build.command);
        let status = Command::new("sh")
            .arg("-c")
            .arg(&build.command)
            .current_dir(&workdir)
            .envs(&build.environment)
            .status()
            .with_context(|| format!("failed to run the build command of `{id}`"))?;
        if !status.success() {
            bail!("build command of `{id}` failed with {status}");
        }
    }
    println!("Finished building all components");
    Ok(())
}
