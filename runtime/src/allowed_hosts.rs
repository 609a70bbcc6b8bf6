//! `allowed_outbound_hosts`: which network destinations a component may reach.
//!
//! Entries follow Spin's syntax: `scheme://host:port`, where the scheme is
//! `*` or letters, the host `*`, `*.suffix`, a name, an address or a CIDR
//! range (`127.0.0.0/24`, matching only addresses written as such, never
//! names), and the port a number, `*`, or a range `lo..hi` (hi exclusive, as
//! in Spin). A missing port means the scheme's well-known port (Spin's
//! table). Templates (`{{ var }}`) are rendered before parsing. A request
//! that no entry allows is refused before any socket is opened.

use std::net::IpAddr;

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com` matches `a.example.com` and `a.b.example.com`.
    Subdomain(String),
    /// `10.0.0.0/8`: addresses in the range, written as addresses.
    Cidr(ipnet::IpNet),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Exact(u16),
    Range(u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

/// The parsed allow-list of one component.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    entries: Vec<AllowedHost>,
}

/// The well-known port of a scheme, as Spin assumes it when none is written.
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" => Some(5432),
        "redis" => Some(6379),
        "mysql" => Some(3306),
        "mqtt" => Some(1883),
        _ => None,
    }
}

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| format!("`{entry}` needs a scheme, as in `https://{entry}`"))?;
        let scheme = match scheme {
            "*" => None,
            s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic()) => {
                Some(s.to_ascii_lowercase())
            }
            _ => return Err(format!("`{entry}` has an invalid scheme")),
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || p.is_empty() => (h, Some(p)),
            _ => (rest, None),
        };
        let host = match host {
            "*" => HostPattern::Any,
            // A CIDR range; like Spin, bits past the prefix are dropped
            // (`127.0.0.1/24` is `127.0.0.0/24`).
            h if h.contains('/') => match h.parse::<ipnet::IpNet>() {
                Ok(net) => HostPattern::Cidr(net.trunc()),
                Err(_) => return Err(format!("`{entry}` must not contain a path")),
            },
            h if h.starts_with("*.") && h.len() > 2 => {
                HostPattern::Subdomain(h[1..].to_ascii_lowercase())
            }
            h if !h.is_empty() && !h.contains('*') => HostPattern::Exact(h.to_ascii_lowercase()),
            _ => return Err(format!("`{entry}` has an invalid host")),
        };
        let bad_port = || format!("`{entry}` has an invalid port");
        let port = match port {
            Some("*") => PortPattern::Any,
            Some(p) if p.contains("..") => {
                let (lo, hi) = p.split_once("..").ok_or_else(bad_port)?;
                let lo: u16 = lo.parse().map_err(|_| bad_port())?;
                let hi: u16 = hi.parse().map_err(|_| bad_port())?;
                if lo >= hi {
                    return Err(bad_port());
                }
                PortPattern::Range(lo, hi)
            }
            Some(p) => PortPattern::Exact(p.parse().map_err(|_| bad_port())?),
            None => match scheme.as_deref().and_then(default_port) {
                Some(p) => PortPattern::Exact(p),
                None => {
                    return Err(format!(
                        "`{entry}` needs a port: its scheme has no well-known one"
                    ));
                }
            },
        };
        Ok(Self { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomain(suffix) => host.ends_with(suffix.as_str()),
            HostPattern::Cidr(net) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| net.contains(&ip)),
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => p == port,
            PortPattern::Range(lo, hi) => (lo..hi).contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }
}

impl AllowList {
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let entries = entries
            .into_iter()
            .map(AllowedHost::parse)
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// Whether a destination is allowed; `port` defaults from the scheme.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme = scheme.to_ascii_lowercase();
        let Some(port) = port.or_else(|| default_port(&scheme)) else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.entries.iter().any(|e| e.allows(&scheme, host, port))
    }

    /// Whether a URL (`postgres://user:pw@host:5432/db`, `redis://host`) is allowed.
    pub fn allows_url(&self, url: &str) -> Result<(), Denied> {
        let parsed = url::Url::parse(url).map_err(|_| Denied::Unparsable)?;
        let host = parsed.host_str().ok_or(Denied::Unparsable)?;
        if self.allows(parsed.scheme(), host, parsed.port()) {
            Ok(())
        } else {
            Err(Denied::NotAllowed {
                destination: format!(
                    "{}://{}{}",
                    parsed.scheme(),
                    host,
                    parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
                ),
            })
        }
    }
}

/// Why a destination was refused. Never carries credentials: only scheme, host
/// and port are kept, so the message is safe to log and to hand to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    Unparsable,
    NotAllowed { destination: String },
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Unparsable => write!(f, "the address could not be parsed"),
            Denied::NotAllowed { destination } => write!(
                f,
                "destination {destination} is not in the component's allowed_outbound_hosts"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(entries.iter().copied()).expect("valid allow-list")
    }

    #[test]
    fn matches_scheme_host_and_port_as_spin_does() {
        let l = list(&[
            "https://api.example.com",
            "http://127.0.0.1:8080",
            "postgres://localhost",
            "redis://*:*",
            "*://*.internal.test:9000..9010",
        ]);
        assert!(l.allows("https", "api.example.com", None));
        assert!(l.allows("https", "API.example.com", Some(443)));
        assert!(
            !l.allows("http", "api.example.com", None),
            "scheme must match"
        );
        assert!(
            !l.allows("https", "api.example.com", Some(8443)),
            "port must match"
        );
        assert!(l.allows("http", "127.0.0.1", Some(8080)));
        assert!(!l.allows("http", "127.0.0.1", Some(8081)));
        assert!(l.allows("postgres", "localhost", Some(5432)));
        assert!(!l.allows("postgres", "localhost", Some(5433)));
        assert!(l.allows("redis", "anything", Some(1)));
        assert!(l.allows("http", "a.b.internal.test", Some(9005)));
        assert!(
            !l.allows("http", "a.b.internal.test", Some(9010)),
            "range end is exclusive"
        );
        assert!(
            !l.allows("http", "internal.test", Some(9005)),
            "a subdomain pattern needs a subdomain"
        );
    }

    #[test]
    fn an_empty_list_allows_nothing() {
        assert!(!AllowList::default().allows("https", "example.com", None));
    }

    #[test]
    fn urls_with_credentials_are_checked_and_never_echoed() {
        let l = list(&["postgres://127.0.0.1:5432"]);
        assert!(
            l.allows_url("postgres://u:secret@127.0.0.1:5432/db")
                .is_ok()
        );
        let denied = l
            .allows_url("postgres://u:secret@10.0.0.1:5432/db")
            .expect_err("other host");
        let text = denied.to_string();
        assert!(text.contains("postgres://10.0.0.1:5432"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            "example.com",
            "https://a.com/path",
            "https://a.com:x",
            "foo://bar",
            "https://*x.com",
            "*://127.0.0.0/24",
            "h2c+x://a.com:80",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn cidr_ranges_match_addresses_not_names() {
        let l = list(&["*://127.0.0.0/24:6379", "http://10.1.2.3/8"]);
        assert!(l.allows("redis", "127.0.0.9", Some(6379)));
        assert!(
            !l.allows("redis", "127.0.1.9", Some(6379)),
            "outside the range"
        );
        assert!(!l.allows("redis", "127.0.0.9", Some(6380)), "another port");
        assert!(
            !l.allows("redis", "localhost", Some(6379)),
            "a name never matches a range"
        );
        // Bits past the prefix are dropped, as Spin does.
        assert!(l.allows("http", "10.200.0.1", None));
        let v6 = list(&["*://ff00::/8:80"]);
        assert!(v6.allows("http", "ff00::1", Some(80)));
        assert!(v6.allows("http", "[ff00::1]", Some(80)));
        assert!(!v6.allows("http", "fe80::1", Some(80)));
    }
}
