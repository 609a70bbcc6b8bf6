//! The guarded fetch: how URLs users give us are fetched.
//!
//! A fetch on a user's say-so (a feed today; site submissions, link checks
//! and screenshots later) must never reach a private, loopback, link-local,
//! CGNAT or cluster address, whatever name leads there — including through
//! redirects and DNS answers that change between a check and the connect.
//! Only the runtime can decide at connect time: Spin's runtime config
//! `[outbound_networking] block_networks`. That list is app-wide and also
//! covers Redis (ours is on a private address), so the fetches run in their
//! own small application, `fetch/spin.toml` (component `safe-fetch`),
//! started with `fetch/runtime-config.toml`; the main app's workers reach it
//! through [`crate::spin::FetchService`], an ordinary `HttpClient`.
//!
//! The wire between the two, one hop per exchange (redirects are followed
//! by the caller, each hop checked again):
//!
//! - `POST /fetch` with a JSON [`FetchRequest`].
//! - The hop completed: `200`, the upstream status in `village-fetch-status`,
//!   the upstream headers in [`PASSED_HEADERS`], the upstream body.
//! - It did not: `502` with `village-fetch-error: <category>` (see
//!   [`HttpError::category`]) and a JSON `{ "error": category }` — never the
//!   transport's own words.

use serde::{Deserialize, Serialize};

use crate::http_client::{HttpError, HttpRequest, HttpResponse};

/// Carries the upstream status on a completed hop.
pub const STATUS_HEADER: &str = "village-fetch-status";
/// Carries the category of a failed hop.
pub const ERROR_HEADER: &str = "village-fetch-error";
/// Request headers a caller may set on the upstream request.
pub const FORWARDED_HEADERS: &[&str] =
    &["accept", "user-agent", "if-none-match", "if-modified-since"];
/// Upstream answer headers handed back.
pub const PASSED_HEADERS: &[&str] = &[
    "content-type",
    "etag",
    "last-modified",
    "location",
    "cache-control",
];
/// The longest URL fetched (as feed URLs).
pub const MAX_URL_LEN: usize = 2_048;

/// One hop to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    pub url: String,
    /// Header name (lower case, one of [`FORWARDED_HEADERS`]) and value.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

impl FetchRequest {
    /// The hop `request` (a GET) describes.
    pub fn from_http(request: &HttpRequest) -> Result<Self, HttpError> {
        if request.method() != http::Method::GET {
            return Err(HttpError::Failed("the guarded fetch only GETs".into()));
        }
        let headers = request
            .headers()
            .iter()
            .filter(|(name, _)| FORWARDED_HEADERS.contains(&name.as_str()))
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        Ok(FetchRequest {
            url: request.uri().to_string(),
            headers,
        })
    }

    /// The upstream GET, or why it may not be made.
    pub fn to_http(&self) -> Result<HttpRequest, String> {
        if self.url.len() > MAX_URL_LEN {
            return Err(format!("the URL is longer than {MAX_URL_LEN} characters"));
        }
        let url = url::Url::parse(&self.url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("only http and https can be fetched".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a URL may not carry credentials".into());
        }
        let mut builder = http::Request::get(url.as_str());
        for (name, value) in &self.headers {
            if FORWARDED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        builder
            .body(Vec::new())
            .map_err(|e| format!("the request cannot be made: {e}"))
    }
}

/// The fetch service's answer for a completed hop.
pub fn completed(upstream: HttpResponse) -> HttpResponse {
    let (parts, body) = upstream.into_parts();
    let mut answer = http::Response::new(body);
    let headers = answer.headers_mut();
    for name in PASSED_HEADERS {
        for value in parts.headers.get_all(*name) {
            headers.append(*name, value.clone());
        }
    }
    headers.insert(
        STATUS_HEADER,
        http::HeaderValue::from(parts.status.as_u16()),
    );
    answer
}

/// The fetch service's answer for a failed hop.
pub fn failed(error: &HttpError) -> HttpResponse {
    let category = error.category();
    let mut answer = http::Response::new(
        serde_json::json!({ "error": category })
            .to_string()
            .into_bytes(),
    );
    *answer.status_mut() = http::StatusCode::BAD_GATEWAY;
    let headers = answer.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(ERROR_HEADER, http::HeaderValue::from_static(category));
    answer
}

/// The caller's reading of the fetch service's answer: the upstream
/// answer, or the error its category stands for.
pub fn read_answer(answer: HttpResponse) -> Result<HttpResponse, HttpError> {
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(category) = header(ERROR_HEADER) {
        return Err(HttpError::from_category(&category));
    }
    let status = header(STATUS_HEADER)
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| http::StatusCode::from_u16(s).ok())
        .ok_or_else(|| {
            HttpError::Failed(format!(
                "the fetch service answered {} without a status",
                answer.status()
            ))
        })?;
    let (mut parts, body) = answer.into_parts();
    parts.status = status;
    parts.headers.remove(STATUS_HEADER);
    Ok(http::Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_crosses_the_wire_with_only_the_forwarded_headers() {
        let request = http::Request::get("https://news.example.org/rss")
            .header("if-none-match", "\"v1\"")
            .header("cookie", "secret=1")
            .body(Vec::new())
            .expect("request");
        let wire = FetchRequest::from_http(&request).expect("a GET");
        let json = serde_json::to_string(&wire).expect("json");
        let back: FetchRequest = serde_json::from_str(&json).expect("parses");
        let upstream = back.to_http().expect("fetchable");
        assert_eq!(upstream.uri(), "https://news.example.org/rss");
        assert_eq!(upstream.headers()["if-none-match"], "\"v1\"");
        assert!(!upstream.headers().contains_key("cookie"));
    }

    #[test]
    fn only_http_urls_without_credentials_are_fetched() {
        for bad in [
            "file:///etc/passwd",
            "https://u:p@example.org/",
            "gopher://x/",
        ] {
            let r = FetchRequest {
                url: bad.into(),
                headers: vec![],
            };
            assert!(r.to_http().is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_round_trip_statuses_headers_and_categories() {
        let mut upstream = http::Response::new(b"<rss/>".to_vec());
        *upstream.status_mut() = http::StatusCode::MOVED_PERMANENTLY;
        upstream
            .headers_mut()
            .insert("location", http::HeaderValue::from_static("/rss"));
        upstream
            .headers_mut()
            .insert("set-cookie", http::HeaderValue::from_static("x=1"));
        let back = read_answer(completed(upstream)).expect("completed");
        assert_eq!(back.status(), 301);
        assert_eq!(back.headers()["location"], "/rss");
        assert!(!back.headers().contains_key("set-cookie"));
        assert_eq!(back.body(), b"<rss/>");
        for error in [
            HttpError::Prohibited("x".into()),
            HttpError::Timeout(std::time::Duration::from_secs(3)),
            HttpError::TooLarge { limit: 1 },
            HttpError::Failed("ConnectionRefused".into()),
        ] {
            let got = read_answer(failed(&error)).expect_err("failed");
            assert_eq!(got.category(), error.category());
        }
    }
}
