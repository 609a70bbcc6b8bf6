//! One call to the Anthropic Messages API (`POST /v1/messages`,
//! `anthropic-version: 2023-06-01`), costed from the `usage` the answer
//! reports and recorded against the month's budget before the caller sees
//! the text: a call that was paid for is always counted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use village_platform::http_client::{HttpClient, HttpError};
use village_platform::sql::{Sql, SqlError};

use crate::budget::{self, Usage};
use crate::config::AiConfig;

pub const API_VERSION: &str = "2023-06-01";

#[derive(Debug, thiserror::Error)]
pub enum AiError {
    /// Settings that make a call impossible (no key, an unpriced model).
    #[error("AI is not configured: {0}")]
    NotConfigured(String),
    /// The API or the network failed; worth retrying later.
    #[error("the Messages API failed: {0}")]
    Unavailable(String),
    /// The API refused the request itself (400, 401, 403, 404).
    #[error("the Messages API refused the request: {0}")]
    Refused(String),
    #[error(transparent)]
    Sql(#[from] SqlError),
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    max_tokens: u32,
    system: &'a str,
    messages: [Message<'a>; 1],
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct ApiUsage {
    input_tokens: i64,
    output_tokens: i64,
}

#[derive(Deserialize)]
struct Answer {
    model: String,
    content: Vec<ContentBlock>,
    usage: ApiUsage,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

/// A completed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The text blocks of the answer, joined.
    pub text: String,
    pub stop_reason: Option<String>,
    pub usage: Usage,
}

/// What a caller asks.
pub struct Prompt<'a> {
    /// What the call is for, as `ai_usage.purpose` records it (`news_tagging`).
    pub purpose: &'static str,
    pub system: &'a str,
    pub user: &'a str,
    pub max_tokens: u32,
    /// How many things the call is about (articles), for the usage row.
    pub items: i32,
}

/// Sends `prompt` and records what it cost. Callers check
/// [`budget::allowance`] first: this function does not refuse.
pub async fn complete(
    sql: &impl Sql,
    http: &impl HttpClient,
    config: &AiConfig,
    prompt: &Prompt<'_>,
    now: DateTime<Utc>,
) -> Result<Completion, AiError> {
    if config.api_key.is_empty() {
        return Err(AiError::NotConfigured(
            "anthropic_api_key is empty".to_owned(),
        ));
    }
    if config.prices.price(&config.model).is_none() {
        return Err(AiError::NotConfigured(format!(
            "model `{}` has no price in ai_prices_json: its cost could not be counted",
            config.model
        )));
    }
    let body = serde_json::to_vec(&Request {
        model: &config.model,
        max_tokens: prompt.max_tokens,
        system: prompt.system,
        messages: [Message {
            role: "user",
            content: prompt.user,
        }],
    })
    .map_err(|e| AiError::Refused(e.to_string()))?;
    let url = format!(
        "{}/v1/messages",
        config.anthropic_base_url.trim_end_matches('/')
    );
    let request = http::Request::post(url)
        .header("x-api-key", &config.api_key)
        .header("anthropic-version", API_VERSION)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| AiError::NotConfigured(format!("anthropic_base_url: {e}")))?;
    let response = http.send(request).await.map_err(|e| match e {
        HttpError::Refused(m) => AiError::NotConfigured(m),
        other => AiError::Unavailable(other.to_string()),
    })?;
    let status = response.status();
    if !status.is_success() {
        let detail = serde_json::from_slice::<ErrorBody>(response.body())
            .map(|b| format!("{} ({})", b.error.message, b.error.kind))
            .unwrap_or_else(|_| format!("status {status}"));
        return Err(match status.as_u16() {
            400 | 401 | 403 | 404 | 413 => AiError::Refused(detail),
            _ => AiError::Unavailable(detail),
        });
    }
    let answer: Answer = serde_json::from_slice(response.body())
        .map_err(|e| AiError::Unavailable(format!("unreadable answer: {e}")))?;
    // Priced by the model that answered; the configured one if the table
    // does not know it (it was checked above).
    let price = config
        .prices
        .price(&answer.model)
        .or_else(|| config.prices.price(&config.model))
        .ok_or_else(|| AiError::NotConfigured("no price".into()))?;
    let usage = Usage {
        purpose: prompt.purpose,
        model: answer.model,
        items: prompt.items,
        input_tokens: answer.usage.input_tokens,
        output_tokens: answer.usage.output_tokens,
        cost_microcents: price
            .cost_microcents(answer.usage.input_tokens, answer.usage.output_tokens),
    };
    budget::record_usage(sql, &usage, now).await?;
    let text = answer
        .content
        .into_iter()
        .filter(|b| b.kind == "text")
        .map(|b| b.text)
        .collect::<Vec<_>>()
        .join("");
    Ok(Completion {
        text,
        stop_reason: answer.stop_reason,
        usage,
    })
}
