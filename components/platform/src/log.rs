//! One JSON log line per request, on stdout, where the platform collects it.
//!
//! Only the fields below are ever written: ids, endpoint, status, latency.
//! Never a cookie, token, header value or request body.

use serde::Serialize;

use crate::context::RequestContext;

#[derive(Debug, Serialize)]
pub struct RequestLog<'a> {
    pub timestamp: String,
    pub severity: &'static str,
    pub trace_id: &'a str,
    pub span_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub anon_id: String,
    pub endpoint: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl<'a> RequestLog<'a> {
    pub fn new(ctx: &'a RequestContext, method: &'a str, status: u16, latency_ms: f64) -> Self {
        let severity = match status {
            500.. => "ERROR",
            400..=499 => "WARNING",
            _ => "INFO",
        };
        RequestLog {
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            severity,
            trace_id: &ctx.trace_id,
            span_id: &ctx.span_id,
            user_id: ctx.user_id.map(|u| u.to_string()),
            anon_id: ctx.anon_id.to_string(),
            endpoint: &ctx.endpoint,
            method,
            status,
            latency_ms,
            error: None,
        }
    }

    pub fn line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"severity\":\"ERROR\",\"message\":\"log encoding failed: {e}\"}}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_is_json_with_the_required_fields_and_no_cookie() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            "vu_anon_id=6f1c2b4e-8a8e-4d2b-9c1a-0b8f6a1e2d3c; session=supersecret"
                .parse()
                .expect("header"),
        );
        let ctx = RequestContext::from_headers(&headers, "homepage");
        let line = RequestLog::new(&ctx, "GET", 200, 1.25).line();
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        for field in [
            "timestamp",
            "severity",
            "trace_id",
            "span_id",
            "anon_id",
            "endpoint",
            "latency_ms",
        ] {
            assert!(v.get(field).is_some(), "{field} missing in {line}");
        }
        assert_eq!(v["severity"], "INFO");
        assert!(!line.contains("supersecret"), "{line}");
    }
}
