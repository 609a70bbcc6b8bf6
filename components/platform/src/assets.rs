//! Static files (the stylesheet, icons) with validators and cache headers.

use crate::error::AppError;
use crate::web::Response;

/// One hour fresh, then revalidated with the ETag: assets are not
/// fingerprinted yet, so "immutable" would strand visitors on old CSS.
const CACHE_CONTROL: &str = "public, max-age=3600, must-revalidate";

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A strong ETag from the content (FNV-1a: a validator, not a security hash).
pub fn etag(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

/// Answers a request for `path` (relative, e.g. `site.css`) with `read`
/// fetching the file; `..`, absolute and hidden paths are never read.
pub fn respond(
    method: &http::Method,
    path: &str,
    if_none_match: Option<&str>,
    read: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Response, AppError> {
    if method != http::Method::GET && method != http::Method::HEAD {
        return Err(AppError::MethodNotAllowed {
            allowed: "GET, HEAD",
        });
    }
    let path = path.trim_start_matches('/');
    let safe = !path.is_empty()
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && !seg.starts_with('.') && !seg.contains('\\'));
    if !safe {
        return Err(AppError::NotFound);
    }
    let bytes = read(path).ok_or(AppError::NotFound)?;
    let tag = etag(&bytes);
    let not_modified =
        if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut r = http::Response::new(if not_modified || method == http::Method::HEAD {
        Vec::new()
    } else {
        bytes
    });
    *r.status_mut() = if not_modified {
        http::StatusCode::NOT_MODIFIED
    } else {
        http::StatusCode::OK
    };
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type(path)),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static(CACHE_CONTROL),
    );
    if let Ok(v) = http::HeaderValue::from_str(&tag) {
        h.insert(http::header::ETAG, v);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &str) -> Option<Vec<u8>> {
        (p == "site.css").then(|| b"body{}".to_vec())
    }

    #[test]
    fn serves_with_type_cache_headers_and_etag_then_304() {
        let r = respond(&http::Method::GET, "/site.css", None, read).expect("ok");
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()[http::header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
        assert!(
            r.headers()[http::header::CACHE_CONTROL]
                .to_str()
                .expect("ascii")
                .contains("max-age=3600")
        );
        let tag = r.headers()[http::header::ETAG]
            .to_str()
            .expect("ascii")
            .to_owned();
        let again = respond(&http::Method::GET, "site.css", Some(&tag), read).expect("ok");
        assert_eq!(again.status(), 304);
        assert!(again.body().is_empty());
    }

    #[test]
    fn never_reads_outside_the_asset_folder() {
        for bad in ["../spin.toml", "a/../../etc/passwd", ".env", "", "/"] {
            assert!(
                matches!(
                    respond(&http::Method::GET, bad, None, |_| Some(vec![1])),
                    Err(AppError::NotFound)
                ),
                "{bad}"
            );
        }
    }
}
