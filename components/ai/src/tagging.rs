//! `ai.tag_items`: news articles tagged by the model in batches (20, or 10
//! once the month's budget is 75 % used), under the budget's rules.
//!
//! Articles are one row per content hash (`feed_items`), so the same URL is
//! never tagged twice, whichever feeds carry it. A run claims a batch of
//! `pending` articles for five minutes (no transaction can span the model
//! call), sends them in one Messages API call, stores the tags, and — while
//! pending articles remain and the budget allows — enqueues the next run.
//! A failed call releases its claim and is retried by the job system.
//!
//! Runs are started by [`schedule`]: after a feed refresh brought new
//! articles, and hourly by the `ai-budget` cron (which also picks up work
//! after a new month or a raised budget). At 90 % a run is put off to the
//! 1st of next month; at 100 % nothing is sent and the widget shows the
//! articles as untagged.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use village_jobs::{JobError, JobHandler, JobsError, NewJob, Queue};
use village_platform::cache::Cache;
use village_platform::clock::Clock;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::budget::{self, Allowance, Budget, Level, Priority};
use crate::config::AiConfig;
use crate::messages::{self, AiError, Prompt};
use crate::notify;

pub const NAME: &str = "ai.tag_items";
pub const PURPOSE: &str = "news_tagging";
/// The feature flag that turns tagging on and off for everyone.
pub const FLAG: &str = "ai_tagging";
pub const MAX_TAGS: usize = 5;
pub const MAX_TAG_CHARS: usize = 32;
const SUMMARY_CHARS: usize = 400;

const SYSTEM: &str = "You tag news articles for a community homepage. For each article \
you are given (id, title, summary), choose 1 to 5 short topic tags: lowercase, one or two \
words, general enough to group articles (e.g. \"politics\", \"climate\", \"football\", \
\"local government\"). Answer with JSON only, in exactly this shape: \
{\"items\": [{\"id\": <id>, \"tags\": [\"...\"]}]}, one entry per article.";

/// What [`schedule`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduled {
    Enqueued {
        job_id: i64,
    },
    /// Put off to the 1st of next month (budget ≥ 90 %).
    Deferred {
        job_id: i64,
        until: DateTime<Utc>,
    },
    /// Budget exhausted, tagging switched off, or no API key: nothing to do.
    Skipped(&'static str),
}

/// Why tagging cannot run at all, if it cannot.
async fn switched_off(
    sql: &impl Sql,
    cache: &impl Cache,
    config: &AiConfig,
) -> Option<&'static str> {
    if config.api_key.is_empty() {
        return Some("anthropic_api_key is not set");
    }
    if !village_flags::store::system_switch(sql, cache, FLAG).await {
        return Some("the ai_tagging flag is off");
    }
    None
}

/// Starts a tagging run unless one is already waiting to start (bursts of
/// new articles start one run; a running one chains the next itself). Asks
/// the budget first. Two producers racing may start two runs: harmless, as
/// each claims different articles.
pub async fn schedule(
    sql: &impl Sql,
    cache: &impl Cache,
    config: &AiConfig,
    now: DateTime<Utc>,
) -> Result<Scheduled, JobsError> {
    if let Some(why) = switched_off(sql, cache, config).await {
        return Ok(Scheduled::Skipped(why));
    }
    let b = budget::current(sql, now, config.default_limit_cents).await?;
    start(sql, cache, b.level(), now).await
}

/// [`schedule`] for a caller that has just read the month's budget.
pub async fn schedule_within(
    sql: &impl Sql,
    cache: &impl Cache,
    config: &AiConfig,
    budget: &Budget,
    now: DateTime<Utc>,
) -> Result<Scheduled, JobsError> {
    if let Some(why) = switched_off(sql, cache, config).await {
        return Ok(Scheduled::Skipped(why));
    }
    start(sql, cache, budget.level(), now).await
}

/// What the budget's `level` allows: nothing, a run on the 1st of next
/// month, or a run now unless one is waiting.
async fn start(
    sql: &impl Sql,
    cache: &impl Cache,
    level: Level,
    now: DateTime<Utc>,
) -> Result<Scheduled, JobsError> {
    match budget::allowance(level, Priority::NonCritical, now) {
        Allowance::Stop => Ok(Scheduled::Skipped("the month's AI budget is used up")),
        Allowance::Defer { until } => {
            let job_id = enqueue(sql, cache, now, Some(&deferred_key(until)), Some(until)).await?;
            Ok(Scheduled::Deferred { job_id, until })
        }
        Allowance::Proceed { .. } => {
            let waiting = sql
                .query_opt(
                    "SELECT id FROM delayed_jobs WHERE handler = $1 AND status = 'pending' \
                       AND run_at <= $2 ORDER BY id LIMIT 1",
                    &[SqlValue::Text(NAME.into()), SqlValue::Timestamp(now)],
                )
                .await?;
            let job_id = match waiting {
                Some(r) => r.get("id")?,
                None => enqueue(sql, cache, now, None, None).await?,
            };
            Ok(Scheduled::Enqueued { job_id })
        }
    }
}

/// One deferred run per month, however many producers ask.
fn deferred_key(until: DateTime<Utc>) -> String {
    format!("{NAME}:deferred:{}", until.format("%Y-%m"))
}

async fn enqueue(
    sql: &impl Sql,
    cache: &impl Cache,
    now: DateTime<Utc>,
    key: Option<&str>,
    run_at: Option<DateTime<Utc>>,
) -> Result<i64, JobsError> {
    // BULK: tagging is heavy, never urgent, and must not delay user work.
    let mut job = NewJob::new(Queue::Bulk, NAME, serde_json::json!({}));
    if let Some(key) = key {
        job = job.idempotency_key(key);
    }
    if let Some(at) = run_at {
        job = job.run_at(at);
    }
    village_jobs::enqueue(sql, cache, now, job).await
}

/// An article as sent to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    pub id: i64,
    pub title: String,
    pub summary: String,
}

/// Claims up to `limit` pending articles, newest first, for five minutes.
pub async fn claim(
    sql: &impl Sql,
    limit: usize,
    now: DateTime<Utc>,
) -> Result<Vec<Article>, SqlError> {
    let rows = sql
        .query(
            "UPDATE feed_items SET tag_claimed_until = $2::timestamp + interval '5 minutes' \
             WHERE id IN ( \
                 SELECT id FROM feed_items \
                 WHERE tag_state = 'pending' \
                   AND (tag_claimed_until IS NULL OR tag_claimed_until < $2) \
                 ORDER BY coalesce(published_at, first_seen_at) DESC, id DESC \
                 LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, title, summary_html",
            &[SqlValue::Int64(limit as i64), SqlValue::Timestamp(now)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let html: String = r.get("summary_html")?;
            Ok(Article {
                id: r.get("id")?,
                title: r.get("title")?,
                summary: plain_text(&html, SUMMARY_CHARS),
            })
        })
        .collect()
}

async fn release(sql: &impl Sql, ids: &[i64]) -> Result<(), SqlError> {
    sql.execute(
        "UPDATE feed_items SET tag_claimed_until = NULL WHERE id = ANY($1) AND tag_state = 'pending'",
        &[SqlValue::Int64Array(ids.to_vec())],
    )
    .await?;
    Ok(())
}

/// The text of sanitised summary HTML, for the prompt only (never shown):
/// tags dropped, the common entities decoded, whitespace collapsed, cut to
/// `max` characters.
fn plain_text(html: &str, max: usize) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max)
        .collect()
}

/// The user message: the articles as JSON.
pub fn prompt_for(articles: &[Article]) -> String {
    let list: Vec<serde_json::Value> = articles
        .iter()
        .map(|a| serde_json::json!({ "id": a.id, "title": a.title, "summary": a.summary }))
        .collect();
    format!("Tag these articles:\n{}", serde_json::Value::Array(list))
}

#[derive(Deserialize)]
struct TagAnswer {
    items: Vec<TaggedItem>,
}

#[derive(Deserialize)]
struct TaggedItem {
    id: i64,
    #[serde(default)]
    tags: Vec<String>,
}

/// One tag as stored: trimmed, lowercase, letters, digits, spaces and
/// hyphens only, at most 32 characters; `None` when nothing is left.
pub fn normalise_tag(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .trim()
        .trim_start_matches('#')
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
        .collect();
    let t = cleaned
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_TAG_CHARS)
        .collect::<String>()
        .trim()
        .to_owned();
    (!t.is_empty()).then_some(t)
}

/// The model's answer as `(article id, tags)`, for the articles sent only.
/// The JSON may come wrapped in prose or a code fence.
pub fn parse_answer(text: &str, sent: &[i64]) -> Result<Vec<(i64, Vec<String>)>, String> {
    let start = text.find('{').ok_or("the answer has no JSON object")?;
    let end = text.rfind('}').ok_or("the answer has no JSON object")?;
    let answer: TagAnswer = serde_json::from_str(text.get(start..=end).unwrap_or_default())
        .map_err(|e| format!("the answer is not the JSON asked for: {e}"))?;
    let mut out: Vec<(i64, Vec<String>)> = Vec::new();
    for item in answer.items {
        if !sent.contains(&item.id) || out.iter().any(|(id, _)| *id == item.id) {
            continue;
        }
        let mut tags: Vec<String> = Vec::new();
        for t in item.tags.iter().filter_map(|t| normalise_tag(t)) {
            if !tags.contains(&t) && tags.len() < MAX_TAGS {
                tags.push(t);
            }
        }
        out.push((item.id, tags));
    }
    Ok(out)
}

/// Stores tags. Every article sent is marked tagged — one the model left
/// out gets no tags rather than being sent (and paid for) again.
async fn store(
    sql: &impl Sql,
    sent: &[i64],
    tags: &[(i64, Vec<String>)],
    now: DateTime<Utc>,
) -> Result<u64, SqlError> {
    let rows: Vec<serde_json::Value> = sent
        .iter()
        .map(|id| {
            let t = tags
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            serde_json::json!({ "id": id, "tags": t })
        })
        .collect();
    sql.execute(
        "UPDATE feed_items f SET tags = x.tags, tag_state = 'tagged', tagged_at = $2, \
             tag_claimed_until = NULL \
         FROM (SELECT (e->>'id')::bigint AS id, \
                      ARRAY(SELECT jsonb_array_elements_text(e->'tags')) AS tags \
               FROM jsonb_array_elements($1) e) x \
         WHERE f.id = x.id AND f.tag_state = 'pending'",
        &[
            SqlValue::Json(serde_json::Value::Array(rows)),
            SqlValue::Timestamp(now),
        ],
    )
    .await
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunReport {
    pub sent: usize,
    pub tagged: u64,
    pub outcome: &'static str,
}

/// One run: ask the budget, claim a batch, call the model, store the tags,
/// send any threshold notices the spend called for, chain the next run.
pub async fn run_once(
    sql: &impl Sql,
    cache: &impl Cache,
    http: &impl HttpClient,
    config: &AiConfig,
    now: DateTime<Utc>,
) -> Result<RunReport, JobError> {
    let retry = |e: SqlError| JobError::Retry(e.to_string());
    if !village_flags::store::system_switch(sql, cache, FLAG).await {
        return Ok(RunReport {
            outcome: "flag_off",
            ..RunReport::default()
        });
    }
    let before = budget::current(sql, now, config.default_limit_cents)
        .await
        .map_err(retry)?;
    let batch = match budget::allowance(before.level(), Priority::NonCritical, now) {
        Allowance::Stop => {
            return Ok(RunReport {
                outcome: "stopped",
                ..RunReport::default()
            });
        }
        Allowance::Defer { .. } => {
            start(sql, cache, before.level(), now)
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
            return Ok(RunReport {
                outcome: "deferred",
                ..RunReport::default()
            });
        }
        Allowance::Proceed { batch_size } => batch_size,
    };
    let articles = claim(sql, batch, now).await.map_err(retry)?;
    if articles.is_empty() {
        return Ok(RunReport {
            outcome: "nothing_pending",
            ..RunReport::default()
        });
    }
    let ids: Vec<i64> = articles.iter().map(|a| a.id).collect();
    let user = prompt_for(&articles);
    let prompt = Prompt {
        purpose: PURPOSE,
        system: SYSTEM,
        user: &user,
        max_tokens: 100 + 60 * articles.len() as u32,
        items: articles.len() as i32,
    };
    let completion = match messages::complete(sql, http, config, &prompt, now).await {
        Ok(c) => c,
        Err(e) => {
            release(sql, &ids).await.map_err(retry)?;
            return Err(match e {
                AiError::NotConfigured(m) => JobError::Permanent(m),
                other => JobError::Retry(other.to_string()),
            });
        }
    };
    let tags = match parse_answer(&completion.text, &ids) {
        Ok(t) => t,
        Err(e) => {
            release(sql, &ids).await.map_err(retry)?;
            return Err(JobError::Retry(e));
        }
    };
    let tagged = store(sql, &ids, &tags, now).await.map_err(retry)?;
    let after = budget::current(sql, now, config.default_limit_cents)
        .await
        .map_err(retry)?;
    if after.level() > before.level() {
        notify::send_due(sql, http, &config.notify, &after, now)
            .await
            .map_err(retry)?;
    }
    let remaining = sql
        .query_opt(
            "SELECT EXISTS (SELECT 1 FROM feed_items WHERE tag_state = 'pending' \
                 AND (tag_claimed_until IS NULL OR tag_claimed_until < $1)) AS more",
            &[SqlValue::Timestamp(now)],
        )
        .await
        .map_err(retry)?
        .map(|r| r.get::<bool>("more"))
        .transpose()
        .map_err(retry)?
        .unwrap_or(false);
    if remaining {
        // The flag and the budget were read by this run: start the next.
        start(sql, cache, after.level(), now)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
    }
    Ok(RunReport {
        sent: ids.len(),
        tagged,
        outcome: "tagged",
    })
}

/// The job handler the workers register.
pub struct TagItems<'a, S, C, H, K> {
    pub sql: &'a S,
    pub cache: &'a C,
    pub http: &'a H,
    pub clock: &'a K,
    pub config: &'a AiConfig,
}

impl<S: Sql, C: Cache, H: HttpClient, K: Clock> JobHandler for TagItems<'_, S, C, H, K> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn run(&self, job: &village_jobs::Job) -> Result<(), JobError> {
        let report = run_once(
            self.sql,
            self.cache,
            self.http,
            self.config,
            self.clock.now(),
        )
        .await?;
        village_platform::log::event(
            "INFO",
            "tagging run",
            serde_json::json!({
                "job": NAME, "job_id": job.id, "outcome": report.outcome,
                "sent": report.sent, "tagged": report.tagged,
            }),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_for_the_articles_sent_only() {
        let text = "Here you go:\n```json\n{\"items\": [\
            {\"id\": 1, \"tags\": [\"Politics\", \"#Europe\", \"politics\", \"  local   government \"]},\
            {\"id\": 9, \"tags\": [\"spam\"]},\
            {\"id\": 2, \"tags\": [\"<script>\", \"a\", \"b\", \"c\", \"d\", \"e\", \"f\"]}]}\n```";
        let parsed = parse_answer(text, &[1, 2, 3]).expect("parses");
        assert_eq!(
            parsed,
            vec![
                (
                    1,
                    vec![
                        "politics".into(),
                        "europe".into(),
                        "local government".into()
                    ]
                ),
                (
                    2,
                    vec![
                        "script".into(),
                        "a".into(),
                        "b".into(),
                        "c".into(),
                        "d".into()
                    ]
                ),
            ]
        );
        assert!(parse_answer("no json here", &[1]).is_err());
        assert!(parse_answer("{\"tags\": 1}", &[1]).is_err());
    }

    #[test]
    fn summaries_reach_the_prompt_as_short_plain_text() {
        assert_eq!(
            plain_text("<p>Open <b>again</b> &amp; busy</p>\n\n<p>Next</p>", 100),
            "Open again & busy Next"
        );
        assert_eq!(plain_text("abcdef", 3), "abc");
        assert_eq!(normalise_tag("  "), None);
        assert_eq!(normalise_tag(&"x".repeat(50)).map(|t| t.len()), Some(32));
    }
}
