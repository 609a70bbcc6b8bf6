//! `marketplace.lifecycle` — the daily job that keeps listings honest.
//!
//! Why: a classified that outlives its item wastes buyers' time, and the
//! pictures of ended listings are personal data we no longer need. In order:
//!
//! 1. **remind** sellers whose listing expires within 3 days (once per
//!    listing and term), by email through the mail relay;
//! 2. **expire** active listings past `expires_at`;
//! 3. **archive** listings ended (expired, sold or removed) 30 days ago:
//!    their image rows go, which queues the objects for deletion;
//! 4. **purge** archived listings a year after archiving (metadata kept
//!    that long for fraud and disputes);
//! 5. drop **abandoned uploads** (pending past the upload URL's life);
//! 6. **delete objects** queued by any of the above (or by a seller, a
//!    moderator, an account deletion), retrying failures on later runs.
//!
//! Every step is an idempotent `UPDATE`/`DELETE` on a condition, so a run
//! that dies half way is finished by the next; the counts of each run are
//! kept in `marketplace_lifecycle_runs`. The cron component
//! `marketplace-lifecycle` enqueues one job per day (idempotency key: the
//! date).

use chrono::{DateTime, Utc};
use serde::Serialize;
use village_jobs::Job;
use village_jobs::handlers::{JobError, JobHandler};
use village_platform::clock::Clock;
use village_platform::http_client::HttpClient;
use village_platform::mail::{Mailgun, Message};
use village_platform::objects::S3Store;
use village_platform::sql::{Sql, SqlError, SqlValue};

pub const NAME: &str = "marketplace.lifecycle";
/// Objects deleted per run at most (the rest wait for the next).
const DELETIONS_PER_RUN: i64 = 1000;
/// Reminder emails per run at most.
const REMINDERS_PER_RUN: i64 = 500;
/// A key storage refused this many times stays queued for ops to look at
/// (`last_error`), without holding up the keys behind it.
const MAX_DELETE_ATTEMPTS: i32 = 20;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub reminded: u64,
    pub reminders_failed: u64,
    pub expired: u64,
    pub archived: u64,
    pub purged: u64,
    pub abandoned_uploads: u64,
    pub objects_deleted: u64,
    pub objects_failed: u64,
}

/// Where reminders come from and how they are sent.
pub struct Mail<'a, H> {
    pub relay: Mailgun,
    pub from: String,
    /// The site's public origin, for links in the email.
    pub site_url: String,
    pub http: &'a H,
}

pub struct Lifecycle<'a, S, C, H, M> {
    pub sql: &'a S,
    pub clock: &'a C,
    pub store: Option<S3Store<'a, H>>,
    pub mail: Mail<'a, M>,
}

impl<S: Sql, C: Clock, H: HttpClient, M: HttpClient> JobHandler for Lifecycle<'_, S, C, H, M> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        let counts = self
            .run_once(self.clock.now())
            .await
            .map_err(|e| JobError::Retry(format!("marketplace lifecycle: {e}")))?;
        village_platform::log::event(
            "INFO",
            "marketplace lifecycle done",
            serde_json::json!({ "job": NAME, "counts": counts }),
        );
        Ok(())
    }
}

impl<S: Sql, C: Clock, H: HttpClient, M: HttpClient> Lifecycle<'_, S, C, H, M> {
    /// One pass of every step, at `now`; the counts are also recorded.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Counts, SqlError> {
        let mut counts = Counts::default();
        self.remind(now, &mut counts).await?;
        let t = SqlValue::Timestamp(now);
        counts.expired = self
            .sql
            .execute(
                "UPDATE marketplace_listings SET status = 'expired', ended_at = expires_at, \
                     updated_at = $1::timestamp \
                 WHERE status = 'active' AND expires_at <= $1::timestamp",
                std::slice::from_ref(&t),
            )
            .await?;
        counts.archived = self
            .count(
                "WITH archived AS ( \
                     UPDATE marketplace_listings SET archived_at = $1::timestamp \
                     WHERE status IN ('expired', 'sold', 'removed') AND archived_at IS NULL \
                       AND ended_at <= $1::timestamp - interval '30 days' RETURNING id), \
                 gone AS (DELETE FROM marketplace_listing_images \
                     WHERE listing_id IN (SELECT id FROM archived)) \
                 SELECT count(*) AS n FROM archived",
                std::slice::from_ref(&t),
            )
            .await?;
        counts.purged = self
            .sql
            .execute(
                "DELETE FROM marketplace_listings WHERE archived_at <= $1::timestamp - interval '1 year'",
                std::slice::from_ref(&t),
            )
            .await?;
        counts.abandoned_uploads = self
            .count(
                "WITH gone AS (DELETE FROM marketplace_listing_images \
                     WHERE status = 'pending' AND created_at <= $1::timestamp - interval '1 hour' \
                     RETURNING listing_id), \
                 freed AS (UPDATE marketplace_listings l SET image_slots = image_slots - g.n \
                     FROM (SELECT listing_id, count(*)::int AS n FROM gone GROUP BY listing_id) g \
                     WHERE l.id = g.listing_id) \
                 SELECT count(*) AS n FROM gone",
                std::slice::from_ref(&t),
            )
            .await?;
        self.delete_objects(now, &mut counts).await?;
        self.sql
            .execute(
                "DELETE FROM marketplace_lifecycle_runs WHERE ran_at < $1::timestamp - interval '90 days'",
                std::slice::from_ref(&t),
            )
            .await?;
        self.sql
            .execute(
                "INSERT INTO marketplace_lifecycle_runs (ran_at, counts) VALUES ($1::timestamp, $2)",
                &[t, SqlValue::Json(serde_json::to_value(&counts).unwrap_or_default())],
            )
            .await?;
        Ok(counts)
    }

    /// Runs `statement`, which answers one row with the count `n`.
    async fn count(&self, statement: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        let n = match self.sql.query_opt(statement, params).await? {
            Some(row) => row.get::<i64>("n")?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn remind(&self, now: DateTime<Utc>, counts: &mut Counts) -> Result<(), SqlError> {
        if !self.mail.relay.configured() {
            return Ok(());
        }
        // Claimed before sending: a crash between claim and send skips one
        // reminder rather than sending two.
        let due = self
            .sql
            .query(
                "UPDATE marketplace_listings l SET reminded_at = $1::timestamp \
                 FROM users u \
                 WHERE u.id = l.seller_id AND l.id IN ( \
                     SELECT m.id FROM marketplace_listings m JOIN users s ON s.id = m.seller_id \
                     WHERE m.status = 'active' AND m.reminded_at IS NULL \
                       AND s.email IS NOT NULL \
                       AND m.expires_at > $1::timestamp \
                       AND m.expires_at <= $1::timestamp + interval '3 days' \
                     ORDER BY m.expires_at LIMIT $2 FOR UPDATE OF m SKIP LOCKED) \
                 RETURNING l.id, l.title, l.expires_at, u.email",
                &[SqlValue::Timestamp(now), SqlValue::Int64(REMINDERS_PER_RUN)],
            )
            .await?;
        for row in &due {
            let id: i64 = row.get("id")?;
            let title: String = row.get("title")?;
            let email: String = row.get("email")?;
            let expires: DateTime<Utc> = row.get("expires_at")?;
            let text = format!(
                "Your listing “{title}” expires on {}.\n\n\
                 Renew it for another 30 days from your listings:\n{}/marketplace/mine\n\n\
                 If it has sold, mark it sold there and buyers stop asking.",
                expires.format("%B %-d, %Y"),
                self.mail.site_url.trim_end_matches('/'),
            );
            let message = Message {
                from: &self.mail.from,
                to: &email,
                subject: &format!("Your listing “{title}” expires in 3 days"),
                text: &text,
            };
            match self.mail.relay.send(self.mail.http, &message).await {
                Ok(()) => counts.reminded += 1,
                Err(e) => {
                    counts.reminders_failed += 1;
                    // Unclaimed: the next run tries again while it is due.
                    self.sql
                        .execute(
                            "UPDATE marketplace_listings SET reminded_at = NULL WHERE id = $1",
                            &[SqlValue::Int64(id)],
                        )
                        .await?;
                    village_platform::log::event(
                        "WARN",
                        "expiry reminder not sent",
                        serde_json::json!({ "job": NAME, "listing": id, "error": e }),
                    );
                }
            }
        }
        Ok(())
    }

    async fn delete_objects(
        &self,
        now: DateTime<Utc>,
        counts: &mut Counts,
    ) -> Result<(), SqlError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let keys = self
            .sql
            .query(
                "SELECT key FROM marketplace_image_deletions WHERE attempts < $2 \
                 ORDER BY attempts, queued_at LIMIT $1",
                &[
                    SqlValue::Int64(DELETIONS_PER_RUN),
                    SqlValue::Int32(MAX_DELETE_ATTEMPTS),
                ],
            )
            .await?;
        for row in &keys {
            let key: String = row.get("key")?;
            match store.delete(&key, now).await {
                Ok(()) => {
                    counts.objects_deleted += 1;
                    self.sql
                        .execute(
                            "DELETE FROM marketplace_image_deletions WHERE key = $1",
                            &[SqlValue::Text(key)],
                        )
                        .await?;
                }
                Err(e) => {
                    counts.objects_failed += 1;
                    self.sql
                        .execute(
                            "UPDATE marketplace_image_deletions \
                             SET attempts = attempts + 1, last_error = $2 WHERE key = $1",
                            &[SqlValue::Text(key), SqlValue::Text(e.to_string())],
                        )
                        .await?;
                }
            }
        }
        Ok(())
    }
}
