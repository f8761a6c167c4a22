//! Strict grammars for everything a network request names. Pure functions; each error says
//! which field failed and why, and nothing reaches NetworkManager before it passes.

use super::{InterfacePatch, IpChange, IpPatch, IpSettings, PatchMethod};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A rejected field and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
    pub kind: InvalidKind,
}

/// Which rule a value broke: one the API document states (a 400 `invalid_input`), or the
/// address rules it cannot (a 422 `invalid_address`: the text is not an address of the right
/// family, not usable on a LAN, or a gateway outside every subnet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidKind {
    Shape,
    Address,
}

fn bad_address(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
        kind: InvalidKind::Address,
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        kind: InvalidKind::Shape,
        field,
        message: message.into(),
    }
}

/// Also the `maxItems` of `IpPatch` in the API document.
const MAX_ADDRESSES: usize = 16;
const MAX_DNS: usize = 8;

/// A Linux interface name: 1–15 bytes of `[A-Za-z0-9_.-]`, not `.`/`..`, not starting with `-`.
/// `interface_name` as a JSON Schema pattern, for the API document (`api::doc_rules`): 1-15
/// of these characters, not starting with `-`, not `.` or `..`.
pub const INTERFACE_NAME_PATTERN: &str = r"^([A-Za-z0-9_][A-Za-z0-9_.-]{0,14}|\.[A-Za-z0-9_-][A-Za-z0-9_.-]{0,13}|\.\.[A-Za-z0-9_.-]{1,13})$";

pub fn interface_name(name: &str) -> Result<(), Invalid> {
    let ok = (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && name != "."
        && name != ".."
        && !name.starts_with('-');
    ok.then_some(()).ok_or_else(|| {
        invalid(
            "name",
            "An interface name is 1–15 letters, digits, _ . or -.",
        )
    })
}

/// An SSID: 1–32 bytes of UTF-8 without control characters.
pub fn ssid(ssid: &str) -> Result<(), Invalid> {
    let ok = (1..=32).contains(&ssid.len()) && !ssid.chars().any(char::is_control);
    ok.then_some(())
        .ok_or_else(|| invalid("ssid", "An SSID is 1–32 bytes without control characters."))
}

/// A checkpoint id: the number at the end of NetworkManager's checkpoint path.
pub fn checkpoint_id(id: &str) -> Result<(), Invalid> {
    let ok = (1..=10).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(())
        .ok_or_else(|| invalid("checkpoint", "A checkpoint id is a number."))
}

/// A WPA passphrase: 8–63 printable ASCII characters, or 64 hexadecimal digits.
pub fn wpa_password(password: &str) -> Result<(), Invalid> {
    let passphrase =
        (8..=63).contains(&password.len()) && password.bytes().all(|b| (0x20..0x7f).contains(&b));
    let hex = password.len() == 64 && password.bytes().all(|b| b.is_ascii_hexdigit());
    (passphrase || hex).then_some(()).ok_or_else(|| {
        invalid(
            "password",
            "A Wi-Fi password is 8–63 printable ASCII characters or 64 hex digits.",
        )
    })
}

/// Checks a whole interface change; at least one family must be given.
pub fn interface_patch(patch: &InterfacePatch) -> Result<IpChange, Invalid> {
    if patch.ipv4.is_none() && patch.ipv6.is_none() {
        return Err(invalid("body", "Give ipv4, ipv6 or both."));
    }
    Ok(IpChange {
        ipv4: patch.ipv4.as_ref().map(ipv4_patch).transpose()?,
        ipv6: patch.ipv6.as_ref().map(ipv6_patch).transpose()?,
    })
}

fn split_cidr(text: &str, field: &'static str, max: u8) -> Result<(IpAddr, u8), Invalid> {
    let bad = || bad_address(field, format!("{text:?} is not address/prefix."));
    let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    if prefix == 0 || prefix > max {
        return Err(bad_address(
            field,
            format!("The prefix of {text} must be 1–{max}."),
        ));
    }
    Ok((addr.parse().map_err(|_| bad())?, prefix))
}

fn common_shape(p: &IpPatch, family: &'static str) -> Result<(), Invalid> {
    match p.method {
        PatchMethod::Auto => {
            if !p.addresses.is_empty() || p.gateway.is_some() {
                return Err(invalid(
                    family,
                    "Addresses and a gateway are set with the manual method only.",
                ));
            }
        }
        PatchMethod::Manual => {
            if p.addresses.is_empty() {
                return Err(invalid(family, "The manual method needs an address."));
            }
        }
    }
    if p.addresses.len() > MAX_ADDRESSES || p.dns.len() > MAX_DNS {
        return Err(invalid(
            family,
            format!("At most {MAX_ADDRESSES} addresses and {MAX_DNS} DNS servers."),
        ));
    }
    Ok(())
}

fn v4_unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast())
        && a.octets()[0] < 240
}

fn v4(text: &str, field: &'static str) -> Result<Ipv4Addr, Invalid> {
    let a: Ipv4Addr = text
        .parse()
        .map_err(|_| bad_address(field, format!("{text:?} is not an IPv4 address.")))?;
    v4_unicast(a)
        .then_some(a)
        .ok_or_else(|| bad_address(field, format!("{text} is not a usable unicast address.")))
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

pub fn ipv4_patch(p: &IpPatch) -> Result<IpSettings<Ipv4Addr>, Invalid> {
    common_shape(p, "ipv4")?;
    let mut addresses = Vec::new();
    for text in &p.addresses {
        let (addr, prefix) = split_cidr(text, "ipv4.addresses", 32)?;
        let IpAddr::V4(a) = addr else {
            return Err(bad_address(
                "ipv4.addresses",
                format!("{text} is not IPv4."),
            ));
        };
        let host = u32::from(a) & !mask(prefix);
        let edge = prefix < 31 && (host == 0 || host == !mask(prefix));
        if !v4_unicast(a) || edge {
            return Err(bad_address(
                "ipv4.addresses",
                format!("{text} is not a usable host address."),
            ));
        }
        addresses.push((a, prefix));
    }
    let gateway = p
        .gateway
        .as_deref()
        .map(|g| v4(g, "ipv4.gateway"))
        .transpose()?;
    if let Some(g) = gateway {
        let reachable = addresses
            .iter()
            .any(|(a, p)| u32::from(*a) & mask(*p) == u32::from(g) & mask(*p) && *a != g);
        if !reachable {
            return Err(bad_address(
                "ipv4.gateway",
                format!("The gateway {g} is not in the subnet of an address."),
            ));
        }
    }
    let dns = p
        .dns
        .iter()
        .map(|d| v4(d, "ipv4.dns"))
        .collect::<Result<_, _>>()?;
    Ok(IpSettings {
        method: p.method.into(),
        addresses,
        gateway,
        dns,
    })
}

fn v6_unicast(a: Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.to_ipv4_mapped().is_some())
}

fn v6(text: &str, field: &'static str) -> Result<Ipv6Addr, Invalid> {
    let a: Ipv6Addr = text
        .parse()
        .map_err(|_| bad_address(field, format!("{text:?} is not an IPv6 address.")))?;
    v6_unicast(a)
        .then_some(a)
        .ok_or_else(|| bad_address(field, format!("{text} is not a usable unicast address.")))
}

pub fn ipv6_patch(p: &IpPatch) -> Result<IpSettings<Ipv6Addr>, Invalid> {
    common_shape(p, "ipv6")?;
    let mut addresses = Vec::new();
    for text in &p.addresses {
        let (addr, prefix) = split_cidr(text, "ipv6.addresses", 128)?;
        let IpAddr::V6(a) = addr else {
            return Err(bad_address(
                "ipv6.addresses",
                format!("{text} is not IPv6."),
            ));
        };
        if !v6_unicast(a) || a.is_unicast_link_local() {
            return Err(bad_address(
                "ipv6.addresses",
                format!("{text} is not a usable global or unique-local address."),
            ));
        }
        addresses.push((a, prefix));
    }
    Ok(IpSettings {
        method: p.method.into(),
        addresses,
        gateway: p
            .gateway
            .as_deref()
            .map(|g| v6(g, "ipv6.gateway"))
            .transpose()?,
        dns: p
            .dns
            .iter()
            .map(|d| v6(d, "ipv6.dns"))
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_name_pattern_is_the_grammar() {
        let re = regex::Regex::new(INTERFACE_NAME_PATTERN).expect("pattern");
        let long = "a".repeat(16);
        for name in [
            "eth0",
            "wlan0",
            "br-lan",
            "_x",
            ".a",
            "...",
            "..x",
            "a.b",
            "-a",
            ".",
            "..",
            "",
            "eth0;reboot",
            "ä",
            &long,
            "123456789012345",
        ] {
            assert_eq!(re.is_match(name), interface_name(name).is_ok(), "{name:?}");
        }
    }

    fn manual(addresses: &[&str], gateway: Option<&str>, dns: &[&str]) -> IpPatch {
        IpPatch {
            method: PatchMethod::Manual,
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            gateway: gateway.map(str::to_string),
            dns: dns.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn names_follow_their_grammar() {
        for good in ["eth0", "wlan0", "enp3s0", "br-lan", "wlp2s0.1"] {
            assert!(interface_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "..",
            "-eth",
            "eth0;reboot",
            "a/b",
            "sixteen-chars-xx",
            "eth 0",
        ] {
            assert!(interface_name(bad).is_err(), "{bad}");
        }
        for good in [
            "HomeNet",
            "Café ☕",
            "x",
            "32-bytes-long-ssid-aaaaaaaaaaaaa",
        ] {
            assert!(ssid(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "tab\there",
            "nl\n",
            "33-bytes-long-ssid-aaaaaaaaaaaaaa",
            "nul\0",
        ] {
            assert!(ssid(bad).is_err(), "{bad:?}");
        }
        assert!(checkpoint_id("12").is_ok());
        for bad in ["", "1a", "../1", "12345678901"] {
            assert!(checkpoint_id(bad).is_err(), "{bad}");
        }
        assert!(wpa_password("correct horse").is_ok());
        assert!(wpa_password(&"a".repeat(64)).is_ok());
        for bad in ["short", "tab\tinside-long", &"g".repeat(64)] {
            assert!(wpa_password(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_static_ipv4_setting_is_checked_completely() {
        let ok = ipv4_patch(&manual(
            &["192.168.1.5/24"],
            Some("192.168.1.1"),
            &["1.1.1.1"],
        ))
        .expect("valid");
        assert_eq!(ok.addresses, vec![(Ipv4Addr::new(192, 168, 1, 5), 24)]);
        for (bad, field) in [
            (manual(&["192.168.1.5"], None, &[]), "ipv4.addresses"),
            (manual(&["192.168.1.5/33"], None, &[]), "ipv4.addresses"),
            (manual(&["192.168.1.5/0"], None, &[]), "ipv4.addresses"),
            (manual(&["192.168.1.5/+4"], None, &[]), "ipv4.addresses"),
            (manual(&["192.168.1.0/24"], None, &[]), "ipv4.addresses"),
            (manual(&["192.168.1.255/24"], None, &[]), "ipv4.addresses"),
            (manual(&["127.0.0.2/8"], None, &[]), "ipv4.addresses"),
            (manual(&["224.0.0.1/4"], None, &[]), "ipv4.addresses"),
            (manual(&["192.168.001.5/24"], None, &[]), "ipv4.addresses"),
            (manual(&["fd00::1/64"], None, &[]), "ipv4.addresses"),
            (
                manual(&["192.168.1.5/24"], Some("10.0.0.1"), &[]),
                "ipv4.gateway",
            ),
            (
                manual(&["192.168.1.5/24"], Some("192.168.1.5"), &[]),
                "ipv4.gateway",
            ),
            (manual(&["192.168.1.5/24"], None, &["0.0.0.0"]), "ipv4.dns"),
            (
                manual(&["192.168.1.5/24"], None, &["dns.example"]),
                "ipv4.dns",
            ),
            (manual(&[], None, &[]), "ipv4"),
        ] {
            let err = ipv4_patch(&bad).expect_err("must be refused");
            assert_eq!(err.field, field, "{bad:?}");
        }
        let auto_with_address = IpPatch {
            method: PatchMethod::Auto,
            ..manual(&["192.168.1.5/24"], None, &[])
        };
        assert!(ipv4_patch(&auto_with_address).is_err());
        // Switching a family off is not a change the API offers (the document says so too).
        for method in ["disabled", "ignore"] {
            let body = format!(r#"{{"method":"{method}"}}"#);
            assert!(serde_json::from_str::<IpPatch>(&body).is_err(), "{method}");
        }
    }

    #[test]
    fn a_static_ipv6_setting_is_checked_completely() {
        assert!(
            ipv6_patch(&manual(
                &["fd00::5/64"],
                Some("fe80::1"),
                &["2606:4700::1111"]
            ))
            .is_ok()
        );
        for bad in [
            manual(&["fd00::5/129"], None, &[]),
            manual(&["fe80::5/64"], None, &[]),
            manual(&["::1/128"], None, &[]),
            manual(&["ff02::1/64"], None, &[]),
            manual(&["fd00::5/64"], Some("::"), &[]),
            manual(&["fd00::5/64"], None, &["192.168.1.1"]),
        ] {
            assert!(ipv6_patch(&bad).is_err(), "{bad:?}");
        }
    }
}
