//! The `feeds-retention` cron's work, daily: articles older than 30 days
//! (by publication and by first sight) are deleted with their sources, and
//! feeds nobody reads any more (not default, no subscriber, a day old) go
//! too, with the articles only they carried. In slices, so no run holds a long transaction.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use village_platform::sql::{Sql, SqlError, SqlValue};

/// How long an article is kept.
pub const KEEP_ITEMS_DAYS: i64 = 30;
const SLICE: i64 = 5_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub items: u64,
    pub feeds: u64,
}

pub async fn prune(sql: &impl Sql, now: DateTime<Utc>) -> Result<Pruned, SqlError> {
    let cutoff = SqlValue::Timestamp(now - Duration::days(KEEP_ITEMS_DAYS));
    let mut pruned = Pruned::default();
    for _ in 0..200 {
        let n = sql
            .execute(
                "DELETE FROM feed_items WHERE id IN ( \
                     SELECT id FROM feed_items \
                     WHERE first_seen_at < $1 AND coalesce(published_at, first_seen_at) < $1 \
                     LIMIT $2)",
                &[cutoff.clone(), SqlValue::Int64(SLICE)],
            )
            .await?;
        pruned.items += n;
        if n < SLICE as u64 {
            break;
        }
    }
    pruned.feeds = sql
        .execute(
            "DELETE FROM feeds f WHERE NOT is_default AND created_at < $1 \
               AND NOT EXISTS (SELECT 1 FROM feed_subscriptions s WHERE s.feed_id = f.id)",
            &[SqlValue::Timestamp(now - Duration::days(1))],
        )
        .await?;
    // Articles only those feeds carried.
    pruned.items += sql
        .execute(
            "DELETE FROM feed_items i \
             WHERE NOT EXISTS (SELECT 1 FROM feed_item_sources s WHERE s.item_id = i.id)",
            &[],
        )
        .await?;
    Ok(pruned)
}
