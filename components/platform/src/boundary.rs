//! The checks every request passes at the edge, once, before any handler
//! sees it — so no route can forget one:
//!
//! - **Text Postgres cannot store.** A NUL character (`\0`, `%00`,
//!   `\u0000`) in the path, a query parameter, a form field or a JSON string
//!   is refused with 400 naming the field: `text` columns cannot hold it and
//!   an insert would fail with 22P05 deep inside a handler.
//! - **Cross-site writes.** A state-changing request a browser marks as
//!   coming from another site (`Sec-Fetch-Site: cross-site`/`same-site`, or
//!   an `Origin` that is not this host) is refused with 403: cookies ride
//!   along with such requests, so they are the CSRF vector. Requests from
//!   non-browser clients (no such headers) are unaffected.
//! - **JSON means JSON.** A state-changing API call with a body must say
//!   `Content-Type: application/json` (415 otherwise): a cross-site form can
//!   post `text/plain` without a CORS preflight, JSON cannot.
//!
//! And the headers every answer carries ([`security_headers`]).

use crate::error::{AppError, FieldError};
use crate::web::Request;

/// The most field errors one answer lists; the rest are counted.
pub const MAX_FIELD_ERRORS: usize = 20;

const NUL_MESSAGE: &str = "must not contain NUL characters";

/// Which kind of caller a function answers: it decides how errors look,
/// which checks apply and whether the visitor gets an anonymous-id cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// HTML for browsers; sets the anonymous cookie.
    Page,
    /// JSON under `/api`; errors as problem+json; sets the anonymous cookie.
    Api,
    /// Probes, metrics, static files: no cookie, errors as plain text.
    Plain,
}

impl Surface {
    /// For a component serving both pages and JSON: `Api` under `/api/`,
    /// `Page` elsewhere (its forms answer browsers with readable pages).
    pub fn by_path(path: &str) -> Self {
        if path.starts_with("/api/") {
            Surface::Api
        } else {
            Surface::Page
        }
    }
}

/// Runs every edge check on a fully read request.
pub fn check(req: &Request, surface: Surface) -> Result<(), AppError> {
    check_origin(req)?;
    check_content_type(req, surface)?;
    check_text(req)
}

fn state_changing(method: &http::Method) -> bool {
    !matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    )
}

/// Whether `path` is a sign-in provider's callback (`/auth/<p>/callback`):
/// Apple posts it from its own site (`response_mode=form_post`), and the
/// one-time `state` and nonce — not the origin — are what protect it.
fn provider_callback(path: &str) -> bool {
    matches!(
        crate::web::path_segments(path).as_slice(),
        ["auth", _, "callback"]
    )
}

/// Refuses state-changing requests a browser says come from another site
/// (except a sign-in provider's callback, see [`provider_callback`]).
pub fn check_origin(req: &Request) -> Result<(), AppError> {
    if !state_changing(req.method()) || provider_callback(req.uri().path()) {
        return Ok(());
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    let refused = || AppError::Forbidden("cross-site requests may not change anything".into());
    if let Some(site) = header("sec-fetch-site") {
        // `none`: typed in the address bar or a bookmark; `same-origin`: us.
        return match site.as_str() {
            "same-origin" | "none" => Ok(()),
            _ => Err(refused()),
        };
    }
    // Browsers without Fetch Metadata still send `Origin` on cross-site
    // writes; compare its host with the one the request was sent to.
    match (header("origin"), header("host")) {
        (Some(origin), _) if origin == "null" => Err(refused()),
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
            if origin_host == host {
                Ok(())
            } else {
                Err(refused())
            }
        }
        _ => Ok(()),
    }
}

/// Requires `application/json` (or `…+json`) on API writes with a body.
pub fn check_content_type(req: &Request, surface: Surface) -> Result<(), AppError> {
    if surface != Surface::Api || !state_changing(req.method()) || req.body().is_empty() {
        return Ok(());
    }
    if is_json(req) {
        Ok(())
    } else {
        Err(AppError::UnsupportedMediaType {
            expected: "application/json",
        })
    }
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let essence = v
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
        .unwrap_or(false)
}

fn is_form(req: &Request) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// Refuses NUL characters anywhere a handler reads text from.
pub fn check_text(req: &Request) -> Result<(), AppError> {
    let mut errors = Vec::new();
    let path = req.uri().path();
    if path.contains('\0') || contains_ascii_ci(path.as_bytes(), b"%00") {
        errors.push(FieldError::new("path", NUL_MESSAGE));
    }
    if let Some(query) = req.uri().query() {
        form_fields_with_nul(query.as_bytes(), "", &mut errors);
    }
    let body = req.body();
    let json_like = is_json(req) || body.first().is_some_and(|b| *b == b'{' || *b == b'[');
    if json_like && !is_form(req) {
        // A JSON string can carry NUL only as the `\u0000` escape; parse
        // (to name the field) only when that text is there at all.
        if contains_ascii_ci(body, b"\\u0000")
            && let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        {
            json_strings_with_nul(&value, "", &mut errors);
        }
    } else if !body.is_empty() {
        // Any other body is read as a form, whatever its declared type:
        // some handlers parse form fields without looking at the type.
        form_fields_with_nul(body, "", &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

fn form_fields_with_nul(input: &[u8], prefix: &str, errors: &mut Vec<FieldError>) {
    for (name, value) in url::form_urlencoded::parse(input) {
        if name.contains('\0') || value.contains('\0') {
            let name = name.replace('\0', "\u{FFFD}");
            errors.push(FieldError::new(format!("{prefix}{name}"), NUL_MESSAGE));
        }
    }
}

fn json_strings_with_nul(value: &serde_json::Value, path: &str, errors: &mut Vec<FieldError>) {
    use serde_json::Value;
    let here = |p: &str| {
        if p.is_empty() {
            "body".to_owned()
        } else {
            p.to_owned()
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => {
            errors.push(FieldError::new(here(path), NUL_MESSAGE))
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                json_strings_with_nul(item, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let key_text = key.replace('\0', "\u{FFFD}");
                let child = if path.is_empty() {
                    key_text
                } else {
                    format!("{path}.{key_text}")
                };
                if key.contains('\0') {
                    errors.push(FieldError::new(child.clone(), NUL_MESSAGE));
                }
                json_strings_with_nul(item, &child, errors);
            }
        }
        _ => {}
    }
}

fn contains_ascii_ci(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Removes what Postgres `text` cannot store (NUL) from text that came from
/// outside and is stored rather than refused (feed items, provider answers).
pub fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', ""))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Text from outside made storable and bounded: NUL removed ([`storable`]),
/// then at most `max_chars` characters (provider answers, which are stored,
/// shown or logged rather than refused).
pub fn stored(text: &str, max_chars: usize) -> String {
    storable(text).chars().take(max_chars).collect()
}

/// The headers every answer carries: no MIME sniffing, no framing by other
/// sites, referrers trimmed to the origin across sites — and on pages a
/// Content-Security-Policy that allows only our own scripts, styles and
/// forms (images may come from any https origin: feed thumbnails).
pub fn security_headers(headers: &mut http::HeaderMap, surface: Surface) {
    use http::HeaderValue;
    let mut set = |name: &'static str, value: &'static str| {
        if !headers.contains_key(name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set("x-content-type-options", "nosniff");
    set("x-frame-options", "DENY");
    set("referrer-policy", "strict-origin-when-cross-origin");
    set(
        "content-security-policy",
        match surface {
            Surface::Page => {
                "default-src 'self'; script-src 'self'; style-src 'self'; \
                 img-src 'self' https: data:; connect-src 'self'; object-src 'none'; \
                 base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
            }
            // JSON and plain text are never rendered as documents of ours.
            Surface::Api | Surface::Plain => "default-src 'none'; frame-ancestors 'none'",
        },
    );
}

#[cfg(test)]
mod tests {

    #[test]
    fn api_paths_answer_json_and_the_rest_pages() {
        assert_eq!(Surface::by_path("/api/good-sites/sites"), Surface::Api);
        assert_eq!(Surface::by_path("/good-sites/api/x"), Surface::Page);
        assert_eq!(Surface::by_path("/apiary"), Surface::Page);
    }
    use super::*;

    fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(body.to_vec()).expect("request")
    }

    fn fields(e: AppError) -> Vec<String> {
        match e {
            AppError::Validation(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn nul_in_a_query_parameter_names_the_parameter() {
        let r = request("GET", "/api/news?tag=%00&page=1", &[], b"");
        assert_eq!(fields(check_text(&r).expect_err("refused")), ["tag"]);
        assert!(check_text(&request("GET", "/api/news?tag=local", &[], b"")).is_ok());
    }

    #[test]
    fn nul_in_a_json_string_names_its_path() {
        let body =
            br#"{"settings":{"theme":"dark\u0000"},"layout":{"widgets":[{"type":"x\u0000"}]}}"#;
        let r = request(
            "PUT",
            "/api/preferences",
            &[("content-type", "application/json")],
            body,
        );
        let mut got = fields(check_text(&r).expect_err("refused"));
        got.sort();
        assert_eq!(got, ["layout.widgets[0].type", "settings.theme"]);
        // An escaped backslash followed by `u0000` is text, not NUL.
        let literal = br#"{"note":"\\u0000"}"#;
        let r = request(
            "PUT",
            "/x",
            &[("content-type", "application/json")],
            literal,
        );
        assert!(check_text(&r).is_ok());
    }

    #[test]
    fn nul_in_a_form_field_or_the_path_is_refused() {
        let r = request(
            "POST",
            "/bootstrap",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"reason=a%00b",
        );
        assert_eq!(fields(check_text(&r).expect_err("refused")), ["reason"]);
        // Whatever type it claims, a body read as a form is checked as one.
        let r = request(
            "POST",
            "/auth/merge",
            &[("content-type", "text/plain")],
            b"offer=%00",
        );
        assert_eq!(fields(check_text(&r).expect_err("refused")), ["offer"]);
        let r = request("GET", "/news/a%00b", &[], b"");
        assert_eq!(fields(check_text(&r).expect_err("refused")), ["path"]);
    }

    #[test]
    fn cross_site_writes_are_refused_and_same_site_reads_pass() {
        let cross = request(
            "POST",
            "/auth/logout",
            &[("sec-fetch-site", "cross-site")],
            b"",
        );
        assert!(matches!(check_origin(&cross), Err(AppError::Forbidden(_))));
        let sibling = request(
            "POST",
            "/auth/logout",
            &[("sec-fetch-site", "same-site")],
            b"",
        );
        assert!(check_origin(&sibling).is_err());
        let ours = request(
            "POST",
            "/auth/logout",
            &[("sec-fetch-site", "same-origin")],
            b"",
        );
        assert!(check_origin(&ours).is_ok());
        let read = request("GET", "/", &[("sec-fetch-site", "cross-site")], b"");
        assert!(
            check_origin(&read).is_ok(),
            "links from other sites still work"
        );
        let old_browser = request(
            "POST",
            "/bootstrap",
            &[
                ("origin", "https://evil.example"),
                ("host", "village.example"),
            ],
            b"",
        );
        assert!(check_origin(&old_browser).is_err());
        let same = request(
            "POST",
            "/bootstrap",
            &[
                ("origin", "https://village.example"),
                ("host", "village.example"),
            ],
            b"",
        );
        assert!(check_origin(&same).is_ok());
        let script = request("POST", "/bootstrap", &[], b"");
        assert!(
            check_origin(&script).is_ok(),
            "non-browser clients send neither"
        );
    }

    #[test]
    fn api_writes_must_be_json() {
        let plain = request(
            "PUT",
            "/api/preferences",
            &[("content-type", "text/plain")],
            b"{}",
        );
        assert!(matches!(
            check_content_type(&plain, Surface::Api),
            Err(AppError::UnsupportedMediaType { .. })
        ));
        let json = request(
            "PUT",
            "/api/preferences",
            &[("content-type", "application/json; charset=utf-8")],
            b"{}",
        );
        assert!(check_content_type(&json, Surface::Api).is_ok());
        let empty = request("DELETE", "/admin/api/impersonation", &[], b"");
        assert!(check_content_type(&empty, Surface::Api).is_ok());
        let form = request(
            "POST",
            "/bootstrap",
            &[("content-type", "text/plain")],
            b"x",
        );
        assert!(check_content_type(&form, Surface::Page).is_ok());
    }

    #[test]
    fn storable_text_loses_only_nul() {
        assert_eq!(storable("a\0b"), "ab");
        assert_eq!(stored("a\0bcdé", 4), "abcd");
        assert!(matches!(storable("ab"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn pages_get_a_policy_that_forbids_inline_script_and_framing() {
        let mut h = http::HeaderMap::new();
        security_headers(&mut h, Surface::Page);
        let csp = h["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(h.contains_key("referrer-policy"));
    }
}
