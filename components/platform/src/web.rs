//! HTTP helpers shared by every function: responses, cookies, escaping.
//! Functions speak `http` crate types, which `spin-sdk` accepts directly.

use cookie::{Cookie, SameSite};
use serde::Serialize;

use crate::context::AnonId;

pub type Request = http::Request<Vec<u8>>;
pub type Response = http::Response<Vec<u8>>;

/// The anonymous visitor cookie.
pub const ANON_COOKIE: &str = "vu_anon_id";
/// 30 days, in seconds.
pub const ANON_COOKIE_MAX_AGE: i64 = 30 * 24 * 60 * 60;

fn with_type(status: http::StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut r = http::Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

pub fn json<T: Serialize>(status: http::StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, "application/json", body),
        // Serialising our own types cannot fail short of a bug; say so plainly.
        Err(e) => with_type(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("failed to encode a response: {e}").into_bytes(),
        ),
    }
}

pub fn html(status: http::StatusCode, body: String) -> Response {
    with_type(status, "text/html; charset=utf-8", body.into_bytes())
}

/// The first value of `name` in a query string (or a form body),
/// percent-decoded.
pub fn query_param(query: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(query)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The segments of a path below a route (`spin-path-info`), the way every
/// handler's router reads them: empty segments (a trailing or doubled
/// slash) are ignored, as Spin's own route matching ignores them.
pub fn path_segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

pub fn text(status: http::StatusCode, body: &str) -> Response {
    with_type(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

/// A cookie's value from the `Cookie` headers, if present.
pub fn cookie_value(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// `Set-Cookie` for the anonymous id: HttpOnly, SameSite=Lax, 30 days, and
/// Secure unless `secure` is switched off for plain-http local development.
pub fn anon_cookie(id: AnonId, secure: bool) -> String {
    Cookie::build((ANON_COOKIE, id.to_string()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(ANON_COOKIE_MAX_AGE))
        .build()
        .to_string()
}

/// An HttpOnly cookie. `same_site_none` is for the one cookie that must come
/// back on a provider's cross-site form post (Apple's sign-in callback); it
/// needs `Secure`, so it falls back to `Lax` on plain-http development.
pub fn cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: i64,
    secure: bool,
    same_site_none: bool,
) -> String {
    let same_site = if same_site_none && secure {
        SameSite::None
    } else {
        SameSite::Lax
    };
    Cookie::build((name.to_owned(), value.to_owned()))
        .path(path.to_owned())
        .http_only(true)
        .secure(secure)
        .same_site(same_site)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build()
        .to_string()
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn expired_cookie(name: &str, path: &str, secure: bool) -> String {
    cookie(name, "", path, 0, secure, false)
}

/// `303 See Other` to a location the caller built from trusted parts only
/// (a constant, a provider endpoint from configuration, a path checked by
/// `safe_return_to`): never to a URL taken from the request as is.
pub fn see_other(location: &str) -> Response {
    let mut r = http::Response::new(Vec::new());
    *r.status_mut() = http::StatusCode::SEE_OTHER;
    if let Ok(v) = http::HeaderValue::from_str(location) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anonymous_cookie_has_every_required_attribute() {
        let id = AnonId::try_from("6f1c2b4e-8a8e-4d2b-9c1a-0b8f6a1e2d3c").expect("uuid");
        let c = anon_cookie(id, true);
        assert!(
            c.starts_with("vu_anon_id=6f1c2b4e-8a8e-4d2b-9c1a-0b8f6a1e2d3c"),
            "{c}"
        );
        for attr in [
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Max-Age=2592000",
            "Path=/",
        ] {
            assert!(c.contains(attr), "{attr} missing from {c}");
        }
        assert!(!anon_cookie(id, false).contains("Secure"));
    }
}
