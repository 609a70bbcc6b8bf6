//! `[outbound_networking] block_networks` from a runtime-config file, with
//! Spin 3.x's semantics (spin-factor-outbound-networking):
//!
//! ```toml
//! [outbound_networking]
//! block_networks = ["private", "1.2.3.0/24"]
//! ```
//!
//! Each entry is a CIDR network or the keyword `private`: every address that
//! is not globally routable (the `ip_network` crate's `is_global`, as Spin
//! uses it — loopback, RFC 1918, link-local, CGNAT, documentation,
//! benchmarking, reserved, unique-local IPv6, …). An IPv6 address that
//! embeds an IPv4 one (`::a.b.c.d`, `::ffff:a.b.c.d`) is checked as that
//! IPv4 address too. The check runs on the addresses a name resolved to,
//! right before connecting: a name that leads to a blocked address is
//! refused whatever it is called, and the guest sees
//! `destination-IP-prohibited` (HTTP) or a refused connection (sockets,
//! Redis) — as under Spin.

use std::net::IpAddr;

use ip_network::IpNetwork;
use serde::Deserialize;

/// The networks outbound connections may not reach. Empty: no restriction.
#[derive(Debug, Clone, Default)]
pub struct BlockedNetworks {
    networks: Vec<IpNetwork>,
    private: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundNetworking {
    #[serde(default)]
    block_networks: Vec<String>,
}

impl BlockedNetworks {
    /// Reads `[outbound_networking]` from a runtime-config table (absent:
    /// nothing blocked).
    pub fn from_runtime_config(table: &toml::Table) -> anyhow::Result<Self> {
        let Some(value) = table.get("outbound_networking") else {
            return Ok(Self::default());
        };
        let parsed: OutboundNetworking = value
            .clone()
            .try_into()
            .map_err(|e| anyhow::anyhow!("failed to parse [outbound_networking] table: {e}"))?;
        Self::parse(&parsed.block_networks)
    }

    /// Parses `block_networks` entries.
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        let mut blocked = Self::default();
        for entry in entries {
            if entry == "private" {
                blocked.private = true;
            } else {
                let net = IpNetwork::from_str_truncate(entry).map_err(|_| {
                    anyhow::anyhow!(
                        "invalid block_networks entry {entry:?}: expected an IP network in CIDR notation or the keyword 'private'"
                    )
                })?;
                blocked.networks.push(net);
            }
        }
        Ok(blocked)
    }

    pub fn is_empty(&self) -> bool {
        !self.private && self.networks.is_empty()
    }

    /// Whether a connection to `ip` is refused.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        if self.private && !IpNetwork::from(ip).is_global() {
            return true;
        }
        if self.networks.iter().any(|n| n.contains(ip)) {
            return true;
        }
        // `::a.b.c.d` and `::ffff:a.b.c.d` reach a.b.c.d.
        if let IpAddr::V6(v6) = ip
            && let Some(v4) = v6.to_ipv4()
        {
            return self.is_blocked(IpAddr::V4(v4));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(entries: &[&str]) -> BlockedNetworks {
        BlockedNetworks::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("parses")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn private_blocks_every_address_that_is_not_globally_routable() {
        let b = blocked(&["private"]);
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
        ] {
            assert!(b.is_blocked(ip(private)), "{private}");
        }
        // Forms `private` (`is_global`) lets through; the fetch app's
        // runtime config lists them explicitly (see the test below).
        for form in [
            "::ffff:0:127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "fec0::1",
            "100::1",
        ] {
            let listed = blocked(&[
                "private",
                "::ffff:0:0:0/96",
                "64:ff9b::/96",
                "2002::/16",
                "fec0::/10",
                "100::/64",
            ]);
            assert!(listed.is_blocked(ip(form)), "{form}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!b.is_blocked(ip(public)), "{public}");
        }
    }

    #[test]
    fn cidr_entries_block_their_network_and_its_ipv4_mapped_forms() {
        let b = blocked(&["123.123.0.0/16", "2001:db8::/32"]);
        assert!(b.is_blocked(ip("123.123.1.1")));
        assert!(b.is_blocked(ip("::ffff:123.123.1.1")));
        assert!(b.is_blocked(ip("2001:db8::5")));
        assert!(!b.is_blocked(ip("123.124.1.1")));
        assert!(!b.is_blocked(ip("127.0.0.1")), "only what is listed");
    }

    #[test]
    fn the_runtime_config_table_is_read_like_spin_reads_it() {
        let table: toml::Table =
            toml::from_str("[outbound_networking]\nblock_networks = [\"private\"]\n")
                .expect("toml");
        let b = BlockedNetworks::from_runtime_config(&table).expect("config");
        assert!(b.is_blocked(ip("127.0.0.1")));
        let none: toml::Table = toml::from_str("").expect("toml");
        assert!(
            BlockedNetworks::from_runtime_config(&none)
                .expect("config")
                .is_empty()
        );
        let bad: toml::Table =
            toml::from_str("[outbound_networking]\nblock_networks = [\"intranet\"]\n")
                .expect("toml");
        assert!(BlockedNetworks::from_runtime_config(&bad).is_err());
        let unknown: toml::Table =
            toml::from_str("[outbound_networking]\nallow = []\n").expect("toml");
        assert!(BlockedNetworks::from_runtime_config(&unknown).is_err());
    }

    /// The fetch service's production runtime config blocks every form the
    /// review named, under both runtimes' reading of the file.
    #[test]
    fn the_fetch_apps_runtime_config_blocks_every_private_form() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fetch/runtime-config.toml");
        let text = std::fs::read_to_string(path).expect("fetch/runtime-config.toml");
        let table: toml::Table = toml::from_str(&text).expect("toml");
        let b = BlockedNetworks::from_runtime_config(&table).expect("config");
        for private in [
            "::ffff:93.184.216.34",
            "64:ff9b:1::a00:1",
            "127.0.0.1",
            "10.96.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "::127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:0:127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "fec0::1",
            "100::1",
        ] {
            assert!(b.is_blocked(ip(private)), "{private}");
        }
        assert!(!b.is_blocked(ip("93.184.216.34")));
        // The cluster's copy (a Secret in infra/base/fetch.yaml) is the same.
        let infra = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../infra/base/fetch.yaml"
        ))
        .expect("infra/base/fetch.yaml");
        let line = infra
            .lines()
            .find(|l| l.trim_start().starts_with("block_networks"))
            .expect("a block_networks line");
        let cluster: toml::Table = toml::from_str(line.trim()).expect("toml");
        let listed = |t: &toml::Value| -> Vec<String> {
            let mut v: Vec<String> = t
                .as_array()
                .expect("array")
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            listed(&cluster["block_networks"]),
            listed(&table["outbound_networking"]["block_networks"])
        );
    }
}
