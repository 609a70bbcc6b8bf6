//! `social.fetch_posts`: one user's recent Facebook posts and Instagram
//! media, upserted into `social_posts` (kept until the user removes them;
//! a removed post stays removed: its tombstone keeps the next fetch from
//! bringing it back). A token Meta refuses marks the connection stale —
//! the widget asks to reconnect, the cached posts stay. Nothing runs while
//! the `social_integration` kill switch is off.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;
use village_jobs::{Job, JobError, JobHandler, RetryPolicy};
use village_platform::boundary::stored;
use village_platform::cache::Cache;
use village_platform::clock::Clock;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::Config;
use crate::graph::{GraphError, Post};
use crate::tokens::Sealed;

pub struct FetchPosts<'a, S, K, H, C> {
    pub sql: &'a S,
    pub cache: &'a K,
    pub http: &'a H,
    pub clock: &'a C,
    pub config: &'a Config,
}

#[derive(Deserialize)]
struct Payload {
    user_id: Uuid,
}

/// An active connection's token, opened.
pub(crate) struct Connection {
    pub user: Uuid,
    pub meta_user_id: String,
    pub token: String,
    pub instagram_id: Option<String>,
}

/// Opens the sealed token of `user`'s active connection, if any.
pub(crate) async fn active(
    sql: &impl Sql,
    config: &Config,
    user: Uuid,
) -> Result<Option<Result<Connection, String>>, SqlError> {
    let Some(r) = sql
        .query_opt(
            "SELECT meta_user_id, token_key_id, token_sealed, instagram_user_id \
             FROM social_connections WHERE user_id = $1 AND status = 'active'",
            &[SqlValue::Uuid(user)],
        )
        .await?
    else {
        return Ok(None);
    };
    let sealed = Sealed {
        key_id: r.get("token_key_id")?,
        bytes: r.get("token_sealed")?,
    };
    let meta_user_id: String = r.get("meta_user_id")?;
    let instagram_id: Option<String> = r.get("instagram_user_id")?;
    Ok(Some(
        config
            .keys
            .open(&sealed, user)
            .map(|token| Connection {
                user,
                meta_user_id,
                token,
                instagram_id,
            })
            .map_err(|e| e.to_string()),
    ))
}

/// Marks `user`'s connection stale (Meta refused its token, or it lapsed).
pub async fn mark_stale(
    sql: &impl Sql,
    user: Uuid,
    why: &str,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    sql.execute(
        "UPDATE social_connections SET status = 'stale', stale_since = coalesce(stale_since, $2), \
             last_error = $3 \
         WHERE user_id = $1 AND status = 'active'",
        &[
            SqlValue::Uuid(user),
            SqlValue::Timestamp(now),
            SqlValue::Text(stored(why, 500)),
        ],
    )
    .await
    .map(drop)
}

/// Stores posts fetched from `meta_user_id`'s account (new ones added,
/// known ones updated, removed ones left removed) — only while that
/// connection still stands: a fetch that was in flight when the user
/// disconnected, or Meta asked for a deletion, stores nothing.
pub async fn store(
    sql: &impl Sql,
    user: Uuid,
    meta_user_id: &str,
    posts: &[Post],
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    if posts.is_empty() {
        return Ok(());
    }
    let doc: Vec<serde_json::Value> = posts
        .iter()
        .map(|p| {
            serde_json::json!({ "network": p.network, "post_id": p.id, "message": p.message,
                                "permalink": p.permalink, "image_url": p.image_url,
                                "posted_at": p.posted_at.naive_utc() })
        })
        .collect();
    sql.execute(
        "INSERT INTO social_posts (user_id, meta_user_id, network, post_id, message, permalink, \
             image_url, posted_at, fetched_at) \
         SELECT $1, $4, network, post_id, message, permalink, image_url, posted_at, $3 \
         FROM jsonb_to_recordset($2) AS x(network text, post_id text, message text, permalink text, \
                                          image_url text, posted_at timestamp) \
         WHERE EXISTS (SELECT 1 FROM social_connections c \
             WHERE c.user_id = $1 AND c.meta_user_id = $4 AND c.status = 'active' FOR KEY SHARE) \
         ON CONFLICT (user_id, network, post_id) DO UPDATE SET message = EXCLUDED.message, \
             permalink = EXCLUDED.permalink, image_url = EXCLUDED.image_url, \
             meta_user_id = EXCLUDED.meta_user_id, fetched_at = EXCLUDED.fetched_at, archived = false \
         WHERE social_posts.removed_at IS NULL",
        &[
            SqlValue::Uuid(user),
            SqlValue::Json(serde_json::Value::Array(doc)),
            SqlValue::Timestamp(now),
            SqlValue::Text(meta_user_id.into()),
        ],
    )
    .await?;
    sql.execute(
        "UPDATE social_connections SET posts_fetched_at = $2, last_error = NULL WHERE user_id = $1",
        &[SqlValue::Uuid(user), SqlValue::Timestamp(now)],
    )
    .await
    .map(drop)
}

/// The user removes one cached post: its content goes at once; the
/// tombstone (ids only) keeps later fetches from restoring it. Whether
/// there was such a post.
pub async fn remove(
    sql: &impl Sql,
    user: Uuid,
    network: &str,
    post_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, SqlError> {
    Ok(sql
        .execute(
            "UPDATE social_posts SET removed_at = $4, message = '', permalink = NULL, image_url = NULL \
             WHERE user_id = $1 AND network = $2 AND post_id = $3 AND removed_at IS NULL",
            &[
                SqlValue::Uuid(user),
                SqlValue::Text(network.into()),
                SqlValue::Text(post_id.into()),
                SqlValue::Timestamp(now),
            ],
        )
        .await?
        == 1)
}

impl<S: Sql, K: Cache, H: HttpClient, C: Clock> JobHandler for FetchPosts<'_, S, K, H, C> {
    fn name(&self) -> &'static str {
        crate::jobs::FETCH_POSTS
    }

    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: std::time::Duration::from_secs(120),
            max_delay: std::time::Duration::from_secs(1800),
            jitter: 0.2,
        }
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let p: Payload =
            serde_json::from_value(job.payload.clone()).map_err(JobError::malformed)?;
        if !village_flags::store::on_for_anyone(self.sql, self.cache, crate::FLAG).await {
            return Ok(()); // the kill switch: no call to Meta
        }
        let retry = |e: SqlError| JobError::Retry(e.to_string());
        let conn = match active(self.sql, self.config, p.user_id)
            .await
            .map_err(retry)?
        {
            None => return Ok(()), // disconnected, stale or archived: nothing to fetch
            Some(Err(e)) => return Err(JobError::Permanent(e)),
            Some(Ok(c)) => c,
        };
        let now = self.clock.now();
        let meta = &self.config.meta;
        let mut posts = match meta.posts(self.http, &conn.token).await {
            Ok(p) => p,
            Err(GraphError::TokenInvalid(why)) => {
                mark_stale(self.sql, conn.user, &why, now)
                    .await
                    .map_err(retry)?;
                return Ok(());
            }
            Err(e) => return Err(JobError::Retry(e.to_string())),
        };
        if let Some(ig) = &conn.instagram_id {
            // Instagram failing keeps Facebook's posts.
            match meta.media(self.http, &conn.token, ig).await {
                Ok(media) => posts.extend(media),
                Err(e) => village_platform::log::event(
                    "WARNING",
                    &format!("instagram media not fetched: {e}"),
                    serde_json::json!({ "job_id": job.id }),
                ),
            }
        }
        store(self.sql, conn.user, &conn.meta_user_id, &posts, now)
            .await
            .map_err(retry)
    }
}
