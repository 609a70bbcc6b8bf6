//! One error type for handlers, turned into HTTP exactly once, at the edge:
//! `problem+json` (RFC 9457) for `/api`, a readable HTML page for browsers.
//! 4xx when the caller is at fault, 5xx when we are; the log level follows.

use serde::Serialize;

use crate::boundary::MAX_FIELD_ERRORS;
use crate::sql::SqlError;
use crate::web::{self, Response};

/// The longest field path an error echoes, in characters.
pub const MAX_FIELD_NAME: usize = 128;

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// A path into the input, e.g. `layout.widgets[2].type`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// A field path longer than [`MAX_FIELD_NAME`] characters (a hostile
    /// key) is cut short: the answer echoes it.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut field = field.into();
        if let Some((cut, _)) = field.char_indices().nth(MAX_FIELD_NAME) {
            field.truncate(cut);
            field.push('…');
        }
        Self {
            field,
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("request body over {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("authentication required")]
    Unauthorized,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("method not allowed")]
    MethodNotAllowed { allowed: &'static str },
    #[error("unsupported media type (expected {expected})")]
    UnsupportedMediaType { expected: &'static str },
    #[error("{dependency} unavailable: {detail}")]
    Unavailable {
        dependency: &'static str,
        detail: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<SqlError> for AppError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Unavailable(detail) => AppError::Unavailable {
                dependency: "postgres",
                detail,
            },
            other => AppError::Internal(other.to_string()),
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl AppError {
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            AppError::Validation(_) => S::BAD_REQUEST,
            AppError::PayloadTooLarge { .. } => S::PAYLOAD_TOO_LARGE,
            AppError::Unauthorized => S::UNAUTHORIZED,
            AppError::Forbidden(_) => S::FORBIDDEN,
            AppError::NotFound => S::NOT_FOUND,
            AppError::Conflict(_) => S::CONFLICT,
            AppError::MethodNotAllowed { .. } => S::METHOD_NOT_ALLOWED,
            AppError::UnsupportedMediaType { .. } => S::UNSUPPORTED_MEDIA_TYPE,
            AppError::TooManyRequests { .. } => S::TOO_MANY_REQUESTS,
            AppError::Unavailable { .. } => S::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the fault is ours (logged as an error) or the caller's.
    pub fn is_server_fault(&self) -> bool {
        self.status().is_server_error()
    }

    fn title_and_type(&self) -> (&'static str, &'static str) {
        match self {
            AppError::Validation(_) => ("Your request has invalid fields", "/problems/validation"),
            AppError::PayloadTooLarge { .. } => {
                ("Request body too large", "/problems/payload-too-large")
            }
            AppError::Unauthorized => ("Authentication required", "/problems/unauthorized"),
            AppError::Forbidden(_) => ("Forbidden", "/problems/forbidden"),
            AppError::NotFound => ("Not found", "/problems/not-found"),
            AppError::Conflict(_) => ("Conflict", "/problems/conflict"),
            AppError::MethodNotAllowed { .. } => {
                ("Method not allowed", "/problems/method-not-allowed")
            }
            AppError::UnsupportedMediaType { .. } => {
                ("Unsupported media type", "/problems/unsupported-media-type")
            }
            AppError::TooManyRequests { .. } => ("Too many requests", "/problems/rate-limited"),
            AppError::Unavailable { .. } => ("Temporarily unavailable", "/problems/unavailable"),
            AppError::Internal(_) => ("Something went wrong on our side", "/problems/internal"),
        }
    }

    /// What the caller may see: never internal details of a server fault.
    fn public_detail(&self) -> Option<String> {
        match self {
            AppError::PayloadTooLarge { limit } => {
                Some(format!("The body may be at most {limit} bytes."))
            }
            AppError::MethodNotAllowed { allowed } => Some(format!("Allowed: {allowed}.")),
            AppError::UnsupportedMediaType { expected } => {
                Some(format!("Send the body as {expected}."))
            }
            AppError::Validation(errors) if errors.len() > MAX_FIELD_ERRORS => Some(format!(
                "{} invalid fields; the first {MAX_FIELD_ERRORS} are listed.",
                errors.len()
            )),
            AppError::TooManyRequests { retry_after_secs } => Some(format!(
                "Slow down: try again in {retry_after_secs} seconds."
            )),
            AppError::Forbidden(why) | AppError::Conflict(why) => Some(why.clone()),
            AppError::Unavailable { dependency, .. } => Some(format!(
                "A service we depend on ({dependency}) is unavailable; try again shortly."
            )),
            _ => None,
        }
    }

    /// `application/problem+json` for API callers.
    pub fn to_problem(&self) -> Response {
        let (title, kind) = self.title_and_type();
        // However many fields a hostile body gets wrong, the answer stays small.
        let errors: &[FieldError] = match self {
            AppError::Validation(e) => &e[..e.len().min(MAX_FIELD_ERRORS)],
            _ => &[],
        };
        let body = Problem {
            kind,
            title,
            status: self.status().as_u16(),
            detail: self.public_detail(),
            errors,
        };
        let mut r = web::json(self.status(), &body);
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/problem+json"),
        );
        self.add_allow(&mut r);
        r
    }

    /// A short, readable HTML page for browsers.
    pub fn to_page(&self) -> Response {
        let (title, _) = self.title_and_type();
        let mut detail = self.public_detail().unwrap_or_default();
        if let AppError::Validation(errors) = self {
            detail = errors
                .iter()
                .take(MAX_FIELD_ERRORS)
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ");
        }
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · Village Homepage</title><link rel=\"stylesheet\" href=\"/static/site.css\"></head>\
             <body><main class=\"error-page\"><h1>{title}</h1><p>{}</p><p><a href=\"/\">Back to your homepage</a></p></main></body></html>\n",
            web::escape_html(&detail)
        );
        let mut r = web::html(self.status(), html);
        self.add_allow(&mut r);
        r
    }

    fn add_allow(&self, r: &mut Response) {
        match self {
            AppError::MethodNotAllowed { allowed } => {
                r.headers_mut()
                    .insert(http::header::ALLOW, http::HeaderValue::from_static(allowed));
            }
            AppError::Unauthorized => {
                r.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
            }
            AppError::TooManyRequests { retry_after_secs } => {
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(*retry_after_secs),
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_become_problem_json_naming_each_field() {
        let e = AppError::Validation(vec![
            FieldError::new("layout.columns", "must be between 1 and 4"),
            FieldError::new("settings.theme", "unknown theme"),
        ]);
        let r = e.to_problem();
        assert_eq!(r.status(), 400);
        assert_eq!(
            r.headers()[http::header::CONTENT_TYPE],
            "application/problem+json"
        );
        let v: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
        assert_eq!(v["status"], 400);
        assert_eq!(v["errors"][0]["field"], "layout.columns");
        assert_eq!(v["errors"][1]["field"], "settings.theme");
    }

    #[test]
    fn a_body_with_thousands_of_bad_fields_gets_a_short_answer() {
        let many = (0..5000)
            .map(|i| FieldError::new(format!("settings.unknown_{i}"), "unknown setting"))
            .collect();
        let r = AppError::Validation(many).to_problem();
        let v: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
        assert_eq!(v["errors"].as_array().map(Vec::len), Some(MAX_FIELD_ERRORS));
        assert!(v["detail"].as_str().unwrap_or_default().contains("5000"));
        assert!(r.body().len() < 4096, "{} bytes", r.body().len());
        let page = AppError::Validation(
            (0..5000)
                .map(|i| FieldError::new(format!("f{i}"), "bad"))
                .collect(),
        )
        .to_page();
        assert!(page.body().len() < 4096);
    }

    #[test]
    fn server_faults_hide_their_internals() {
        let r = AppError::Internal("password=hunter2 in a stack".into()).to_problem();
        assert_eq!(r.status(), 500);
        assert!(!String::from_utf8_lossy(r.body()).contains("hunter2"));
        let page = AppError::Internal("password=hunter2".into()).to_page();
        assert!(!String::from_utf8_lossy(page.body()).contains("hunter2"));
    }

    #[test]
    fn pages_escape_what_they_echo() {
        let r = AppError::Validation(vec![FieldError::new("<b>", "<script>x</script>")]).to_page();
        let body = String::from_utf8_lossy(r.body()).into_owned();
        assert!(body.contains("&lt;script&gt;"), "{body}");
        assert!(!body.contains("<script>"), "{body}");
    }
}
