//! `fermyon:spin/key-value@2.0.0`, as Spin 3.6.3 provides it without a
//! runtime-config file: one store, `default`, kept in a SQLite file in the
//! application's state folder (`<manifest folder>/.spin/sqlite_key_value.db`,
//! Spin's own place for it). A component may open only the stores its
//! `key_value_stores` names; any other label is `access-denied`, as in Spin
//! (the manifest's labels are checked at start-up: only `default` exists).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use wasmtime::component::Resource;

use crate::bindings::spin_host::fermyon::spin2_0_0::key_value::{self as kv, Error};
use crate::state::InstanceState;

/// The application's stores, opened on first use.
pub struct KvStores {
    path: PathBuf,
    db: Mutex<Option<Arc<Mutex<Connection>>>>,
}

impl KvStores {
    pub fn new(state_dir: PathBuf) -> Self {
        KvStores {
            path: state_dir.join("sqlite_key_value.db"),
            db: Mutex::new(None),
        }
    }

    fn open(&self) -> Result<Arc<Mutex<Connection>>, Error> {
        let mut slot = self.db.lock().map_err(|_| other("store lock poisoned"))?;
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| other(&e.to_string()))?;
        }
        let conn = Connection::open(&self.path).map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                 store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                 PRIMARY KEY (store, key))",
        )
        .map_err(sql)?;
        let db = Arc::new(Mutex::new(conn));
        *slot = Some(db.clone());
        Ok(db)
    }
}

/// A guest's open store.
pub struct KvStore {
    label: String,
    db: Arc<Mutex<Connection>>,
}

fn other(m: &str) -> Error {
    Error::Other(m.to_owned())
}

fn sql(e: rusqlite::Error) -> Error {
    Error::Other(e.to_string())
}

impl KvStore {
    fn with<T>(
        &self,
        f: impl FnOnce(&Connection, &str) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        let db = self.db.lock().map_err(|_| other("store lock poisoned"))?;
        f(&db, &self.label).map_err(sql)
    }
}

impl kv::Host for InstanceState {}

impl kv::HostStore for InstanceState {
    async fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<KvStore>, Error>> {
        if !self.component.key_value_stores.contains(&label) {
            return Ok(Err(Error::AccessDenied));
        }
        let db = match self.shared.key_value.open() {
            Ok(db) => db,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(self.table.push(KvStore { label, db })?))
    }

    async fn get(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        Ok(self.table.get(&store)?.with(|db, label| {
            db.query_row(
                "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                params![label, key],
                |r| r.get(0),
            )
            .optional()
        }))
    }

    async fn set(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.table.get(&store)?.with(|db, label| {
            db.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                params![label, key, value],
            )
            .map(drop)
        }))
    }

    async fn delete(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.table.get(&store)?.with(|db, label| {
            db.execute(
                "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                params![label, key],
            )
            .map(drop)
        }))
    }

    async fn exists(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        Ok(self.table.get(&store)?.with(|db, label| {
            db.query_row(
                "SELECT EXISTS (SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2)",
                params![label, key],
                |r| r.get(0),
            )
        }))
    }

    async fn get_keys(
        &mut self,
        store: Resource<KvStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        Ok(self.table.get(&store)?.with(|db, label| {
            let mut stmt =
                db.prepare("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?;
            stmt.query_map(params![label], |r| r.get(0))?.collect()
        }))
    }

    async fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
