//! The category tree: sections (no parent) and their categories, seeded by
//! migration V28.

use serde::Serialize;
use village_platform::sql::{Row, Sql, SqlError, SqlValue};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Category {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub slug: String,
    pub name: String,
    pub description: String,
}

impl TryFrom<&Row> for Category {
    type Error = SqlError;

    fn try_from(r: &Row) -> Result<Self, SqlError> {
        Ok(Category {
            id: r.get("id")?,
            parent_id: r.get("parent_id")?,
            slug: r.get("slug")?,
            name: r.get("name")?,
            description: r.get("description")?,
        })
    }
}

/// A section with its categories, for the browse page and the forms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    #[serde(flatten)]
    pub category: Category,
    pub children: Vec<Category>,
}

/// Every category, sections first, each in its order.
pub async fn all(sql: &impl Sql) -> Result<Vec<Category>, SqlError> {
    sql.query(
        "SELECT id, parent_id, slug, name, description FROM directory_categories \
         ORDER BY parent_id NULLS FIRST, position, name",
        &[],
    )
    .await?
    .iter()
    .map(Category::try_from)
    .collect()
}

/// The tree.
pub async fn tree(sql: &impl Sql) -> Result<Vec<Section>, SqlError> {
    let all = all(sql).await?;
    Ok(all
        .iter()
        .filter(|c| c.parent_id.is_none())
        .map(|s| Section {
            category: s.clone(),
            children: all
                .iter()
                .filter(|c| c.parent_id == Some(s.id))
                .cloned()
                .collect(),
        })
        .collect())
}

/// Whether `slug` could name a category (checked before any query, so
/// nothing a visitor typed — a NUL, a megabyte — reaches Postgres).
pub fn is_slug(slug: &str) -> bool {
    (1..=64).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The category named `slug`; `None` for an unknown or impossible slug.
pub async fn by_slug(sql: &impl Sql, slug: &str) -> Result<Option<Category>, SqlError> {
    if !is_slug(slug) {
        return Ok(None);
    }
    sql.query_opt(
        "SELECT id, parent_id, slug, name, description FROM directory_categories WHERE slug = $1",
        &[SqlValue::Text(slug.to_owned())],
    )
    .await?
    .as_ref()
    .map(Category::try_from)
    .transpose()
}

pub async fn by_id(sql: &impl Sql, id: i64) -> Result<Option<Category>, SqlError> {
    sql.query_opt(
        "SELECT id, parent_id, slug, name, description FROM directory_categories WHERE id = $1",
        &[SqlValue::Int64(id)],
    )
    .await?
    .as_ref()
    .map(Category::try_from)
    .transpose()
}
