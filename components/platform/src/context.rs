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

impl RequestContext {
    /// Builds the context from request headers.
    pub fn from_headers(headers: &http::HeaderMap, endpoint: &str) -> Self {
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
            client_ip: headers
                .get("spin-client-addr")
                .and_then(|v| v.to_str().ok())
                .map(client_ip),
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

/// The IP of a `host:port` / `[v6]:port` socket address.
fn client_ip(addr: &str) -> String {
    addr.parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| addr.to_owned())
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
}
