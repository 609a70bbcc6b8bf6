//! `spin:postgres/postgres@4.0.0` on pooled tokio-postgres connections.
//!
//! One pool per connection string, created on first use. A guest connection
//! resource holds one pooled client for its lifetime, so `BEGIN … COMMIT`
//! across calls works; a client the guest left inside a transaction is closed
//! instead of returned to the pool, so no later request inherits it.

use std::collections::HashMap;
use std::error::Error as _;
use std::time::Duration;

use bytes::BytesMut;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use deadpool_postgres::{ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts};
use rust_decimal::Decimal;
use tokio::sync::Mutex;
use tokio_postgres::NoTls;
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};
use wasmtime::component::Resource;

use crate::bindings::spin_host::spin::postgres::postgres::{
    self as pg, Column, DbDataType, DbError, DbValue, Interval, ParameterValue, QueryError, RowSet,
};
use crate::state::InstanceState;

/// Pool size per database. Small on purpose: a 2-core host gains nothing from
/// more concurrent queries, and Postgres' default `max_connections` (100) is
/// shared by every pod and by the test suite's many databases.
const POOL_SIZE: usize = 16;
/// How long `open` waits for a connection before telling the guest it failed;
/// short so `/readyz` answers quickly when Postgres is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct PgPools {
    pools: Mutex<HashMap<String, Pool>>,
}

impl PgPools {
    async fn get(&self, address: &str) -> Result<deadpool_postgres::Object, String> {
        let pool = {
            let mut pools = self.pools.lock().await;
            match pools.get(address) {
                Some(p) => p.clone(),
                None => {
                    let pool = create_pool(address)?;
                    pools.insert(address.to_owned(), pool.clone());
                    pool
                }
            }
        };
        pool.get().await.map_err(|e| {
            // The pool error wraps the driver's; both are free of credentials.
            match e.source() {
                Some(src) => format!("{e}: {src}"),
                None => e.to_string(),
            }
        })
    }
}

fn create_pool(address: &str) -> Result<Pool, String> {
    let mut cfg = deadpool_postgres::Config::new();
    cfg.url = Some(address.to_owned());
    cfg.connect_timeout = Some(CONNECT_TIMEOUT);
    cfg.manager = Some(ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    });
    let mut pool = PoolConfig::new(POOL_SIZE);
    pool.timeouts = Timeouts {
        wait: Some(CONNECT_TIMEOUT * 2),
        create: Some(CONNECT_TIMEOUT),
        recycle: Some(CONNECT_TIMEOUT),
    };
    cfg.pool = Some(pool);
    cfg.create_pool(Some(Runtime::Tokio1), NoTls)
        .map_err(|e| format!("invalid Postgres address: {e}"))
}

/// A guest's connection: one pooled client.
pub struct PgConnection {
    client: Option<deadpool_postgres::Object>,
    in_transaction: bool,
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        if self.in_transaction
            && let Some(client) = self.client.take()
        {
            // Detach from the pool and close: its transaction dies with it.
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

impl PgConnection {
    fn track_transaction(&mut self, statement: &str) {
        let head: String = statement
            .trim_start()
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_uppercase();
        if head.starts_with("BEGIN") || head.starts_with("START") {
            self.in_transaction = true;
        } else if head.starts_with("COMMIT")
            || head.starts_with("ROLLBACK")
            || head.starts_with("END")
        {
            self.in_transaction = false;
        }
    }
}

impl PgConnection {
    /// Converts the guest's parameters and prepares the statement (cached
    /// per pooled connection): what `query` and `execute` both start with.
    async fn prepare(
        &mut self,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> Result<
        (
            &deadpool_postgres::Object,
            tokio_postgres::Statement,
            Vec<PgParam>,
        ),
        pg::Error,
    > {
        let params = params
            .into_iter()
            .map(PgParam::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        self.track_transaction(statement);
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| pg::Error::ConnectionFailed("connection closed".into()))?;
        let stmt = client
            .prepare_cached(statement)
            .await
            .map_err(|e| query_error(&e))?;
        Ok((client, stmt, params))
    }
}

impl pg::Host for InstanceState {}

impl pg::HostConnection for InstanceState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, pg::Error>> {
        if let Err(denied) = self.component.allow_list.allows_url(&address) {
            tracing::warn!(component = %self.component.id, "postgres connection refused: {denied}");
            return Ok(Err(pg::Error::ConnectionFailed(denied.to_string())));
        }
        match self.shared.pg.get(&address).await {
            Ok(client) => Ok(Ok(self.table.push(PgConnection {
                client: Some(client),
                in_transaction: false,
            })?)),
            Err(e) => Ok(Err(pg::Error::ConnectionFailed(
                self.shared.variables.redact(&e),
            ))),
        }
    }

    async fn query(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, pg::Error>> {
        let (client, stmt, params) =
            match self.table.get_mut(&conn)?.prepare(&statement, params).await {
                Ok(prepared) => prepared,
                Err(e) => return Ok(Err(e)),
            };
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = match client.query(&stmt, &refs).await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(query_error(&e))),
        };
        let columns: Vec<Column> = stmt
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_owned(),
                data_type: data_type(c.type_()),
            })
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut values = Vec::with_capacity(columns.len());
            for (i, col) in stmt.columns().iter().enumerate() {
                match db_value(row, i, col.type_()) {
                    Ok(v) => values.push(v),
                    Err(e) => {
                        return Ok(Err(pg::Error::ValueConversionFailed(format!(
                            "column `{}`: {e}",
                            col.name()
                        ))));
                    }
                }
            }
            out.push(values);
        }
        Ok(Ok(RowSet { columns, rows: out }))
    }

    async fn execute(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, pg::Error>> {
        let (client, stmt, params) =
            match self.table.get_mut(&conn)?.prepare(&statement, params).await {
                Ok(prepared) => prepared,
                Err(e) => return Ok(Err(e)),
            };
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        Ok(match client.execute(&stmt, &refs).await {
            Ok(n) => Ok(n),
            Err(e) => Err(query_error(&e)),
        })
    }

    async fn drop(&mut self, conn: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

fn query_error(e: &tokio_postgres::Error) -> pg::Error {
    match e.as_db_error() {
        Some(db) => pg::Error::QueryFailed(QueryError::DbError(DbError {
            as_text: db.to_string(),
            severity: db.severity().to_owned(),
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
            extras: [
                ("hint", db.hint()),
                ("table", db.table()),
                ("column", db.column()),
                ("constraint", db.constraint()),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
            .collect(),
        })),
        None if e.is_closed() => pg::Error::ConnectionFailed(e.to_string()),
        None => match e.source() {
            Some(src) => pg::Error::QueryFailed(QueryError::Text(format!("{e}: {src}"))),
            None => pg::Error::QueryFailed(QueryError::Text(e.to_string())),
        },
    }
}

/// A guest parameter, encoded according to the column type Postgres expects.
#[derive(Debug)]
enum PgParam {
    Null,
    Bool(bool),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Str(String),
    Binary(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    DateTime(NaiveDateTime),
    Uuid(uuid::Uuid),
    Json(Vec<u8>),
    Decimal(Decimal),
    ArrayInt32(Vec<Option<i32>>),
    ArrayInt64(Vec<Option<i64>>),
    ArrayDecimal(Vec<Option<Decimal>>),
    ArrayStr(Vec<Option<String>>),
    Interval(Interval),
}

impl TryFrom<ParameterValue> for PgParam {
    type Error = pg::Error;

    fn try_from(v: ParameterValue) -> Result<Self, pg::Error> {
        let bad = |what: &str| pg::Error::BadParameter(what.to_owned());
        Ok(match v {
            ParameterValue::DbNull => PgParam::Null,
            ParameterValue::Boolean(b) => PgParam::Bool(b),
            ParameterValue::Int8(i) => PgParam::Int8(i),
            ParameterValue::Int16(i) => PgParam::Int16(i),
            ParameterValue::Int32(i) => PgParam::Int32(i),
            ParameterValue::Int64(i) => PgParam::Int64(i),
            ParameterValue::Floating32(f) => PgParam::Float32(f),
            ParameterValue::Floating64(f) => PgParam::Float64(f),
            ParameterValue::Str(s) => PgParam::Str(s),
            ParameterValue::Binary(b) => PgParam::Binary(b),
            ParameterValue::Date((y, m, d)) => PgParam::Date(
                NaiveDate::from_ymd_opt(y, m.into(), d.into())
                    .ok_or_else(|| bad("invalid date"))?,
            ),
            ParameterValue::Time((h, m, s, ns)) => PgParam::Time(
                NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns)
                    .ok_or_else(|| bad("invalid time"))?,
            ),
            ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => PgParam::DateTime(
                NaiveDate::from_ymd_opt(y, mo.into(), d.into())
                    .and_then(|date| date.and_hms_nano_opt(h.into(), mi.into(), s.into(), ns))
                    .ok_or_else(|| bad("invalid datetime"))?,
            ),
            ParameterValue::Timestamp(secs) => PgParam::DateTime(
                DateTime::<Utc>::from_timestamp(secs, 0)
                    .ok_or_else(|| bad("timestamp out of range"))?
                    .naive_utc(),
            ),
            ParameterValue::Uuid(s) => PgParam::Uuid(s.parse().map_err(|_| bad("invalid uuid"))?),
            ParameterValue::Jsonb(b) => PgParam::Json(b),
            ParameterValue::Decimal(s) => {
                PgParam::Decimal(s.parse().map_err(|_| bad("invalid decimal"))?)
            }
            ParameterValue::ArrayInt32(a) => PgParam::ArrayInt32(a),
            ParameterValue::ArrayInt64(a) => PgParam::ArrayInt64(a),
            ParameterValue::ArrayStr(a) => PgParam::ArrayStr(a),
            ParameterValue::ArrayDecimal(a) => PgParam::ArrayDecimal(
                a.into_iter()
                    .map(|d| d.map(|s| s.parse::<Decimal>()).transpose())
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("invalid decimal in array"))?,
            ),
            ParameterValue::Interval(i) => PgParam::Interval(i),
            ParameterValue::RangeInt32(_)
            | ParameterValue::RangeInt64(_)
            | ParameterValue::RangeDecimal(_) => {
                return Err(bad("range parameters are not supported by this runtime"));
            }
        })
    }
}

impl ToSql for PgParam {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // Each arm checks the target type as `to_sql_checked` would, so a
        // mismatch is a clear error rather than bytes Postgres misreads.
        fn checked<T: ToSql>(
            v: &T,
            ty: &Type,
            out: &mut BytesMut,
        ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
            v.to_sql_checked(ty, out)
        }
        match self {
            PgParam::Null => Ok(IsNull::Yes),
            PgParam::Bool(v) => checked(v, ty, out),
            PgParam::Int8(v) => checked(v, ty, out),
            PgParam::Int16(v) => checked(v, ty, out),
            PgParam::Int32(v) => checked(v, ty, out),
            PgParam::Int64(v) => checked(v, ty, out),
            PgParam::Float32(v) => checked(v, ty, out),
            PgParam::Float64(v) => checked(v, ty, out),
            PgParam::Str(v) => checked(v, ty, out),
            PgParam::Binary(v) => checked(v, ty, out),
            PgParam::Date(v) => checked(v, ty, out),
            PgParam::Time(v) => checked(v, ty, out),
            // Spin's datetime is UTC without a zone: valid for both column kinds.
            PgParam::DateTime(v) if *ty == Type::TIMESTAMPTZ => checked(&v.and_utc(), ty, out),
            PgParam::DateTime(v) => checked(v, ty, out),
            PgParam::Uuid(v) => checked(v, ty, out),
            PgParam::Json(bytes) => {
                if *ty == Type::JSONB {
                    out.extend_from_slice(&[1]); // JSONB binary format version
                    out.extend_from_slice(bytes);
                    Ok(IsNull::No)
                } else if *ty == Type::JSON {
                    out.extend_from_slice(bytes);
                    Ok(IsNull::No)
                } else {
                    Err(format!("cannot send JSON to a column of type {ty}").into())
                }
            }
            PgParam::Decimal(v) => checked(v, ty, out),
            PgParam::ArrayInt32(v) => checked(v, ty, out),
            PgParam::ArrayInt64(v) => checked(v, ty, out),
            PgParam::ArrayDecimal(v) => checked(v, ty, out),
            PgParam::ArrayStr(v) => checked(v, ty, out),
            PgParam::Interval(i) => {
                if *ty != Type::INTERVAL {
                    return Err(format!("cannot send an interval to a column of type {ty}").into());
                }
                out.extend_from_slice(&i.micros.to_be_bytes());
                out.extend_from_slice(&i.days.to_be_bytes());
                out.extend_from_slice(&i.months.to_be_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_ty: &Type) -> bool {
        // The real check is per value, in `to_sql`.
        true
    }

    to_sql_checked!();
}

fn data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::CHAR => DbDataType::Int8,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSON | Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        _ => DbDataType::Other(ty.name().to_owned()),
    }
}

fn datetime_tuple(dt: NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    // chrono guarantees month 1–12, day 1–31, hour < 24, minute/second < 60.
    (
        dt.year(),
        dt.month() as u8,
        dt.day() as u8,
        dt.hour() as u8,
        dt.minute() as u8,
        dt.second() as u8,
        dt.nanosecond(),
    )
}

fn db_value(
    row: &tokio_postgres::Row,
    i: usize,
    ty: &Type,
) -> Result<DbValue, Box<dyn std::error::Error + Sync + Send>> {
    fn get<'a, T: FromSql<'a>>(
        row: &'a tokio_postgres::Row,
        i: usize,
    ) -> Result<Option<T>, tokio_postgres::Error> {
        row.try_get::<_, Option<T>>(i)
    }
    let v = match *ty {
        Type::BOOL => get::<bool>(row, i)?.map(DbValue::Boolean),
        Type::CHAR => get::<i8>(row, i)?.map(DbValue::Int8),
        Type::INT2 => get::<i16>(row, i)?.map(DbValue::Int16),
        Type::INT4 => get::<i32>(row, i)?.map(DbValue::Int32),
        Type::INT8 => get::<i64>(row, i)?.map(DbValue::Int64),
        Type::FLOAT4 => get::<f32>(row, i)?.map(DbValue::Floating32),
        Type::FLOAT8 => get::<f64>(row, i)?.map(DbValue::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            get::<String>(row, i)?.map(DbValue::Str)
        }
        Type::BYTEA => get::<Vec<u8>>(row, i)?.map(DbValue::Binary),
        Type::DATE => get::<NaiveDate>(row, i)?
            .map(|d| DbValue::Date((d.year(), d.month() as u8, d.day() as u8))),
        Type::TIME => get::<NaiveTime>(row, i)?.map(|t| {
            DbValue::Time((
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
                t.nanosecond(),
            ))
        }),
        Type::TIMESTAMP => {
            get::<NaiveDateTime>(row, i)?.map(|d| DbValue::Datetime(datetime_tuple(d)))
        }
        Type::TIMESTAMPTZ => {
            get::<DateTime<Utc>>(row, i)?.map(|d| DbValue::Datetime(datetime_tuple(d.naive_utc())))
        }
        Type::UUID => get::<uuid::Uuid>(row, i)?.map(|u| DbValue::Uuid(u.to_string())),
        Type::JSON | Type::JSONB => get::<serde_json::Value>(row, i)?
            .map(|j| serde_json::to_vec(&j).map(DbValue::Jsonb))
            .transpose()?,
        Type::NUMERIC => get::<Decimal>(row, i)?.map(|d| DbValue::Decimal(d.to_string())),
        Type::INT4_ARRAY => get::<Vec<Option<i32>>>(row, i)?.map(DbValue::ArrayInt32),
        Type::INT8_ARRAY => get::<Vec<Option<i64>>>(row, i)?.map(DbValue::ArrayInt64),
        Type::NUMERIC_ARRAY => get::<Vec<Option<Decimal>>>(row, i)?.map(|a| {
            DbValue::ArrayDecimal(a.into_iter().map(|d| d.map(|d| d.to_string())).collect())
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => {
            get::<Vec<Option<String>>>(row, i)?.map(DbValue::ArrayStr)
        }
        Type::INTERVAL => get::<PgInterval>(row, i)?.map(|p| DbValue::Interval(p.0)),
        _ => get::<RawValue>(row, i)?.map(|r| DbValue::Unsupported(r.0)),
    };
    Ok(v.unwrap_or(DbValue::DbNull))
}

/// An `interval` in Postgres' binary format: micros, days, months.
struct PgInterval(Interval);

impl<'a> FromSql<'a> for PgInterval {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let bytes: [u8; 16] = raw.try_into().map_err(|_| "interval must be 16 bytes")?;
        let (micros, rest) = bytes.split_at(8);
        let (days, months) = rest.split_at(4);
        Ok(PgInterval(Interval {
            micros: i64::from_be_bytes(micros.try_into()?),
            days: i32::from_be_bytes(days.try_into()?),
            months: i32::from_be_bytes(months.try_into()?),
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

/// Any other type (PostGIS geometry, enums, …): handed over as raw bytes.
struct RawValue(Vec<u8>);

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(raw.to_vec()))
    }

    fn accepts(ty: &Type) -> bool {
        !matches!(ty.kind(), Kind::Pseudo)
    }
}
