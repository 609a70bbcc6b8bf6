//! Listings: what a seller writes, checked once into [`ListingFields`], and
//! every change to a listing's life (publish, renew, sold, withdraw, remove).
//!
//! Only signed-in users post; a listing is its seller's to edit and end.
//! A moderator (the `moderate_content` permission) may remove anyone's, and
//! every such change is audited in the same statement that makes it.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;
use village_platform::audit::AuditEntry;
use village_platform::error::FieldError;
use village_platform::sql::{Row, Sql, SqlError, SqlValue};
use village_platform::{AppError, RequestContext};

use crate::categories::{self, Category};
use crate::markdown;
use crate::places::{self, Point, Resolved};

/// How long a published listing runs before it expires (renewable).
pub const LISTING_LIFE_DAYS: i64 = 30;
pub const MAX_TITLE: usize = 120;
pub const MAX_BODY: usize = 10_000;
/// $100 million: a price above is a typo.
pub const MAX_PRICE_CENTS: i64 = 10_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Pending,
    Active,
    Sold,
    Expired,
    Removed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Sold => "sold",
            Status::Expired => "expired",
            Status::Removed => "removed",
        }
    }

    fn parse(s: &str) -> Result<Self, SqlError> {
        Ok(match s {
            "draft" => Status::Draft,
            "pending" => Status::Pending,
            "active" => Status::Active,
            "sold" => Status::Sold,
            "expired" => Status::Expired,
            "removed" => Status::Removed,
            other => {
                return Err(SqlError::Decode(format!(
                    "unknown listing status `{other}`"
                )));
            }
        })
    }

    /// Whether anyone may see a listing in this state.
    pub fn is_public(self) -> bool {
        matches!(self, Status::Active | Status::Sold)
    }
}

/// How buyers reach the seller; shown to signed-in visitors only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contact {
    pub method: &'static str,
    pub value: String,
}

/// What a seller sent, before checking: every field optional and raw.
#[derive(Debug, Clone, Default)]
pub struct RawListing {
    pub title: Option<String>,
    pub body: Option<String>,
    pub price: PriceInput,
    pub category: Option<String>,
    pub place: PlaceInput,
    pub contact_method: Option<String>,
    pub contact_value: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub enum PriceInput {
    #[default]
    None,
    /// From the API: whole cents.
    Cents(i64),
    /// From a form: "12", "12.50", "$1,200".
    Text(String),
}

#[derive(Debug, Clone, Default)]
pub enum PlaceInput {
    #[default]
    None,
    City(i64),
    Point(f64, f64),
    /// From a form: "Portland, OR" or "45.52, -122.68".
    Text(String),
}

/// A listing's checked fields.
#[derive(Debug, Clone)]
pub struct ListingFields {
    pub title: String,
    pub body_markdown: String,
    pub price_cents: Option<i64>,
    pub category: Category,
    pub place: Resolved,
    pub contact: Contact,
}

/// Reads dollars as typed into a form into cents.
pub fn parse_price(text: &str) -> Result<Option<i64>, String> {
    let t = text.trim().trim_start_matches('$').replace(',', "");
    if t.is_empty() {
        return Ok(None);
    }
    let bad = || "a price in dollars, like 25 or 12.50".to_owned();
    let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || whole.len() > 12
    {
        return Err(bad());
    }
    let dollars: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let cents: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    Ok(Some(dollars * 100 + cents))
}

fn check_price(cents: i64) -> Result<i64, String> {
    if (0..=MAX_PRICE_CENTS).contains(&cents) {
        Ok(cents)
    } else {
        Err(format!("from 0 to {} dollars", MAX_PRICE_CENTS / 100))
    }
}

fn check_contact(method: Option<&str>, value: Option<&str>) -> Result<Contact, FieldError> {
    let value = value.map(str::trim).unwrap_or_default();
    match method.map(str::trim) {
        Some("email") => {
            let ok = value.len() <= 254
                && value.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                })
                && !value.chars().any(|c| c.is_whitespace() || c.is_control());
            if ok {
                Ok(Contact {
                    method: "email",
                    value: value.to_owned(),
                })
            } else {
                Err(FieldError::new(
                    "contact_value",
                    "an email address, like you@example.com",
                ))
            }
        }
        Some("phone") => {
            let digits = value.chars().filter(char::is_ascii_digit).count();
            let ok = (7..=15).contains(&digits)
                && value.len() <= 30
                && value
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().".contains(c));
            if ok {
                Ok(Contact {
                    method: "phone",
                    value: value.to_owned(),
                })
            } else {
                Err(FieldError::new(
                    "contact_value",
                    "a phone number of 7 to 15 digits",
                ))
            }
        }
        _ => Err(FieldError::new("contact_method", "either email or phone")),
    }
}

/// Checks every field, naming each one that is wrong.
pub async fn check(sql: &impl Sql, raw: RawListing) -> Result<ListingFields, AppError> {
    let mut errors = Vec::new();
    let title = raw
        .title
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if title.is_empty() {
        errors.push(FieldError::new("title", "required"));
    } else if title.chars().count() > MAX_TITLE {
        errors.push(FieldError::new(
            "title",
            format!("at most {MAX_TITLE} characters"),
        ));
    } else if title.chars().any(char::is_control) {
        errors.push(FieldError::new("title", "one line of text"));
    }
    let body = raw
        .body
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if body.is_empty() {
        errors.push(FieldError::new("body", "required: describe what you offer"));
    } else if body.chars().count() > MAX_BODY {
        errors.push(FieldError::new(
            "body",
            format!("at most {MAX_BODY} characters"),
        ));
    }
    let price = match raw.price {
        PriceInput::None => Ok(None),
        PriceInput::Cents(c) => check_price(c).map(Some),
        PriceInput::Text(t) => parse_price(&t).and_then(|p| p.map(check_price).transpose()),
    };
    let price_cents = price.unwrap_or_else(|e| {
        errors.push(FieldError::new("price", e));
        None
    });
    let category = match raw
        .category
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => {
            errors.push(FieldError::new("category", "required"));
            None
        }
        Some(slug) => categories::named(sql, slug)
            .await?
            .map_err(|e| errors.push(e))
            .ok(),
    };
    let place = match raw.place {
        PlaceInput::None => Err(FieldError::new(
            "place",
            "required: a town, or latitude and longitude",
        )),
        PlaceInput::City(id) => places::by_id(sql, id)
            .await?
            .map(Resolved::City)
            .ok_or_else(|| FieldError::new("city_id", "not a known place")),
        PlaceInput::Point(lat, lon) => Point::new(lat, lon).map(Resolved::Point).map_err(|e| {
            FieldError::new(
                if e.contains("longitude") {
                    "lon"
                } else {
                    "lat"
                },
                e,
            )
        }),
        PlaceInput::Text(t) if t.trim().is_empty() => Err(FieldError::new(
            "place",
            "required: a town, or latitude and longitude",
        )),
        PlaceInput::Text(t) => places::resolve_text(sql, &t)
            .await?
            .map_err(|e| FieldError::new("place", e)),
    };
    let place = place.map_err(|e| errors.push(e)).ok();
    let contact = check_contact(raw.contact_method.as_deref(), raw.contact_value.as_deref())
        .map_err(|e| errors.push(e))
        .ok();
    match (category, place, contact) {
        (Some(category), Some(place), Some(contact)) if errors.is_empty() => Ok(ListingFields {
            title,
            body_markdown: body,
            price_cents,
            category,
            place,
            contact,
        }),
        _ => Err(AppError::Validation(errors)),
    }
}

/// A listing as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub id: i64,
    pub seller_id: Uuid,
    pub seller_name: Option<String>,
    pub title: String,
    pub body_markdown: String,
    pub body_html: String,
    pub price_cents: Option<i64>,
    pub category_slug: String,
    pub category_name: String,
    pub category_fee_cents: i32,
    pub city_id: Option<i64>,
    pub place_name: String,
    pub lat: f64,
    pub lon: f64,
    pub contact: Contact,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Set once archived (30 days after ending): images gone, final.
    pub archived_at: Option<DateTime<Utc>>,
    pub removed_reason: Option<String>,
}

impl TryFrom<&Row> for Listing {
    type Error = SqlError;

    fn try_from(r: &Row) -> Result<Self, SqlError> {
        let method: String = r.get("contact_method")?;
        Ok(Listing {
            id: r.get("id")?,
            seller_id: r.get("seller_id")?,
            seller_name: r.get("seller_name")?,
            title: r.get("title")?,
            body_markdown: r.get("body_markdown")?,
            body_html: r.get("body_html")?,
            price_cents: r.get("price_cents")?,
            category_slug: r.get("category_slug")?,
            category_name: r.get("category_name")?,
            category_fee_cents: r.get("category_fee_cents")?,
            city_id: r.get("city_id")?,
            place_name: r.get("place_name")?,
            lat: r.get("lat")?,
            lon: r.get("lon")?,
            contact: Contact {
                method: if method == "phone" { "phone" } else { "email" },
                value: r.get("contact_value")?,
            },
            status: Status::parse(&r.get::<String>("status")?)?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
            published_at: r.get("published_at")?,
            expires_at: r.get("expires_at")?,
            ended_at: r.get("ended_at")?,
            archived_at: r.get("archived_at")?,
            removed_reason: r.get("removed_reason")?,
        })
    }
}

/// The select list [`Listing`] reads (a macro, so statements stay literals).
macro_rules! listing_select {
    () => {
        "SELECT l.id, l.seller_id, u.display_name AS seller_name, l.title, l.body_markdown, \
                l.body_html, l.price_cents, c.slug AS category_slug, c.name AS category_name, \
                c.fee_cents AS category_fee_cents, l.city_id, l.place_name, \
                ST_Y(l.location::geometry) AS lat, ST_X(l.location::geometry) AS lon, \
                l.contact_method, l.contact_value, l.status, l.created_at, l.updated_at, \
                l.published_at, l.expires_at, l.ended_at, l.archived_at, l.removed_reason \
         FROM marketplace_listings l \
         JOIN marketplace_categories c ON c.id = l.category_id \
         JOIN users u ON u.id = l.seller_id "
    };
}

pub async fn get(sql: &impl Sql, id: i64) -> Result<Option<Listing>, SqlError> {
    sql.query_opt(
        concat!(listing_select!(), "WHERE l.id = $1"),
        &[SqlValue::Int64(id)],
    )
    .await?
    .as_ref()
    .map(Listing::try_from)
    .transpose()
}

/// The seller's listings, newest first (every state but purged).
pub async fn of_seller(sql: &impl Sql, seller: Uuid) -> Result<Vec<Listing>, SqlError> {
    let rows = sql
        .query(
            concat!(
                listing_select!(),
                "WHERE l.seller_id = $1 ORDER BY l.id DESC LIMIT 500"
            ),
            &[SqlValue::Uuid(seller)],
        )
        .await?;
    rows.iter().map(Listing::try_from).collect()
}

fn field_params(f: &ListingFields) -> Vec<SqlValue> {
    let point = f.place.point();
    vec![
        SqlValue::Int64(f.category.id),
        SqlValue::Text(f.title.clone()),
        SqlValue::Text(f.body_markdown.clone()),
        SqlValue::Text(markdown::render(&f.body_markdown)),
        f.price_cents.map_or(SqlValue::Null, SqlValue::Int64),
        f.place.city_id().map_or(SqlValue::Null, SqlValue::Int64),
        SqlValue::Text(f.place.label()),
        SqlValue::Float64(point.lon),
        SqlValue::Float64(point.lat),
        SqlValue::Text(f.contact.method.to_owned()),
        SqlValue::Text(f.contact.value.clone()),
    ]
}

/// Saves a new draft for `seller`; returns its id.
pub async fn create(
    sql: &impl Sql,
    seller: Uuid,
    fields: &ListingFields,
    now: DateTime<Utc>,
) -> Result<i64, SqlError> {
    let mut params = field_params(fields);
    params.push(SqlValue::Uuid(seller));
    params.push(SqlValue::Timestamp(now));
    let row = sql
        .query_opt(
            "INSERT INTO marketplace_listings (category_id, title, body_markdown, body_html, \
                 price_cents, city_id, place_name, location, contact_method, contact_value, \
                 seller_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, \
                 ST_SetSRID(ST_MakePoint($8, $9), 4326)::geography, $10, $11, $12, $13::timestamp, $13::timestamp) \
             RETURNING id",
            &params,
        )
        .await?
        .ok_or_else(|| SqlError::Decode("INSERT returned no row".into()))?;
    row.get("id")
}

/// Who is acting on a listing.
pub struct Actor<'a> {
    pub ctx: &'a RequestContext,
    pub user: Uuid,
    /// Holds `moderate_content` (may remove anyone's listing).
    pub moderator: bool,
}

/// Loads listing `id` for `actor` to change: 404 when it does not exist or
/// is not theirs to see, 403 when they may see but not change it.
pub async fn for_seller(sql: &impl Sql, actor: &Actor<'_>, id: i64) -> Result<Listing, AppError> {
    let listing = get(sql, id).await?.ok_or(AppError::NotFound)?;
    if listing.seller_id == actor.user {
        Ok(listing)
    } else if listing.status.is_public() || actor.moderator {
        Err(AppError::Forbidden(
            "only its seller may change this listing".into(),
        ))
    } else {
        Err(AppError::NotFound)
    }
}

/// Replaces the listing's fields (its seller, while it is not ended).
pub async fn update(
    sql: &impl Sql,
    actor: &Actor<'_>,
    id: i64,
    fields: &ListingFields,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let listing = for_seller(sql, actor, id).await?;
    if matches!(listing.status, Status::Sold | Status::Removed) || listing.archived_at.is_some() {
        return Err(AppError::Conflict(format!(
            "a {} listing can no longer be edited",
            listing.status.as_str()
        )));
    }
    // A published listing cannot move into a paid category: that would
    // skip the fee publishing asks for.
    if fields.category.is_paid()
        && fields.category.id != listing_category_id(sql, id).await?
        && matches!(
            listing.status,
            Status::Active | Status::Expired | Status::Pending
        )
    {
        return Err(AppError::Validation(vec![FieldError::new(
            "category",
            format!(
                "“{}” is a paid category: a published listing cannot move into it",
                fields.category.name
            ),
        )]));
    }
    let mut params = field_params(fields);
    params.push(SqlValue::Int64(id));
    params.push(SqlValue::Timestamp(now));
    sql.execute(
        "UPDATE marketplace_listings SET category_id = $1, title = $2, body_markdown = $3, \
             body_html = $4, price_cents = $5, city_id = $6, place_name = $7, \
             location = ST_SetSRID(ST_MakePoint($8, $9), 4326)::geography, \
             contact_method = $10, contact_value = $11, updated_at = $13::timestamp \
         WHERE id = $12",
        &params,
    )
    .await?;
    Ok(())
}

async fn listing_category_id(sql: &impl Sql, id: i64) -> Result<i64, SqlError> {
    sql.query_opt(
        "SELECT category_id FROM marketplace_listings WHERE id = $1",
        &[SqlValue::Int64(id)],
    )
    .await?
    .map_or(Ok(0), |r| r.get("category_id"))
}

/// The refusal of publishing a paid category's listing without paying:
/// its term is bought at checkout (`village_payments`), which publishes it
/// once Stripe confirms the payment.
fn unpaid(listing: &Listing) -> AppError {
    AppError::Conflict(format!(
        "“{}” is a paid category (${:.2} for 30 days): pay at checkout — \
         POST /api/payments/checkout {{\"listing_id\": {}, \"purpose\": \"posting\"}} \
         (or /payments/checkout?listing={}&purpose=posting) — and it is published once paid. \
         Your listing is saved as it is.",
        listing.category_name,
        f64::from(listing.category_fee_cents) / 100.0,
        listing.id,
        listing.id
    ))
}

/// Publishes a draft (or re-publishes an expired listing not yet archived):
/// active for 30 days. A paid category's is published by its payment.
pub async fn publish(
    sql: &impl Sql,
    actor: &Actor<'_>,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Listing, AppError> {
    let listing = for_seller(sql, actor, id).await?;
    if listing.category_fee_cents > 0 {
        return Err(unpaid(&listing));
    }
    transition(
        sql,
        "UPDATE marketplace_listings SET status = 'active', updated_at = $2::timestamp, \
             published_at = $2::timestamp, expires_at = $2::timestamp + interval '30 days', reminded_at = NULL, ended_at = NULL \
         WHERE id = $1 AND status IN ('draft', 'expired') AND archived_at IS NULL",
        "active",
        now,
        &listing,
    )
    .await
}

/// Another 30 days from now, for an active or expired (not archived)
/// listing; a paid category's term is bought at checkout instead.
pub async fn renew(
    sql: &impl Sql,
    actor: &Actor<'_>,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Listing, AppError> {
    let listing = for_seller(sql, actor, id).await?;
    if listing.category_fee_cents > 0 {
        return Err(unpaid(&listing));
    }
    transition(
        sql,
        "UPDATE marketplace_listings SET status = 'active', updated_at = $2::timestamp, \
             expires_at = $2::timestamp + interval '30 days', reminded_at = NULL, ended_at = NULL \
         WHERE id = $1 AND status IN ('active', 'expired') AND archived_at IS NULL",
        "active",
        now,
        &listing,
    )
    .await
}

pub async fn mark_sold(
    sql: &impl Sql,
    actor: &Actor<'_>,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Listing, AppError> {
    let listing = for_seller(sql, actor, id).await?;
    transition(
        sql,
        "UPDATE marketplace_listings SET status = 'sold', updated_at = $2::timestamp, \
             ended_at = $2::timestamp \
         WHERE id = $1 AND status = 'active'",
        "sold",
        now,
        &listing,
    )
    .await
}

/// The seller takes the listing down: a draft is deleted outright, any
/// other listing becomes `removed` and its images go (by the lifecycle job).
pub async fn withdraw(
    sql: &impl Sql,
    actor: &Actor<'_>,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let listing = for_seller(sql, actor, id).await?;
    if listing.status == Status::Draft {
        sql.execute(
            "DELETE FROM marketplace_listings WHERE id = $1 AND status = 'draft'",
            &[SqlValue::Int64(id)],
        )
        .await?;
        return Ok(());
    }
    sql.execute(
        "WITH ended AS ( \
             UPDATE marketplace_listings SET status = 'removed', ended_at = $2::timestamp, \
                 updated_at = $2::timestamp, removed_reason = 'withdrawn by the seller' \
             WHERE id = $1 AND status <> 'removed' RETURNING id) \
         DELETE FROM marketplace_listing_images WHERE listing_id IN (SELECT id FROM ended)",
        &[SqlValue::Int64(id), SqlValue::Timestamp(now)],
    )
    .await?;
    Ok(())
}

/// A moderator removes someone's listing, with a reason; the change, its
/// audit row and the refunds owed for it (`payment_refunds_on_removal`,
/// migration V33: automatic within 24 hours of payment, else for review)
/// are one statement.
pub async fn remove(
    sql: &impl Sql,
    actor: &Actor<'_>,
    id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    if !actor.moderator {
        return Err(AppError::Forbidden(
            "removing listings needs the moderate_content permission".into(),
        ));
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::Validation(vec![FieldError::new(
            "reason",
            "required, at most 500 characters",
        )]));
    }
    let listing = get(sql, id).await?.ok_or(AppError::NotFound)?;
    let mut entry = AuditEntry::for_request(actor.ctx, Some(actor.user), "listing.remove");
    entry.target_type = Some("marketplace_listing".into());
    entry.target_id = Some(id.to_string());
    entry.reason = Some(reason.to_owned());
    let changed = sql
        .query(
            "WITH ended AS ( \
                 UPDATE marketplace_listings SET status = 'removed', ended_at = $2::timestamp, \
                     updated_at = $2::timestamp, removed_reason = $3 \
                 WHERE id = $1 AND status <> 'removed' RETURNING id), \
             gone AS (DELETE FROM marketplace_listing_images \
                 WHERE listing_id IN (SELECT id FROM ended) RETURNING id), \
             owed AS (SELECT r.refund_id FROM ended, \
                 payment_refunds_on_removal(ended.id, $3, $2::timestamp, $6::bigint::int) r) \
             SELECT audit_record($4, jsonb_build_object('status', $5::text), \
                 jsonb_build_object('status', 'removed', 'refunds', (SELECT count(*) FROM owed))) AS audit_id \
             FROM ended",
            &[
                SqlValue::Int64(id),
                SqlValue::Timestamp(now),
                SqlValue::Text(reason.to_owned()),
                entry.as_param(),
                SqlValue::Text(listing.status.as_str().to_owned()),
                SqlValue::Int64(village_payments::AUTOMATIC_REFUND_HOURS),
            ],
        )
        .await?;
    if changed.is_empty() {
        return Err(AppError::Conflict("the listing is already removed".into()));
    }
    Ok(())
}

/// Runs `statement` — an `UPDATE` of listing `$1` at time `$2` that
/// checks the state it starts from — and reads the listing back; no row
/// changed means the listing was in a state this change does not start from.
async fn transition(
    sql: &impl Sql,
    statement: &'static str,
    to: &str,
    now: DateTime<Utc>,
    listing: &Listing,
) -> Result<Listing, AppError> {
    let changed = sql
        .execute(
            statement,
            &[SqlValue::Int64(listing.id), SqlValue::Timestamp(now)],
        )
        .await?;
    if changed == 0 {
        return Err(AppError::Conflict(format!(
            "a {} listing cannot become {to}",
            listing.status.as_str()
        )));
    }
    get(sql, listing.id).await?.ok_or(AppError::NotFound)
}

/// When a listing expires, for a page.
pub fn expiry_after(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::days(LISTING_LIFE_DAYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_in_dollars_become_cents() {
        assert_eq!(parse_price("25"), Ok(Some(2500)));
        assert_eq!(parse_price("$1,200.5"), Ok(Some(120_050)));
        assert_eq!(parse_price(" 0.99 "), Ok(Some(99)));
        assert_eq!(parse_price(""), Ok(None));
        for bad in ["12.345", "-5", "ten", "1e5", ".", "1.2.3"] {
            assert!(parse_price(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn contacts_are_an_email_or_a_phone_number() {
        assert!(check_contact(Some("email"), Some("ann@example.com")).is_ok());
        assert!(check_contact(Some("phone"), Some("+1 (503) 555-0100")).is_ok());
        assert_eq!(
            check_contact(Some("email"), Some("not an email")).map_err(|e| e.field),
            Err("contact_value".to_owned())
        );
        assert_eq!(
            check_contact(Some("fax"), Some("1")).map_err(|e| e.field),
            Err("contact_method".to_owned())
        );
        assert!(check_contact(Some("phone"), Some("12")).is_err());
    }
}
