//! Alpha Vantage (<https://www.alphavantage.co/documentation/>): every
//! call is `GET {base}/query?function=...&apikey=...`. Errors arrive as
//! HTTP 200 with one of three bodies instead of data: `{"Error Message":
//! ...}` (a bad call or symbol), and `{"Note": ...}` or `{"Information":
//! ...}` (the rate limit, or a premium-only function).

use serde::Deserialize;
use village_platform::boundary::stored;
use village_platform::http_client::{HttpClient, HttpError};

use crate::Symbol;

/// Where and as whom to call (`alpha_vantage_base_url`, `_api_key`).
#[derive(Clone)]
pub struct AlphaVantage {
    pub base_url: String,
    pub api_key: String,
}

impl std::fmt::Debug for AlphaVantage {
    // The key stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlphaVantage")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlphaError {
    #[error("Alpha Vantage unreachable: {0}")]
    Http(#[from] HttpError),
    #[error("Alpha Vantage answered HTTP {0}")]
    Status(u16),
    /// `Note` / `Information`: the provider's own rate limit (our counts
    /// and theirs disagree: another client shares the key, say).
    #[error("Alpha Vantage is throttling: {0}")]
    Throttled(String),
    /// `Error Message`.
    #[error("Alpha Vantage refused the call: {0}")]
    Refused(String),
    #[error("Alpha Vantage's answer does not parse: {0}")]
    Malformed(String),
}

/// A symbol search match.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub symbol: String,
    pub name: String,
    pub region: String,
    pub currency: String,
}

/// A `GLOBAL_QUOTE`, numbers kept as the decimal text Alpha Vantage sent
/// (checked by [`Decimal`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub symbol: String,
    pub price: Decimal,
    pub previous_close: Decimal,
    pub change: Decimal,
    pub change_percent: Decimal,
    /// "2026-11-27".
    pub trading_day: chrono::NaiveDate,
}

/// A decimal number as text ("-1.2300"): stored as `numeric`, exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal(String);

impl Decimal {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Decimal {
    type Error = String;

    fn try_from(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_end_matches('%');
        let digits = t.strip_prefix('-').unwrap_or(t);
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let ok = !int.is_empty()
            && int.len() <= 12
            && frac.len() <= 6
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(Decimal(t.to_owned()))
        } else {
            Err(format!("not a decimal number: {s:?}"))
        }
    }
}

impl AlphaVantage {
    async fn call(
        &self,
        http: &impl HttpClient,
        params: &[(&str, &str)],
    ) -> Result<serde_json::Value, AlphaError> {
        let mut url = url::Url::parse(&self.base_url)
            .and_then(|b| b.join("/query"))
            .map_err(|e| AlphaError::Malformed(format!("base URL: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            q.append_pair("apikey", &self.api_key);
        }
        let request = http::Request::get(url.as_str())
            .header("accept", "application/json")
            .body(Vec::new())
            .map_err(|e| AlphaError::Malformed(e.to_string()))?;
        let response = http.send(request).await?;
        if response.status() == http::StatusCode::TOO_MANY_REQUESTS {
            return Err(AlphaError::Throttled("HTTP 429".into()));
        }
        if !response.status().is_success() {
            return Err(AlphaError::Status(response.status().as_u16()));
        }
        let value: serde_json::Value = serde_json::from_slice(response.body())
            .map_err(|e| AlphaError::Malformed(e.to_string()))?;
        // Their messages can quote the key ("We have detected your API key
        // as ..."): it never reaches a log line or a job's last error.
        let said = |k: &str| {
            value
                .get(k)
                .and_then(serde_json::Value::as_str)
                .map(|s| stored(&redact(s, &self.api_key), 300))
        };
        if let Some(m) = said("Error Message") {
            return Err(AlphaError::Refused(m));
        }
        if let Some(m) = said("Note").or_else(|| said("Information")) {
            // Their rate limits speak of requests, calls, frequency; the
            // same field also says "the demo key is for demo purposes" or
            // "this is a premium endpoint": a refusal, not a wait.
            return Err(if is_rate_limit(&m) {
                AlphaError::Throttled(m)
            } else {
                AlphaError::Refused(m)
            });
        }
        Ok(value)
    }

    /// `SYMBOL_SEARCH`: the best matches for `keywords`.
    pub async fn search(
        &self,
        http: &impl HttpClient,
        keywords: &str,
    ) -> Result<Vec<Match>, AlphaError> {
        let v = self
            .call(
                http,
                &[("function", "SYMBOL_SEARCH"), ("keywords", keywords)],
            )
            .await?;
        #[derive(Deserialize)]
        struct Answer {
            #[serde(rename = "bestMatches")]
            best_matches: Vec<Row>,
        }
        #[derive(Deserialize)]
        struct Row {
            #[serde(rename = "1. symbol")]
            symbol: String,
            #[serde(rename = "2. name")]
            name: String,
            #[serde(rename = "4. region", default)]
            region: String,
            #[serde(rename = "8. currency", default)]
            currency: String,
        }
        let a: Answer =
            serde_json::from_value(v).map_err(|e| AlphaError::Malformed(e.to_string()))?;
        let clip = |s: String, n: usize| stored(&s, n);
        Ok(a.best_matches
            .into_iter()
            .map(|r| Match {
                symbol: r.symbol,
                name: clip(r.name, 200),
                region: clip(r.region, 100),
                currency: clip(r.currency, 10),
            })
            .collect())
    }

    /// `GLOBAL_QUOTE` for `symbol`; `Ok(None)` when Alpha Vantage has no
    /// quote for it (an empty `"Global Quote": {}`).
    pub async fn quote(
        &self,
        http: &impl HttpClient,
        symbol: &Symbol,
    ) -> Result<Option<Quote>, AlphaError> {
        let v = self
            .call(
                http,
                &[("function", "GLOBAL_QUOTE"), ("symbol", symbol.as_str())],
            )
            .await?;
        parse_quote(&v)
    }
}

/// `text` with every occurrence of `key` replaced.
fn redact(text: &str, key: &str) -> String {
    if key.is_empty() {
        text.to_owned()
    } else {
        text.replace(key, "[api key]")
    }
}

/// Whether a `Note`/`Information` text is about the rate limit.
pub fn is_rate_limit(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "rate limit",
        "per minute",
        "per day",
        "per second",
        "sparingly",
        "call frequency",
        "requests per",
        "calls per",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// A `GLOBAL_QUOTE` answer.
pub fn parse_quote(v: &serde_json::Value) -> Result<Option<Quote>, AlphaError> {
    let Some(q) = v.get("Global Quote").and_then(serde_json::Value::as_object) else {
        return Err(AlphaError::Malformed("no \"Global Quote\"".into()));
    };
    if q.is_empty() {
        return Ok(None);
    }
    let field = |k: &str| {
        q.get(k)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| AlphaError::Malformed(format!("no {k:?}")))
    };
    let dec = |k: &str| field(k).and_then(|s| Decimal::try_from(s).map_err(AlphaError::Malformed));
    Ok(Some(Quote {
        symbol: field("01. symbol")?.to_owned(),
        price: dec("05. price")?,
        previous_close: dec("08. previous close")?,
        change: dec("09. change")?,
        change_percent: dec("10. change percent")?,
        trading_day: chrono::NaiveDate::parse_from_str(
            field("07. latest trading day")?,
            "%Y-%m-%d",
        )
        .map_err(|e| AlphaError::Malformed(e.to_string()))?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_global_quote_parses_into_exact_decimals() {
        let v = serde_json::json!({"Global Quote": {
            "01. symbol": "IBM", "02. open": "221.0000", "03. high": "223.1", "04. low": "220.5",
            "05. price": "222.9700", "06. volume": "3921150", "07. latest trading day": "2026-11-27",
            "08. previous close": "221.5000", "09. change": "1.4700", "10. change percent": "0.6637%"}});
        let q = parse_quote(&v).expect("parses").expect("a quote");
        assert_eq!(q.price.as_str(), "222.9700");
        assert_eq!(q.change_percent.as_str(), "0.6637");
        assert_eq!(q.trading_day.to_string(), "2026-11-27");
    }

    #[test]
    fn an_empty_quote_is_no_quote_and_garbage_is_an_error() {
        assert_eq!(
            parse_quote(&serde_json::json!({"Global Quote": {}})).expect("parses"),
            None
        );
        let bad = serde_json::json!({"Global Quote": {"01. symbol": "X", "05. price": "1e9",
            "07. latest trading day": "2026-11-27", "08. previous close": "1", "09. change": "0",
            "10. change percent": "0%"}});
        assert!(matches!(parse_quote(&bad), Err(AlphaError::Malformed(_))));
    }

    #[test]
    fn decimals_refuse_what_numeric_should_not_hold() {
        assert!(Decimal::try_from("-0.25").is_ok());
        for bad in [
            "",
            "-",
            "1.2.3",
            "NaN",
            "1e5",
            "12345678901234",
            "0.1234567",
        ] {
            assert!(Decimal::try_from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_limit_texts_are_told_from_other_refusals() {
        for limited in [
            "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and 500 calls per day.",
            "We have detected your API key as X and our standard API rate limit is 25 requests per day.",
            "Please consider spreading out your free API requests more sparingly (1 request per second).",
        ] {
            assert!(is_rate_limit(limited), "{limited}");
        }
        for refused in [
            "The **demo** API key is for demo purposes only. Please claim your free API key at https://www.alphavantage.co/support/#api-key",
            "Thank you for using Alpha Vantage! This is a premium endpoint.",
        ] {
            assert!(!is_rate_limit(refused), "{refused}");
        }
    }

    #[test]
    fn messages_quoting_the_key_are_redacted() {
        assert_eq!(
            redact(
                "We have detected your API key as SECRET-KEY and our",
                "SECRET-KEY"
            ),
            "We have detected your API key as [api key] and our"
        );
    }

    #[test]
    fn the_key_never_prints() {
        let av = AlphaVantage {
            base_url: "https://www.alphavantage.co".into(),
            api_key: "SECRET-KEY".into(),
        };
        assert!(!format!("{av:?}").contains("SECRET"));
    }
}
