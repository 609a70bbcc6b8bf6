//! Compiled components, kept in files and mapped, not copied, into memory.
//!
//! Each component is compiled once per Wasm binary and engine settings to
//! `<cache>/components/<sha256>.cwasm` (`~/.cache/village` or
//! `VILLAGE_CACHE_DIR`), then loaded with `Component::deserialize_file`,
//! which maps the file: a component's machine code becomes resident only
//! as its pages run, and those pages are clean, shared file pages the
//! kernel can drop and reload. Loading every component therefore costs
//! little memory until traffic reaches it — a cron that runs nightly does
//! not hold megabytes all day — where compiling in memory kept every
//! component's whole code resident (about 6.5 MiB each).
//!
//! Files unused for [`KEEP_UNUSED`] are removed at start-up, so rebuilds
//! do not fill the disk.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How long a compiled file nobody loaded is kept.
pub const KEEP_UNUSED: Duration = Duration::from_secs(7 * 86_400);

/// Makes each temporary file name unique within the process (apps started
/// concurrently in one process, as tests do, compile the same components).
static WRITES: AtomicU64 = AtomicU64::new(0);

/// The cache folder (`VILLAGE_CACHE_DIR`, or `~/.cache/village`).
pub fn cache_root() -> Option<PathBuf> {
    std::env::var_os("VILLAGE_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/village")))
}

/// Feeds `Hash` values into SHA-256 (for the engine's compatibility hash).
struct Sha(Sha256);

impl Hasher for Sha {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        0 // never read: the digest is taken from the inner hasher
    }
}

/// The file a Wasm binary compiles to under this engine's settings.
fn key(engine: &Engine, wasm: &[u8]) -> String {
    let mut h = Sha(Sha256::new());
    h.write(wasm);
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads the component at `source`, compiling it first if this engine has
/// not compiled these bytes before. Without a cache folder it is compiled
/// in memory.
pub fn load(engine: &Engine, source: &Path) -> anyhow::Result<Component> {
    let wasm = fs::read(source).with_context(|| format!("failed to read {}", source.display()))?;
    let wasm = componentize_if_necessary(wasm)
        .with_context(|| format!("failed to make a component of {}", source.display()))?;
    let Some(dir) = cache_root().map(|d| d.join("components")) else {
        return Component::new(engine, &wasm).map_err(anyhow::Error::from);
    };
    let path = dir.join(format!("{}.cwasm", key(engine, &wasm)));
    if !path.exists() {
        fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
        let compiled = engine
            .precompile_component(&wasm)
            .map_err(anyhow::Error::from)?;
        // Written aside under a name no other writer uses, then renamed into
        // place: whoever loads the same component concurrently sees the
        // whole file or none, and a file already mapped elsewhere is
        // replaced, never changed.
        let tmp = dir.join(format!(
            "{}.{}.{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("component"),
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        ));
        fs::write(&tmp, compiled).with_context(|| format!("failed to write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("failed to move {}", tmp.display()))?;
    } else if let Ok(f) = fs::File::options().write(true).open(&path) {
        // Marks it used, for the clean-up (the contents are not touched).
        let _ = f.set_modified(SystemTime::now());
    }
    // SAFETY: `deserialize_file` trusts the file to be `precompile_component`
    // output for this engine that nobody changes while it is mapped. It is:
    // the file is named by the SHA-256 of the Wasm and of the engine's
    // compatibility hash, lives in the user's own cache folder (the same
    // trust as the runtime binary), is only ever written under a temporary
    // name and renamed into place, and is never rewritten in place.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize_file(engine, &path) };
    component
        .map_err(anyhow::Error::from)
        .with_context(|| format!("failed to load the compiled {}", path.display()))
}

/// A core module built with `wit-bindgen` (its world embedded in custom
/// sections) becomes a component, as Spin's loader does
/// (`spin-componentize`), with `wit-component`'s encoder; a component is
/// left as it is. Spin can also adapt WASI preview 1 modules: `village`
/// cannot, and `wit-component` says so naming the import.
fn componentize_if_necessary(wasm: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    if !wasmparser::Parser::is_core_wasm(&wasm) {
        return Ok(wasm);
    }
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&wasm)?
        .encode()
}

/// Removes compiled files (and abandoned temporary ones) not used for
/// [`KEEP_UNUSED`]. Errors are ignored: this is housekeeping.
pub fn prune() {
    let Some(dir) = cache_root().map(|d| d.join("components")) else {
        return;
    };
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > KEEP_UNUSED);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_the_bytes_and_the_engine_settings() {
        let engine = Engine::default();
        let a = key(&engine, b"\0asm one");
        assert_eq!(a, key(&engine, b"\0asm one"));
        assert_ne!(a, key(&engine, b"\0asm two"));
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).expect("engine");
        assert_ne!(a, key(&other, b"\0asm one"));
        assert_eq!(a.len(), 64);
    }
}
