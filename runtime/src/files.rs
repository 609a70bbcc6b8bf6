//! `files` mounts, as Spin does them: glob patterns (relative to the manifest)
//! are copied into a staging folder that keeps their relative paths and is
//! mounted read-only at `/`; `{ source, destination }` mounts a folder as is.
//! `exclude_files` patterns remove matches. The staging folder is deleted when
//! the application is dropped.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::manifest::FileMount;

pub struct Staging {
    root: PathBuf,
}

impl Staging {
    pub fn new() -> anyhow::Result<Self> {
        let root = std::env::temp_dir().join(format!(
            "village-files-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        Ok(Self { root })
    }

    /// Prepares a component's mounts: `(host dir, guest path)` pairs.
    pub fn mount(
        &self,
        component: &str,
        base: &Path,
        files: &[FileMount],
        exclude: &[String],
    ) -> anyhow::Result<Vec<(PathBuf, String)>> {
        let mut mounts = Vec::new();
        let staged = self.root.join(component);
        let excluded: Vec<glob::Pattern> = exclude
            .iter()
            .map(|p| {
                glob::Pattern::new(p).with_context(|| format!("bad exclude_files pattern `{p}`"))
            })
            .collect::<Result<_, _>>()?;
        let mut staged_any = false;
        for entry in files {
            match entry {
                FileMount::Placement(p) => {
                    let source = base.join(&p.source);
                    if !source.is_dir() {
                        bail!("files: `{}` is not a directory", source.display());
                    }
                    mounts.push((source, p.destination.clone()));
                }
                FileMount::Pattern(pattern) => {
                    let full = base.join(pattern);
                    let full = full
                        .to_str()
                        .with_context(|| format!("non-UTF-8 path in `{pattern}`"))?;
                    for found in glob::glob(full)
                        .with_context(|| format!("bad files pattern `{pattern}`"))?
                    {
                        let found = found?;
                        if !found.is_file() {
                            continue;
                        }
                        let rel = found.strip_prefix(base).unwrap_or(&found);
                        if excluded.iter().any(|x| x.matches_path(rel)) {
                            continue;
                        }
                        let dest = staged.join(rel);
                        if let Some(parent) = dest.parent() {
                            std::fs::create_dir_all(parent)?;
                        }
                        std::fs::copy(&found, &dest)
                            .with_context(|| format!("failed to stage {}", found.display()))?;
                        staged_any = true;
                    }
                }
            }
        }
        if staged_any {
            mounts.push((staged, "/".into()));
        }
        Ok(mounts)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.root.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.root)
        {
            tracing::warn!("failed to remove {}: {e}", self.root.display());
        }
    }
}
