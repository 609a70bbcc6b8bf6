//! Radius search: active listings within 1–250 miles of a place, optionally
//! matching keywords (`tsvector`, ranked), in a category's subtree and a
//! price range; sorted by distance, newest, price or relevance; a page at a
//! time with keyset cursors, so a listing published while someone pages
//! never shifts or repeats what they see.
//!
//! Each sort is its own literal statement: the filters that are not asked
//! for are `NULL` parameters Postgres folds away when it plans (Spin runs
//! every statement with its values, so each gets a custom plan).
//!
//! The radius is the great-circle distance PostGIS's `<->` gives on
//! `geography` (within 0.5 % of the spheroid's), written as the index's
//! box test (`&& _ST_Expand`, what `ST_DWithin` itself expands to) plus
//! `<->` ≤ radius: the same number then filters, sorts, pages and is
//! shown, and Postgres estimates how many rows pass it (it estimates
//! `ST_DWithin`'s exact test at a fixed 1-in-3,000, which made it sort a
//! whole radius instead of reading the newest index). Measured by
//! `village-bench marketplace`.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use village_platform::AppError;
use village_platform::error::FieldError;
use village_platform::sql::{Row, Sql, SqlError, SqlValue};
use village_platform::web;

use crate::categories;
use crate::listings::{PlaceInput, parse_price};
use crate::places::{self, METRES_PER_MILE, Radius, Resolved};

pub const MAX_PAGE: i64 = 50;
pub const MAX_KEYWORDS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    Distance,
    Newest,
    PriceLow,
    PriceHigh,
    Relevance,
}

impl Sort {
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Distance => "distance",
            Sort::Newest => "newest",
            Sort::PriceLow => "price_low",
            Sort::PriceHigh => "price_high",
            Sort::Relevance => "relevance",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "distance" => Sort::Distance,
            "newest" => Sort::Newest,
            "price_low" => Sort::PriceLow,
            "price_high" => Sort::PriceHigh,
            "relevance" => Sort::Relevance,
            _ => return None,
        })
    }
}

/// Where a page ends: its last listing's sort key and id.
#[derive(Debug, Clone, PartialEq)]
struct Cursor {
    s: Sort,
    /// The sort key: metres (distance), a rank, cents, or microseconds.
    k: f64,
    id: i64,
}

/// The cursor on the wire: the key's exact bits (a decimal rendering of a
/// float may come back one unit off, and ties on the key — every listing
/// placed at a town shares its point — would then repeat or skip rows).
#[derive(Serialize, Deserialize)]
struct WireCursor {
    s: Sort,
    k: u64,
    id: i64,
}

/// The sort key of a listing without a price (`coalesce(price, 9e18)`).
const NO_PRICE_KEY: f64 = 9e18;

impl Cursor {
    fn encode(&self) -> String {
        let wire = WireCursor {
            s: self.s,
            k: self.k.to_bits(),
            id: self.id,
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&wire).unwrap_or_default())
    }

    /// A cursor this search could have given: its key in range for its
    /// sort (a forged key never reaches SQL as an out-of-range cast).
    fn decode(text: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .ok()?;
        let wire: WireCursor = serde_json::from_slice(&bytes).ok()?;
        let k = f64::from_bits(wire.k);
        let whole = k.fract() == 0.0;
        let in_range = k.is_finite()
            && match wire.s {
                Sort::Distance => (0.0..=2.1e7).contains(&k),
                Sort::Relevance => (0.0..=1e6).contains(&k),
                Sort::Newest => (0.0..=1e17).contains(&k) && whole,
                Sort::PriceLow => (0.0..=NO_PRICE_KEY).contains(&k) && whole,
                Sort::PriceHigh => (-1.0..=NO_PRICE_KEY).contains(&k) && whole,
            };
        in_range.then_some(Cursor {
            s: wire.s,
            k,
            id: wire.id,
        })
    }
}

/// A checked search.
#[derive(Debug, Clone)]
pub struct Search {
    pub near: Resolved,
    pub radius: Radius,
    pub keywords: Option<String>,
    pub category: Option<categories::Category>,
    pub min_price_cents: Option<i64>,
    pub max_price_cents: Option<i64>,
    pub sort: Sort,
    cursor: Option<Cursor>,
    pub limit: i64,
}

/// The query string's fields, by name (both `/marketplace` and the API).
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub near: Option<String>,
    pub city_id: Option<String>,
    pub lat: Option<String>,
    pub lon: Option<String>,
    pub radius: Option<String>,
    pub q: Option<String>,
    pub category: Option<String>,
    pub min_price: Option<String>,
    pub max_price: Option<String>,
    pub sort: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

impl SearchQuery {
    pub fn from_query(query: &str) -> Self {
        let get = |name: &str| {
            web::query_param(query.as_bytes(), name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        SearchQuery {
            near: get("near"),
            city_id: get("city_id"),
            lat: get("lat"),
            lon: get("lon"),
            radius: get("radius"),
            q: get("q"),
            category: get("category"),
            min_price: get("min_price"),
            max_price: get("max_price"),
            sort: get("sort"),
            cursor: get("cursor"),
            limit: get("limit"),
        }
    }

    /// Whether a place was given at all (a page without one shows the form).
    pub fn has_place(&self) -> bool {
        self.near.is_some() || self.city_id.is_some() || self.lat.is_some() || self.lon.is_some()
    }

    /// The same search from `cursor` on, as a query string.
    pub fn with_cursor(&self, cursor: &str) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("near", &self.near),
            ("city_id", &self.city_id),
            ("lat", &self.lat),
            ("lon", &self.lon),
            ("radius", &self.radius),
            ("q", &self.q),
            ("category", &self.category),
            ("min_price", &self.min_price),
            ("max_price", &self.max_price),
            ("sort", &self.sort),
            ("limit", &self.limit),
        ] {
            if let Some(v) = value {
                s.append_pair(name, v);
            }
        }
        s.append_pair("cursor", cursor);
        s.finish()
    }

    /// Checks every parameter, naming each one that is wrong.
    pub async fn check(&self, sql: &impl Sql) -> Result<Search, AppError> {
        let mut errors = Vec::new();
        let place = match (&self.city_id, &self.lat, &self.lon, &self.near) {
            (Some(id), _, _, _) => match id.parse() {
                Ok(id) => PlaceInput::City(id),
                Err(_) => {
                    errors.push(FieldError::new("city_id", "a place id from /api/places"));
                    PlaceInput::None
                }
            },
            (None, Some(lat), Some(lon), _) => match (lat.parse(), lon.parse()) {
                (Ok(lat), Ok(lon)) => PlaceInput::Point(lat, lon),
                _ => {
                    errors.push(FieldError::new("lat", "latitude and longitude in degrees"));
                    PlaceInput::None
                }
            },
            (None, Some(_), None, _) => {
                errors.push(FieldError::new("lon", "required with lat"));
                PlaceInput::None
            }
            (None, None, Some(_), _) => {
                errors.push(FieldError::new("lat", "required with lon"));
                PlaceInput::None
            }
            (None, None, None, Some(text)) => PlaceInput::Text(text.clone()),
            (None, None, None, None) => {
                errors.push(FieldError::new(
                    "near",
                    "required: a town (“Portland, OR”), a city_id, or lat and lon",
                ));
                PlaceInput::None
            }
        };
        let near = match place {
            PlaceInput::None => None,
            PlaceInput::City(id) => {
                let city = places::by_id(sql, id).await?;
                if city.is_none() {
                    errors.push(FieldError::new("city_id", "not a known place"));
                }
                city.map(Resolved::City)
            }
            PlaceInput::Point(lat, lon) => places::Point::new(lat, lon)
                .map(Resolved::Point)
                .map_err(|e| errors.push(FieldError::new("lat", e)))
                .ok(),
            PlaceInput::Text(t) => places::resolve_text(sql, &t)
                .await?
                .map_err(|e| errors.push(FieldError::new("near", e)))
                .ok(),
        };
        let radius = match &self.radius {
            None => Radius::DEFAULT,
            Some(r) => Radius::try_from(r.as_str()).unwrap_or_else(|e| {
                errors.push(FieldError::new("radius", e));
                Radius::DEFAULT
            }),
        };
        let keywords = self.q.clone();
        if keywords
            .as_ref()
            .is_some_and(|q| q.chars().count() > MAX_KEYWORDS)
        {
            errors.push(FieldError::new(
                "q",
                format!("at most {MAX_KEYWORDS} characters"),
            ));
        }
        let category = match &self.category {
            None => None,
            Some(slug) => categories::named(sql, slug)
                .await?
                .map_err(|e| errors.push(e))
                .ok(),
        };
        let mut price = |name: &str, value: &Option<String>| match value {
            None => None,
            Some(v) => parse_price(v).unwrap_or_else(|e| {
                errors.push(FieldError::new(name, e));
                None
            }),
        };
        let min_price_cents = price("min_price", &self.min_price);
        let max_price_cents = price("max_price", &self.max_price);
        if let (Some(lo), Some(hi)) = (min_price_cents, max_price_cents)
            && lo > hi
        {
            errors.push(FieldError::new("max_price", "at least the minimum price"));
        }
        // Nearest first unless asked otherwise, keywords or not: ranking
        // reads every match in the radius (see the README's figures).
        let sort = match &self.sort {
            None => Sort::Distance,
            Some(s) => match Sort::parse(s) {
                Some(Sort::Relevance) if keywords.is_none() => {
                    errors.push(FieldError::new("sort", "relevance needs keywords (q)"));
                    Sort::Distance
                }
                Some(sort) => sort,
                None => {
                    errors.push(FieldError::new(
                        "sort",
                        "one of distance, newest, price_low, price_high, relevance",
                    ));
                    Sort::Distance
                }
            },
        };
        let cursor = match &self.cursor {
            None => None,
            Some(c) => match Cursor::decode(c) {
                Some(c) if c.s == sort => Some(c),
                Some(_) => {
                    errors.push(FieldError::new(
                        "cursor",
                        "belongs to a search with another sort",
                    ));
                    None
                }
                None => {
                    errors.push(FieldError::new("cursor", "not a cursor this search gave"));
                    None
                }
            },
        };
        let limit = match &self.limit {
            None => MAX_PAGE,
            Some(l) => match l.parse::<i64>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    errors.push(FieldError::new("limit", format!("from 1 to {MAX_PAGE}")));
                    MAX_PAGE
                }
            },
        };
        match near {
            Some(near) if errors.is_empty() => Ok(Search {
                near,
                radius,
                keywords,
                category,
                min_price_cents,
                max_price_cents,
                sort,
                cursor,
                limit,
            }),
            _ => Err(AppError::Validation(errors)),
        }
    }
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub id: i64,
    pub title: String,
    pub price_cents: Option<i64>,
    pub place_name: String,
    pub category_slug: String,
    pub category_name: String,
    /// Spheroid distance from the search's place.
    pub miles: f64,
    pub published_at: DateTime<Utc>,
    /// The first image's key (served at `/marketplace/images/{key}`).
    pub thumbnail_key: Option<String>,
    /// A paid promotion running now (see [`Hit::mark_promotions`]).
    pub featured: bool,
    pub highlighted: bool,
    #[serde(skip)]
    featured_until: Option<DateTime<Utc>>,
    #[serde(skip)]
    highlighted_until: Option<DateTime<Utc>>,
}

impl Hit {
    /// Sets `featured` and `highlighted` from the promotions running at
    /// `now` — only while promotions are on for the visitor (the
    /// `promoted_listings` flag).
    pub fn mark_promotions(&mut self, promotions_on: bool, now: DateTime<Utc>) {
        self.featured = promotions_on && self.featured_until.is_some_and(|t| t > now);
        self.highlighted = promotions_on && self.highlighted_until.is_some_and(|t| t > now);
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// Featured listings matching the search, shown above the results on
    /// its first page while promotions are on ([`Search::promoted`]).
    pub promoted: Vec<Hit>,
    pub listings: Vec<Hit>,
    /// Pass as `cursor` for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// The statement of one sort: `$1` lon, `$2` lat, `$3` radius (m), `$4`
/// keywords, `$5` category ids (JSON array), `$6`/`$7` price bounds, `$8`
/// the cursor's key, `$9` its id, `$10` the page size (+1 to see if more).
macro_rules! search_sql {
    ($key:expr, $keyset:expr, $order:expr) => {
        concat!(
            "SELECT l.id, l.title, l.price_cents, l.place_name, c.slug AS category_slug, \
                    c.name AS category_name, l.published_at, l.featured_until, l.highlighted_until, \
                    l.location <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography AS metres, ",
            $key,
            " AS sort_key, \
                    (SELECT i.key FROM marketplace_listing_images i \
                     WHERE i.listing_id = l.id AND i.status = 'attached' \
                     ORDER BY i.position, i.id LIMIT 1) AS thumbnail_key \
             FROM marketplace_listings l \
             JOIN marketplace_categories c ON c.id = l.category_id \
             WHERE l.status = 'active' \
               AND l.location && _ST_Expand(ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, $3) \
               AND (l.location <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography) <= $3 \
               AND ($4::text IS NULL OR l.search @@ websearch_to_tsquery('english', $4)) \
               AND ($5::jsonb IS NULL OR l.category_id IN \
                    (SELECT jsonb_array_elements_text($5)::bigint)) \
               AND ($6::bigint IS NULL OR l.price_cents >= $6) \
               AND ($7::bigint IS NULL OR l.price_cents <= $7) \
               AND ($9::bigint IS NULL OR ",
            $keyset,
            ") ORDER BY ",
            $order,
            " LIMIT $10"
        )
    };
}

// Nearest first, ties by id, straight from the GiST index on
// `(location, id::float8)` (migration V23): both keys are distances the
// index orders by (`<->`; btree_gist's for the id), so the scan stops after
// a page instead of sorting everything in the radius.
const BY_DISTANCE: &str = search_sql!(
    "l.location <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography",
    "(l.location <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, l.id) > ($8::float8, $9)",
    "l.location <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, \
     (l.id::float8) <-> 0::float8"
);
// Microseconds since the epoch: whole numbers below 2^53, exact in float8.
const BY_NEWEST: &str = search_sql!(
    "(extract(epoch FROM l.published_at) * 1000000)::float8",
    "((extract(epoch FROM l.published_at) * 1000000)::float8, l.id) < ($8::float8, $9)",
    "l.published_at DESC, l.id DESC"
);
const BY_PRICE_LOW: &str = search_sql!(
    "coalesce(l.price_cents, 9000000000000000000)::float8",
    "(coalesce(l.price_cents, 9000000000000000000), l.id) > ($8::float8::bigint, $9)",
    "coalesce(l.price_cents, 9000000000000000000), l.id"
);
const BY_PRICE_HIGH: &str = search_sql!(
    "coalesce(l.price_cents, -1)::float8",
    "(coalesce(l.price_cents, -1), l.id) < ($8::float8::bigint, $9)",
    "coalesce(l.price_cents, -1) DESC, l.id DESC"
);
const BY_RELEVANCE: &str = search_sql!(
    "ts_rank_cd(l.search, websearch_to_tsquery('english', $4))::float8",
    "(ts_rank_cd(l.search, websearch_to_tsquery('english', $4))::float8, l.id) < ($8::float8, $9)",
    "ts_rank_cd(l.search, websearch_to_tsquery('english', $4)) DESC, l.id DESC"
);

/// The columns [`hit`] reads, `$metres` the distance expression, and the
/// tables they come from (a macro, so statements stay literals).
macro_rules! hit_select {
    ($metres:literal) => {
        concat!(
            "SELECT l.id, l.title, l.price_cents, l.place_name, c.slug AS category_slug, \
                    c.name AS category_name, l.published_at, l.featured_until, l.highlighted_until, ",
            $metres,
            " AS metres, \
                    (SELECT i.key FROM marketplace_listing_images i \
                     WHERE i.listing_id = l.id AND i.status = 'attached' \
                     ORDER BY i.position, i.id LIMIT 1) AS thumbnail_key \
             FROM marketplace_listings l \
             JOIN marketplace_categories c ON c.id = l.category_id "
        )
    };
}
pub(crate) use hit_select;

// The search's filters ($1–$7, as above) over featured listings only
// (`$8` now, `$9` how many); few are featured, so the partial index on
// `featured_until` finds them first.
const PROMOTED: &str = concat!(
    hit_select!("l.location <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography"),
    "WHERE l.status = 'active' AND l.featured_until > $8::timestamp \
      AND l.location && _ST_Expand(ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, $3) \
      AND (l.location <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography) <= $3 \
      AND ($4::text IS NULL OR l.search @@ websearch_to_tsquery('english', $4)) \
      AND ($5::jsonb IS NULL OR l.category_id IN (SELECT jsonb_array_elements_text($5)::bigint)) \
      AND ($6::bigint IS NULL OR l.price_cents >= $6) \
      AND ($7::bigint IS NULL OR l.price_cents <= $7) \
    ORDER BY l.featured_until DESC, l.id DESC LIMIT $9"
);

impl Search {
    /// Whether this is the search's first page (no cursor).
    pub fn is_first_page(&self) -> bool {
        self.cursor.is_none()
    }

    fn statement(&self) -> &'static str {
        match self.sort {
            Sort::Distance => BY_DISTANCE,
            Sort::Newest => BY_NEWEST,
            Sort::PriceLow => BY_PRICE_LOW,
            Sort::PriceHigh => BY_PRICE_HIGH,
            Sort::Relevance => BY_RELEVANCE,
        }
    }

    /// The statement and its parameters (the benchmark runs them bare).
    pub async fn params(&self, sql: &impl Sql) -> Result<(&'static str, Vec<SqlValue>), SqlError> {
        let categories = match &self.category {
            Some(c) => SqlValue::Json(serde_json::json!(categories::subtree(sql, c.id).await?)),
            None => SqlValue::Null,
        };
        let point = self.near.point();
        let opt = |v: Option<i64>| v.map_or(SqlValue::Null, SqlValue::Int64);
        Ok((
            self.statement(),
            vec![
                SqlValue::Float64(point.lon),
                SqlValue::Float64(point.lat),
                SqlValue::Float64(self.radius.metres()),
                self.keywords.clone().map_or(SqlValue::Null, SqlValue::Text),
                categories,
                opt(self.min_price_cents),
                opt(self.max_price_cents),
                self.cursor
                    .as_ref()
                    .map_or(SqlValue::Null, |c| SqlValue::Float64(c.k)),
                opt(self.cursor.as_ref().map(|c| c.id)),
                SqlValue::Int64(self.limit + 1),
            ],
        ))
    }

    /// Up to `limit` listings matching the search (its filters, not its
    /// sort or cursor) that are featured at `now`, the latest bought first:
    /// what ranks above the results while promotions are on.
    pub async fn promoted(
        &self,
        sql: &impl Sql,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Hit>, SqlError> {
        let (_, mut params) = self.params(sql).await?;
        params.truncate(7);
        params.push(SqlValue::Timestamp(now));
        params.push(SqlValue::Int64(limit));
        let rows = sql.query(PROMOTED, &params).await?;
        rows.iter()
            .map(|r| {
                let mut h = hit(r)?;
                h.mark_promotions(true, now);
                Ok(h)
            })
            .collect()
    }

    /// One page of results.
    pub async fn run(&self, sql: &impl Sql) -> Result<Page, SqlError> {
        let (statement, params) = self.params(sql).await?;
        let rows = sql.query(statement, &params).await?;
        let more = rows.len() as i64 > self.limit;
        let mut listings = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in rows.iter().take(self.limit as usize) {
            listings.push(hit(row)?);
            last = Some((row.get::<f64>("sort_key")?, row.get::<i64>("id")?));
        }
        Ok(Page {
            promoted: Vec::new(),
            listings,
            next_cursor: match (more, last) {
                (true, Some((k, id))) => Some(
                    Cursor {
                        s: self.sort,
                        k,
                        id,
                    }
                    .encode(),
                ),
                _ => None,
            },
        })
    }
}

pub(crate) fn hit(r: &Row) -> Result<Hit, SqlError> {
    Ok(Hit {
        id: r.get("id")?,
        title: r.get("title")?,
        price_cents: r.get("price_cents")?,
        place_name: r.get("place_name")?,
        category_slug: r.get("category_slug")?,
        category_name: r.get("category_name")?,
        miles: r.get::<f64>("metres")? / METRES_PER_MILE,
        published_at: r.get("published_at")?,
        thumbnail_key: r.get("thumbnail_key")?,
        featured: false,
        highlighted: false,
        featured_until: r.get("featured_until")?,
        highlighted_until: r.get("highlighted_until")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor {
            s: Sort::Distance,
            k: 170_923.456_789_012_3,
            id: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not-a-cursor"), None);
        assert_eq!(Cursor::decode(""), None);
        // Keys a search never gives are refused, not cast in SQL.
        for (s, k) in [
            (Sort::PriceLow, 1e19),
            (Sort::Distance, -1.0),
            (Sort::Newest, 0.5),
        ] {
            let forged = Cursor { s, k, id: 1 };
            assert_eq!(Cursor::decode(&forged.encode()), None, "{s:?} {k}");
        }
    }

    #[test]
    fn a_next_page_link_keeps_the_search_and_adds_the_cursor() {
        let q = SearchQuery::from_query("near=Portland%2C+OR&radius=50&q=oak+table&cursor=old");
        let next = q.with_cursor("abc");
        assert_eq!(next, "near=Portland%2C+OR&radius=50&q=oak+table&cursor=abc");
    }
}
