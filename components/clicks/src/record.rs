//! `GET /track/click`: check the link, record the click, redirect.
//!
//! The row is committed before the 302 is answered: once a visitor has
//! been redirected their click is on disk, whatever happens to the
//! process next. A click whose day has no partition yet lands in the
//! default partition (moved out when the day's partition is made), so no
//! click is refused for want of a table. If Postgres itself cannot take
//! the row the visitor is still sent on (a link must not break because
//! analytics are down); the loss is logged and counted as
//! `clicks_unrecorded`.
//!
//! Who clicked is recorded only for a signed-in user who agreed to
//! analytics (their user and anonymous ids); every other click is counted
//! without naming anyone. Withdrawing consent forgets the user's clicks
//! ([`forget_user`]).

use chrono::{DateTime, Utc};
use village_platform::sql::{Sql, SqlError, SqlValue};
use village_platform::web::Response;
use village_platform::{AppError, FieldError, RequestContext};

use crate::links::{Link, LinkSigner};

/// Writes one click.
pub async fn record(
    sql: &impl Sql,
    link: &Link,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    let consenting = ctx.principal.as_ref().filter(|p| p.analytics_consent);
    sql.execute(
        "INSERT INTO link_clicks (clicked_at, link_kind, link_id, target_url, source, position, \
                                  category_id, anon_id, user_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            SqlValue::Timestamp(now),
            SqlValue::Text(link.kind.as_str().to_owned()),
            SqlValue::Int64(link.id),
            SqlValue::Text(link.target.clone()),
            SqlValue::Text(link.source.clone()),
            SqlValue::Int32(link.position),
            SqlValue::Int64(link.category),
            consenting.map_or(SqlValue::Null, |_| SqlValue::Uuid(ctx.anon_id.as_uuid())),
            consenting.map_or(SqlValue::Null, |p| SqlValue::Uuid(p.user_id)),
        ],
    )
    .await?;
    Ok(())
}

/// Removes `user`'s name from their recorded clicks (the counts stay).
pub async fn forget_user(sql: &impl Sql, user: uuid::Uuid) -> Result<u64, SqlError> {
    sql.execute(
        "UPDATE link_clicks SET user_id = NULL, anon_id = NULL WHERE user_id = $1",
        &[SqlValue::Uuid(user)],
    )
    .await
}

/// The whole route: 400 for a link we did not sign (never a redirect),
/// else the click recorded and a 302 to the signed target.
pub async fn handle(
    sql: &impl Sql,
    signer: Option<&LinkSigner>,
    method: &http::Method,
    query: &str,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    if method != http::Method::GET && method != http::Method::HEAD {
        return Err(AppError::MethodNotAllowed {
            allowed: "GET, HEAD",
        });
    }
    let refused = |message: String| AppError::Validation(vec![FieldError::new("link", message)]);
    let signer = signer.ok_or_else(|| refused("click tracking is not configured".into()))?;
    let link = signer.verify(query).map_err(|e| refused(e.to_string()))?;
    if let Err(e) = record(sql, &link, ctx, now).await {
        village_platform::log::event(
            "ERROR",
            &format!("click not recorded: {e}"),
            serde_json::json!({ "metric": "clicks_unrecorded", "source": link.source,
                                "link_kind": link.kind.as_str(), "link_id": link.id }),
        );
    }
    let mut response = http::Response::new(Vec::new());
    *response.status_mut() = http::StatusCode::FOUND;
    let location = http::HeaderValue::from_str(&link.target)
        .map_err(|_| refused("the link's target is not a valid address".into()))?;
    let headers = response.headers_mut();
    headers.insert(http::header::LOCATION, location);
    // Every click must reach us: no cache may answer the next one.
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        http::header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}
