//! Telling people: the seller when their money comes back, ops when a
//! chargeback, a Radar review or a reconciliation discrepancy needs them.
//! Mail goes through the relay (`village_platform::mail`); every notice is
//! also a log line, so an unconfigured relay loses nothing ops need.

use uuid::Uuid;
use village_platform::http_client::HttpClient;
use village_platform::mail::{Mailgun, Message};
use village_platform::sql::{Sql, SqlError, SqlValue};

pub struct Mail<'a, H> {
    pub relay: Mailgun,
    pub http: &'a H,
    pub from: String,
    /// Ops' address(es), comma-separated; empty: log only.
    pub ops: String,
}

impl<H: HttpClient> Mail<'_, H> {
    /// Emails ops (and logs at `ERROR`, which pages whoever is on call).
    pub async fn ops(&self, subject: &str, text: &str, fields: serde_json::Value) {
        village_platform::log::event("ERROR", subject, fields);
        if self.ops.trim().is_empty() || !self.relay.configured() {
            return;
        }
        let message = Message {
            from: &self.from,
            to: &self.ops,
            subject,
            text,
        };
        if let Err(e) = self.relay.send(self.http, &message).await {
            village_platform::log::event(
                "ERROR",
                "emailing ops failed",
                serde_json::json!({ "subject": subject, "error": e }),
            );
        }
    }

    /// Emails `user`; whether it was sent (no address or no relay: not).
    pub async fn user(
        &self,
        sql: &impl Sql,
        user: Uuid,
        subject: &str,
        text: &str,
    ) -> Result<bool, SqlError> {
        let email: Option<String> = sql
            .query_opt(
                "SELECT email FROM users WHERE id = $1 AND email IS NOT NULL",
                &[SqlValue::Uuid(user)],
            )
            .await?
            .map(|r| r.get("email"))
            .transpose()?;
        let Some(to) = email.filter(|_| self.relay.configured()) else {
            return Ok(false);
        };
        let message = Message {
            from: &self.from,
            to: &to,
            subject,
            text,
        };
        match self.relay.send(self.http, &message).await {
            Ok(()) => Ok(true),
            Err(e) => {
                village_platform::log::event(
                    "WARN",
                    "emailing a seller failed",
                    serde_json::json!({ "user_id": user, "subject": subject, "error": e }),
                );
                Ok(false)
            }
        }
    }
}
