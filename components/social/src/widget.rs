//! What the social widget shows, from the cache only: the connection's
//! state (and a reconnect banner when it lapsed) and the cached posts.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use village_platform::sql::{Sql, SqlError, SqlValue};

/// Posts shown.
pub const SHOWN: i64 = 6;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SocialView {
    /// Signed in: the widget can connect (anonymous visitors are asked to
    /// sign in first).
    pub signed_in: bool,
    /// `None`: not connected; else `active`, `stale` or `archived`.
    pub status: Option<String>,
    pub name: Option<String>,
    pub instagram: Option<String>,
    pub posts: Vec<PostView>,
    /// Set when the cache could not be read (the page still renders).
    pub unavailable: bool,
}

impl SocialView {
    /// Whether the reconnect banner shows.
    pub fn needs_reconnect(&self) -> bool {
        matches!(self.status.as_deref(), Some("stale" | "archived"))
            || self.posts.iter().any(|p| p.archived)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PostView {
    pub network: String,
    pub id: String,
    pub message: String,
    pub permalink: Option<String>,
    pub image_url: Option<String>,
    pub posted_at: DateTime<Utc>,
    pub archived: bool,
}

pub async fn view(sql: &impl Sql, user: Option<Uuid>) -> Result<SocialView, SqlError> {
    let Some(user) = user else {
        return Ok(SocialView::default());
    };
    let mut v = SocialView {
        signed_in: true,
        ..SocialView::default()
    };
    if let Some(c) = sql
        .query_opt(
            "SELECT status, name, instagram_username FROM social_connections WHERE user_id = $1",
            &[SqlValue::Uuid(user)],
        )
        .await?
    {
        v.status = Some(c.get("status")?);
        v.name = Some(c.get("name")?);
        v.instagram = c.get("instagram_username")?;
    }
    let rows = sql
        .query(
            "SELECT network, post_id, message, permalink, image_url, posted_at, archived \
             FROM social_posts WHERE user_id = $1 AND removed_at IS NULL \
             ORDER BY posted_at DESC LIMIT $2",
            &[SqlValue::Uuid(user), SqlValue::Int64(SHOWN)],
        )
        .await?;
    for r in &rows {
        v.posts.push(PostView {
            network: r.get("network")?,
            id: r.get("post_id")?,
            message: r.get("message")?,
            permalink: r.get("permalink")?,
            image_url: r.get("image_url")?,
            posted_at: r.get("posted_at")?,
            archived: r.get("archived")?,
        });
    }
    Ok(v)
}
