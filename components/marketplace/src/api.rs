//! The marketplace over HTTP (component `marketplace`). JSON under
//! `/api/marketplace/...` and `/api/places`; server-rendered pages under
//! `/marketplace/...` that work without JavaScript (the image upload aside).
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/api/places?q=` | places by name prefix, for the forms |
//! | GET | `/api/marketplace/categories` | the category tree |
//! | GET | `/api/marketplace/listings?near…` | radius search (see `search`) |
//! | POST | `/api/marketplace/listings` | a new draft (signed in) |
//! | GET | `/api/marketplace/listings/mine` | the caller's listings |
//! | GET, PUT, DELETE | `/api/marketplace/listings/{id}` | read, edit, withdraw |
//! | POST | `/api/marketplace/listings/{id}/{publish,renew,sold}` | lifecycle |
//! | POST | `/api/marketplace/listings/{id}/remove` `{reason}` | moderators |
//! | POST | `/api/marketplace/listings/{id}/images` | an upload URL |
//! | POST | `/api/marketplace/listings/{id}/images/{image}/confirm` | attach |
//! | DELETE | `/api/marketplace/listings/{id}/images/{image}` | drop an image |
//! | GET | `/marketplace`, `/marketplace/listings/{id}`, `/marketplace/mine`, `/marketplace/new`, `/marketplace/listings/{id}/edit` | pages |
//! | POST | `/marketplace/new`, `/marketplace/listings/{id}/{edit,publish,renew,sold,withdraw}`, `…/images/{image}/delete` | the pages' forms |
//! | GET | `/marketplace/images/{key}` | a public listing's image (cacheable) |

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;
use village_accounts::roles::{Permission, grants};
use village_platform::admin::parse_body;
use village_platform::http_client::HttpClient;
use village_platform::objects::S3Store;
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::listings::{self, Actor, PlaceInput, PriceInput, RawListing};
use crate::pages;
use crate::search::SearchQuery;
use crate::{categories, images, places};

pub struct MarketRequest<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// What the handler needs besides the request.
pub struct Services<'a, S, H> {
    pub sql: &'a S,
    pub store: Option<&'a S3Store<'a, H>>,
    /// The store's origin, allowed in the pages' CSP (images, uploads).
    pub store_origin: Option<String>,
    /// Signs the outbound links in listing bodies (`None`: plain links).
    pub signer: Option<&'a village_clicks::LinkSigner>,
    /// Whether paid promotions are on for this visitor (the
    /// `promoted_listings` flag): featured listings rank first, highlights
    /// show, sellers see the promotion links.
    pub promotions: bool,
    pub now: DateTime<Utc>,
}

/// Whether `method path` shows anything promotions change (searches, the
/// seller's own listings): only those evaluate the `promoted_listings` flag
/// (a cache read and an evaluation-log write) — the rest of the
/// marketplace's requests do not pay for it.
pub fn shows_promotions(method: &http::Method, path: &str) -> bool {
    method == http::Method::GET
        && matches!(
            path.trim_end_matches('/'),
            "/marketplace" | "/marketplace/mine" | "/api/marketplace/listings"
        )
}

/// How many featured listings rank above a search's first page.
pub const PROMOTED_PER_SEARCH: i64 = 3;

/// A page of `search`, with its featured listings first and highlights
/// marked while promotions are on.
pub(crate) async fn search_page<S: Sql, H>(
    search: &crate::search::Search,
    s: &Services<'_, S, H>,
) -> Result<crate::search::Page, AppError> {
    let mut page = search.run(s.sql).await?;
    if s.promotions && search.is_first_page() {
        page.promoted = search.promoted(s.sql, s.now, PROMOTED_PER_SEARCH).await?;
    }
    for h in &mut page.listings {
        h.mark_promotions(s.promotions, s.now);
    }
    Ok(page)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListingBody {
    title: Option<String>,
    body: Option<String>,
    price_cents: Option<i64>,
    category: Option<String>,
    city_id: Option<i64>,
    lat: Option<f64>,
    lon: Option<f64>,
    place: Option<String>,
    contact_method: Option<String>,
    contact_value: Option<String>,
}

impl From<ListingBody> for RawListing {
    fn from(b: ListingBody) -> Self {
        RawListing {
            title: b.title,
            body: b.body,
            price: b.price_cents.map_or(PriceInput::None, PriceInput::Cents),
            category: b.category,
            place: match (b.city_id, b.lat, b.lon, b.place) {
                (Some(id), ..) => PlaceInput::City(id),
                (None, Some(lat), Some(lon), _) => PlaceInput::Point(lat, lon),
                (None, _, _, Some(text)) => PlaceInput::Text(text),
                _ => PlaceInput::None,
            },
            contact_method: b.contact_method,
            contact_value: b.contact_value,
        }
    }
}

/// A form post's fields as a listing.
pub(crate) fn form_listing(body: &[u8]) -> RawListing {
    let get = |name: &str| web::query_param(body, name);
    RawListing {
        title: get("title"),
        body: get("body"),
        price: get("price").map_or(PriceInput::None, PriceInput::Text),
        category: get("category"),
        place: get("place").map_or(PlaceInput::None, PlaceInput::Text),
        contact_method: get("contact_method"),
        contact_value: get("contact_value"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveBody {
    reason: Option<String>,
}

fn user(ctx: &RequestContext) -> Result<Uuid, AppError> {
    ctx.user_id().ok_or(AppError::Unauthorized)
}

fn id_of(segment: &str) -> Result<i64, AppError> {
    segment.parse().map_err(|_| AppError::NotFound)
}

pub(crate) async fn is_moderator(sql: &impl Sql, ctx: &RequestContext) -> Result<bool, AppError> {
    match &ctx.principal {
        // Admin power is not used while impersonating.
        Some(p) if p.impersonator.is_none() => Ok(grants(
            &village_accounts::authz::roles_of(sql, p.user_id).await?,
            Permission::ModerateContent,
        )),
        _ => Ok(false),
    }
}

/// The caller, to change listings. While an admin impersonates a seller,
/// changes are refused (and the refusal audited): what support may do for
/// a user goes through audited admin routes, not their session.
pub(crate) async fn actor<'c>(
    sql: &impl Sql,
    ctx: &'c RequestContext,
) -> Result<Actor<'c>, AppError> {
    village_accounts::authz::refuse_while_impersonating(sql, ctx, "changing listings").await?;
    Ok(Actor {
        ctx,
        user: user(ctx)?,
        moderator: is_moderator(sql, ctx).await?,
    })
}

/// Reads listing `id` for `ctx`: public ones for everyone, the rest only
/// for their seller and moderators (404 for anyone else).
pub(crate) async fn visible_listing(
    sql: &impl Sql,
    ctx: &RequestContext,
    id: i64,
) -> Result<listings::Listing, AppError> {
    let listing = listings::get(sql, id).await?.ok_or(AppError::NotFound)?;
    if listing.status.is_public()
        || ctx.user_id() == Some(listing.seller_id)
        || is_moderator(sql, ctx).await?
    {
        Ok(listing)
    } else {
        Err(AppError::NotFound)
    }
}

/// The JSON of one listing: contact only for signed-in readers.
async fn listing_json<S: Sql, H: HttpClient>(
    s: &Services<'_, S, H>,
    ctx: &RequestContext,
    listing: listings::Listing,
) -> Result<serde_json::Value, AppError> {
    let images = images::of_listing(s.sql, s.store, &listing, s.now).await?;
    let mut value =
        serde_json::to_value(&listing).map_err(|e| AppError::Internal(e.to_string()))?;
    if ctx.user_id().is_none()
        && let Some(obj) = value.as_object_mut()
    {
        obj.remove("contact");
    }
    if let Some(obj) = value.as_object_mut() {
        obj.insert("images".into(), serde_json::json!(images));
    }
    Ok(value)
}

fn ok_json(value: serde_json::Value) -> Response {
    web::json(http::StatusCode::OK, &value)
}

pub async fn handle<S: Sql, H: HttpClient>(
    req: MarketRequest<'_>,
    s: &Services<'_, S, H>,
    ctx: &RequestContext,
) -> Result<Response, AppError> {
    use http::Method as M;
    let segments: Vec<&str> = req.path.trim_end_matches('/').split('/').skip(1).collect();
    let sql = s.sql;
    let now = s.now;
    match (req.method, segments.as_slice()) {
        (&M::GET, ["api", "places"]) => {
            let q = web::query_param(req.query.as_bytes(), "q").unwrap_or_default();
            if q.chars().count() > places::MAX_QUERY {
                return Err(AppError::Validation(vec![
                    village_platform::FieldError::new(
                        "q",
                        format!("at most {} characters", places::MAX_QUERY),
                    ),
                ]));
            }
            let found = places::lookup(sql, &q, 10).await?;
            let list: Vec<_> = found
                .iter()
                .map(|c| {
                    serde_json::json!({ "id": c.id, "label": c.label(), "name": c.name,
                    "admin_code": c.admin_code, "admin_name": c.admin_name, "country": c.country,
                    "population": c.population, "lat": c.lat, "lon": c.lon })
                })
                .collect();
            Ok(ok_json(serde_json::json!({ "places": list })))
        }
        (&M::GET, ["api", "marketplace", "categories"]) => Ok(ok_json(
            serde_json::json!({ "categories": categories::all(sql).await? }),
        )),
        (&M::GET, ["api", "marketplace", "listings"]) => {
            let search = SearchQuery::from_query(req.query).check(sql).await?;
            let page = search_page(&search, s).await?;
            Ok(ok_json(serde_json::json!({
                "promoted": page.promoted,
                "near": { "label": search.near.label(), "lat": search.near.point().lat,
                          "lon": search.near.point().lon },
                "radius_miles": search.radius.miles(),
                "sort": search.sort.as_str(),
                "listings": page.listings,
                "next_cursor": page.next_cursor,
            })))
        }
        (&M::POST, ["api", "marketplace", "listings"]) => {
            let seller = actor(sql, ctx).await?.user;
            let body: ListingBody = parse_body(req.body)?;
            let fields = listings::check(sql, body.into())
                .await
                .map_err(api_fields)?;
            let id = listings::create(sql, seller, &fields, now).await?;
            let listing = listings::get(sql, id).await?.ok_or(AppError::NotFound)?;
            Ok(web::json(
                http::StatusCode::CREATED,
                &serde_json::json!({ "listing": listing_json(s, ctx, listing).await? }),
            ))
        }
        (&M::GET, ["api", "marketplace", "listings", "mine"]) => {
            let mine = listings::of_seller(sql, user(ctx)?).await?;
            Ok(ok_json(serde_json::json!({ "listings": mine })))
        }
        (&M::GET, ["api", "marketplace", "listings", id]) => {
            let listing = visible_listing(sql, ctx, id_of(id)?).await?;
            Ok(ok_json(
                serde_json::json!({ "listing": listing_json(s, ctx, listing).await? }),
            ))
        }
        (&M::PUT, ["api", "marketplace", "listings", id]) => {
            let actor = actor(sql, ctx).await?;
            let id = id_of(id)?;
            listings::for_seller(sql, &actor, id).await?;
            let body: ListingBody = parse_body(req.body)?;
            let fields = listings::check(sql, body.into())
                .await
                .map_err(api_fields)?;
            listings::update(sql, &actor, id, &fields, now)
                .await
                .map_err(api_fields)?;
            let listing = listings::get(sql, id).await?.ok_or(AppError::NotFound)?;
            Ok(ok_json(
                serde_json::json!({ "listing": listing_json(s, ctx, listing).await? }),
            ))
        }
        (&M::DELETE, ["api", "marketplace", "listings", id]) => {
            let actor = actor(sql, ctx).await?;
            listings::withdraw(sql, &actor, id_of(id)?, now).await?;
            Ok(web::text(http::StatusCode::NO_CONTENT, ""))
        }
        (
            &M::POST,
            [
                "api",
                "marketplace",
                "listings",
                id,
                action @ ("publish" | "renew" | "sold"),
            ],
        ) => {
            let actor = actor(sql, ctx).await?;
            let listing = change(sql, &actor, id_of(id)?, action, now).await?;
            Ok(ok_json(
                serde_json::json!({ "listing": listing_json(s, ctx, listing).await? }),
            ))
        }
        (&M::POST, ["api", "marketplace", "listings", id, "remove"]) => {
            let actor = actor(sql, ctx).await?;
            let body: RemoveBody = parse_body(req.body)?;
            // The refunds owed for it are recorded in the same statement
            // (automatic within 24 hours of payment, issued by the payments
            // jobs `payments-scheduler` queues within five minutes; else a
            // request for manual review).
            listings::remove(
                sql,
                &actor,
                id_of(id)?,
                body.reason.as_deref().unwrap_or(""),
                now,
            )
            .await?;
            Ok(web::text(http::StatusCode::NO_CONTENT, ""))
        }
        (&M::POST, ["api", "marketplace", "listings", id, "images"]) => {
            let actor = actor(sql, ctx).await?;
            let body: images::UploadRequest = parse_body(req.body)?;
            let upload = images::start(sql, s.store, &actor, id_of(id)?, body, now).await?;
            Ok(web::json(http::StatusCode::CREATED, &upload))
        }
        (
            &M::POST,
            [
                "api",
                "marketplace",
                "listings",
                id,
                "images",
                image,
                "confirm",
            ],
        ) => {
            let actor = actor(sql, ctx).await?;
            let (id, image) = (id_of(id)?, id_of(image)?);
            images::confirm(sql, s.store, &actor, id, image, now).await?;
            let listing = listings::get(sql, id).await?.ok_or(AppError::NotFound)?;
            Ok(ok_json(
                serde_json::json!({ "listing": listing_json(s, ctx, listing).await? }),
            ))
        }
        (&M::DELETE, ["api", "marketplace", "listings", id, "images", image]) => {
            let actor = actor(sql, ctx).await?;
            images::delete(sql, &actor, id_of(id)?, id_of(image)?).await?;
            Ok(web::text(http::StatusCode::NO_CONTENT, ""))
        }
        (&M::GET, ["marketplace", "images", rest @ ..]) if !rest.is_empty() => {
            let key = rest.join("/");
            match images::public(sql, s.store, &key, now).await? {
                Some((content_type, bytes)) => {
                    let mut r = http::Response::new(bytes);
                    let h = r.headers_mut();
                    h.insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_str(&content_type)
                            .map_err(|e| AppError::Internal(e.to_string()))?,
                    );
                    // Keys are never reused, so an image at a key never changes;
                    // but a removed listing's images must leave shared caches
                    // soon: an hour.
                    h.insert(
                        http::header::CACHE_CONTROL,
                        http::HeaderValue::from_static("public, max-age=3600"),
                    );
                    Ok(r)
                }
                None => Err(AppError::NotFound),
            }
        }
        (&M::GET | &M::POST, ["marketplace", ..]) => pages::handle(req, s, ctx, &segments).await,
        (
            _,
            ["api", "places"]
            | ["api", "marketplace", "categories"]
            | ["api", "marketplace", "listings", "mine"],
        ) => Err(AppError::MethodNotAllowed { allowed: "GET" }),
        (_, ["api", "marketplace", "listings"]) => Err(AppError::MethodNotAllowed {
            allowed: "GET, POST",
        }),
        (_, ["api", "marketplace", "listings", _]) => Err(AppError::MethodNotAllowed {
            allowed: "GET, PUT, DELETE",
        }),
        (_, ["api", "marketplace", "listings", _, "images", _]) => {
            Err(AppError::MethodNotAllowed { allowed: "DELETE" })
        }
        (_, ["api", "marketplace", "listings", _, ..]) => {
            Err(AppError::MethodNotAllowed { allowed: "POST" })
        }
        (_, ["marketplace", ..]) => Err(AppError::MethodNotAllowed {
            allowed: "GET, POST",
        }),
        _ => Err(AppError::NotFound),
    }
}

/// Field errors named as the JSON body names its fields.
fn api_fields(e: AppError) -> AppError {
    match e {
        AppError::Validation(errors) => AppError::Validation(
            errors
                .into_iter()
                .map(|mut f| {
                    if f.field == "price" {
                        f.field = "price_cents".into();
                    }
                    f
                })
                .collect(),
        ),
        other => other,
    }
}

/// Publish, renew or mark sold.
pub(crate) async fn change(
    sql: &impl Sql,
    actor: &Actor<'_>,
    id: i64,
    action: &str,
    now: DateTime<Utc>,
) -> Result<listings::Listing, AppError> {
    match action {
        "publish" => listings::publish(sql, actor, id, now).await,
        "renew" => listings::renew(sql, actor, id, now).await,
        _ => listings::mark_sold(sql, actor, id, now).await,
    }
}

#[cfg(test)]
mod tests {
    use super::shows_promotions;

    #[test]
    fn only_searches_and_the_sellers_page_ask_for_the_promotions_flag() {
        let get = http::Method::GET;
        for path in [
            "/marketplace",
            "/marketplace/",
            "/marketplace/mine",
            "/api/marketplace/listings",
        ] {
            assert!(shows_promotions(&get, path), "{path}");
        }
        for path in [
            "/marketplace/new",
            "/marketplace/listings/7",
            "/api/places",
            "/marketplace/images/a.png",
        ] {
            assert!(!shows_promotions(&get, path), "{path}");
        }
        assert!(!shows_promotions(
            &http::Method::POST,
            "/api/marketplace/listings"
        ));
    }
}
