//! `fermyon:spin/sqlite@2.0.0`, as Spin 3.6.3 provides it without a
//! runtime-config file: one database, `default`, a SQLite file in the
//! application's state folder (`<manifest folder>/.spin/sqlite_db.db`).
//! A component may open only the databases its `sqlite_databases` names;
//! any other is `access-denied`, as in Spin.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::types::{Value as SqlValue, ValueRef};
use wasmtime::component::Resource;

use crate::bindings::spin_host::fermyon::spin2_0_0::sqlite::{
    self as sq, Error, QueryResult, RowResult, Value,
};
use crate::state::InstanceState;

/// A guest's open database.
pub struct SqliteConnection {
    conn: Mutex<rusqlite::Connection>,
}

/// Where the `default` database lives.
pub fn default_path(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("sqlite_db.db")
}

fn io(e: impl std::fmt::Display) -> Error {
    Error::Io(e.to_string())
}

fn to_sql(v: Value) -> SqlValue {
    match v {
        Value::Integer(i) => SqlValue::Integer(i),
        Value::Real(f) => SqlValue::Real(f),
        Value::Text(t) => SqlValue::Text(t),
        Value::Blob(b) => SqlValue::Blob(b),
        Value::Null => SqlValue::Null,
    }
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl sq::Host for InstanceState {}

impl sq::HostConnection for InstanceState {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<SqliteConnection>, Error>> {
        if !self.component.sqlite_databases.contains(&database) {
            return Ok(Err(Error::AccessDenied));
        }
        let path = default_path(&self.shared.state_dir);
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            return Ok(Err(io(e)));
        }
        Ok(match rusqlite::Connection::open(&path) {
            Ok(conn) => Ok(self.table.push(SqliteConnection {
                conn: Mutex::new(conn),
            })?),
            Err(e) => Err(io(e)),
        })
    }

    async fn execute(
        &mut self,
        conn: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, Error>> {
        let conn = self.table.get(&conn)?;
        let Ok(db) = conn.conn.lock() else {
            return Ok(Err(Error::InvalidConnection));
        };
        let run = || -> rusqlite::Result<QueryResult> {
            let mut stmt = db.prepare(&statement)?;
            let columns: Vec<String> = stmt
                .column_names()
                .iter()
                .map(|c| (*c).to_owned())
                .collect();
            let params: Vec<SqlValue> = parameters.into_iter().map(to_sql).collect();
            let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let values = (0..columns.len())
                    .map(|i| row.get_ref(i).map(from_sql))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                out.push(RowResult { values });
            }
            Ok(QueryResult { columns, rows: out })
        };
        Ok(run().map_err(io))
    }

    async fn drop(&mut self, conn: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}
