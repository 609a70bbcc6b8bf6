//! Submitted URLs, normalised once so the same site is one entry.
//!
//! The stored URL is what visitors are sent to: `https://` added when no
//! scheme was typed, the host lower-cased, default ports, fragments and
//! tracking parameters (`utm_*`, `fbclid`, `gclid`, ...) dropped, the
//! remaining query sorted, a trailing `/` dropped from a non-root path.
//! The *key* additionally forgets the scheme and a leading `www.`: the
//! http and https, www and bare spellings of a site are one entry.

use url::Url;
use village_platform::address::{self, PublicUrl};

/// Query parameters that only say where a visitor came from.
const TRACKING: [&str; 7] = [
    "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid",
];

/// A normalised, address-checked site URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteUrl {
    url: PublicUrl,
    key: String,
}

impl SiteUrl {
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// What makes two URLs the same site (`directory_sites.url_key`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The host, for display (`example.org`).
    pub fn host(&self) -> String {
        self.url.url().host_str().unwrap_or_default().to_owned()
    }

    pub fn public(&self) -> &PublicUrl {
        &self.url
    }
}

/// Normalises `input` and checks it is a public web address
/// ([`address::check`]; `allowed_hosts` are the tests' local servers).
pub fn normalise(input: &str, allowed_hosts: &[String]) -> Result<SiteUrl, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err("enter the site's address".into());
    }
    let with_scheme = if input.contains("://") {
        input.to_owned()
    } else {
        format!("https://{input}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|_| "not a web address".to_owned())?;
    url.set_fragment(None);
    let kept: Vec<(String, String)> = {
        let mut pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| {
                let k = k.to_ascii_lowercase();
                !k.starts_with("utm_") && !TRACKING.contains(&k.as_str())
            })
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        pairs.sort();
        pairs
    };
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    let path = url.path().to_owned();
    if path.len() > 1 && path.ends_with('/') {
        url.set_path(path.trim_end_matches('/'));
    }
    let checked = address::check(url.as_str(), allowed_hosts).map_err(|e| e.to_string())?;
    let u = checked.url();
    let host = u.host_str().unwrap_or_default();
    let host = host.strip_prefix("www.").unwrap_or(host);
    let mut key = host.to_owned();
    if let Some(port) = u.port() {
        key.push_str(&format!(":{port}"));
    }
    let path = u.path();
    if path != "/" {
        key.push_str(path);
    }
    if let Some(q) = u.query() {
        key.push('?');
        key.push_str(q);
    }
    Ok(SiteUrl { url: checked, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        normalise(s, &[])
            .map(|u| u.key().to_owned())
            .unwrap_or_else(|e| e)
    }

    #[test]
    fn spellings_of_one_site_share_a_key() {
        let keys: Vec<String> = [
            "https://example.org",
            "http://example.org/",
            "example.org",
            "  https://WWW.Example.org/#top ",
            "https://example.org/?utm_source=x&fbclid=y",
            "https://example.org:443/",
        ]
        .iter()
        .map(|s| key(s))
        .collect();
        assert!(keys.iter().all(|k| k == "example.org"), "{keys:?}");
    }

    #[test]
    fn paths_and_queries_are_kept_in_a_canonical_order() {
        assert_eq!(key("https://example.org/Docs/"), "example.org/Docs");
        assert_eq!(
            key("https://example.org/a?b=2&a=1"),
            "example.org/a?a=1&b=2"
        );
        assert_eq!(key("http://example.org:8080/x"), "example.org:8080/x");
        let u = normalise("example.org/a/?z=1&utm_medium=m", &[]).expect("valid");
        assert_eq!(u.as_str(), "https://example.org/a?z=1");
    }

    #[test]
    fn private_and_non_web_addresses_are_refused() {
        for bad in [
            "",
            "ftp://example.org/",
            "http://127.0.0.1/",
            "http://10.0.0.8/admin",
            "http://localhost:6379/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "https://user:pw@example.org/",
            "javascript:alert(1)",
        ] {
            assert!(normalise(bad, &[]).is_err(), "{bad} refused");
        }
    }
}
