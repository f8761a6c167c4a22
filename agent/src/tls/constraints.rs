//! What the device CA may sign for: its X.509 name constraints, and the same ranges as a
//! predicate that keeps the server certificate's names inside them.
//!
//! The person who trusts the device CA adds a root to their browser. Without constraints that
//! root could vouch for any site (`bank.example`), so whoever steals its key (from the SD card,
//! or through a bug in the agent) could impersonate every site to that person. With these
//! constraints, a certificate the CA signs for a name outside them is rejected by the browser.
//!
//! The permitted names are chosen to survive a rename of the device without a new CA (a new CA
//! means every user must trust a root again): the DNS subtree `local` (mDNS: `<device>.local`
//! and, later, `<app>.<device>.local`), `localhost`, and the private, loopback and link-local
//! address ranges a device on a home network has. Public addresses and global DNS names are
//! outside on purpose: a home device has no business vouching for them.

use rcgen::{CidrSubnet, GeneralSubtree, NameConstraints};
use std::net::IpAddr;

/// The DNS subtrees: a subtree also permits every name below it.
pub const PERMITTED_DNS: [&str; 2] = ["local", "localhost"];

/// IPv4 ranges as (network, prefix length): RFC 1918 private, loopback, link-local.
const PERMITTED_V4: [([u8; 4], u8); 5] = [
    ([10, 0, 0, 0], 8),
    ([172, 16, 0, 0], 12),
    ([192, 168, 0, 0], 16),
    ([127, 0, 0, 0], 8),
    ([169, 254, 0, 0], 16),
];

/// IPv6 ranges: unique local (fc00::/7), link-local (fe80::/10), loopback.
const PERMITTED_V6: [(u128, u8); 3] = [(0xfc00 << 112, 7), (0xfe80 << 112, 10), (1, 128)];

/// The name constraints the CA certificate carries.
pub fn name_constraints() -> NameConstraints {
    let dns = PERMITTED_DNS
        .iter()
        .map(|d| GeneralSubtree::DnsName((*d).to_string()));
    let v4 = PERMITTED_V4
        .iter()
        .map(|(net, len)| GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix(*net, *len)));
    let v6 = PERMITTED_V6.iter().map(|(net, len)| {
        GeneralSubtree::IpAddress(CidrSubnet::from_v6_prefix(net.to_be_bytes(), *len))
    });
    NameConstraints {
        permitted_subtrees: dns.chain(v4).chain(v6).collect(),
        excluded_subtrees: Vec::new(),
    }
}

/// True when `ip` lies inside the CA's permitted address ranges. A certificate that names any
/// address outside them is rejected whole by a verifier, so the server certificate leaves such
/// addresses (a public IPv6 address, say) out.
pub fn permitted_ip(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            // An IPv4-mapped address never reaches here as V4; compare the plain octets.
            let addr = u32::from_be_bytes(v4.octets());
            PERMITTED_V4.iter().any(|(net, len)| {
                let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                addr & mask == u32::from_be_bytes(*net) & mask
            })
        }
        IpAddr::V6(v6) => {
            let addr = u128::from_be_bytes(v6.octets());
            PERMITTED_V6.iter().any(|(net, len)| {
                let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
                addr & mask == net & mask
            })
        }
    }
}

/// True when `name` (a DNS name, lower case) lies inside a permitted DNS subtree.
pub fn permitted_dns(name: &str) -> bool {
    PERMITTED_DNS
        .iter()
        .any(|d| name == *d || name.strip_suffix(d).is_some_and(|r| r.ends_with('.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_permitted_public_ones_are_not() {
        for ok in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.5",
            "127.0.0.1",
            "169.254.10.1",
            "fd12:3456::1",
            "fe80::1",
            "::1",
        ] {
            assert!(permitted_ip(&ok.parse().expect("ip")), "{ok}");
        }
        for no in [
            "8.8.8.8",
            "172.32.0.1",
            "192.169.0.1",
            "100.64.0.1",
            "2001:db8::1",
            "2a00:1450::1",
        ] {
            assert!(!permitted_ip(&no.parse().expect("ip")), "{no}");
        }
    }

    #[test]
    fn only_local_and_localhost_names_are_permitted() {
        for ok in ["hearth.local", "photos.attic.local", "localhost", "local"] {
            assert!(permitted_dns(ok), "{ok}");
        }
        for no in [
            "hearth",
            "bank.example",
            "notlocal",
            "evil-local",
            "local.example",
        ] {
            assert!(!permitted_dns(no), "{no}");
        }
    }
}
