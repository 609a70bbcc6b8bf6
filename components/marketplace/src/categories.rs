//! The category tree (`marketplace_categories`, seeded by migration V22).
//! Free categories publish at once; a paid one (a fee in cents) publishes
//! once its fee is paid at checkout (`village_payments`).

use serde::Serialize;
use village_platform::error::FieldError;
use village_platform::sql::{Row, Sql, SqlError, SqlValue};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Category {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub slug: String,
    pub name: String,
    pub fee_cents: i32,
}

impl Category {
    pub fn is_paid(&self) -> bool {
        self.fee_cents > 0
    }
}

impl TryFrom<&Row> for Category {
    type Error = SqlError;

    fn try_from(r: &Row) -> Result<Self, SqlError> {
        Ok(Category {
            id: r.get("id")?,
            parent_id: r.get("parent_id")?,
            slug: r.get("slug")?,
            name: r.get("name")?,
            fee_cents: r.get("fee_cents")?,
        })
    }
}

/// Every category, each parent followed by its children in order.
pub async fn all(sql: &impl Sql) -> Result<Vec<Category>, SqlError> {
    let rows = sql
        .query(
            "SELECT c.id, c.parent_id, c.slug, c.name, c.fee_cents \
             FROM marketplace_categories c \
             LEFT JOIN marketplace_categories p ON p.id = c.parent_id \
             ORDER BY coalesce(p.position, c.position), c.parent_id NULLS FIRST, c.position, c.id",
            &[],
        )
        .await?;
    rows.iter().map(Category::try_from).collect()
}

pub async fn by_slug(sql: &impl Sql, slug: &str) -> Result<Option<Category>, SqlError> {
    sql.query_opt(
        "SELECT id, parent_id, slug, name, fee_cents FROM marketplace_categories WHERE slug = $1",
        &[SqlValue::Text(slug.to_owned())],
    )
    .await?
    .as_ref()
    .map(Category::try_from)
    .transpose()
}

/// The category a form or query names by `slug`, or the field error saying
/// there is none (forms and searches answer alike).
pub async fn named(sql: &impl Sql, slug: &str) -> Result<Result<Category, FieldError>, SqlError> {
    let found = if slug.len() <= 64 {
        by_slug(sql, slug).await?
    } else {
        None
    };
    Ok(found.ok_or_else(|| FieldError::new("category", "not a category of this marketplace")))
}

/// The ids of `root` and every category under it.
pub async fn subtree(sql: &impl Sql, root: i64) -> Result<Vec<i64>, SqlError> {
    let rows = sql
        .query(
            "WITH RECURSIVE sub AS ( \
                 SELECT id FROM marketplace_categories WHERE id = $1 \
                 UNION ALL \
                 SELECT c.id FROM marketplace_categories c JOIN sub ON c.parent_id = sub.id) \
             SELECT id FROM sub",
            &[SqlValue::Int64(root)],
        )
        .await?;
    rows.iter().map(|r| r.get("id")).collect()
}
