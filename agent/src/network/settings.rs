//! NetworkManager connection settings (`a{sa{sv}}`) as plain data: reading the few keys Hearth
//! needs and building or changing profiles. Pure functions, no D-Bus.

use super::{IpChange, IpMethod, IpSettings, WifiSecurity};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use zbus::zvariant::{OwnedValue, Value};

/// One connection profile: setting name → key → value.
pub type Settings = HashMap<String, HashMap<String, OwnedValue>>;

/// Wraps a plain value. Converting fails only for file descriptors, which none of these holds.
pub fn ov<'a>(v: impl Into<Value<'a>>) -> OwnedValue {
    OwnedValue::try_from(v.into()).unwrap_or_else(|_| OwnedValue::from(false))
}

pub fn get_str(s: &Settings, setting: &str, key: &str) -> Option<String> {
    s.get(setting)?
        .get(key)
        .and_then(|v| String::try_from(v.clone()).ok())
}

pub fn get_bytes(s: &Settings, setting: &str, key: &str) -> Option<Vec<u8>> {
    s.get(setting)?
        .get(key)
        .and_then(|v| Vec::<u8>::try_from(v.clone()).ok())
}

/// The SSID of a Wi-Fi client profile (`None` for other profiles and access points).
pub fn client_ssid(s: &Settings) -> Option<String> {
    if get_str(s, "connection", "type").as_deref() != Some("802-11-wireless") {
        return None;
    }
    if get_str(s, "802-11-wireless", "mode").as_deref() == Some("ap") {
        return None;
    }
    String::from_utf8(get_bytes(s, "802-11-wireless", "ssid")?).ok()
}

/// NetworkManager's method name → the API's.
pub fn method_of(s: &Settings, family: &str) -> IpMethod {
    match get_str(s, family, "method").as_deref() {
        Some("manual" | "shared") => IpMethod::Manual,
        Some("ignore") if family == "ipv6" => IpMethod::Ignore,
        Some("disabled" | "ignore") => IpMethod::Disabled,
        Some("link-local") if family == "ipv4" => IpMethod::Disabled,
        _ => IpMethod::Auto,
    }
}

fn address_data<A: ToString>(addresses: &[(A, u8)]) -> Vec<HashMap<String, OwnedValue>> {
    addresses
        .iter()
        .map(|(a, prefix)| {
            HashMap::from([
                ("address".to_string(), ov(a.to_string())),
                ("prefix".to_string(), ov(u32::from(*prefix))),
            ])
        })
        .collect()
}

fn method_name(m: IpMethod) -> &'static str {
    match m {
        IpMethod::Auto => "auto",
        IpMethod::Manual => "manual",
        IpMethod::Disabled => "disabled",
        IpMethod::Ignore => "ignore",
    }
}

/// Replaces a family's addressing, keeping the profile's other keys (route metric, ...).
/// The legacy keys (`addresses`, `dns-data`, ...) are dropped: NetworkManager would prefer
/// `addresses` over `address-data` if both were sent.
fn set_family<A: ToString>(
    family: &mut HashMap<String, OwnedValue>,
    ip: &IpSettings<A>,
    dns: OwnedValue,
) {
    for legacy in [
        "addresses",
        "address-data",
        "gateway",
        "dns",
        "dns-data",
        "routes",
    ] {
        family.remove(legacy);
    }
    family.insert("method".into(), ov(method_name(ip.method)));
    if !ip.addresses.is_empty() {
        family.insert("address-data".into(), ov(address_data(&ip.addresses)));
    }
    if let Some(g) = &ip.gateway {
        family.insert("gateway".into(), ov(g.to_string()));
    }
    family.insert("dns".into(), dns);
    family.insert("ignore-auto-dns".into(), ov(!ip.dns.is_empty()));
}

/// Applies a checked change to a profile.
pub fn apply_change(settings: &mut Settings, change: &IpChange) {
    if let Some(v4) = &change.ipv4 {
        // `ipv4.dns` is `au`: each address's four bytes in network order, read as a u32.
        let dns: Vec<u32> = v4
            .dns
            .iter()
            .map(|a: &Ipv4Addr| u32::from_ne_bytes(a.octets()))
            .collect();
        set_family(settings.entry("ipv4".into()).or_default(), v4, ov(dns));
    }
    if let Some(v6) = &change.ipv6 {
        let dns: Vec<Vec<u8>> = v6
            .dns
            .iter()
            .map(|a: &Ipv6Addr| a.octets().to_vec())
            .collect();
        set_family(settings.entry("ipv6".into()).or_default(), v6, ov(dns));
    }
}

fn setting(pairs: Vec<(&str, OwnedValue)>) -> HashMap<String, OwnedValue> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A new Wi-Fi client profile for a WPA2/WPA3-personal or open network.
pub fn wifi_client(ssid: &str, security: WifiSecurity, password: Option<&str>) -> Settings {
    let mut s = Settings::from([
        (
            "connection".to_string(),
            setting(vec![("id", ov(ssid)), ("type", ov("802-11-wireless"))]),
        ),
        (
            "802-11-wireless".to_string(),
            setting(vec![
                ("ssid", ov(ssid.as_bytes().to_vec())),
                ("mode", ov("infrastructure")),
            ]),
        ),
    ]);
    if let Some(psk) = password.filter(|_| security != WifiSecurity::Open) {
        let key_mgmt = if security == WifiSecurity::Wpa3 {
            "sae"
        } else {
            "wpa-psk"
        };
        s.insert(
            "802-11-wireless-security".into(),
            setting(vec![("key-mgmt", ov(key_mgmt)), ("psk", ov(psk))]),
        );
    }
    s
}

/// The setup access point: WPA2 (CCMP only), addresses shared from the device, no autoconnect.
pub fn access_point(ssid: &str, password: &str) -> Settings {
    let list = |v: &str| ov(vec![v.to_string()]);
    Settings::from([
        (
            "connection".to_string(),
            setting(vec![
                ("id", ov(ssid)),
                ("type", ov("802-11-wireless")),
                ("autoconnect", ov(false)),
            ]),
        ),
        (
            "802-11-wireless".to_string(),
            setting(vec![
                ("ssid", ov(ssid.as_bytes().to_vec())),
                ("mode", ov("ap")),
            ]),
        ),
        (
            "802-11-wireless-security".to_string(),
            setting(vec![
                ("key-mgmt", ov("wpa-psk")),
                ("psk", ov(password)),
                ("proto", list("rsn")),
                ("pairwise", list("ccmp")),
                ("group", list("ccmp")),
            ]),
        ),
        ("ipv4".to_string(), setting(vec![("method", ov("shared"))])),
        ("ipv6".to_string(), setting(vec![("method", ov("ignore"))])),
    ])
}

/// NetworkManager's access-point flags → the API's security label.
pub fn security(flags: u32, wpa_flags: u32, rsn_flags: u32) -> WifiSecurity {
    const PSK: u32 = 0x100;
    const EAP: u32 = 0x200;
    const SAE: u32 = 0x400;
    let both = wpa_flags | rsn_flags;
    if both & EAP != 0 {
        WifiSecurity::Wpa2Enterprise
    } else if rsn_flags & SAE != 0 && both & PSK == 0 {
        WifiSecurity::Wpa3
    } else if both & (PSK | SAE) != 0 {
        WifiSecurity::Wpa2
    } else if flags & 0x1 != 0 {
        WifiSecurity::Wep
    } else {
        WifiSecurity::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_change_replaces_addressing_and_keeps_other_keys() {
        let mut s = Settings::from([(
            "ipv4".to_string(),
            setting(vec![
                ("method", ov("auto")),
                ("route-metric", ov(100i64)),
                ("addresses", ov(vec![vec![1u32, 24, 0]])),
            ]),
        )]);
        let change = IpChange {
            ipv4: Some(IpSettings {
                method: IpMethod::Manual,
                addresses: vec![(Ipv4Addr::new(192, 168, 1, 5), 24)],
                gateway: Some(Ipv4Addr::new(192, 168, 1, 1)),
                dns: vec![Ipv4Addr::new(1, 1, 1, 1)],
            }),
            ipv6: None,
        };
        apply_change(&mut s, &change);
        assert_eq!(get_str(&s, "ipv4", "method").as_deref(), Some("manual"));
        assert_eq!(
            get_str(&s, "ipv4", "gateway").as_deref(),
            Some("192.168.1.1")
        );
        let v4 = &s["ipv4"];
        assert!(v4.contains_key("route-metric") && !v4.contains_key("addresses"));
        let dns = Vec::<u32>::try_from(v4["dns"].clone()).expect("au");
        assert_eq!(dns, vec![u32::from_ne_bytes([1, 1, 1, 1])]);
        assert!(!s.contains_key("ipv6"));
    }

    #[test]
    fn access_point_flags_map_to_labels() {
        assert_eq!(security(0, 0, 0), WifiSecurity::Open);
        assert_eq!(security(1, 0, 0), WifiSecurity::Wep);
        assert_eq!(security(1, 0, 0x188), WifiSecurity::Wpa2);
        assert_eq!(security(1, 0, 0x488), WifiSecurity::Wpa3);
        assert_eq!(security(1, 0, 0x588), WifiSecurity::Wpa2);
        assert_eq!(security(1, 0, 0x288), WifiSecurity::Wpa2Enterprise);
    }
}
