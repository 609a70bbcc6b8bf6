//! `spin:postgres/postgres@4.0.0` row by row: what a guest gets for each
//! column type it reads and each parameter it binds, accepted and refused,
//! and for each kind of address (issue #13).
//!
//! The same table runs under `village` and under the real Spin 3.6.3
//! (`VILLAGE_E2E_RUNTIME=spin`, as `scripts/test` does): the fixture
//! component reports the host's answers in their Debug form, and both
//! runtimes must give the answers below. A row that passes on one and fails
//! on the other is a `village` bug.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use village_e2e::FixtureApp;

fn admin_url() -> String {
    std::env::var("VILLAGE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}

async fn fixture() -> FixtureApp {
    let mut vars = BTreeMap::new();
    vars.insert("db_url".into(), admin_url());
    FixtureApp::start(vars).await
}

async fn run(app: &FixtureApp, case: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("http://{}/fixture/pg-case", app.addr))
        .body(case.to_string())
        .send()
        .await
        .expect("answered");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, 200, "the fixture ran the case {case}: {text}");
    serde_json::from_str(&text).expect("JSON")
}

fn query(sql: &str, params: Value) -> Value {
    json!({"mode": "query", "sql": sql, "params": params})
}

/// The one value of a one-row, one-column answer.
fn single(answer: &Value) -> (&str, &str) {
    let column = answer["columns"][0][1]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    let value = answer["rows"][0][0]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    (column, value)
}

fn error(answer: &Value) -> &str {
    answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("an error: {answer}"))
}

#[tokio::test]
async fn reads_each_column_type_as_spin_does() {
    let app = fixture().await;
    // (SQL producing one value, its column type, its value), in Debug form.
    let rows: &[(&str, &str, &str)] = &[
        ("SELECT true", "Boolean", "Boolean(true)"),
        ("SELECT 7::int2", "Int16", "Int16(7)"),
        ("SELECT 7::int4", "Int32", "Int32(7)"),
        ("SELECT 7::int8", "Int64", "Int64(7)"),
        ("SELECT 1.5::float4", "Floating32", "Floating32(1.5)"),
        ("SELECT 1.5::float8", "Floating64", "Floating64(1.5)"),
        ("SELECT 'hé'::text", "Str", "Str(\"hé\")"),
        ("SELECT 'ab'::varchar(5)", "Str", "Str(\"ab\")"),
        ("SELECT 'ab'::char(3)", "Str", "Str(\"ab \")"),
        ("SELECT '\\x00ff'::bytea", "Binary", "Binary([0, 255])"),
        ("SELECT '2026-11-30'::date", "Date", "Date((2026, 11, 30))"),
        (
            "SELECT '13:45:30.5'::time",
            "Time",
            "Time((13, 45, 30, 500000000))",
        ),
        (
            "SELECT '2026-01-02 03:04:05.25'::timestamp",
            "Datetime",
            "Datetime((2026, 1, 2, 3, 4, 5, 250000000))",
        ),
        (
            "SELECT '67e55044-10b1-426f-9247-bb680e5fe0c8'::uuid",
            "Uuid",
            "Uuid(\"67e55044-10b1-426f-9247-bb680e5fe0c8\")",
        ),
        (
            "SELECT '{\"b\":1,\"a\":2}'::jsonb",
            "Jsonb",
            "Jsonb([123, 34, 97, 34, 58, 50, 44, 34, 98, 34, 58, 49, 125])",
        ),
        ("SELECT 1.50::numeric", "Decimal", "Decimal(\"1.50\")"),
        (
            "SELECT int4range(1, 5)",
            "RangeInt32",
            "RangeInt32((Some((1, RangeBoundKind::Inclusive)), Some((5, RangeBoundKind::Exclusive))))",
        ),
        (
            "SELECT int8range(NULL, 9)",
            "RangeInt64",
            "RangeInt64((None, Some((9, RangeBoundKind::Exclusive))))",
        ),
        (
            "SELECT 'empty'::int4range",
            "RangeInt32",
            "RangeInt32((None, None))",
        ),
        (
            "SELECT numrange(1.5, 2.5, '[]')",
            "RangeDecimal",
            "RangeDecimal((Some((\"1.5\", RangeBoundKind::Inclusive)), Some((\"2.5\", RangeBoundKind::Inclusive))))",
        ),
        (
            "SELECT ARRAY[1, NULL]::int4[]",
            "ArrayInt32",
            "ArrayInt32([Some(1), None])",
        ),
        (
            "SELECT ARRAY[1]::int8[]",
            "ArrayInt64",
            "ArrayInt64([Some(1)])",
        ),
        (
            "SELECT ARRAY['a', NULL]::text[]",
            "ArrayStr",
            "ArrayStr([Some(\"a\"), None])",
        ),
        (
            "SELECT ARRAY[1.5]::numeric[]",
            "ArrayDecimal",
            "ArrayDecimal([Some(\"1.5\")])",
        ),
        (
            "SELECT '1 month 2 days 3 seconds'::interval",
            "Interval",
            "Interval(Interval { micros: 3000000, days: 2, months: 1 })",
        ),
        ("SELECT NULL::text", "Str", "DbNull"),
        // Types Spin does not map arrive as their binary wire bytes.
        (
            "SELECT '{\"a\":1}'::json",
            "Other(\"json\")",
            "Unsupported([123, 34, 97, 34, 58, 49, 125])",
        ),
        (
            "SELECT 'ab'::name",
            "Other(\"name\")",
            "Unsupported([97, 98])",
        ),
        (
            "SELECT 'A'::\"char\"",
            "Other(\"char\")",
            "Unsupported([65])",
        ),
        (
            "SELECT ARRAY[1]::int2[]",
            "Other(\"_int2\")",
            "Unsupported(",
        ),
    ];
    for (sql, column, value) in rows {
        let answer = run(&app, query(&format!("{sql} AS v"), json!([]))).await;
        let (got_column, got_value) = single(&answer);
        assert!(
            got_column.ends_with(column),
            "{sql}: column type {got_column}, want {column}"
        );
        assert!(
            got_value.ends_with(value) || (value.ends_with('(') && got_value.contains(value)),
            "{sql}: value {got_value}, want {value}"
        );
    }
}

#[tokio::test]
async fn refuses_every_timestamptz_column_even_null_as_spin_does() {
    let app = fixture().await;
    for sql in [
        "SELECT '2026-01-02 03:04:05+00'::timestamptz AS v",
        "SELECT NULL::timestamptz AS v",
        "SELECT now() AS v",
    ] {
        let answer = run(&app, query(sql, json!([]))).await;
        let e = error(&answer);
        assert!(e.contains("QueryFailed"), "{sql}: {e}");
        assert!(
            e.contains("error deserializing column 0") && e.contains("timestamptz"),
            "{sql}: {e}"
        );
    }
    // With no rows there is nothing to read, and no column metadata either.
    let answer = run(&app, query("SELECT now() AS v WHERE false", json!([]))).await;
    assert_eq!(answer, json!({"columns": [], "rows": []}));
}

#[tokio::test]
async fn binds_each_parameter_only_to_its_own_postgres_type() {
    let app = fixture().await;
    // (SQL, parameter, the value read back) — accepted bindings.
    let accepted: &[(&str, Value, &str)] = &[
        (
            "SELECT $1::bool::text",
            json!({"t": "boolean", "v": true}),
            "Str(\"true\")",
        ),
        (
            "SELECT $1::int2::text",
            json!({"t": "int16", "v": 5}),
            "Str(\"5\")",
        ),
        (
            "SELECT $1::int4::text",
            json!({"t": "int32", "v": 5}),
            "Str(\"5\")",
        ),
        (
            "SELECT $1::int8::text",
            json!({"t": "int64", "v": 5}),
            "Str(\"5\")",
        ),
        (
            "SELECT $1::\"char\"::text",
            json!({"t": "int8", "v": 65}),
            "Str(\"A\")",
        ),
        (
            "SELECT $1::float4::text",
            json!({"t": "floating32", "v": 1.5}),
            "Str(\"1.5\")",
        ),
        (
            "SELECT $1::float8::text",
            json!({"t": "floating64", "v": 1.5}),
            "Str(\"1.5\")",
        ),
        ("SELECT $1", json!({"t": "str", "v": "x"}), "Str(\"x\")"),
        (
            "SELECT $1::varchar::text",
            json!({"t": "str", "v": "x"}),
            "Str(\"x\")",
        ),
        (
            "SELECT length($1::bytea)",
            json!({"t": "binary", "v": [1, 2]}),
            "Int32(2)",
        ),
        (
            "SELECT $1::date::text",
            json!({"t": "date", "v": [2026, 2, 28]}),
            "Str(\"2026-02-28\")",
        ),
        (
            "SELECT $1::time::text",
            json!({"t": "time", "v": [1, 2, 3, 0]}),
            "Str(\"01:02:03\")",
        ),
        (
            "SELECT $1::timestamp::text",
            json!({"t": "datetime", "v": [2026, 1, 2, 3, 4, 5, 0]}),
            "Str(\"2026-01-02 03:04:05\")",
        ),
        (
            "SELECT extract(epoch FROM $1::timestamptz)::int8",
            json!({"t": "timestamp", "v": 1767323045}),
            "Int64(1767323045)",
        ),
        (
            "SELECT $1::uuid::text",
            json!({"t": "uuid", "v": "67e55044-10b1-426f-9247-bb680e5fe0c8"}),
            "Str(\"67e55044-10b1-426f-9247-bb680e5fe0c8\")",
        ),
        (
            "SELECT $1::jsonb::text",
            json!({"t": "jsonb", "v": "{\"a\": 1}"}),
            "Str(\"{\\\"a\\\": 1}\")",
        ),
        (
            "SELECT $1::json::text",
            json!({"t": "jsonb", "v": "{\"a\":1}"}),
            "Str(\"{\\\"a\\\":1}\")",
        ),
        (
            "SELECT $1::numeric::text",
            json!({"t": "decimal", "v": "2.50"}),
            "Str(\"2.50\")",
        ),
        (
            "SELECT $1::int4range::text",
            json!({"t": "range-int32", "v": [[1, "inclusive"], [5, "inclusive"]]}),
            "Str(\"[1,6)\")",
        ),
        (
            "SELECT $1::int8range::text",
            json!({"t": "range-int64", "v": [null, [5, "exclusive"]]}),
            "Str(\"(,5)\")",
        ),
        (
            "SELECT $1::numrange::text",
            json!({"t": "range-decimal", "v": [["1.5", "inclusive"], ["2", "exclusive"]]}),
            "Str(\"[1.5,2)\")",
        ),
        (
            "SELECT $1::int4[]::text",
            json!({"t": "array-int32", "v": [1, null]}),
            "Str(\"{1,NULL}\")",
        ),
        (
            "SELECT $1::int8[]::text",
            json!({"t": "array-int64", "v": [1]}),
            "Str(\"{1}\")",
        ),
        (
            "SELECT $1::text[]::text",
            json!({"t": "array-str", "v": ["a", null]}),
            "Str(\"{a,NULL}\")",
        ),
        (
            "SELECT $1::numeric[]::text",
            json!({"t": "array-decimal", "v": ["1.5"]}),
            "Str(\"{1.5}\")",
        ),
        (
            "SELECT $1::interval::text",
            json!({"t": "interval", "v": [3000000, 2, 1]}),
            "Str(\"1 mon 2 days 00:00:03\")",
        ),
        (
            "SELECT $1::int4 IS NULL",
            json!({"t": "null"}),
            "Boolean(true)",
        ),
        (
            "SELECT $1::timestamptz IS NULL",
            json!({"t": "null"}),
            "Boolean(true)",
        ),
    ];
    for (sql, param, want) in accepted {
        let answer = run(&app, query(&format!("{sql} AS v"), json!([param]))).await;
        let (_, got) = single(&answer);
        assert!(
            got.ends_with(want),
            "{sql} with {param}: {got}, want {want}"
        );
    }
    // (SQL, parameter, the Postgres type named in the refusal) — no widening,
    // no zone: a zone-less date-time never binds a timestamptz.
    let refused: &[(&str, Value, &str)] = &[
        (
            "SELECT $1::timestamptz IS NULL",
            json!({"t": "datetime", "v": [2026, 1, 2, 3, 4, 5, 0]}),
            "Timestamptz",
        ),
        (
            "SELECT $1::timestamp IS NULL",
            json!({"t": "timestamp", "v": 0}),
            "Timestamp",
        ),
        (
            "SELECT $1::int8 IS NULL",
            json!({"t": "int32", "v": 1}),
            "Int8",
        ),
        (
            "SELECT $1::int4 IS NULL",
            json!({"t": "int64", "v": 1}),
            "Int4",
        ),
        (
            "SELECT $1::int2 IS NULL",
            json!({"t": "int8", "v": 1}),
            "Int2",
        ),
        (
            "SELECT $1::float8 IS NULL",
            json!({"t": "floating32", "v": 1.0}),
            "Float8",
        ),
        (
            "SELECT $1::int4 IS NULL",
            json!({"t": "str", "v": "1"}),
            "Int4",
        ),
        (
            "SELECT $1::uuid IS NULL",
            json!({"t": "str", "v": "x"}),
            "Uuid",
        ),
        (
            "SELECT $1::text IS NULL",
            json!({"t": "jsonb", "v": "{}"}),
            "Text",
        ),
        (
            "SELECT $1::int8[] IS NULL",
            json!({"t": "array-int32", "v": [1]}),
            "Int8Array",
        ),
    ];
    for (sql, param, pg_type) in refused {
        let answer = run(&app, query(&format!("{sql} AS v"), json!([param]))).await;
        let e = error(&answer);
        assert!(
            e.contains("WrongType") && e.contains(&format!("postgres: {pg_type}")),
            "{sql} with {param}: {e}"
        );
    }
}

#[tokio::test]
async fn reports_invalid_parameter_values_as_spin_does_per_call() {
    let app = fixture().await;
    let cases: &[(Value, &str)] = &[
        (
            json!({"t": "date", "v": [2026, 13, 1]}),
            "invalid date y=2026, m=13, d=1",
        ),
        (
            json!({"t": "time", "v": [25, 0, 0, 0]}),
            "invalid time 25:0:0:0",
        ),
        (
            json!({"t": "uuid", "v": "not-a-uuid"}),
            "invalid UUID not-a-uuid",
        ),
        (
            json!({"t": "decimal", "v": "1.2.3"}),
            "invalid decimal 1.2.3",
        ),
    ];
    for (param, text) in cases {
        let q = run(&app, query("SELECT $1 IS NULL AS v", json!([param]))).await;
        let e = error(&q);
        assert!(
            e.contains("BadParameter") && e.contains(text),
            "query with {param}: {e}"
        );
        let mut x = query("SELECT $1 IS NULL", json!([param]));
        x["mode"] = "execute".into();
        let e = run(&app, x).await;
        let e = error(&e);
        assert!(
            e.contains("ValueConversionFailed") && e.contains(text),
            "execute with {param}: {e}"
        );
    }
}

#[tokio::test]
async fn reports_database_errors_with_spins_fields() {
    let app = fixture().await;
    let answer = run(
        &app,
        json!({"mode": "execute",
               "setup": ["CREATE TEMP TABLE u (k int PRIMARY KEY)", "INSERT INTO u VALUES (1)"],
               "sql": "INSERT INTO u VALUES ($1)", "params": [{"t": "int32", "v": 1}]}),
    )
    .await;
    let e = error(&answer);
    for part in [
        "QueryFailed",
        "DbError",
        "code: \"23505\"",
        "(\"constraint\", \"u_pkey\")",
        "(\"table\", \"u\")",
    ] {
        assert!(e.contains(part), "{part} in {e}");
    }
    // One statement per call: the extended protocol refuses two.
    let answer = run(&app, query("SELECT 1; SELECT 2", json!([]))).await;
    assert!(error(&answer).contains("42601"), "{answer}");
    // `execute` answers the rows affected.
    let answer = run(
        &app,
        json!({"mode": "execute", "setup": ["CREATE TEMP TABLE w (k int)"],
               "sql": "INSERT INTO w VALUES (1), (2)", "params": []}),
    )
    .await;
    assert_eq!(answer["affected"], 2, "{answer}");
}

#[tokio::test]
async fn opens_addresses_as_spin_does() {
    let app = fixture().await;
    let url = url::Url::parse(&admin_url()).expect("admin url");
    let password = url.password().unwrap_or_default().to_owned();
    // The key=value form, as tokio-postgres reads it.
    let kv = format!(
        "host=127.0.0.1 port=5432 user=postgres password={password} dbname=postgres sslmode=disable"
    );
    let answer = run(
        &app,
        json!({"address": kv, "mode": "query", "sql": "SELECT 1 AS v", "params": []}),
    )
    .await;
    assert_eq!(single(&answer).1, "DbValue::Int32(1)", "{answer}");
    // A host the component may not reach, named as Spin names it.
    let answer = run(
        &app,
        json!({"address": "postgres://postgres:hunter2@127.0.0.2:5432/postgres?sslmode=disable",
               "mode": "query", "sql": "SELECT 1", "params": []}),
    )
    .await;
    let e = answer["open_error"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(
        e.contains("ConnectionFailed")
            && e.contains("address postgres://127.0.0.2:5432 is not permitted"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
    // A connection string tokio-postgres cannot read.
    let answer = run(
        &app,
        json!({"address": "postgres://127.0.0.1:5432/postgres?sslmode=verify-full",
               "mode": "query", "sql": "SELECT 1", "params": []}),
    )
    .await;
    let e = answer["open_error"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(
        e.contains("ConnectionFailed") && e.contains("invalid connection string"),
        "{e}"
    );
}

#[tokio::test]
async fn verifies_the_servers_certificate_unless_tls_is_disabled() {
    let app = fixture().await;
    let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(conn);
    let ssl: String = client.query_one("SHOW ssl", &[]).await.expect("ssl").get(0);
    let prefer = admin_url().replace("sslmode=disable", "sslmode=prefer");
    let answer = run(
        &app,
        json!({"address": prefer, "mode": "query", "sql": "SELECT 1 AS v", "params": []}),
    )
    .await;
    if ssl == "on" {
        // The local cluster offers TLS with a certificate no root vouches
        // for: `prefer` does not fall back to plain text, it fails.
        let e = answer["open_error"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(e.contains("ConnectionFailed") && e.contains("TLS"), "{e}");
        let require = admin_url().replace("sslmode=disable", "sslmode=require");
        let answer = run(
            &app,
            json!({"address": require, "mode": "query", "sql": "SELECT 1 AS v", "params": []}),
        )
        .await;
        assert!(
            answer["open_error"]
                .as_str()
                .is_some_and(|e| e.contains("TLS")),
            "{answer}"
        );
    } else {
        // No TLS offered: `prefer` talks plain text.
        assert_eq!(single(&answer).1, "DbValue::Int32(1)", "{answer}");
    }
    let plain = run(
        &app,
        json!({"address": admin_url(), "mode": "query", "sql": "SELECT 1 AS v", "params": []}),
    )
    .await;
    assert_eq!(single(&plain).1, "DbValue::Int32(1)", "{plain}");
}
