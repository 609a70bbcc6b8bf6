//! `social.upkeep` (daily, queued by `social-scheduler`):
//!
//! 1. a token within [`REFRESH_BEFORE_DAYS`] days of expiry is exchanged
//!    for a new long-lived one (`fb_exchange_token`);
//! 2. a token past its expiry, or one Meta refuses, makes its connection
//!    `stale`: the widget shows a reconnect banner and the user is emailed
//!    once;
//! 3. a connection stale for more than [`ARCHIVE_AFTER_DAYS`] days is
//!    `archived` and its posts marked archived (still shown, with a
//!    reconnect prompt);
//! 4. tokens sealed under an older key are resealed under the current one.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use village_jobs::{Job, JobError, JobHandler};
use village_platform::boundary::stored;
use village_platform::cache::Cache;
use village_platform::clock::Clock;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::Config;
use crate::graph::GraphError;

pub const REFRESH_BEFORE_DAYS: i64 = 7;
pub const ARCHIVE_AFTER_DAYS: i64 = 7;
/// Connections handled per step and run.
const BATCH: i64 = 200;

/// The mail relay and who the emails come from.
pub struct Mail<'a, H> {
    pub relay: village_platform::mail::Mailgun,
    pub from: String,
    pub site_url: String,
    pub http: &'a H,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub refreshed: usize,
    pub refresh_failed: usize,
    pub marked_stale: usize,
    pub notified: usize,
    pub archived: u64,
    pub resealed: usize,
}

pub struct Upkeep<'a, S, K, H, M, C> {
    pub sql: &'a S,
    pub cache: &'a K,
    pub http: &'a H,
    pub clock: &'a C,
    pub config: &'a Config,
    pub mail: Mail<'a, M>,
}

impl<S: Sql, K: Cache, H: HttpClient, M: HttpClient, C: Clock> Upkeep<'_, S, K, H, M, C> {
    /// One run at `now`.
    pub async fn run_at(&self, now: DateTime<Utc>) -> Result<Report, SqlError> {
        let mut report = Report::default();
        // 1 and 2: expiring tokens are refreshed; lapsed ones go stale.
        report.marked_stale += self
            .sql
            .execute(
                "UPDATE social_connections SET status = 'stale', stale_since = token_expires_at, \
                     last_error = 'the token expired' \
                 WHERE status = 'active' AND token_expires_at <= $1",
                &[SqlValue::Timestamp(now)],
            )
            .await? as usize;
        let due = self
            .sql
            .query(
                "SELECT user_id FROM social_connections WHERE status = 'active' \
                   AND token_expires_at <= $1 ORDER BY token_expires_at LIMIT $2",
                &[
                    SqlValue::Timestamp(now + Duration::days(REFRESH_BEFORE_DAYS)),
                    SqlValue::Int64(BATCH),
                ],
            )
            .await?;
        for r in &due {
            let user: Uuid = r.get("user_id")?;
            match self.refresh(user, now).await? {
                Refreshed::Yes => report.refreshed += 1,
                Refreshed::Refused => report.marked_stale += 1,
                Refreshed::Failed => report.refresh_failed += 1,
            }
        }
        // 4: reseal what an older key sealed.
        let old = self
            .sql
            .query(
                // Only keys the ring still holds: a token sealed under a key
                // retired too early cannot be opened and must not fill
                // every batch.
                "SELECT user_id FROM social_connections WHERE token_key_id <> $1 \
                   AND token_key_id IN (SELECT jsonb_array_elements_text($3)) \
                 ORDER BY user_id LIMIT $2",
                &[
                    SqlValue::Text(self.config.keys.current().into()),
                    SqlValue::Int64(BATCH),
                    SqlValue::Json(serde_json::json!(self.config.keys.ids())),
                ],
            )
            .await?;
        for r in &old {
            let user: Uuid = r.get("user_id")?;
            report.resealed += usize::from(self.reseal(user).await?);
        }
        // 2: tell each newly stale user once.
        report.notified = self.notify(now).await?;
        // 3: archive what stayed stale.
        report.archived = self
            .sql
            .execute(
                "WITH gone AS ( \
                     UPDATE social_connections SET status = 'archived' \
                     WHERE status = 'stale' AND stale_since < $1 RETURNING user_id) \
                 UPDATE social_posts SET archived = true \
                 WHERE user_id IN (SELECT user_id FROM gone) AND removed_at IS NULL",
                &[SqlValue::Timestamp(
                    now - Duration::days(ARCHIVE_AFTER_DAYS),
                )],
            )
            .await?;
        Ok(report)
    }

    async fn refresh(&self, user: Uuid, now: DateTime<Utc>) -> Result<Refreshed, SqlError> {
        let conn = match crate::posts::active(self.sql, self.config, user).await? {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                crate::posts::mark_stale(self.sql, user, &e, now).await?;
                return Ok(Refreshed::Refused);
            }
            None => return Ok(Refreshed::Failed),
        };
        match self.config.meta.long_lived(self.http, &conn.token).await {
            Ok(token) => {
                let sealed = match self.config.keys.seal(&token.access_token, user) {
                    Ok(s) => s,
                    Err(e) => {
                        self.note(user, &e.to_string()).await?;
                        return Ok(Refreshed::Failed);
                    }
                };
                // Without `expires_in` (a token that does not expire by time)
                // the usual 60 days: refreshed again then, and a refusal
                // (code 190) is what marks it stale in between.
                let expires = now
                    + Duration::seconds(
                        token
                            .expires_in
                            .unwrap_or(60 * 86_400)
                            .clamp(60, 90 * 86_400),
                    );
                self.sql
                    .execute(
                        "UPDATE social_connections SET token_key_id = $2, token_sealed = $3, \
                             token_expires_at = $4, last_refreshed_at = $5, last_error = NULL \
                         WHERE user_id = $1",
                        &[
                            SqlValue::Uuid(user),
                            SqlValue::Text(sealed.key_id),
                            SqlValue::Bytes(sealed.bytes),
                            SqlValue::Timestamp(expires),
                            SqlValue::Timestamp(now),
                        ],
                    )
                    .await?;
                Ok(Refreshed::Yes)
            }
            Err(GraphError::TokenInvalid(why)) => {
                crate::posts::mark_stale(self.sql, user, &why, now).await?;
                Ok(Refreshed::Refused)
            }
            // Meta down: the next daily run tries again (seven chances).
            Err(e) => {
                self.note(user, &e.to_string()).await?;
                Ok(Refreshed::Failed)
            }
        }
    }

    async fn note(&self, user: Uuid, error: &str) -> Result<(), SqlError> {
        self.sql
            .execute(
                "UPDATE social_connections SET last_error = $2 WHERE user_id = $1",
                &[SqlValue::Uuid(user), SqlValue::Text(stored(error, 500))],
            )
            .await
            .map(drop)
    }

    async fn reseal(&self, user: Uuid) -> Result<bool, SqlError> {
        let Some(r) = self
            .sql
            .query_opt(
                "SELECT token_key_id, token_sealed FROM social_connections WHERE user_id = $1",
                &[SqlValue::Uuid(user)],
            )
            .await?
        else {
            return Ok(false);
        };
        let sealed = crate::tokens::Sealed {
            key_id: r.get("token_key_id")?,
            bytes: r.get("token_sealed")?,
        };
        let fresh = match self
            .config
            .keys
            .open(&sealed, user)
            .and_then(|t| self.config.keys.seal(&t, user))
        {
            Ok(s) => s,
            Err(e) => {
                self.note(user, &e.to_string()).await?;
                return Ok(false);
            }
        };
        self.sql
            .execute(
                "UPDATE social_connections SET token_key_id = $2, token_sealed = $3 \
                 WHERE user_id = $1 AND token_key_id = $4",
                &[
                    SqlValue::Uuid(user),
                    SqlValue::Text(fresh.key_id),
                    SqlValue::Bytes(fresh.bytes),
                    SqlValue::Text(sealed.key_id),
                ],
            )
            .await
            .map(|n| n == 1)
    }

    /// Emails each stale connection's user once; returns how many.
    async fn notify(&self, now: DateTime<Utc>) -> Result<usize, SqlError> {
        let rows = self
            .sql
            .query(
                "SELECT c.user_id, u.email FROM social_connections c JOIN users u ON u.id = c.user_id \
                 WHERE c.status = 'stale' AND c.stale_notified_at IS NULL LIMIT $1",
                &[SqlValue::Int64(BATCH)],
            )
            .await?;
        let mut sent = 0;
        for r in &rows {
            let user: Uuid = r.get("user_id")?;
            let email: Option<String> = r.get("email")?;
            if let Some(to) = email.filter(|e| !e.is_empty()) {
                let text = format!(
                    "Your Facebook connection on Village Homepage has lapsed, so your social widget \
                     is no longer updating.\n\nReconnect it here: {}/social/connect\n\n\
                     Your posts stay on your homepage for now; after {ARCHIVE_AFTER_DAYS} days they are \
                     archived until you reconnect.\n",
                    self.mail.site_url.trim_end_matches('/')
                );
                let message = village_platform::mail::Message {
                    from: &self.mail.from,
                    to: &to,
                    subject: "Reconnect your Facebook account",
                    text: &text,
                };
                if let Err(e) = self.mail.relay.send(self.mail.http, &message).await {
                    // Not marked: the next run tries again.
                    village_platform::log::event(
                        "WARNING",
                        &format!("reconnect email not sent: {e}"),
                        serde_json::json!({ "user_id": user }),
                    );
                    continue;
                }
                sent += 1;
            }
            self.sql
                .execute(
                    "UPDATE social_connections SET stale_notified_at = $2 WHERE user_id = $1",
                    &[SqlValue::Uuid(user), SqlValue::Timestamp(now)],
                )
                .await?;
        }
        Ok(sent)
    }
}

enum Refreshed {
    Yes,
    Refused,
    Failed,
}

impl<S: Sql, K: Cache, H: HttpClient, M: HttpClient, C: Clock> JobHandler
    for Upkeep<'_, S, K, H, M, C>
{
    fn name(&self) -> &'static str {
        crate::jobs::UPKEEP
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        if !village_flags::store::on_for_anyone(self.sql, self.cache, crate::FLAG).await {
            return Ok(()); // the kill switch: no call to Meta, no email
        }
        let report = self
            .run_at(self.clock.now())
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        village_platform::log::event(
            "INFO",
            "social upkeep done",
            serde_json::json!({ "job_id": job.id, "refreshed": report.refreshed,
                                "refresh_failed": report.refresh_failed,
                                "marked_stale": report.marked_stale, "notified": report.notified,
                                "archived": report.archived, "resealed": report.resealed }),
        );
        Ok(())
    }
}
