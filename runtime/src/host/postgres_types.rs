//! Values of `spin:postgres/postgres@4.0.0` to and from Postgres, exactly as
//! Spin 3.6.3's host converts them (`crates/factor-outbound-pg/src/types.rs`
//! at v3.6.3, read and re-implemented here, not copied).
//!
//! Strictness is the point: `village` runs the tests, Spin runs production,
//! so whatever Spin refuses must be refused here the same way, or the tests
//! hide production failures (issue #13). Two rules carry most of it:
//!
//! - **Reading**, each column type is read through one Rust type with
//!   tokio-postgres' `FromSql`, and that type's `accepts` decides: a
//!   `timestamptz` column is read as a zone-less `NaiveDateTime`, which only
//!   `timestamp` accepts, so *any* `timestamptz` column fails the query (NULL
//!   or not). Types Spin does not map (`json`, `name`, `"char"`, enums,
//!   PostGIS, ...) arrive as `unsupported` with their binary wire bytes.
//! - **Binding**, each parameter variant becomes one Rust type, and the type
//!   Postgres inferred for `$n` must be one that Rust type accepts, with no
//!   widening: `int32` binds only `int4`, `datetime` only `timestamp`,
//!   `timestamp` (epoch seconds) only `timestamptz`, `str` only text-like
//!   types. A mismatch is tokio-postgres' own `WrongType` error.
//!
//! Error texts follow Spin's (its `anyhow` Debug format, "... Caused by:"),
//! so a guest that shows or matches them sees the same words.

use std::error::Error as StdError;

use bytes::BytesMut;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use postgres_range::{BoundType, Normalizable, Range, RangeBound};
use rust_decimal::Decimal;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::bindings::spin_host::spin::postgres::postgres::{
    Column, DbDataType, DbValue, Interval, ParameterValue, RangeBoundKind,
};

type BoxError = Box<dyn StdError + Sync + Send>;

/// Spin's cap on one result held in the host (`MAX_HOST_BUFFERED_BYTES`).
pub const MAX_RESULT_BYTES: usize = 128 << 20;

/// Why a parameter could not be sent.
#[derive(Debug)]
pub enum ParamError {
    /// The value itself is invalid (a month 13, a malformed UUID): Spin
    /// answers `bad-parameter` from `query`, `value-conversion-failed` from
    /// `execute`, with this text.
    Invalid(String),
    /// A value Spin's host panics on (an inclusive upper range bound at the
    /// integer's maximum): the guest traps there, so it traps here.
    Trap(String),
}

fn anyhow_text(e: anyhow::Error) -> String {
    format!("{e:?}")
}

/// The Rust value Spin binds for a parameter.
pub fn to_sql_parameter(p: ParameterValue) -> Result<Box<dyn ToSql + Send + Sync>, ParamError> {
    let invalid = |s: String| ParamError::Invalid(s);
    Ok(match p {
        ParameterValue::Boolean(v) => Box::new(v),
        ParameterValue::Int8(v) => Box::new(v),
        ParameterValue::Int16(v) => Box::new(v),
        ParameterValue::Int32(v) => Box::new(v),
        ParameterValue::Int64(v) => Box::new(v),
        ParameterValue::Floating32(v) => Box::new(v),
        ParameterValue::Floating64(v) => Box::new(v),
        ParameterValue::Str(v) => Box::new(v),
        ParameterValue::Binary(v) => Box::new(v),
        ParameterValue::Date(d) => Box::new(date(d).map_err(invalid)?),
        ParameterValue::Time(t) => Box::new(time(t).map_err(invalid)?),
        ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => {
            let date = date((y, mo, d)).map_err(invalid)?;
            let time = time((h, mi, s, ns)).map_err(invalid)?;
            Box::new(NaiveDateTime::new(date, time))
        }
        ParameterValue::Timestamp(secs) => Box::new(
            DateTime::<Utc>::from_timestamp(secs, 0)
                .ok_or_else(|| invalid(format!("invalid epoch timestamp {secs}")))?,
        ),
        ParameterValue::Uuid(s) => Box::new(uuid::Uuid::parse_str(&s).map_err(|e| {
            invalid(anyhow_text(
                anyhow::Error::from(e).context(format!("invalid UUID {s}")),
            ))
        })?),
        ParameterValue::Jsonb(bytes) => Box::new(
            serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| {
                invalid(anyhow_text(anyhow::Error::from(e).context("invalid JSON")))
            })?,
        ),
        ParameterValue::Decimal(s) => Box::new(decimal(&s).map_err(invalid)?),
        ParameterValue::RangeInt32((lo, hi)) => Box::new(int_range(lo, hi, i32::MAX)?),
        ParameterValue::RangeInt64((lo, hi)) => Box::new(int_range(lo, hi, i64::MAX)?),
        ParameterValue::RangeDecimal((lo, hi)) => {
            let bound = |b: Option<(String, RangeBoundKind)>| {
                b.map(|(v, k)| decimal(&v).map(|d| (RangeableDecimal(d), k)))
                    .transpose()
            };
            let lo = bound(lo).map_err(invalid)?;
            let hi = bound(hi).map_err(invalid)?;
            Box::new(Range::new(
                lo.map(|(v, k)| RangeBound::new(v, bound_type(k))),
                hi.map(|(v, k)| RangeBound::new(v, bound_type(k))),
            ))
        }
        ParameterValue::ArrayInt32(v) => Box::new(v),
        ParameterValue::ArrayInt64(v) => Box::new(v),
        ParameterValue::ArrayDecimal(v) => Box::new(
            v.into_iter()
                .map(|d| d.map(|s| decimal(&s)).transpose())
                .collect::<Result<Vec<Option<Decimal>>, _>>()
                .map_err(invalid)?,
        ),
        ParameterValue::ArrayStr(v) => Box::new(v),
        ParameterValue::Interval(i) => Box::new(PgInterval(i)),
        ParameterValue::DbNull => Box::new(PgNull),
    })
}

fn date((y, m, d): (i32, u8, u8)) -> Result<NaiveDate, String> {
    NaiveDate::from_ymd_opt(y, m.into(), d.into())
        .ok_or(format!("invalid date y={y}, m={m}, d={d}"))
}

fn time((h, m, s, ns): (u8, u8, u8, u32)) -> Result<NaiveTime, String> {
    NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns)
        .ok_or(format!("invalid time {h}:{m}:{s}:{ns}"))
}

fn decimal(s: &str) -> Result<Decimal, String> {
    Decimal::from_str_exact(s)
        .map_err(|e| anyhow_text(anyhow::Error::from(e).context(format!("invalid decimal {s}"))))
}

fn bound_type(k: RangeBoundKind) -> BoundType {
    match k {
        RangeBoundKind::Inclusive => BoundType::Inclusive,
        RangeBoundKind::Exclusive => BoundType::Exclusive,
    }
}

/// An integer range as `postgres_range` builds it: bounds normalised to
/// `[lower, upper)`. Normalising moves an inclusive upper (or exclusive
/// lower) bound up by one, which Spin asserts is below the maximum — its
/// host panics there, so that case traps the guest here too.
fn int_range<T>(
    lo: Option<(T, RangeBoundKind)>,
    hi: Option<(T, RangeBoundKind)>,
    max: T,
) -> Result<Range<T>, ParamError>
where
    T: PartialOrd + Normalizable + Copy + std::fmt::Display,
{
    let overflows = |b: &Option<(T, RangeBoundKind)>, kind: RangeBoundKind| matches!(b, Some((v, k)) if *k == kind && *v == max);
    if overflows(&lo, RangeBoundKind::Exclusive) || overflows(&hi, RangeBoundKind::Inclusive) {
        return Err(ParamError::Trap(format!(
            "range bound {max} cannot be normalised (Spin's host panics here)"
        )));
    }
    Ok(Range::new(
        lo.map(|(v, k)| RangeBound::new(v, bound_type(k))),
        hi.map(|(v, k)| RangeBound::new(v, bound_type(k))),
    ))
}

/// A decimal as a range element: not normalised (a continuous type).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct RangeableDecimal(Decimal);

impl Normalizable for RangeableDecimal {
    fn normalize<S>(bound: RangeBound<S, Self>) -> RangeBound<S, Self>
    where
        S: postgres_range::BoundSided,
    {
        bound
    }
}

impl ToSql for RangeableDecimal {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <Decimal as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for RangeableDecimal {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Decimal::from_sql(ty, raw).map(RangeableDecimal)
    }

    fn accepts(ty: &Type) -> bool {
        <Decimal as FromSql>::accepts(ty)
    }
}

/// NULL for a parameter of any type, as Spin's `db-null`.
#[derive(Debug)]
struct PgNull;

impl ToSql for PgNull {
    fn to_sql(&self, _: &Type, _: &mut BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// An `interval` in Postgres' binary format: micros, days, months.
#[derive(Debug)]
struct PgInterval(Interval);

impl ToSql for PgInterval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(&self.0.micros.to_be_bytes());
        out.extend_from_slice(&self.0.days.to_be_bytes());
        out.extend_from_slice(&self.0.months.to_be_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgInterval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
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

/// Any type Spin does not map: its binary wire bytes.
struct Other(Vec<u8>);

impl<'a> FromSql<'a> for Other {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Other(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A column's declared type, as Spin reports it.
pub fn data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::BYTEA => DbDataType::Binary,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => DbDataType::Str,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_RANGE => DbDataType::RangeInt32,
        Type::INT8_RANGE => DbDataType::RangeInt64,
        Type::NUM_RANGE => DbDataType::RangeDecimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        _ => DbDataType::Other(ty.name().to_owned()),
    }
}

/// The columns of a result, taken from its first row as Spin does: a query
/// that returns no rows reports no columns.
pub fn columns(rows: &[tokio_postgres::Row]) -> Vec<Column> {
    rows.first()
        .map(|row| {
            row.columns()
                .iter()
                .map(|c| Column {
                    name: c.name().to_owned(),
                    data_type: data_type(c.type_()),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Converts a result, failing as Spin does: on the first column that cannot
/// be read, or once the result outgrows [`MAX_RESULT_BYTES`]. The error is
/// the text Spin puts in `query-failed(text(...))`.
pub fn rows(rows: &[tokio_postgres::Row]) -> Result<Vec<Vec<DbValue>>, String> {
    let mut budget = std::mem::size_of::<Vec<Vec<DbValue>>>();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values = Vec::with_capacity(row.len());
        for (i, col) in row.columns().iter().enumerate() {
            let value = db_value(row, i, col.type_()).map_err(anyhow_text)?;
            budget += memory_size(&value);
            if budget > MAX_RESULT_BYTES {
                return Err(format!(
                    "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
                ));
            }
            values.push(value);
        }
        out.push(values);
    }
    Ok(out)
}

/// What a value costs the host, counted as Spin counts it: the enum plus the
/// heap payload it carries.
fn memory_size(v: &DbValue) -> usize {
    let heap = match v {
        DbValue::Str(s) | DbValue::Uuid(s) | DbValue::Decimal(s) => s.len(),
        DbValue::Binary(b) | DbValue::Jsonb(b) | DbValue::Unsupported(b) => b.len(),
        DbValue::ArrayInt32(a) => std::mem::size_of_val(a.as_slice()),
        DbValue::ArrayInt64(a) => std::mem::size_of_val(a.as_slice()),
        DbValue::ArrayDecimal(a) | DbValue::ArrayStr(a) => a
            .iter()
            .map(|s| std::mem::size_of::<Option<String>>() + s.as_ref().map_or(0, String::len))
            .sum(),
        DbValue::RangeDecimal((lo, hi)) => {
            lo.as_ref().map_or(0, |b| b.0.len()) + hi.as_ref().map_or(0, |b| b.0.len())
        }
        _ => 0,
    };
    std::mem::size_of::<DbValue>() + heap
}

fn get<'a, T: FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    i: usize,
) -> Result<Option<T>, anyhow::Error> {
    Ok(row.try_get::<_, Option<T>>(i)?)
}

fn datetime_tuple(dt: NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    // chrono keeps month 1–12, day 1–31, hour < 24, minute and second < 60.
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

fn range_bound<T, S: postgres_range::BoundSided>(
    b: Option<&RangeBound<S, T>>,
    f: impl Fn(&T) -> T,
) -> Option<(T, RangeBoundKind)> {
    b.map(|b| {
        let kind = match b.type_ {
            BoundType::Inclusive => RangeBoundKind::Inclusive,
            BoundType::Exclusive => RangeBoundKind::Exclusive,
        };
        (f(&b.value), kind)
    })
}

type WitBound<T> = Option<(T, RangeBoundKind)>;

fn range_tuple<T: Clone + PartialOrd + Normalizable>(r: Range<T>) -> (WitBound<T>, WitBound<T>) {
    // An empty range has no bounds: it reads as unbounded on both sides,
    // as under Spin.
    (
        range_bound(r.lower(), T::clone),
        range_bound(r.upper(), T::clone),
    )
}

fn db_value(row: &tokio_postgres::Row, i: usize, ty: &Type) -> Result<DbValue, anyhow::Error> {
    let v = match *ty {
        Type::BOOL => get::<bool>(row, i)?.map(DbValue::Boolean),
        Type::BYTEA => get::<Vec<u8>>(row, i)?.map(DbValue::Binary),
        Type::FLOAT4 => get::<f32>(row, i)?.map(DbValue::Floating32),
        Type::FLOAT8 => get::<f64>(row, i)?.map(DbValue::Floating64),
        Type::INT2 => get::<i16>(row, i)?.map(DbValue::Int16),
        Type::INT4 => get::<i32>(row, i)?.map(DbValue::Int32),
        Type::INT8 => get::<i64>(row, i)?.map(DbValue::Int64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => get::<String>(row, i)?.map(DbValue::Str),
        // Both read as a zone-less date-time: `timestamptz` is refused by
        // `NaiveDateTime::accepts`, failing the query as under Spin.
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            get::<NaiveDateTime>(row, i)?.map(|d| DbValue::Datetime(datetime_tuple(d)))
        }
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
        Type::UUID => get::<uuid::Uuid>(row, i)?.map(|u| DbValue::Uuid(u.to_string())),
        Type::JSONB => get::<serde_json::Value>(row, i)?
            .map(|j| serde_json::to_vec(&j).map(DbValue::Jsonb))
            .transpose()?,
        Type::NUMERIC => get::<Decimal>(row, i)?.map(|d| DbValue::Decimal(d.to_string())),
        Type::INT4_RANGE => get::<Range<i32>>(row, i)?.map(|r| DbValue::RangeInt32(range_tuple(r))),
        Type::INT8_RANGE => get::<Range<i64>>(row, i)?.map(|r| DbValue::RangeInt64(range_tuple(r))),
        Type::NUM_RANGE => get::<Range<RangeableDecimal>>(row, i)?.map(|r| {
            let (lo, hi) = range_tuple(r);
            let text = |b: WitBound<RangeableDecimal>| b.map(|(v, k)| (v.0.to_string(), k));
            DbValue::RangeDecimal((text(lo), text(hi)))
        }),
        Type::INT4_ARRAY => get::<Vec<Option<i32>>>(row, i)?.map(DbValue::ArrayInt32),
        Type::INT8_ARRAY => get::<Vec<Option<i64>>>(row, i)?.map(DbValue::ArrayInt64),
        Type::NUMERIC_ARRAY => get::<Vec<Option<Decimal>>>(row, i)?.map(|a| {
            DbValue::ArrayDecimal(a.into_iter().map(|d| d.map(|d| d.to_string())).collect())
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            get::<Vec<Option<String>>>(row, i)?.map(DbValue::ArrayStr)
        }
        Type::INTERVAL => get::<PgInterval>(row, i)?.map(|p| DbValue::Interval(p.0)),
        _ => get::<Other>(row, i)?.map(|o| DbValue::Unsupported(o.0)),
    };
    Ok(v.unwrap_or(DbValue::DbNull))
}
