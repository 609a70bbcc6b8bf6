//! The homepage's `good_sites` widget: the top sites (in the category the
//! widget's `category` setting names, a section including its
//! categories), each a tracked link with its thumbnail.

use village_clicks::{Link, LinkKind, LinkSigner};
use village_platform::sql::{Sql, SqlError};

use crate::categories;
use crate::sites::{self, Sort};

pub const WIDGET_ITEMS: i64 = 5;
pub const SOURCE: &str = "good_sites_widget";

/// One pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub id: i64,
    pub title: String,
    pub host: String,
    pub href: String,
    pub thumb: Option<String>,
}

/// What the widget shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Picks {
    /// The category's name when the widget is set to one.
    pub category: Option<String>,
    pub category_slug: Option<String>,
    pub sites: Vec<Pick>,
}

pub async fn picks(
    sql: &impl Sql,
    signer: Option<&LinkSigner>,
    settings: &serde_json::Map<String, serde_json::Value>,
) -> Result<Picks, SqlError> {
    let category = match settings.get("category").and_then(serde_json::Value::as_str) {
        Some(slug) if slug.len() <= 64 => categories::by_slug(sql, slug).await?,
        _ => None,
    };
    let top = sites::approved(sql, category.as_ref(), Sort::Top, WIDGET_ITEMS, 0).await?;
    Ok(Picks {
        category: category.as_ref().map(|c| c.name.clone()),
        category_slug: category.map(|c| c.slug),
        sites: top
            .iter()
            .enumerate()
            .map(|(i, s)| Pick {
                id: s.id,
                title: s.title.clone(),
                host: s.host.clone(),
                href: LinkSigner::href_or_plain(
                    signer,
                    &Link::to(&s.url, LinkKind::Site, s.id, SOURCE)
                        .at(i + 1)
                        .in_category(s.category_id),
                ),
                thumb: s
                    .screenshot
                    .map(|v| crate::pages::screenshot_path(v, "thumb")),
            })
            .collect(),
    })
}
