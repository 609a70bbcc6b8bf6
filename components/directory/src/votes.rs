//! Votes: one per user per approved site, +1 or -1, changeable and
//! withdrawable. The tally and the karma it moves change in one
//! transaction (`directory_cast_vote`, migration V28, which states the
//! karma rules).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use village_platform::sql::{Sql, SqlError, SqlValue};

/// A vote's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    Up,
    Down,
    /// Withdraw the vote.
    None,
}

impl Vote {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "up" | "1" | "+1" => Some(Vote::Up),
            "down" | "-1" => Some(Vote::Down),
            "none" | "0" => Some(Vote::None),
            _ => None,
        }
    }

    fn value(self) -> i32 {
        match self {
            Vote::Up => 1,
            Vote::Down => -1,
            Vote::None => 0,
        }
    }
}

/// The site's tally after a vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub upvotes: i32,
    pub downvotes: i32,
    /// The caller's vote now: 1, -1 or 0.
    pub vote: i32,
}

/// Casts `user`'s vote on `site`. `None` when the site is not an
/// approved one (votes are for the directory, not the queue).
pub async fn cast(
    sql: &impl Sql,
    site: i64,
    user: Uuid,
    vote: Vote,
    now: DateTime<Utc>,
) -> Result<Option<Tally>, SqlError> {
    sql.query_opt(
        "SELECT upvotes, downvotes, vote FROM directory_cast_vote($1, $2, $3, $4)",
        &[
            SqlValue::Int64(site),
            SqlValue::Uuid(user),
            SqlValue::Int32(vote.value()),
            SqlValue::Timestamp(now),
        ],
    )
    .await?
    .map(|r| {
        Ok(Tally {
            upvotes: r.get("upvotes")?,
            downvotes: r.get("downvotes")?,
            vote: r.get("vote")?,
        })
    })
    .transpose()
}

/// `user`'s current vote on `site`: 1, -1 or 0.
pub async fn of(sql: &impl Sql, site: i64, user: Uuid) -> Result<i32, SqlError> {
    Ok(sql
        .query_opt(
            "SELECT value::integer AS value FROM directory_votes WHERE site_id = $1 AND user_id = $2",
            &[SqlValue::Int64(site), SqlValue::Uuid(user)],
        )
        .await?
        .map(|r| r.get::<i32>("value"))
        .transpose()?
        .unwrap_or(0))
}
