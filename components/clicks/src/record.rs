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
//! The signature proves we rendered the link; the same statement that
//! records the click checks that what it leads to still stands — a site
//! still approved (and sent to its stored URL), an article still carrying
//! that link, a listing still public. Otherwise the visitor gets a page
//! saying so, not a redirect.
//!
//! Who clicked is recorded only for a signed-in user who agreed to
//! analytics (their user and anonymous ids); every other click is counted
//! without naming anyone. Withdrawing consent forgets the user's clicks
//! ([`forget_user`]). Each click carries a visitor hash — the day and the
//! visitor's address (else their anonymous id), hashed — so the rollups can
//! count visitors, not clicks, without anything linking one day's visitor
//! to the next. `HEAD` is answered like `GET` but not recorded.

use chrono::{DateTime, Utc};
use sha2::Digest;
use village_platform::sql::{Sql, SqlError, SqlValue};
use village_platform::web::Response;
use village_platform::{AppError, FieldError, RequestContext};

use crate::links::{Link, LinkSigner};

/// What recording a click found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded; the visitor goes to this address.
    To(String),
    /// What the link leads to is gone (removed site, withdrawn listing).
    Gone,
}

/// Writes one click, if what it leads to still stands (one statement).
pub async fn record(
    sql: &impl Sql,
    link: &Link,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Recorded, SqlError> {
    let consenting = ctx.principal.as_ref().filter(|p| p.analytics_consent);
    let row = sql
        .query_opt(
            "WITH target AS ( \
                 SELECT CASE $2 \
                     WHEN 'site' THEN (SELECT s.url FROM directory_sites s \
                                       WHERE s.id = $3 AND s.status = 'approved') \
                     WHEN 'article' THEN (SELECT i.link FROM feed_items i \
                                          WHERE i.id = $3 AND i.link = $4) \
                     WHEN 'listing' THEN (SELECT $4 FROM marketplace_listings l \
                                          WHERE l.id = $3 AND l.status IN ('active', 'sold')) \
                     END AS url) \
             INSERT INTO link_clicks (clicked_at, link_kind, link_id, target_url, source, \
                                      position, category_id, visitor, anon_id, user_id) \
             SELECT $1, $2, $3, t.url, $5, $6, $7, $8, $9, $10 FROM target t \
             WHERE t.url IS NOT NULL RETURNING target_url",
            &[
                SqlValue::Timestamp(now),
                SqlValue::Text(link.kind.as_str().to_owned()),
                SqlValue::Int64(link.id),
                SqlValue::Text(link.target.clone()),
                SqlValue::Text(link.source.clone()),
                SqlValue::Int32(link.position),
                SqlValue::Int64(link.category),
                SqlValue::Text(visitor_hash(ctx, now)),
                consenting.map_or(SqlValue::Null, |_| SqlValue::Uuid(ctx.anon_id.as_uuid())),
                consenting.map_or(SqlValue::Null, |p| SqlValue::Uuid(p.user_id)),
            ],
        )
        .await?;
    Ok(match row {
        Some(r) => Recorded::To(r.get("target_url")?),
        None => Recorded::Gone,
    })
}

/// The visitor of `ctx` on `now`'s day, as a hash: their address, else
/// their anonymous id, salted with the day (so days cannot be joined).
fn visitor_hash(ctx: &RequestContext, now: DateTime<Utc>) -> String {
    let visitor = ctx
        .client_ip
        .clone()
        .unwrap_or_else(|| ctx.anon_id.to_string());
    let digest = sha2::Sha256::digest(format!("{}|{visitor}", now.format("%Y%m%d")).as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes `user`'s name from their recorded clicks (the counts stay).
pub async fn forget_user(sql: &impl Sql, user: uuid::Uuid) -> Result<u64, SqlError> {
    sql.execute(
        "UPDATE link_clicks SET user_id = NULL, anon_id = NULL WHERE user_id = $1",
        &[SqlValue::Uuid(user)],
    )
    .await
}

/// The whole route: 400 for a link we did not sign or that expired, 410
/// for one whose target is gone (never a redirect), else the click
/// recorded and a 302.
pub async fn handle(
    sql: &impl Sql,
    signer: Option<&LinkSigner>,
    method: &http::Method,
    query: &str,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    let head = method == http::Method::HEAD;
    if method != http::Method::GET && !head {
        return Err(AppError::MethodNotAllowed {
            allowed: "GET, HEAD",
        });
    }
    let refused = |message: String| AppError::Validation(vec![FieldError::new("link", message)]);
    let signer = signer.ok_or_else(|| refused("click tracking is not configured".into()))?;
    let link = signer.verify(query).map_err(|e| refused(e.to_string()))?;
    let target = if head {
        Some(link.target.clone())
    } else {
        match record(sql, &link, ctx, now).await {
            Ok(Recorded::To(url)) => Some(url),
            Ok(Recorded::Gone) => None,
            Err(e) => {
                village_platform::log::event(
                    "ERROR",
                    &format!("click not recorded: {e}"),
                    serde_json::json!({ "metric": "clicks_unrecorded", "source": link.source,
                                        "link_kind": link.kind.as_str(), "link_id": link.id }),
                );
                Some(link.target.clone())
            }
        }
    };
    let Some(target) = target else {
        return Err(AppError::NotFound);
    };
    // Re-serialised by the URL parser: what goes out in `Location` is a
    // well-formed absolute http(s) URL (checked in `verify` as well).
    let target = url::Url::parse(&target)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| refused("the link's target is not a valid address".into()))?;
    let mut response = http::Response::new(Vec::new());
    *response.status_mut() = http::StatusCode::FOUND;
    let location = http::HeaderValue::from_str(target.as_str())
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
