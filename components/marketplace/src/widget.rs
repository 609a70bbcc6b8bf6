//! The homepage's `marketplace` widget: the newest listings near the
//! visitor's chosen place (the widget's settings `city_id` and
//! `radius_miles`, default 25), or the newest anywhere until they choose.
//! While promotions are on (`promoted_listings`), featured listings there
//! come first.

use chrono::{DateTime, Utc};
use village_platform::error::FieldError;
use village_platform::sql::{Sql, SqlError};
use village_platform::{AppError, RequestContext};
use village_preferences::{Owner, WidgetKind};

use crate::places::{self, Radius, Resolved};
use crate::search::{Hit, SearchQuery, hit_select};

pub const WIDGET_ITEMS: usize = 5;

/// What the widget shows.
#[derive(Debug, Clone, Default)]
pub struct Newest {
    /// "Portland, OR" when a place is chosen.
    pub near: Option<String>,
    pub radius_miles: u16,
    pub listings: Vec<Hit>,
}

/// Featured first (by when bought), then the newest, without repeats.
fn featured_first(
    featured: Vec<Hit>,
    newest: Vec<Hit>,
    promotions: Option<DateTime<Utc>>,
) -> Vec<Hit> {
    let mut out: Vec<Hit> = Vec::with_capacity(WIDGET_ITEMS);
    for mut h in featured.into_iter().chain(newest) {
        if out.len() == WIDGET_ITEMS {
            break;
        }
        if out.iter().all(|o| o.id != h.id) {
            h.mark_promotions(promotions.is_some(), promotions.unwrap_or_default());
            out.push(h);
        }
    }
    out
}

/// The newest listings for the widget with `settings`; `promotions` is
/// now when promotions are on for the visitor (featured listings first).
pub async fn newest(
    sql: &impl Sql,
    settings: &serde_json::Map<String, serde_json::Value>,
    promotions: Option<DateTime<Utc>>,
) -> Result<Newest, SqlError> {
    let radius = settings
        .get("radius_miles")
        .and_then(serde_json::Value::as_u64)
        .and_then(|r| Radius::try_from(r.to_string().as_str()).ok())
        .unwrap_or(Radius::DEFAULT);
    let city = match settings.get("city_id").and_then(serde_json::Value::as_i64) {
        Some(id) => places::by_id(sql, id).await?,
        None => None,
    };
    let Some(city) = city else {
        // No place chosen: the newest anywhere (the whole continent is
        // within reach of a 250-mile search around nowhere, so ask SQL
        // for the newest directly).
        let rows = sql
            .query(
                concat!(
                    hit_select!("0::float8"),
                    "WHERE l.status = 'active' ORDER BY l.published_at DESC, l.id DESC LIMIT $1"
                ),
                &[village_platform::sql::SqlValue::Int64(WIDGET_ITEMS as i64)],
            )
            .await?;
        let newest: Vec<Hit> = rows
            .iter()
            .map(crate::search::hit)
            .collect::<Result<_, _>>()?;
        let featured: Vec<Hit> = match promotions {
            Some(now) => sql
                .query(
                    concat!(
                        hit_select!("0::float8"),
                        "WHERE l.status = 'active' AND l.featured_until > $2::timestamp \
                         ORDER BY l.featured_until DESC, l.id DESC LIMIT $1"
                    ),
                    &[
                        village_platform::sql::SqlValue::Int64(WIDGET_ITEMS as i64),
                        village_platform::sql::SqlValue::Timestamp(now),
                    ],
                )
                .await?
                .iter()
                .map(crate::search::hit)
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        return Ok(Newest {
            near: None,
            radius_miles: radius.miles(),
            listings: featured_first(featured, newest, promotions),
        });
    };
    let query = SearchQuery {
        city_id: Some(city.id.to_string()),
        radius: Some(radius.miles().to_string()),
        sort: Some("newest".into()),
        limit: Some(WIDGET_ITEMS.to_string()),
        ..SearchQuery::default()
    };
    let label = Resolved::City(city).label();
    let listings = match query.check(sql).await {
        Ok(search) => {
            let featured = match promotions {
                Some(now) => search.promoted(sql, now, WIDGET_ITEMS as i64).await?,
                None => Vec::new(),
            };
            featured_first(featured, search.run(sql).await?.listings, promotions)
        }
        Err(_) => Vec::new(),
    };
    Ok(Newest {
        near: Some(label),
        radius_miles: radius.miles(),
        listings,
    })
}

/// `POST /marketplace/widget` (form `near`): the visitor's place for the
/// widget, kept in their preferences (`city_id` on every marketplace
/// widget of their layout; an anonymous visitor's first save creates their
/// row, as any preference does).
pub async fn choose_place(
    sql: &impl Sql,
    ctx: &RequestContext,
    near: &str,
) -> Result<(), AppError> {
    let city = match places::resolve_text(sql, near).await? {
        Ok(Resolved::City(city)) => city,
        Ok(Resolved::Point(_)) => {
            return Err(AppError::Validation(vec![FieldError::new(
                "near",
                "a town, like “Portland, OR”",
            )]));
        }
        Err(e) => return Err(AppError::Validation(vec![FieldError::new("near", e)])),
    };
    let found = village_preferences::update_widget_settings(
        sql,
        Owner::of(ctx),
        WidgetKind::Marketplace,
        |settings| {
            settings.insert("city_id".into(), serde_json::json!(city.id));
        },
    )
    .await?;
    if !found {
        return Err(AppError::Validation(vec![FieldError::new(
            "near",
            "your homepage has no marketplace widget; add it first",
        )]));
    }
    Ok(())
}
