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
            user_id: ctx.user_id().map(|u| u.to_string()),
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

/// Writes one structured log line for something that is not a request: a
/// dependency that failed, a job that ran. `fields` (an object) is merged
/// into `{timestamp, severity, message}`; the line is always valid JSON,
/// whatever the message contains. Warnings and errors go to stderr.
pub fn event(severity: &'static str, message: &str, fields: serde_json::Value) {
    let line = event_line(severity, message, fields);
    if severity == "INFO" {
        println!("{line}");
    } else {
        eprintln!("{line}");
    }
}

fn event_line(severity: &'static str, message: &str, fields: serde_json::Value) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert(
        "timestamp".into(),
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into(),
    );
    obj.insert("severity".into(), severity.into());
    if let serde_json::Value::Object(extra) = fields {
        obj.extend(extra);
    }
    obj.insert("message".into(), message.into());
    serde_json::Value::Object(obj).to_string()
}

/// The line every cron component writes when a run ends, whatever its
/// outcome (`village_platform::cron_component!`): ops see every run, and the
/// end-to-end harness knows when a run it started under Spin is over.
pub fn cron_finished(component: &str, scheduled: u64, outcome: &Result<(), String>) {
    event(
        if outcome.is_ok() { "INFO" } else { "ERROR" },
        "cron run finished",
        serde_json::json!({
            "cron": component,
            "scheduled": scheduled,
            "error": outcome.as_ref().err(),
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_line_stays_valid_json_whatever_the_message_holds() {
        let line = event_line(
            "WARNING",
            "redis said \"no\" \\ and\nmore",
            serde_json::json!({ "queue": "BULK", "job_id": 7 }),
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(v["message"], "redis said \"no\" \\ and\nmore");
        assert_eq!(v["queue"], "BULK");
        assert_eq!(v["job_id"], 7);
        assert_eq!(v["severity"], "WARNING");
        assert!(v["timestamp"].is_string());
    }

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
