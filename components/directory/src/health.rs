//! `directory.check_links`: link health. Every approved site is checked
//! when due (`health_next_at`), through the guarded fetch path, and
//! classified:
//!
//! - `ok`: it answered 2xx on its own site (a redirect within the site,
//!   `http`→`https` or to `www.` included);
//! - `redirected`: it answered, but on another site — the entry probably
//!   moved or was sold;
//! - `parked`: it answered with a domain-parking or for-sale page;
//! - `broken`: [`BROKEN_AFTER`] checks in a row failed (no answer, 4xx or
//!   5xx). A single failure only schedules an earlier retry.
//!
//! Healthy sites are checked every [`HEALTHY_EVERY_DAYS`] days; a failing
//! one after 1 h, 2 h, 4 h, ... (at most [`HEALTHY_EVERY_DAYS`] days).
//! What the check saw (status, final URL, reason, redirects) is kept in
//! `health_detail`; flagged sites appear in the moderators' queue.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use village_jobs::{Job, JobError, JobHandler, NewJob, Queue};
use village_platform::address::{self, FollowError, Followed, PublicUrl};
use village_platform::cache::Cache;
use village_platform::clock::Clock;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::jobs::CHECK_LINKS;

pub const BROKEN_AFTER: i32 = 3;
pub const HEALTHY_EVERY_DAYS: i64 = 7;
/// Sites checked per job: each check may take a few seconds (three
/// redirects at the fetch service's 3 s per hop), and a job must fit the
/// worker's drain budget; the job chains another while sites are due.
pub const BATCH: i64 = 5;
/// How long a claimed check holds its site before another run may take it.
const CLAIM_MINUTES: i64 = 10;
/// The most of a page searched for parking signs.
const MAX_SCAN: usize = 256 * 1024;

/// Words only a parking or domain-for-sale page says.
const PARKED_SIGNS: [&str; 10] = [
    "this domain is for sale",
    "this domain may be for sale",
    "buy this domain",
    "domain is parked",
    "this domain is parked",
    "parked free",
    "sedoparking",
    "parkingcrew",
    "bodis.com",
    "hugedomains",
];

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Redirected,
    Parked,
    /// Failed this time: broken after [`BROKEN_AFTER`] in a row.
    Failing,
}

/// What a check saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seen {
    pub verdict: Verdict,
    pub status: Option<u16>,
    pub final_url: Option<String>,
    pub redirects: Vec<String>,
    pub reason: String,
}

/// The site a URL is on: its host without `www.`, and its port.
fn site_of(url: &url::Url) -> (String, Option<u16>) {
    let host = url.host_str().unwrap_or_default();
    (
        host.strip_prefix("www.").unwrap_or(host).to_owned(),
        url.port_or_known_default()
            .filter(|p| *p != 80 && *p != 443),
    )
}

/// Classifies one fetch of `original`.
pub fn classify(original: &PublicUrl, result: Result<Followed, FollowError>) -> Seen {
    let followed = match result {
        Ok(f) => f,
        Err(e) => {
            let reason = match e {
                FollowError::Http(e) => format!("no answer ({})", e.category()),
                other => other.to_string(),
            };
            return Seen {
                verdict: Verdict::Failing,
                status: None,
                final_url: None,
                redirects: Vec::new(),
                reason,
            };
        }
    };
    let status = followed.response.status();
    let redirects: Vec<String> = followed
        .redirects
        .iter()
        .map(|(code, to)| format!("{code} {}", to.as_str()))
        .collect();
    let final_url = Some(followed.url.as_str().to_owned());
    let seen = |verdict, reason: String| Seen {
        verdict,
        status: Some(status.as_u16()),
        final_url: final_url.clone(),
        redirects: redirects.clone(),
        reason,
    };
    if !status.is_success() {
        return seen(Verdict::Failing, format!("answered {status}"));
    }
    if site_of(followed.url.url()) != site_of(original.url()) {
        return seen(
            Verdict::Redirected,
            format!("now answers on another site: {}", followed.url.as_str()),
        );
    }
    let body = followed.response.body();
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_SCAN)]).to_lowercase();
    if let Some(sign) = PARKED_SIGNS.iter().find(|s| text.contains(*s)) {
        return seen(Verdict::Parked, format!("looks parked (\"{sign}\")"));
    }
    seen(Verdict::Ok, format!("answered {status}"))
}

/// When to check again after `failures` failures in a row (0: healthy).
pub fn next_check(failures: i32, now: DateTime<Utc>) -> DateTime<Utc> {
    if failures <= 0 {
        return now + Duration::days(HEALTHY_EVERY_DAYS);
    }
    let hours = 1i64 << (failures - 1).min(8);
    now + Duration::hours(hours).min(Duration::days(HEALTHY_EVERY_DAYS))
}

/// Checks `url` and records the result on site `id`, which had failed
/// `failures` times in a row before.
pub async fn check_one(
    sql: &impl Sql,
    http: &impl HttpClient,
    id: i64,
    url: &str,
    failures: i32,
    allowed_hosts: &[String],
    now: DateTime<Utc>,
) -> Result<Seen, SqlError> {
    let seen = match address::check(url, allowed_hosts) {
        Err(e) => Seen {
            verdict: Verdict::Failing,
            status: None,
            final_url: None,
            redirects: Vec::new(),
            reason: format!("refused: {e}"),
        },
        Ok(first) => {
            let result = address::follow(http, first.clone(), allowed_hosts, 5, |u| {
                http::Request::get(u.as_str())
                    .header(http::header::USER_AGENT, "VillageHomepage-LinkCheck/0.1")
                    .header(http::header::ACCEPT, "text/html, */*;q=0.5")
            })
            .await;
            classify(&first, result)
        }
    };
    let detail = serde_json::json!({
        "status": seen.status, "final_url": seen.final_url, "redirects": seen.redirects,
        "reason": seen.reason, "checked_at": now,
    });
    // Failures count up to `broken`; any answer resets the count.
    sql.execute(
        "UPDATE directory_sites SET \
             health_failures = CASE WHEN $2 = 'failing' THEN health_failures + 1 ELSE 0 END, \
             health = CASE WHEN $2 <> 'failing' THEN $2 \
                           WHEN health_failures + 1 >= $3 THEN 'broken' \
                           ELSE health END, \
             health_detail = $4, health_checked_at = $5, health_next_at = $6 \
         WHERE id = $1",
        &[
            SqlValue::Int64(id),
            SqlValue::Text(
                match seen.verdict {
                    Verdict::Ok => "ok",
                    Verdict::Redirected => "redirected",
                    Verdict::Parked => "parked",
                    Verdict::Failing => "failing",
                }
                .into(),
            ),
            SqlValue::Int32(BROKEN_AFTER),
            SqlValue::Json(detail),
            SqlValue::Timestamp(now),
            SqlValue::Timestamp(next_check(
                if seen.verdict == Verdict::Failing {
                    failures + 1
                } else {
                    0
                },
                now,
            )),
        ],
    )
    .await?;
    Ok(seen)
}

/// Claims up to [`BATCH`] due sites (moving their next check on, so a
/// parallel run skips them) and checks each. Returns how many were checked
/// and whether more are due.
pub async fn check_due(
    sql: &impl Sql,
    http: &impl HttpClient,
    allowed_hosts: &[String],
    now: DateTime<Utc>,
) -> Result<(usize, bool), SqlError> {
    let claimed = sql
        .query(
            "UPDATE directory_sites s SET health_next_at = $2 \
             FROM (SELECT id FROM directory_sites \
                   WHERE status = 'approved' AND health_next_at <= $1 \
                   ORDER BY health_next_at LIMIT $3 FOR UPDATE SKIP LOCKED) due \
             WHERE s.id = due.id RETURNING s.id, s.url, s.health_failures",
            &[
                SqlValue::Timestamp(now),
                SqlValue::Timestamp(now + Duration::minutes(CLAIM_MINUTES)),
                SqlValue::Int64(BATCH),
            ],
        )
        .await?;
    for row in &claimed {
        let id: i64 = row.get("id")?;
        let url: String = row.get("url")?;
        let failures: i32 = row.get("health_failures")?;
        let seen = check_one(sql, http, id, &url, failures, allowed_hosts, now).await?;
        village_platform::log::event(
            "INFO",
            "link checked",
            serde_json::json!({ "job": CHECK_LINKS, "site_id": id, "seen": seen }),
        );
    }
    let more = sql
        .query_opt(
            "SELECT EXISTS (SELECT 1 FROM directory_sites WHERE status = 'approved' \
                 AND health_next_at <= $1) AS more",
            &[SqlValue::Timestamp(now)],
        )
        .await?
        .map(|r| r.get::<bool>("more"))
        .transpose()?
        .unwrap_or(false);
    Ok((claimed.len(), more))
}

/// Queues a check run (`slot` keys it: the scheduler's hour, or the run
/// that found more due).
pub async fn schedule(
    sql: &impl Sql,
    cache: &impl Cache,
    slot: &str,
    now: DateTime<Utc>,
) -> Result<village_jobs::JobId, village_jobs::JobsError> {
    let job = NewJob::new(Queue::Low, CHECK_LINKS, serde_json::json!({}))
        .idempotency_key(format!("{CHECK_LINKS}:{slot}"));
    village_jobs::enqueue(sql, cache, now, job).await
}

/// The handler of `directory.check_links`.
pub struct CheckLinks<'a, S, C, H, K> {
    pub sql: &'a S,
    pub cache: &'a C,
    /// The guarded fetch service.
    pub http: &'a H,
    pub clock: &'a K,
    pub allowed_hosts: &'a [String],
}

impl<S: Sql, C: Cache, H: HttpClient, K: Clock> JobHandler for CheckLinks<'_, S, C, H, K> {
    fn name(&self) -> &'static str {
        CHECK_LINKS
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let now = self.clock.now();
        let (checked, more) = check_due(self.sql, self.http, self.allowed_hosts, now)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        if more && checked > 0 {
            schedule(self.sql, self.cache, &format!("after-{}", job.id), now)
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
        }
        Ok(())
    }
}
