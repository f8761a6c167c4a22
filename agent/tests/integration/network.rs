//! The NetworkManager client against a mock NetworkManager on a private `dbus-daemon` (real
//! names, paths and signatures), driven through the agent's HTTP API.

use crate::common;

use common::dbus_mock::{Bus, private_bus};
use common::inproc::{Browser, Harness, PASSWORD, Reply, code};
use common::nm_mock::{HOME_PSK, MockNetwork, MockNetworkConfig, serve_network_manager};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn setup(config: MockNetworkConfig, rollback_secs: u32) -> (Bus, MockNetwork, Harness) {
    let bus = private_bus().await;
    let nm = serve_network_manager(&bus.address, config).await;
    let address = bus.address.clone();
    let h = Harness::with_config(|c| {
        c.system_bus_address = Some(address);
        c.network_rollback_secs = rollback_secs;
    })
    .await;
    (bus, nm, h)
}

fn iface<'a>(r: &'a Reply, name: &str) -> &'a Value {
    r.body["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {}", r.raw))
}

/// Polls `check` every 100 ms for up to 30 s (no timing is asserted; it only bounds a hang).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_are_listed_with_state_speed_and_addresses() {
    let (_bus, _nm, h) = setup(MockNetworkConfig::home(), 60).await;
    let mut admin = h.admin().await;
    let r = h
        .call(&mut admin, "GET", "/api/v1/network/interfaces", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(
        iface(&r, "eth0"),
        &json!({
            "name": "eth0", "kind": "ethernet", "state": "connected",
            "mac": "52:54:00:12:34:56", "speed_mbps": 1000, "connection": "Wired connection 1",
            "ipv4": {"method": "auto", "addresses": ["192.168.1.50/24"], "gateway": "192.168.1.1", "dns": ["192.168.1.1"]},
            "ipv6": {"method": "auto", "addresses": [], "gateway": null, "dns": []}
        })
    );
    let wlan = iface(&r, "wlan0");
    assert_eq!(
        (
            &wlan["kind"],
            &wlan["state"],
            &wlan["connection"],
            &wlan["speed_mbps"]
        ),
        (
            &json!("wifi"),
            &json!("disconnected"),
            &Value::Null,
            &Value::Null
        )
    );
    let lo = iface(&r, "lo");
    assert_eq!(
        (&lo["kind"], &lo["state"]),
        (&json!("loopback"), &json!("unmanaged"))
    );
}

fn static_v4() -> Value {
    json!({"ipv4": {"method": "manual", "addresses": ["192.168.1.5/24"], "gateway": "192.168.1.1", "dns": ["1.1.1.1", "9.9.9.9"]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_address_is_applied_behind_a_checkpoint_and_kept_once_confirmed() {
    let (_bus, nm, h) = setup(MockNetworkConfig::home(), 60).await;
    let mut admin = h.admin().await;
    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/network/interfaces/eth0",
            Some(static_v4()),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body["rollback_seconds"], 60);
    let checkpoint = r.body["checkpoint"].as_str().expect("id").to_string();
    let calls = nm.calls();
    assert_eq!(
        calls.iter().position(|c| c.starts_with("checkpoint")),
        Some(0),
        "the checkpoint comes before any change: {calls:?}"
    );
    assert!(calls[0].ends_with("timeout 60"), "{calls:?}");

    let r = h
        .call(&mut admin, "GET", "/api/v1/network/interfaces", None)
        .await;
    assert_eq!(
        iface(&r, "eth0")["ipv4"],
        json!({"method": "manual", "addresses": ["192.168.1.5/24"], "gateway": "192.168.1.1", "dns": ["1.1.1.1", "9.9.9.9"]})
    );

    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/network/interfaces/eth0",
            Some(static_v4()),
        )
        .await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::CONFLICT, "change_pending")
    );

    let confirm = format!("/api/v1/network/checkpoints/{checkpoint}/confirm");
    let r = h.call(&mut admin, "POST", &confirm, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    assert_eq!(nm.pending_checkpoints(), 0);
    let r = h.call(&mut admin, "POST", &confirm, None).await;
    assert_eq!((r.status, code(&r)), (StatusCode::NOT_FOUND, "not_found"));
    let r = h
        .call(&mut admin, "GET", "/api/v1/network/interfaces", None)
        .await;
    assert_eq!(
        iface(&r, "eth0")["ipv4"]["method"],
        "manual",
        "confirmed changes stay"
    );

    // Back to DHCP, with IPv6 made static in the same change.
    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/network/interfaces/eth0",
            Some(json!({"ipv4": {"method": "auto"}, "ipv6": {"method": "manual", "addresses": ["fd00::5/64"], "gateway": "fe80::1", "dns": ["fd00::1"]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    let r = h
        .call(&mut admin, "GET", "/api/v1/network/interfaces", None)
        .await;
    let eth = iface(&r, "eth0");
    assert_eq!(eth["ipv4"]["addresses"], json!(["192.168.1.50/24"]));
    assert_eq!(
        eth["ipv6"],
        json!({"method": "manual", "addresses": ["fd00::5/64"], "gateway": "fe80::1", "dns": ["fd00::1"]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_change_rolls_back_by_itself() {
    let (_bus, nm, h) = setup(MockNetworkConfig::home(), 1).await;
    let mut admin = h.admin().await;
    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/network/interfaces/eth0",
            Some(static_v4()),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body["rollback_seconds"], 1);
    let checkpoint = r.body["checkpoint"].as_str().expect("id").to_string();
    eventually("NetworkManager rolled the change back", async || {
        nm.calls().iter().any(|c| c.starts_with("rollback"))
    })
    .await;
    let r = h
        .call(&mut admin, "GET", "/api/v1/network/interfaces", None)
        .await;
    assert_eq!(
        iface(&r, "eth0")["ipv4"]["addresses"],
        json!(["192.168.1.50/24"]),
        "DHCP again after the rollback"
    );
    assert!(nm.calls().iter().any(|c| c.ends_with("(timeout)")));
    let r = h
        .call(
            &mut admin,
            "POST",
            &format!("/api/v1/network/checkpoints/{checkpoint}/confirm"),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "a rolled-back change cannot be confirmed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_can_be_rolled_back_at_once() {
    let (_bus, nm, h) = setup(MockNetworkConfig::home(), 60).await;
    let mut admin = h.admin().await;
    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/network/interfaces/eth0",
            Some(static_v4()),
        )
        .await;
    let checkpoint = r.body["checkpoint"].as_str().expect("id").to_string();
    let r = h
        .call(
            &mut admin,
            "POST",
            &format!("/api/v1/network/checkpoints/{checkpoint}/rollback"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    assert!(nm.calls().iter().any(|c| c.ends_with("(request)")));
    let r = h
        .call(&mut admin, "GET", "/api/v1/network/interfaces", None)
        .await;
    assert_eq!(iface(&r, "eth0")["ipv4"]["method"], "auto");
    let ipv4 = &nm.profile("Wired connection 1").expect("profile")["ipv4"];
    assert_eq!(
        String::try_from(ipv4["method"].clone()).expect("s"),
        "auto",
        "the stored profile is the old one again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_network_input_is_refused_and_changes_nothing() {
    let (_bus, nm, h) = setup(MockNetworkConfig::home(), 60).await;
    let mut admin = h.admin().await;
    let v4 = |v: Value| json!({ "ipv4": v });
    // What the API document states is a 400 `invalid_input`; the address rules it cannot state
    // (a parseable, usable address of the family, a gateway in a subnet) are a 422.
    let shape = (StatusCode::BAD_REQUEST, "invalid_input");
    let address = (StatusCode::UNPROCESSABLE_ENTITY, "invalid_address");
    for (body, want) in [
        (
            v4(json!({"method": "manual", "addresses": ["192.168.1.5"]})),
            address,
        ),
        (
            v4(json!({"method": "manual", "addresses": ["192.168.1.5/33"]})),
            address,
        ),
        (
            v4(json!({"method": "manual", "addresses": ["192.168.1.0/24"]})),
            address,
        ),
        (
            v4(json!({"method": "manual", "addresses": ["999.1.1.1/24"]})),
            address,
        ),
        (
            v4(json!({"method": "manual", "addresses": ["192.168.1.5/24"], "gateway": "10.0.0.1"})),
            address,
        ),
        (
            v4(
                json!({"method": "manual", "addresses": ["192.168.1.5/24"], "dns": ["1.1.1.1; reboot"]}),
            ),
            address,
        ),
        (v4(json!({"method": "manual", "addresses": []})), shape),
        (
            v4(json!({"method": "auto", "addresses": ["192.168.1.5/24"]})),
            shape,
        ),
        (v4(json!({"method": "disabled"})), shape),
        (v4(json!({"method": "dhcp"})), shape),
        (v4(json!({"method": "auto", "mtu": 9000})), shape),
        (
            json!({"ipv6": {"method": "manual", "addresses": ["fe80::5/64"]}}),
            address,
        ),
        (
            json!({"ipv6": {"method": "manual", "addresses": ["fd00::5/64"], "dns": ["8.8.8.8"]}}),
            address,
        ),
        (json!({}), shape),
        (json!({"ipv4": {"method": "auto"}, "wifi": true}), shape),
    ] {
        let r = h
            .call(
                &mut admin,
                "PATCH",
                "/api/v1/network/interfaces/eth0",
                Some(body.clone()),
            )
            .await;
        assert_eq!((r.status, code(&r)), want, "{body}: {}", r.raw);
    }
    let good = json!({"ipv4": {"method": "auto"}});
    for (path, status) in [
        (
            "/api/v1/network/interfaces/eth0%3Breboot",
            StatusCode::BAD_REQUEST,
        ),
        ("/api/v1/network/interfaces/..", StatusCode::BAD_REQUEST),
        (
            "/api/v1/network/interfaces/a-very-long-interface",
            StatusCode::BAD_REQUEST,
        ),
        ("/api/v1/network/interfaces/eth9", StatusCode::NOT_FOUND),
        ("/api/v1/network/interfaces/lo", StatusCode::CONFLICT),
    ] {
        let r = h.call(&mut admin, "PATCH", path, Some(good.clone())).await;
        assert_eq!(r.status, status, "{path}: {}", r.raw);
    }
    for path in [
        "/api/v1/network/checkpoints/abc/confirm",
        "/api/v1/network/checkpoints/1%2F..%2F2/rollback",
    ] {
        let r = h.call(&mut admin, "POST", path, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
    }
    assert_eq!(
        nm.calls(),
        Vec::<String>::new(),
        "nothing reached NetworkManager"
    );
    let r = h
        .call(&mut admin, "GET", "/api/v1/network/interfaces", None)
        .await;
    assert_eq!(
        iface(&r, "eth0")["ipv4"]["addresses"],
        json!(["192.168.1.50/24"])
    );
}

fn network<'a>(r: &'a Reply, ssid: &str) -> Option<&'a Value> {
    r.body["networks"]
        .as_array()
        .expect("networks")
        .iter()
        .find(|n| n["ssid"] == ssid)
}

/// A `POST /api/v1/network/wifi/connect` body.
fn connect(ssid: &str, password: Option<&str>) -> Value {
    let mut body = json!({ "ssid": ssid });
    if let Some(p) = password {
        body["password"] = json!(p);
    }
    body
}

/// Wrong, missing or malformed passwords and unsupported or absent networks are refused with
/// their codes, and no profile is kept.
async fn refused_connects_keep_nothing(h: &Harness, admin: &mut Browser, nm: &MockNetwork) {
    for (body, status, want) in [
        (
            connect("HomeNet", Some("wrong password")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wifi_auth_failed",
        ),
        (
            connect("HomeNet", None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_required",
        ),
        (
            connect("Office", Some("whatever123")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wifi_unsupported",
        ),
        (
            connect("Nowhere", Some("whatever123")),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            connect("HomeNet", Some("short")),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            connect("Bad\u{7}Name", None),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            connect(&"x".repeat(33), None),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
    ] {
        let r = h
            .call(
                admin,
                "POST",
                "/api/v1/network/wifi/connect",
                Some(body.clone()),
            )
            .await;
        assert_eq!((r.status, code(&r)), (status, want), "{body}: {}", r.raw);
    }
    assert!(
        nm.profile("HomeNet").is_none(),
        "a refused password is not kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wifi_networks_are_scanned_joined_and_forgotten() {
    let (_bus, nm, h) = setup(MockNetworkConfig::home(), 60).await;
    let mut admin = h.admin().await;
    let r = h
        .call(&mut admin, "GET", "/api/v1/network/wifi", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body["device"], "wlan0");
    let ssids: Vec<&str> = r.body["networks"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| n["ssid"].as_str().expect("ssid"))
        .collect();
    assert_eq!(
        ssids,
        ["HomeNet", "Modern", "Office", "CafeOpen"],
        "one per SSID, strongest first"
    );
    assert_eq!(
        network(&r, "HomeNet"),
        Some(
            &json!({"ssid": "HomeNet", "signal": 85, "security": "wpa2", "frequency_mhz": 5180, "known": false, "active": false})
        )
    );
    assert_eq!(network(&r, "Modern").expect("m")["security"], "wpa3");
    assert_eq!(
        network(&r, "Office").expect("o")["security"],
        "wpa2-enterprise"
    );
    assert_eq!(network(&r, "CafeOpen").expect("c")["security"], "open");

    let r = h
        .call(&mut admin, "POST", "/api/v1/network/wifi/scan", None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = h
        .call(&mut admin, "GET", "/api/v1/network/wifi", None)
        .await;
    assert!(
        network(&r, "Neighbour").is_some(),
        "the scan found a new network"
    );

    refused_connects_keep_nothing(&h, &mut admin, &nm).await;

    let r = h
        .call(
            &mut admin,
            "POST",
            "/api/v1/network/wifi/connect",
            Some(connect("HomeNet", Some(HOME_PSK))),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(
        (
            &r.body["name"],
            &r.body["state"],
            &r.body["connection"],
            &r.body["ipv4"]["addresses"]
        ),
        (
            &json!("wlan0"),
            &json!("connected"),
            &json!("HomeNet"),
            &json!(["192.168.1.77/24"])
        )
    );
    let r = h
        .call(&mut admin, "GET", "/api/v1/network/wifi", None)
        .await;
    let home = network(&r, "HomeNet").expect("home");
    assert_eq!(
        (&home["known"], &home["active"]),
        (&json!(true), &json!(true))
    );

    // An IP change on Wi-Fi keeps the saved password (NetworkManager's Update replaces secrets).
    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/network/interfaces/wlan0",
            Some(static_v4()),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    let saved = nm.profile("HomeNet").expect("saved");
    let psk = saved["802-11-wireless-security"]["psk"].clone();
    assert_eq!(String::try_from(psk).expect("psk"), HOME_PSK);
    let id = r.body["checkpoint"].as_str().expect("id").to_string();
    h.call(
        &mut admin,
        "POST",
        &format!("/api/v1/network/checkpoints/{id}/confirm"),
        None,
    )
    .await;

    let r = h
        .call(&mut admin, "DELETE", "/api/v1/network/wifi/HomeNet", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    assert!(nm.profile("HomeNet").is_none());
    assert_eq!(
        nm.active_on("wlan0"),
        None,
        "forgetting the active network disconnects"
    );
    let r = h
        .call(&mut admin, "DELETE", "/api/v1/network/wifi/HomeNet", None)
        .await;
    assert_eq!((r.status, code(&r)), (StatusCode::NOT_FOUND, "not_found"));
    let r = h
        .call(&mut admin, "DELETE", "/api/v1/network/wifi/OldCafe", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(nm.profile_ids(), ["Wired connection 1"]);

    let r = h
        .call(
            &mut admin,
            "POST",
            "/api/v1/network/wifi/connect",
            Some(connect("CafeOpen", None)),
        )
        .await;
    assert_eq!(r.body["connection"], "CafeOpen", "{}", r.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_may_not_touch_the_network() {
    let (_bus, nm, h) = setup(MockNetworkConfig::home(), 60).await;
    let mut admin = h.admin().await;
    h.call(
        &mut admin,
        "POST",
        "/api/v1/users",
        Some(json!({"username": "kid", "password": PASSWORD, "role": "member"})),
    )
    .await;
    let mut member = Browser::default();
    h.login(&mut member, "kid", PASSWORD).await;
    for (method, path, body) in [
        ("GET", "/api/v1/network/interfaces", None),
        (
            "PATCH",
            "/api/v1/network/interfaces/eth0",
            Some(static_v4()),
        ),
        ("POST", "/api/v1/network/checkpoints/1/confirm", None),
        ("POST", "/api/v1/network/checkpoints/1/rollback", None),
        ("GET", "/api/v1/network/wifi", None),
        ("POST", "/api/v1/network/wifi/scan", None),
        (
            "POST",
            "/api/v1/network/wifi/connect",
            Some(json!({"ssid": "CafeOpen"})),
        ),
        ("DELETE", "/api/v1/network/wifi/OldCafe", None),
    ] {
        let r = h.call(&mut member, method, path, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    assert_eq!(nm.calls(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_network_manager_the_api_answers_503() {
    let bus = private_bus().await;
    for address in [
        bus.address.clone(),
        "unix:path=/nonexistent/bus".to_string(),
    ] {
        let h = Harness::with_config(|c| c.system_bus_address = Some(address)).await;
        let mut admin = h.admin().await;
        for (method, path, body) in [
            ("GET", "/api/v1/network/interfaces", None),
            ("GET", "/api/v1/network/wifi", None),
            (
                "PATCH",
                "/api/v1/network/interfaces/eth0",
                Some(static_v4()),
            ),
        ] {
            let r = h.call(&mut admin, method, path, body).await;
            assert_eq!(
                (r.status, code(&r)),
                (StatusCode::SERVICE_UNAVAILABLE, "network_unavailable"),
                "{path}: {}",
                r.raw
            );
        }
    }
}

async fn unclaimed_with_hotspot(config: MockNetworkConfig) -> (Bus, MockNetwork, Harness, String) {
    let bus = private_bus().await;
    let nm = serve_network_manager(&bus.address, config).await;
    let address = bus.address.clone();
    let (h, code) = Harness::unclaimed(|c| {
        c.system_bus_address = Some(address);
        c.setup_hotspot = true;
        c.setup_hotspot_delay = Duration::ZERO;
    })
    .await;
    (bus, nm, h, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_unclaimed_device_opens_a_setup_hotspot_until_it_is_claimed() {
    let (_bus, nm, h, setup_code) =
        unclaimed_with_hotspot(MockNetworkConfig::offline_with_wifi()).await;
    let task = hearth_agent::network::hotspot::spawn(h.state.clone()).expect("enabled");
    eventually("the hotspot is up", async || {
        nm.active_on("wlan0")
            .is_some_and(|id| id.starts_with("Hearth-setup-"))
    })
    .await;
    let ssid = nm.active_on("wlan0").expect("ssid");
    let profile = nm.profile(&ssid).expect("profile");
    let text =
        |setting: &str, key: &str| String::try_from(profile[setting][key].clone()).expect("s");
    assert_eq!(text("802-11-wireless", "mode"), "ap");
    assert_eq!(text("802-11-wireless-security", "key-mgmt"), "wpa-psk");
    assert_eq!(text("ipv4", "method"), "shared");
    let password = text("802-11-wireless-security", "psk");
    assert_eq!(password.len(), 16);
    let file = &h.state.config.setup_code_file;
    eventually("the setup-code file names the hotspot", async || {
        std::fs::read_to_string(file).is_ok_and(|t| t.contains(&ssid))
    })
    .await;
    let note = std::fs::read_to_string(file).expect("file");
    assert!(
        note.contains(&setup_code) && note.contains(&password),
        "{note}"
    );

    let mut admin = Browser::default();
    let r = h
        .call(
            &mut admin,
            "POST",
            "/api/v1/setup/claim",
            Some(json!({"code": setup_code, "username": "admin", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the task ends after the claim")
        .expect("no panic");
    assert_eq!(nm.active_on("wlan0"), None, "hotspot stopped");
    assert!(nm.profile(&ssid).is_none(), "the volatile profile is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hotspot_when_the_device_is_online_or_claimed() {
    let (_bus, nm, h, _code) = unclaimed_with_hotspot(MockNetworkConfig::home()).await;
    let task = hearth_agent::network::hotspot::spawn(h.state.clone()).expect("enabled");
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the check ends")
        .expect("no panic");
    assert_eq!(
        nm.calls(),
        Vec::<String>::new(),
        "an online device opens no hotspot"
    );

    let bus = private_bus().await;
    let nm = serve_network_manager(&bus.address, MockNetworkConfig::offline_with_wifi()).await;
    let address = bus.address.clone();
    let h = Harness::with_config(|c| {
        c.system_bus_address = Some(address);
        c.setup_hotspot = true;
        c.setup_hotspot_delay = Duration::ZERO;
    })
    .await;
    let task = hearth_agent::network::hotspot::spawn(h.state.clone()).expect("enabled");
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the check ends")
        .expect("no panic");
    assert_eq!(
        nm.calls(),
        Vec::<String>::new(),
        "a claimed device opens no hotspot"
    );
}
