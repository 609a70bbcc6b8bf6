//! The SQL port: parameterised statements only, values typed both ways.
//!
//! There is deliberately no way to pass SQL text built from input: every
//! value travels as a [`SqlValue`] parameter.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A value sent to or read from Postgres.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Bool(bool),
    Int32(i32),
    Int64(i64),
    Float64(f64),
    Text(String),
    Bytes(Vec<u8>),
    Json(serde_json::Value),
    Uuid(Uuid),
    Timestamp(DateTime<Utc>),
    /// `bigint[]`, e.g. for `WHERE id = ANY($1)`.
    Int64Array(Vec<i64>),
}

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("query failed: {message} (SQLSTATE {code})")]
    Query { code: String, message: String },
    #[error("unexpected result: {0}")]
    Decode(String),
}

impl SqlError {
    /// Whether Postgres refused the statement for a unique violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, SqlError::Query { code, .. } if code == "23505")
    }
}

/// One result row: columns by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub columns: Vec<(String, SqlValue)>,
}

impl Row {
    pub fn value(&self, name: &str) -> Result<&SqlValue, SqlError> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| SqlError::Decode(format!("no column `{name}`")))
    }

    pub fn get<T: FromSqlValue>(&self, name: &str) -> Result<T, SqlError> {
        T::from_sql_value(self.value(name)?)
            .map_err(|e| SqlError::Decode(format!("column `{name}`: {e}")))
    }
}

/// Converts a column value into a Rust type.
pub trait FromSqlValue: Sized {
    fn from_sql_value(v: &SqlValue) -> Result<Self, String>;
}

macro_rules! from_sql {
    ($t:ty, $variant:ident) => {
        impl FromSqlValue for $t {
            fn from_sql_value(v: &SqlValue) -> Result<Self, String> {
                match v {
                    SqlValue::$variant(x) => Ok(x.clone()),
                    other => Err(format!(
                        "expected {}, found {other:?}",
                        stringify!($variant)
                    )),
                }
            }
        }
    };
}
from_sql!(bool, Bool);
from_sql!(i32, Int32);
from_sql!(i64, Int64);
from_sql!(f64, Float64);
from_sql!(String, Text);
from_sql!(Vec<u8>, Bytes);
from_sql!(serde_json::Value, Json);
from_sql!(Uuid, Uuid);
from_sql!(DateTime<Utc>, Timestamp);

impl<T: FromSqlValue> FromSqlValue for Option<T> {
    fn from_sql_value(v: &SqlValue) -> Result<Self, String> {
        match v {
            SqlValue::Null => Ok(None),
            other => T::from_sql_value(other).map(Some),
        }
    }
}

/// The port. Implementations hold at most one connection per request.
#[allow(async_fn_in_trait)] // used through generics, never as `dyn`; no Send bound needed in Wasm
pub trait Sql {
    async fn query(&self, statement: &str, params: &[SqlValue]) -> Result<Vec<Row>, SqlError>;
    async fn execute(&self, statement: &str, params: &[SqlValue]) -> Result<u64, SqlError>;

    async fn query_opt(
        &self,
        statement: &str,
        params: &[SqlValue],
    ) -> Result<Option<Row>, SqlError> {
        Ok(self.query(statement, params).await?.into_iter().next())
    }
}
