//! Threshold notices to ops (75, 90, 100 % of the month's budget): an email
//! through Mailgun's HTTP API (`POST /v3/{domain}/messages`, form fields,
//! HTTP Basic `api:<key>`) and a Slack incoming-webhook message (`{"text"}`).
//!
//! Each (month, threshold, channel) is one `ai_budget_notices` row: a notice
//! is sent once, and its delivery — or the last error and how many attempts
//! — is kept. Whoever looks (the hourly `ai-budget` cron, or a tagging job
//! right after it spent) claims undelivered rows with an `UPDATE` that
//! re-checks under the row lock, so two runs never send the same notice; a
//! failed one is tried again after ten minutes, at most five times.

use chrono::{DateTime, Utc};
use serde::Serialize;
use village_platform::http_client::HttpClient;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::budget::{self, Budget};
use crate::config::NotifyConfig;

pub const MAX_ATTEMPTS: i32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub threshold: i32,
    pub channel: String,
    pub error: Option<String>,
}

fn channels(config: &NotifyConfig) -> Vec<&'static str> {
    let mut c = Vec::new();
    if config.email_configured() {
        c.push("email");
    }
    if config.slack_configured() {
        c.push("slack");
    }
    c
}

/// The words of a notice.
pub fn message(budget: &Budget, threshold: i32) -> (String, String) {
    let month = budget.month.format("%B %Y");
    let used = budget.used_basis_points() as f64 / 100.0;
    let spent = budget.spent_cents() / 100.0;
    let limit = budget.limit_cents as f64 / 100.0;
    let effect = match threshold {
        75 => "Tagging batches are reduced from 20 to 10 articles.",
        90 => "New non-critical tagging is deferred to the 1st of next month.",
        _ => {
            "AI tagging has stopped: articles show as untagged until next month or a budget raise."
        }
    };
    (
        format!("AI budget {threshold}% reached for {month}"),
        format!(
            "Village Homepage has used {used:.1}% of the AI budget for {month} \
             (${spent:.2} of ${limit:.2}). {effect} Raise the budget with \
             PUT /admin/api/ai-budget and a reason."
        ),
    )
}

/// Creates the notices the budget's thresholds call for and sends every
/// undelivered one this run may claim. Returns what was attempted.
pub async fn send_due(
    sql: &impl Sql,
    http: &impl HttpClient,
    config: &NotifyConfig,
    budget: &Budget,
    now: DateTime<Utc>,
) -> Result<Vec<Delivery>, SqlError> {
    let wanted: Vec<serde_json::Value> = budget
        .thresholds_reached()
        .into_iter()
        .flat_map(|t| {
            channels(config)
                .into_iter()
                .map(move |c| serde_json::json!({ "threshold": t, "channel": c }))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let month = budget::date(budget.month);
    sql.execute(
        "INSERT INTO ai_budget_notices (month, threshold, channel) \
         SELECT $1::text::date, (x->>'threshold')::int, x->>'channel' \
         FROM jsonb_array_elements($2) x ON CONFLICT DO NOTHING",
        &[
            month.clone(),
            SqlValue::Json(serde_json::Value::Array(wanted)),
        ],
    )
    .await?;
    let claimed = sql
        .query(
            "UPDATE ai_budget_notices SET attempts = attempts + 1, last_attempt_at = $2 \
             WHERE month = $1::text::date AND delivered_at IS NULL AND attempts < $3 \
               AND (last_attempt_at IS NULL OR last_attempt_at < $2::timestamp - interval '10 minutes') \
             RETURNING threshold, channel",
            &[month.clone(), SqlValue::Timestamp(now), SqlValue::Int32(MAX_ATTEMPTS)],
        )
        .await?;
    let mut out = Vec::new();
    for row in claimed {
        let threshold: i32 = row.get("threshold")?;
        let channel: String = row.get("channel")?;
        let (subject, text) = message(budget, threshold);
        let result = match channel.as_str() {
            "email" => send_email(http, config, &subject, &text).await,
            _ => send_slack(http, config, &format!("*{subject}*\n{text}")).await,
        };
        let error = result.err();
        sql.execute(
            "UPDATE ai_budget_notices SET delivered_at = CASE WHEN $4::text IS NULL THEN $5::timestamp END, \
                 last_error = $4 \
             WHERE month = $1::text::date AND threshold = $2 AND channel = $3",
            &[
                month.clone(),
                SqlValue::Int32(threshold),
                SqlValue::Text(channel.clone()),
                error.clone().map_or(SqlValue::Null, SqlValue::Text),
                SqlValue::Timestamp(now),
            ],
        )
        .await?;
        if let Some(e) = &error {
            village_platform::log::event(
                "WARNING",
                &format!("AI budget notice not delivered: {e}"),
                serde_json::json!({ "threshold": threshold, "channel": channel }),
            );
        }
        out.push(Delivery {
            threshold,
            channel,
            error,
        });
    }
    Ok(out)
}

async fn send_email(
    http: &impl HttpClient,
    config: &NotifyConfig,
    subject: &str,
    text: &str,
) -> Result<(), String> {
    let relay = village_platform::mail::Mailgun {
        base_url: config.mailgun_base_url.clone(),
        domain: config.mailgun_domain.clone(),
        api_key: config.mailgun_api_key.clone(),
    };
    relay
        .send(
            http,
            &village_platform::mail::Message {
                from: &config.from,
                to: &config.ops_email,
                subject,
                text,
            },
        )
        .await
}

async fn send_slack(
    http: &impl HttpClient,
    config: &NotifyConfig,
    text: &str,
) -> Result<(), String> {
    let body =
        serde_json::to_vec(&serde_json::json!({ "text": text })).map_err(|e| e.to_string())?;
    let request = http::Request::post(config.slack_webhook_url.trim())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        // The webhook URL is a secret: never in an error message.
        .map_err(|_| "slack_webhook_url is not a valid URL".to_owned())?;
    let response = http
        .send(request)
        .await
        .map_err(|_| "the Slack webhook could not be reached".to_owned())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the Slack webhook answered {}", response.status()))
    }
}
