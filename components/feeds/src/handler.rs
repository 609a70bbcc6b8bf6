//! `feeds.refresh`: one feed refreshed (see [`crate::refresh`]); when it
//! brought new articles, a tagging run is scheduled (the AI budget decides
//! whether it runs now, next month or not at all).

use serde::Deserialize;
use village_ai::AiConfig;
use village_jobs::{Job, JobError, JobHandler};
use village_platform::cache::Cache;
use village_platform::clock::Clock;
use village_platform::http_client::HttpClient;
use village_platform::sql::Sql;

use crate::refresh::{self, Refreshed};
use crate::schedule::REFRESH;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    feed_id: i64,
}

pub struct RefreshFeed<'a, S, C, H, K> {
    pub sql: &'a S,
    pub cache: &'a C,
    pub http: &'a H,
    pub clock: &'a K,
    /// Hosts exempt from the private-address refusal (tests only).
    pub allowed_hosts: &'a [String],
    pub ai: &'a AiConfig,
}

impl<S: Sql, C: Cache, H: HttpClient, K: Clock> JobHandler for RefreshFeed<'_, S, C, H, K> {
    fn name(&self) -> &'static str {
        REFRESH
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let p: Payload =
            serde_json::from_value(job.payload.clone()).map_err(JobError::malformed)?;
        let retry = |e: village_platform::sql::SqlError| JobError::Retry(e.to_string());
        // A feed deleted since the job was enqueued: nothing to do.
        let Some(feed) = refresh::load(self.sql, p.feed_id).await.map_err(retry)? else {
            return Ok(());
        };
        let now = self.clock.now();
        let outcome = refresh::refresh(self.sql, self.http, &feed, self.allowed_hosts, now)
            .await
            .map_err(retry)?;
        if let Refreshed::Updated { new_items, .. } = &outcome
            && *new_items > 0
            && let Err(e) = village_ai::tagging::schedule(self.sql, self.cache, self.ai, now).await
        {
            // The articles are stored; the hourly run picks them up.
            village_platform::log::event(
                "WARNING",
                &format!("tagging not scheduled: {e}"),
                serde_json::json!({ "feed_id": feed.id }),
            );
        }
        village_platform::log::event(
            "INFO",
            "feed refreshed",
            serde_json::json!({ "job": REFRESH, "feed_id": feed.id, "result": outcome }),
        );
        Ok(())
    }
}
