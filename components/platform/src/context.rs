//! Who is asking, and the ids that tie their request's log lines together.

use std::fmt;

use uuid::Uuid;

/// The anonymous visitor id carried in the `vu_anon_id` cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnonId(Uuid);

impl AnonId {
    pub fn generate() -> Self {
        AnonId(Uuid::new_v4())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl TryFrom<&str> for AnonId {
    type Error = String;

    /// Only a hyphenated version-4 UUID is accepted: anything else in the
    /// cookie is treated as no cookie at all.
    fn try_from(s: &str) -> Result<Self, String> {
        let id = Uuid::try_parse(s).map_err(|e| format!("not a UUID: {e}"))?;
        if id.get_version_num() != 4 || s.len() != 36 {
            return Err("not a version-4 UUID".into());
        }
        Ok(AnonId(id))
    }
}

impl fmt::Display for AnonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The per-request context handlers receive.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The visitor's anonymous id: from the cookie, or freshly minted.
    pub anon_id: AnonId,
    /// True when the id was minted for this request: the response must set it.
    pub anon_id_is_new: bool,
    /// The signed-in caller, set by `spin::serve` once the access token and
    /// its session check out; `None` while anonymous.
    pub principal: Option<crate::session::Principal>,
    /// The client address Spin reports (`spin-client-addr`), without port.
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// W3C trace context: continued from `traceparent`, or new.
    pub trace_id: String,
    pub span_id: String,
    pub endpoint: String,
}

/// The reverse proxies (the production ingress) whose `X-Forwarded-For` is
/// believed. Behind a proxy every peer address is the proxy's, so per-IP
/// limits and bans would be shared by everyone; believing the header from
/// anyone else would let a client pick its own address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR networks.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("`{s}` is not an address or CIDR network"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: std::net::IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted
    /// proxy — then the right-most `X-Forwarded-For` hop that is not one
    /// (hops to its left were written by the client and prove nothing).
    pub fn client_ip(
        &self,
        peer: Option<std::net::IpAddr>,
        headers: &http::HeaderMap,
    ) -> Option<std::net::IpAddr> {
        let mut client = peer.map(canonical)?;
        if !self.trusts(client) {
            return Some(client);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<std::net::IpAddr>() else {
                // Garbage in the chain: the last address we can vouch for.
                break;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                break;
            }
        }
        Some(client)
    }
}

/// `::ffff:a.b.c.d` is `a.b.c.d`.
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

impl RequestContext {
    /// Builds the context from request headers, the peer taken as the client.
    pub fn from_headers(headers: &http::HeaderMap, endpoint: &str) -> Self {
        Self::from_headers_behind(headers, endpoint, &TrustedProxies::default())
    }

    /// Builds the context from request headers, believing `X-Forwarded-For`
    /// from `proxies` (see [`TrustedProxies::client_ip`]).
    pub fn from_headers_behind(
        headers: &http::HeaderMap,
        endpoint: &str,
        proxies: &TrustedProxies,
    ) -> Self {
        let existing = crate::web::cookie_value(headers, crate::web::ANON_COOKIE)
            .and_then(|v| AnonId::try_from(v.as_str()).ok());
        let trace_id = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent)
            .unwrap_or_else(|| Uuid::new_v4().simple().to_string());
        let span = Uuid::new_v4().simple().to_string();
        RequestContext {
            anon_id: existing.unwrap_or_else(AnonId::generate),
            anon_id_is_new: existing.is_none(),
            principal: None,
            client_ip: proxies
                .client_ip(
                    headers
                        .get("spin-client-addr")
                        .and_then(|v| v.to_str().ok())
                        .and_then(peer_ip),
                    headers,
                )
                .map(|ip| ip.to_string()),
            user_agent: headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(512).collect()),
            trace_id,
            span_id: span[..16].to_owned(),
            endpoint: endpoint.to_owned(),
        }
    }
}

/// The IP of a `host:port` / `[v6]:port` socket address (or a bare IP).
fn peer_ip(addr: &str) -> Option<std::net::IpAddr> {
    addr.parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| addr.parse())
        .ok()
}

impl RequestContext {
    /// The signed-in user the request acts as, if any.
    pub fn user_id(&self) -> Option<Uuid> {
        self.principal.as_ref().map(|p| p.user_id)
    }
}

/// The trace id of a `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`).
fn parse_traceparent(v: &str) -> Option<String> {
    let mut parts = v.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(version, 2)
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace != "0".repeat(32))
    .then(|| trace.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_v4_uuids_as_anonymous_ids() {
        assert!(AnonId::try_from("6f1c2b4e-8a8e-4d2b-9c1a-0b8f6a1e2d3c").is_ok());
        assert!(
            AnonId::try_from("6f1c2b4e-8a8e-1d2b-9c1a-0b8f6a1e2d3c").is_err(),
            "v1"
        );
        assert!(
            AnonId::try_from("6f1c2b4e8a8e4d2b9c1a0b8f6a1e2d3c").is_err(),
            "unhyphenated"
        );
        assert!(AnonId::try_from("<script>").is_err());
    }

    #[test]
    fn continues_a_valid_traceparent_and_ignores_a_bad_one() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .expect("header"),
        );
        let ctx = RequestContext::from_headers(&h, "x");
        assert_eq!(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.span_id.len(), 16);
        h.insert("traceparent", "garbage".parse().expect("header"));
        let ctx = RequestContext::from_headers(&h, "x");
        assert_eq!(ctx.trace_id.len(), 32);
        assert_ne!(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn reads_the_anonymous_cookie_or_mints_one() {
        let mut h = http::HeaderMap::new();
        let ctx = RequestContext::from_headers(&h, "x");
        assert!(ctx.anon_id_is_new);
        h.insert(
            http::header::COOKIE,
            "other=1; vu_anon_id=6f1c2b4e-8a8e-4d2b-9c1a-0b8f6a1e2d3c"
                .parse()
                .expect("header"),
        );
        let ctx = RequestContext::from_headers(&h, "x");
        assert!(!ctx.anon_id_is_new);
        assert_eq!(
            ctx.anon_id.to_string(),
            "6f1c2b4e-8a8e-4d2b-9c1a-0b8f6a1e2d3c"
        );
    }

    fn forwarded(peer: &str, xff: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("spin-client-addr", peer.parse().expect("header"));
        for v in xff {
            h.append("x-forwarded-for", v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let proxies = TrustedProxies::parse("10.42.0.0/16, 192.0.2.7").expect("parse");
        // Through the ingress: the right-most hop it did not add itself.
        let h = forwarded("10.42.1.5:5000", &["6.6.6.6, 203.0.113.9"]);
        let ctx = RequestContext::from_headers_behind(&h, "t", &proxies);
        assert_eq!(ctx.client_ip.as_deref(), Some("203.0.113.9"));
        // Two trusted hops, and the header split over two lines.
        let h = forwarded("10.42.1.5:5000", &["1.1.1.1, 203.0.113.9", "192.0.2.7"]);
        let ctx = RequestContext::from_headers_behind(&h, "t", &proxies);
        assert_eq!(ctx.client_ip.as_deref(), Some("203.0.113.9"));
        // A client talking to us directly cannot pick its address.
        let h = forwarded("198.51.100.4:4000", &["203.0.113.9"]);
        let ctx = RequestContext::from_headers_behind(&h, "t", &proxies);
        assert_eq!(ctx.client_ip.as_deref(), Some("198.51.100.4"));
        // Without configured proxies the header is ignored altogether.
        let h = forwarded("10.42.1.5:5000", &["203.0.113.9"]);
        let ctx = RequestContext::from_headers(&h, "t");
        assert_eq!(ctx.client_ip.as_deref(), Some("10.42.1.5"));
        // Garbage stops the walk at the last address vouched for.
        let h = forwarded("10.42.1.5:5000", &["203.0.113.9, nonsense"]);
        let ctx = RequestContext::from_headers_behind(&h, "t", &proxies);
        assert_eq!(ctx.client_ip.as_deref(), Some("10.42.1.5"));
        assert!(TrustedProxies::parse("10.0.0.0/8, bogus").is_err());
    }
}
