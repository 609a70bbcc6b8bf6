//! Liveness and readiness.

use serde::Serialize;

use crate::cache::Cache;
use crate::sql::Sql;
use crate::web::{self, Response};

#[derive(Serialize)]
struct Health<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    failing: Vec<&'a str>,
}

/// `/healthz`: the function answers.
pub fn liveness() -> Response {
    web::json(
        http::StatusCode::OK,
        &Health {
            status: "ok",
            failing: Vec::new(),
        },
    )
}

/// `/readyz`: Postgres and Redis answer; 503 naming what does not.
pub async fn readiness(sql: &impl Sql, cache: &impl Cache) -> Response {
    let mut failing = Vec::new();
    if let Err(e) = sql.query("SELECT 1 AS ok", &[]).await {
        crate::log::event(
            "WARNING",
            &format!("postgres not ready: {e}"),
            serde_json::json!({ "endpoint": "readyz" }),
        );
        failing.push("postgres");
    }
    if let Err(e) = cache.ping().await {
        crate::log::event(
            "WARNING",
            &format!("redis not ready: {e}"),
            serde_json::json!({ "endpoint": "readyz" }),
        );
        failing.push("redis");
    }
    if failing.is_empty() {
        web::json(
            http::StatusCode::OK,
            &Health {
                status: "ready",
                failing,
            },
        )
    } else {
        web::json(
            http::StatusCode::SERVICE_UNAVAILABLE,
            &Health {
                status: "unavailable",
                failing,
            },
        )
    }
}
