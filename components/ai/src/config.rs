//! What the AI service runs with. Every value is a Spin variable (see
//! `spin.toml`); components read them through [`AiConfig::from_lookup`] so
//! native tests can pass their own.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One model's prices, in cents per million tokens (Anthropic publishes
/// dollars per MTok: $3 → 300).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_cents_per_mtok: i64,
    pub output_cents_per_mtok: i64,
}

impl Price {
    /// What a call cost, in micro-cents (1e-6 cent): tokens × cents per
    /// million tokens, exact in integers.
    pub fn cost_microcents(&self, input_tokens: i64, output_tokens: i64) -> i64 {
        input_tokens
            .saturating_mul(self.input_cents_per_mtok)
            .saturating_add(output_tokens.saturating_mul(self.output_cents_per_mtok))
    }
}

/// Model name → price. A model the API reports as `claude-sonnet-4-20250514`
/// is priced by the longest entry it starts with (`claude-sonnet-4`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PriceTable(BTreeMap<String, Price>);

impl PriceTable {
    pub fn parse(json: &str) -> Result<Self, String> {
        let map: BTreeMap<String, Price> =
            serde_json::from_str(json).map_err(|e| format!("ai_prices_json: {e}"))?;
        if map
            .values()
            .any(|p| p.input_cents_per_mtok < 0 || p.output_cents_per_mtok < 0)
        {
            return Err("ai_prices_json: prices cannot be negative".into());
        }
        Ok(PriceTable(map))
    }

    pub fn price(&self, model: &str) -> Option<Price> {
        self.0
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }
}

/// Where threshold notices go. An empty value leaves that channel out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifyConfig {
    /// Mailgun's API base (`https://api.mailgun.net`, or the EU one).
    pub mailgun_base_url: String,
    pub mailgun_domain: String,
    pub mailgun_api_key: String,
    pub from: String,
    /// Comma-separated recipients.
    pub ops_email: String,
    pub slack_webhook_url: String,
}

impl NotifyConfig {
    pub fn email_configured(&self) -> bool {
        ![
            &self.mailgun_base_url,
            &self.mailgun_domain,
            &self.mailgun_api_key,
            &self.ops_email,
        ]
        .iter()
        .any(|v| v.trim().is_empty())
    }

    pub fn slack_configured(&self) -> bool {
        !self.slack_webhook_url.trim().is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiConfig {
    /// The Messages API's origin (`https://api.anthropic.com`).
    pub anthropic_base_url: String,
    pub api_key: String,
    pub model: String,
    pub prices: PriceTable,
    /// A month's budget until ops set another.
    pub default_limit_cents: i64,
    /// The bound on one Messages API call. Feeds and notices keep the 3 s
    /// bound of every other outbound request, but a model writing tags for
    /// 20 articles takes seconds to answer: 15 s by default, at most 25 s
    /// so a call fits the worker's 25 s drain budget.
    pub timeout: std::time::Duration,
    pub notify: NotifyConfig,
}

pub const DEFAULT_MODEL: &str = "claude-sonnet-4";
/// Claude Sonnet 4's list price: $3 per million input tokens, $15 output.
pub const DEFAULT_PRICES: &str =
    r#"{"claude-sonnet-4": {"input_cents_per_mtok": 300, "output_cents_per_mtok": 1500}}"#;
pub const DEFAULT_LIMIT_CENTS: i64 = 50_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 15_000;
pub const MAX_TIMEOUT_MS: u64 = 25_000;

impl AiConfig {
    /// Reads `anthropic_base_url`, `anthropic_api_key`, `ai_model`,
    /// `ai_prices_json`, `ai_monthly_budget_cents`, `mailgun_base_url`,
    /// `mailgun_domain`, `mailgun_api_key`, `ops_email_from`, `ops_email`,
    /// `slack_webhook_url`, `ai_timeout_ms`. Missing values take their defaults; a value
    /// that is present but invalid is an error, never silently replaced.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let text = |name: &str, default: &str| {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let prices = PriceTable::parse(&text("ai_prices_json", DEFAULT_PRICES))?;
        let limit = text("ai_monthly_budget_cents", &DEFAULT_LIMIT_CENTS.to_string());
        let default_limit_cents = limit
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("ai_monthly_budget_cents: `{limit}` is not whole cents"))?;
        let timeout = text("ai_timeout_ms", &DEFAULT_TIMEOUT_MS.to_string());
        let timeout_ms = timeout
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=MAX_TIMEOUT_MS).contains(n))
            .ok_or_else(|| {
                format!("ai_timeout_ms: `{timeout}` is not 1 to {MAX_TIMEOUT_MS} milliseconds")
            })?;
        Ok(AiConfig {
            timeout: std::time::Duration::from_millis(timeout_ms),
            anthropic_base_url: text("anthropic_base_url", "https://api.anthropic.com"),
            api_key: text("anthropic_api_key", ""),
            model: text("ai_model", DEFAULT_MODEL),
            prices,
            default_limit_cents,
            notify: NotifyConfig {
                mailgun_base_url: text("mailgun_base_url", "https://api.mailgun.net"),
                mailgun_domain: text("mailgun_domain", ""),
                mailgun_api_key: text("mailgun_api_key", ""),
                from: text(
                    "ops_email_from",
                    "Village Homepage <noreply@village.example>",
                ),
                ops_email: text("ops_email", ""),
                slack_webhook_url: text("slack_webhook_url", ""),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_by_longest_prefix_in_exact_microcents() {
        let t = PriceTable::parse(
            r#"{"claude-sonnet-4": {"input_cents_per_mtok": 300, "output_cents_per_mtok": 1500},
                "claude-sonnet-4-5": {"input_cents_per_mtok": 1, "output_cents_per_mtok": 2}}"#,
        )
        .expect("parses");
        let p = t.price("claude-sonnet-4-20250514").expect("priced");
        assert_eq!(p.input_cents_per_mtok, 300);
        assert_eq!(
            t.price("claude-sonnet-4-5-x")
                .expect("priced")
                .input_cents_per_mtok,
            1
        );
        assert_eq!(t.price("gpt-4"), None);
        // 1,000 in and 200 out at $3/$15 per MTok: 0.3 + 0.3 cents.
        assert_eq!(p.cost_microcents(1_000, 200), 600_000);
    }

    #[test]
    fn invalid_settings_are_errors_not_defaults() {
        let get = |bad: &'static str, value: &'static str| {
            move |name: &str| (name == bad).then(|| value.to_owned())
        };
        assert!(AiConfig::from_lookup(get("ai_monthly_budget_cents", "ten")).is_err());
        assert!(AiConfig::from_lookup(get("ai_monthly_budget_cents", "-1")).is_err());
        assert!(AiConfig::from_lookup(get("ai_prices_json", "{")).is_err());
        assert!(AiConfig::from_lookup(get("ai_timeout_ms", "60000")).is_err());
        assert_eq!(
            AiConfig::from_lookup(get("ai_timeout_ms", "20000"))
                .expect("valid")
                .timeout,
            std::time::Duration::from_secs(20)
        );
        let c = AiConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(c.model, "claude-sonnet-4");
        assert_eq!(c.default_limit_cents, 50_000);
        assert_eq!(c.timeout, std::time::Duration::from_secs(15));
        assert!(!c.notify.email_configured() && !c.notify.slack_configured());
    }
}
