//! The marketplace's pages (askama templates, HTML-escaped by default; a
//! listing's body is the HTML sanitised when it was saved). Every form
//! posts back and redirects; bad input re-shows the form with a message
//! beside each field, status 400, nothing typed lost.

use askama::Template;
use village_platform::error::FieldError;
use village_platform::http_client::HttpClient;
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::api::{MarketRequest, Services, actor, change, form_listing, visible_listing};
use crate::categories::{self, Category};
use crate::images::{self, Image};
use crate::listings::{self, Listing, Status};
use crate::search::{Hit, SearchQuery};

/// "$1,250.00", or "Free" / "—".
pub fn money(cents: Option<i64>) -> String {
    match cents {
        None => "—".to_owned(),
        Some(0) => "Free".to_owned(),
        Some(c) => {
            let dollars = (c / 100).to_string();
            let mut grouped = String::new();
            for (i, ch) in dollars.chars().enumerate() {
                if i > 0 && (dollars.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(ch);
            }
            format!("${grouped}.{:02}", c % 100)
        }
    }
}

/// The message for `field`, if any.
fn message_for(errors: &[FieldError], field: &str) -> Option<String> {
    errors
        .iter()
        .filter(|e| e.field == field)
        .map(|e| e.message.clone())
        .reduce(|a, b| format!("{a}; {b}"))
}

struct Chrome {
    signed_in: bool,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage<'a> {
    chrome: Chrome,
    q: &'a SearchQuery,
    categories: Vec<Category>,
    errors: Vec<FieldError>,
    searched: bool,
    near_label: String,
    radius: u16,
    /// Featured listings matching the search (first page, promotions on).
    promoted: Vec<HitView>,
    hits: Vec<HitView>,
    next: Option<String>,
}

impl SearchPage<'_> {
    fn err(&self, field: &str) -> Option<String> {
        message_for(&self.errors, field)
    }
    fn value(&self, v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }
}

struct HitView {
    id: i64,
    title: String,
    price: String,
    place: String,
    category: String,
    miles: String,
    thumbnail: Option<String>,
    featured: bool,
    highlighted: bool,
}

impl From<Hit> for HitView {
    fn from(h: Hit) -> Self {
        HitView {
            id: h.id,
            title: h.title,
            price: money(h.price_cents),
            place: h.place_name,
            category: h.category_name,
            miles: format!("{:.1}", h.miles),
            thumbnail: h.thumbnail_key.as_deref().map(images::public_path),
            featured: h.featured,
            highlighted: h.highlighted,
        }
    }
}

#[derive(Template)]
#[template(path = "listing.html")]
struct ListingPage {
    chrome: Chrome,
    listing: Listing,
    price: String,
    images: Vec<Image>,
    is_seller: bool,
}

#[derive(Template)]
#[template(path = "mine.html")]
struct MinePage {
    chrome: Chrome,
    listings: Vec<MineRow>,
    notice: Option<String>,
}

struct MineRow {
    id: i64,
    title: String,
    status: &'static str,
    price: String,
    expires: String,
    can_edit: bool,
    can_publish: bool,
    can_renew: bool,
    can_sell: bool,
    can_withdraw: bool,
    /// Featured, bump and highlight links (active, promotions on).
    can_promote: bool,
    paid_note: Option<String>,
}

#[derive(Template)]
#[template(path = "form.html")]
struct FormPage {
    chrome: Chrome,
    /// `None` for a new listing.
    id: Option<i64>,
    categories: Vec<Category>,
    errors: Vec<FieldError>,
    title: String,
    body: String,
    price: String,
    category: String,
    place: String,
    contact_method: String,
    contact_value: String,
    images: Vec<Image>,
}

impl FormPage {
    fn err(&self, field: &str) -> Option<String> {
        message_for(&self.errors, field).or_else(|| {
            (field == "place")
                .then(|| message_for(&self.errors, "city_id"))
                .flatten()
        })
    }
}

fn render(t: impl Template, status: http::StatusCode, csp: &str) -> Result<Response, AppError> {
    let html = t
        .render()
        .map_err(|e| AppError::Internal(format!("failed to render a marketplace page: {e}")))?;
    let mut r = web::html(status, html);
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, no-store"),
    );
    if let Ok(v) = http::HeaderValue::from_str(csp) {
        r.headers_mut().insert("content-security-policy", v);
    }
    Ok(r)
}

/// The pages' CSP: the site's own, with the object store's origin allowed
/// for draft images (presigned) and the browser's uploads.
fn csp(store_origin: Option<&str>) -> String {
    let store = store_origin.map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; \
         img-src 'self' https: data:{store}; connect-src 'self'{store}; object-src 'none'; \
         base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// The form's fields as typed, to show them again.
type Typed = (String, String, String, String, String, String, String);

fn typed(body: &[u8]) -> Typed {
    let get = |n: &str| web::query_param(body, n).unwrap_or_default();
    (
        get("title"),
        get("body"),
        get("price"),
        get("category"),
        get("place"),
        get("contact_method"),
        get("contact_value"),
    )
}

pub(crate) async fn handle<S: Sql, H: HttpClient>(
    req: MarketRequest<'_>,
    s: &Services<'_, S, H>,
    ctx: &RequestContext,
    segments: &[&str],
) -> Result<Response, AppError> {
    use http::Method as M;
    let sql = s.sql;
    let now = s.now;
    let chrome = || Chrome {
        signed_in: ctx.principal.is_some(),
    };
    let csp = csp(s.store_origin.as_deref());
    let id_of = |seg: &str| seg.parse::<i64>().map_err(|_| AppError::NotFound);
    match (req.method, segments) {
        (&M::GET, ["marketplace"]) => {
            let q = SearchQuery::from_query(req.query);
            let mut page = SearchPage {
                chrome: chrome(),
                q: &q,
                categories: categories::all(sql).await?,
                errors: Vec::new(),
                searched: false,
                near_label: String::new(),
                radius: 25,
                promoted: Vec::new(),
                hits: Vec::new(),
                next: None,
            };
            if !q.has_place() && req.query.is_empty() {
                return render(page, http::StatusCode::OK, &csp);
            }
            match q.check(sql).await {
                Ok(search) => {
                    let results = crate::api::search_page(&search, s).await?;
                    page.promoted = results.promoted.into_iter().map(HitView::from).collect();
                    page.searched = true;
                    page.near_label = search.near.label();
                    page.radius = search.radius.miles();
                    page.next = results
                        .next_cursor
                        .map(|c| format!("/marketplace?{}", q.with_cursor(&c)));
                    page.hits = results.listings.into_iter().map(HitView::from).collect();
                    render(page, http::StatusCode::OK, &csp)
                }
                Err(AppError::Validation(errors)) => {
                    page.errors = errors;
                    render(page, http::StatusCode::BAD_REQUEST, &csp)
                }
                Err(e) => Err(e),
            }
        }
        (&M::GET, ["marketplace", "listings", id]) => {
            let mut listing = visible_listing(sql, ctx, id_of(id)?).await?;
            listing.body_html =
                crate::markdown::with_tracked_links(&listing.body_html, s.signer, listing.id);
            let images = images::of_listing(sql, s.store, &listing, now).await?;
            let page = ListingPage {
                chrome: chrome(),
                price: money(listing.price_cents),
                is_seller: ctx.user_id() == Some(listing.seller_id),
                listing,
                images,
            };
            render(page, http::StatusCode::OK, &csp)
        }
        (&M::GET, ["marketplace", "mine"]) => {
            let seller = ctx.user_id().ok_or(AppError::Unauthorized)?;
            let notice = web::query_param(req.query.as_bytes(), "notice").map(|code| {
                match code.as_str() {
                    "paid" => {
                        "That listing is in a paid category: publishing and renewing go through \
                         checkout. It is saved as it is."
                    }
                    _ => "That change is not possible for the listing as it is now.",
                }
                .to_owned()
            });
            mine(sql, seller, notice, s.promotions, &csp, chrome()).await
        }
        (&M::GET, ["marketplace", "new"]) => {
            ctx.user_id().ok_or(AppError::Unauthorized)?;
            let page = FormPage {
                chrome: chrome(),
                id: None,
                categories: categories::all(sql).await?,
                errors: Vec::new(),
                title: String::new(),
                body: String::new(),
                price: String::new(),
                category: String::new(),
                place: String::new(),
                contact_method: "email".into(),
                contact_value: String::new(),
                images: Vec::new(),
            };
            render(page, http::StatusCode::OK, &csp)
        }
        (&M::GET, ["marketplace", "listings", id, "edit"]) => {
            let actor = actor(sql, ctx).await?;
            let listing = listings::for_seller(sql, &actor, id_of(id)?).await?;
            let images = images::of_listing(sql, s.store, &listing, now).await?;
            let page = FormPage {
                chrome: chrome(),
                id: Some(listing.id),
                categories: categories::all(sql).await?,
                errors: Vec::new(),
                title: listing.title.clone(),
                body: listing.body_markdown.clone(),
                price: listing
                    .price_cents
                    .map(|c| format!("{}.{:02}", c / 100, c % 100))
                    .unwrap_or_default(),
                category: listing.category_slug.clone(),
                place: listing.place_name.clone(),
                contact_method: listing.contact.method.to_owned(),
                contact_value: listing.contact.value.clone(),
                images,
            };
            render(page, http::StatusCode::OK, &csp)
        }
        (&M::POST, ["marketplace", "new"] | ["marketplace", "listings", _, "edit"]) => {
            let actor = actor(sql, ctx).await?;
            let existing = match segments {
                ["marketplace", "listings", id, "edit"] => {
                    Some(listings::for_seller(sql, &actor, id_of(id)?).await?)
                }
                _ => None,
            };
            let raw = form_listing(req.body);
            match listings::check(sql, raw).await {
                Ok(fields) => {
                    let id = match &existing {
                        Some(l) => {
                            listings::update(sql, &actor, l.id, &fields, now).await?;
                            l.id
                        }
                        None => listings::create(sql, actor.user, &fields, now).await?,
                    };
                    // A new draft goes on to its pictures; an edit to the listing.
                    Ok(web::see_other(&if existing.is_some() {
                        format!("/marketplace/listings/{id}")
                    } else {
                        format!("/marketplace/listings/{id}/edit")
                    }))
                }
                Err(AppError::Validation(errors)) => {
                    let (title, body, price, category, place, contact_method, contact_value) =
                        typed(req.body);
                    let images = match &existing {
                        Some(l) => images::of_listing(sql, s.store, l, now).await?,
                        None => Vec::new(),
                    };
                    let page = FormPage {
                        chrome: chrome(),
                        id: existing.as_ref().map(|l| l.id),
                        categories: categories::all(sql).await?,
                        errors,
                        title,
                        body,
                        price,
                        category,
                        place,
                        contact_method,
                        contact_value,
                        images,
                    };
                    render(page, http::StatusCode::BAD_REQUEST, &csp)
                }
                Err(e) => Err(e),
            }
        }
        (
            &M::POST,
            [
                "marketplace",
                "listings",
                id,
                action @ ("publish" | "renew" | "sold" | "withdraw"),
            ],
        ) => {
            let actor = actor(sql, ctx).await?;
            let id = id_of(id)?;
            // A paid category's publication and renewal are bought: the
            // form leads to checkout (the listing changes once paid).
            if matches!(*action, "publish" | "renew") {
                let listing = listings::for_seller(sql, &actor, id).await?;
                if listing.category_fee_cents > 0 {
                    return Ok(web::see_other(&format!(
                        "/payments/checkout?listing={id}&purpose=posting"
                    )));
                }
            }
            let result = if *action == "withdraw" {
                listings::withdraw(sql, &actor, id, now).await
            } else {
                change(sql, &actor, id, action, now).await.map(|_| ())
            };
            match result {
                Ok(()) => Ok(web::see_other("/marketplace/mine")),
                // A refused change is told on the page by a code: the page
                // shows only its own words, never text from a link.
                Err(AppError::Conflict(why)) => Ok(web::see_other(&format!(
                    "/marketplace/mine?notice={}",
                    if why.contains("paid category") {
                        "paid"
                    } else {
                        "state"
                    }
                ))),
                Err(e) => Err(e),
            }
        }
        (&M::POST, ["marketplace", "widget"]) => {
            let near = web::query_param(req.body, "near").unwrap_or_default();
            crate::widget::choose_place(sql, ctx, &near).await?;
            Ok(web::see_other("/#widget-marketplace"))
        }
        (&M::POST, ["marketplace", "listings", id, "images", image, "delete"]) => {
            let actor = actor(sql, ctx).await?;
            let id = id_of(id)?;
            images::delete(sql, &actor, id, id_of(image)?).await?;
            Ok(web::see_other(&format!("/marketplace/listings/{id}/edit")))
        }
        _ => Err(AppError::NotFound),
    }
}

async fn mine(
    sql: &impl Sql,
    seller: uuid::Uuid,
    notice: Option<String>,
    promotions: bool,
    csp: &str,
    chrome: Chrome,
) -> Result<Response, AppError> {
    let rows = listings::of_seller(sql, seller)
        .await?
        .into_iter()
        .map(|l| MineRow {
            id: l.id,
            title: l.title.clone(),
            status: l.status.as_str(),
            price: money(l.price_cents),
            expires: l
                .expires_at
                .filter(|_| l.status == Status::Active)
                .map(|t| t.format("%b %-d, %Y").to_string())
                .unwrap_or_default(),
            can_edit: !matches!(l.status, Status::Sold | Status::Removed)
                && l.archived_at.is_none(),
            can_publish: l.status == Status::Draft,
            can_renew: matches!(l.status, Status::Active | Status::Expired)
                && l.archived_at.is_none(),
            can_sell: l.status == Status::Active,
            can_withdraw: !matches!(l.status, Status::Removed),
            can_promote: promotions && l.status == Status::Active && l.archived_at.is_none(),
            paid_note: (l.category_fee_cents > 0
                && matches!(l.status, Status::Draft | Status::Expired | Status::Active))
            .then(|| {
                format!(
                    "Paid category ({} for 30 days): publishing and renewing go through checkout.",
                    money(Some(i64::from(l.category_fee_cents)))
                )
            }),
        })
        .collect();
    render(
        MinePage {
            chrome,
            listings: rows,
            notice,
        },
        http::StatusCode::OK,
        csp,
    )
}

#[cfg(test)]
mod tests {
    use super::money;

    #[test]
    fn money_is_dollars_with_thousands_grouped() {
        assert_eq!(money(Some(125_000)), "$1,250.00");
        assert_eq!(money(Some(99)), "$0.99");
        assert_eq!(money(Some(123_456_789)), "$1,234,567.89");
        assert_eq!(money(Some(0)), "Free");
        assert_eq!(money(None), "—");
    }
}
