//! URLs a user may ask us to fetch (a feed, a site to screenshot). Such a
//! fetch is a request our servers make on a user's say-so, so it must never
//! reach what only our servers can reach: only `http`/`https`, no credentials in the URL, and no
//! loopback, private, link-local, shared (CGNAT), unspecified, multicast or
//! documentation addresses, nor the names that mean them (`localhost`,
//! `*.localhost`, `*.local`, `*.internal`). Tests name their local
//! servers in an allow-list.
//!
//! A public name can still resolve to a private address. A Spin guest
//! cannot resolve names itself: the guarded fetch service's
//! `block_networks` is the fence for that (see [`crate::fetch`]). Native
//! code that connects itself (the screenshot host's proxy) resolves the name
//! and judges every address with [`is_public_ip`] before it connects to
//! exactly that address. This check refuses everything that is refusable
//! from the URL alone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("not a URL: {0}")]
    Malformed(String),
    #[error("only http and https URLs can be fetched")]
    Scheme,
    #[error("a URL may not carry a user name or password")]
    Credentials,
    #[error("the URL needs a host name")]
    NoHost,
    #[error("that address is not on the public internet")]
    NotPublic,
    #[error("a URL may be at most {MAX_URL_LEN} characters")]
    TooLong,
}

/// The longest URL accepted (what browsers and most servers handle; the
/// unique indexes on `feeds.url` and screenshot URLs could not hold a much
/// longer one).
pub const MAX_URL_LEN: usize = 2_048;

/// A URL that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(Url);

impl PublicUrl {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

/// Checks `input`; `allowed_hosts` (`host` or `host:port`) are let through
/// whatever their address (the tests' local servers).
pub fn check(input: &str, allowed_hosts: &[String]) -> Result<PublicUrl, AddressError> {
    if input.trim().len() > MAX_URL_LEN {
        return Err(AddressError::TooLong);
    }
    let url = Url::parse(input.trim()).map_err(|e| AddressError::Malformed(e.to_string()))?;
    if url.as_str().len() > MAX_URL_LEN {
        // Normalising (percent-encoding) made it longer.
        return Err(AddressError::TooLong);
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AddressError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AddressError::Credentials);
    }
    let host = url.host().ok_or(AddressError::NoHost)?;
    let host_text = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if is_allowed(allowed_hosts, &host_text, url.port()) {
        return Ok(PublicUrl(url));
    }
    let public = match host {
        Host::Ipv4(ip) => is_public_v4(ip),
        Host::Ipv6(ip) => is_public_v6(ip),
        Host::Domain(name) => is_public_name(name),
    };
    if public {
        Ok(PublicUrl(url))
    } else {
        Err(AddressError::NotPublic)
    }
}

/// An allow-list setting (comma-separated `host` or `host:port`, e.g. the
/// Spin variables `feed_allowed_hosts` and `screenshot_allowed_hosts`) as
/// [`check`] and [`is_allowed`] take it. Empty in production.
pub fn allowed_hosts(setting: &str) -> Vec<String> {
    setting
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `host` (lower case, as in a URL) with `port` is on the
/// allow-list, as `host` or `host:port`.
pub fn is_allowed(allowed_hosts: &[String], host: &str, port: Option<u16>) -> bool {
    allowed_hosts.iter().any(|a| {
        a.eq_ignore_ascii_case(host)
            || port.is_some_and(|p| a.eq_ignore_ascii_case(&format!("{host}:{p}")))
    })
}

/// Whether a connection to `ip` stays on the public internet.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let internal = ["localhost", "local", "internal", "localdomain", "home.arpa"];
    !name.is_empty()
        && name.contains('.')
        && !internal
            .iter()
            .any(|s| name == *s || name.ends_with(&format!(".{s}")))
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10: shared address space (carrier-grade NAT).
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24: IETF protocol assignments; 198.18.0.0/15: benchmarking.
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        // 240.0.0.0/4: reserved.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Forms that carry an IPv4 address: mapped (`::ffff:a.b.c.d`) and
    // compatible (`::a.b.c.d`) — judged as that address.
    if let Some(v4) = ip.to_ipv4() {
        return !ip.is_loopback() && !ip.is_unspecified() && is_public_v4(v4);
    }
    let first = s[0];
    !(ip.is_multicast()
        // ::ffff:0:a.b.c.d: IPv4-translated (RFC 2765).
        || (s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0)
        // 64:ff9b::/96 NAT64 and 2002::/16 6to4 reach IPv4 hosts through a
        // gateway; 100::/64 discard-only; fec0::/10 deprecated site-local.
        || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0])
        || first == 0x2002
        || (s[..4] == [0x100, 0, 0, 0])
        || (first & 0xffc0) == 0xfec0
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && s[1] == 0x0db8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_http_urls_pass() {
        for ok in [
            "https://www.bbc.co.uk/news/rss.xml",
            "http://feeds.example.org/atom",
            "https://93.184.216.34/feed.json",
            "https://[2606:2800:220:1::]/feed",
        ] {
            assert!(check(ok, &[]).is_ok(), "{ok}");
        }
    }

    #[test]
    fn everything_only_our_servers_can_reach_is_refused() {
        for bad in [
            "http://127.0.0.1/feed",
            "http://127.8.9.10:6379/",
            "http://localhost:5432/",
            "http://api.localhost/",
            "http://printer.local/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.5/",
            "http://172.16.1.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[::127.0.0.1]/",
            "http://[::ffff:0:127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[fec0::1]/",
            "http://[100::1]/",
            "http://[::]/",
            "http://intranet/",
            "http://2130706433/",
        ] {
            assert_eq!(check(bad, &[]), Err(AddressError::NotPublic), "{bad}");
        }
    }

    #[test]
    fn other_schemes_and_credentials_are_refused() {
        assert_eq!(check("file:///etc/passwd", &[]), Err(AddressError::Scheme));
        assert_eq!(
            check("gopher://example.org/", &[]),
            Err(AddressError::Scheme)
        );
        assert_eq!(
            check("https://user:pw@example.org/feed", &[]),
            Err(AddressError::Credentials)
        );
        assert!(matches!(
            check("not a url", &[]),
            Err(AddressError::Malformed(_))
        ));
    }

    #[test]
    fn urls_longer_than_2048_characters_are_refused() {
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(check(&long, &[]), Err(AddressError::TooLong));
        let fits = format!("https://example.org/{}", "a".repeat(MAX_URL_LEN - 40));
        assert!(check(&fits, &[]).is_ok());
        // Each space becomes `%20`: the stored form is what is measured.
        let grows = format!("https://example.org/{}", " x".repeat(800));
        assert_eq!(check(&grows, &[]), Err(AddressError::TooLong));
    }

    #[test]
    fn the_allow_list_lets_a_test_server_through() {
        let allowed = vec!["127.0.0.1:8089".to_owned()];
        assert!(check("http://127.0.0.1:8089/rss.xml", &allowed).is_ok());
        assert_eq!(
            check("http://127.0.0.1:8090/rss.xml", &allowed),
            Err(AddressError::NotPublic),
            "another port is not allowed"
        );
    }
}

/// A GET that followed redirects to its end.
#[derive(Debug)]
pub struct Followed {
    /// The last answer (not a redirect, unless it was `304 Not Modified`).
    pub response: crate::http_client::HttpResponse,
    /// The URL that gave it: the base for the page's own links.
    pub url: PublicUrl,
    /// Each redirect followed: its status and where it pointed.
    pub redirects: Vec<(u16, PublicUrl)>,
}

/// Why [`follow`] stopped without an answer.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The request could not be made or answered (the detail stays in the
    /// error; show users only its [`category`](crate::http_client::HttpError::category)).
    #[error(transparent)]
    Http(#[from] crate::http_client::HttpError),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("answered {0} without a Location")]
    NoLocation(u16),
    #[error("redirected to an invalid address")]
    BadLocation,
    #[error("redirected to a refused address: {0}")]
    Refused(AddressError),
}

/// GETs `first`, following up to `max_redirects` redirects, each target
/// checked as `first` was ([`check`]), so a redirect can never lead the
/// fetch somewhere private. `build` makes the request for each hop (the
/// caller's headers). The one path feeds, Good Sites pages and link-health
/// checks are fetched through; `http` is the guarded fetch service in
/// components, which also refuses names resolving to private addresses.
pub async fn follow(
    http: &impl crate::http_client::HttpClient,
    first: PublicUrl,
    allowed_hosts: &[String],
    max_redirects: usize,
    build: impl Fn(&PublicUrl) -> http::request::Builder,
) -> Result<Followed, FollowError> {
    let mut url = first;
    let mut redirects = Vec::new();
    loop {
        let request = build(&url)
            .body(Vec::new())
            .map_err(|_| FollowError::BadLocation)?;
        let response = http.send(request).await?;
        let status = response.status();
        if !status.is_redirection() || status == http::StatusCode::NOT_MODIFIED {
            return Ok(Followed {
                response,
                url,
                redirects,
            });
        }
        if redirects.len() == max_redirects {
            return Err(FollowError::TooManyRedirects(max_redirects));
        }
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(FollowError::NoLocation(status.as_u16()))?;
        let next = url
            .url()
            .join(location)
            .map_err(|_| FollowError::BadLocation)?;
        url = check(next.as_str(), allowed_hosts).map_err(FollowError::Refused)?;
        redirects.push((status.as_u16(), url.clone()));
    }
}
