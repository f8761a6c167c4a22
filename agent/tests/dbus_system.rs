//! The systemd1, login1, hostname1 and timedate1 clients against services on a private
//! `dbus-daemon` that implement the used subset with the real names and signatures, driven
//! through the agent's HTTP API.

mod common;

use common::inproc::{Browser, Harness, code};
use reqwest::StatusCode;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use zbus::interface;
use zbus::zvariant::OwnedObjectPath;

type Calls = Arc<Mutex<Vec<String>>>;

struct MockSystemd {
    calls: Calls,
    active: Arc<Mutex<std::collections::HashMap<String, bool>>>,
}

type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

#[interface(name = "org.freedesktop.systemd1.Manager")]
impl MockSystemd {
    fn list_units_by_names(&self, names: Vec<String>) -> Vec<UnitRow> {
        let active = self.active.lock().expect("lock");
        let root = || OwnedObjectPath::try_from("/").expect("path");
        names
            .into_iter()
            .map(|name| {
                let (load, state, sub) = match active.get(&name) {
                    Some(true) => ("loaded", "active", "running"),
                    Some(false) => ("loaded", "inactive", "dead"),
                    None => ("not-found", "inactive", "dead"),
                };
                let path = OwnedObjectPath::try_from(format!(
                    "/org/freedesktop/systemd1/unit/{}",
                    name.replace(['.', '-', '@'], "_")
                ))
                .expect("path");
                (
                    name.clone(),
                    format!("Mock {name}"),
                    load.into(),
                    state.into(),
                    sub.into(),
                    String::new(),
                    path,
                    0,
                    String::new(),
                    root(),
                )
            })
            .collect()
    }

    fn start_unit(&self, name: String, mode: String) -> zbus::fdo::Result<OwnedObjectPath> {
        self.set(name, mode, "start", true)
    }

    fn stop_unit(&self, name: String, mode: String) -> zbus::fdo::Result<OwnedObjectPath> {
        self.set(name, mode, "stop", false)
    }

    fn restart_unit(&self, name: String, mode: String) -> zbus::fdo::Result<OwnedObjectPath> {
        self.set(name, mode, "restart", true)
    }
}

impl MockSystemd {
    fn set(
        &self,
        name: String,
        mode: String,
        verb: &str,
        on: bool,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("{verb} {name} {mode}"));
        let mut active = self.active.lock().expect("lock");
        match active.get_mut(&name) {
            Some(state) => {
                *state = on;
                Ok(OwnedObjectPath::try_from("/org/freedesktop/systemd1/job/1").expect("path"))
            }
            None => Err(zbus::fdo::Error::Failed(format!("Unit {name} not found."))),
        }
    }
}

struct MockLogin {
    calls: Calls,
}

#[interface(name = "org.freedesktop.login1.Manager")]
impl MockLogin {
    fn reboot(&self, interactive: bool) {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("reboot {interactive}"));
    }
    fn power_off(&self, interactive: bool) {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("poweroff {interactive}"));
    }
}

struct MockHostname {
    name: String,
}

#[interface(name = "org.freedesktop.hostname1")]
impl MockHostname {
    fn set_static_hostname(&mut self, hostname: String, _interactive: bool) {
        self.name = hostname;
    }
    #[zbus(property)]
    fn static_hostname(&self) -> String {
        self.name.clone()
    }
}

struct MockTimedate {
    zone: String,
    ntp: bool,
}

#[interface(name = "org.freedesktop.timedate1")]
impl MockTimedate {
    fn set_timezone(&mut self, timezone: String, _interactive: bool) {
        self.zone = timezone;
    }
    #[zbus(name = "SetNTP")]
    fn set_ntp(&mut self, use_ntp: bool, _interactive: bool) {
        self.ntp = use_ntp;
    }
    #[zbus(property)]
    fn timezone(&self) -> String {
        self.zone.clone()
    }
    #[zbus(property, name = "NTP")]
    fn ntp(&self) -> bool {
        self.ntp
    }
    #[zbus(property, name = "NTPSynchronized")]
    fn ntp_synchronized(&self) -> bool {
        self.ntp
    }
    #[zbus(property, name = "TimeUSec")]
    fn time_usec(&self) -> u64 {
        1_800_000_000_000_000
    }
}

struct Bus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
    _connections: Vec<zbus::Connection>,
    calls: Calls,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn private_bus() -> Bus {
    let dir = tempfile::tempdir().expect("tmp");
    let socket = dir.path().join("bus");
    let config = dir.path().join("bus.conf");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*"/><allow own="*"/><allow receive_sender="*"/></policy></busconfig>"#,
            socket.display()
        ),
    )
    .expect("config");
    let child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .arg("--nofork")
        .stdout(Stdio::null())
        .spawn()
        .expect("dbus-daemon (package dbus-daemon) must be installed");
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let address = format!("unix:path={}", socket.display());
    let calls: Calls = Arc::default();
    let active = Arc::new(Mutex::new(
        [
            ("docker.service", true),
            ("hearth-agent.service", true),
            ("smbd.service", false),
        ]
        .into_iter()
        .map(|(n, a)| (n.to_string(), a))
        .collect(),
    ));
    let serve = |name: &'static str| {
        zbus::connection::Builder::address(address.as_str())
            .expect("address")
            .name(name)
            .expect("name")
    };
    let connections = vec![
        serve("org.freedesktop.systemd1")
            .serve_at(
                "/org/freedesktop/systemd1",
                MockSystemd {
                    calls: calls.clone(),
                    active,
                },
            )
            .expect("serve")
            .build()
            .await
            .expect("systemd1"),
        serve("org.freedesktop.login1")
            .serve_at(
                "/org/freedesktop/login1",
                MockLogin {
                    calls: calls.clone(),
                },
            )
            .expect("serve")
            .build()
            .await
            .expect("login1"),
        serve("org.freedesktop.hostname1")
            .serve_at(
                "/org/freedesktop/hostname1",
                MockHostname {
                    name: "hearth".into(),
                },
            )
            .expect("serve")
            .build()
            .await
            .expect("hostname1"),
        serve("org.freedesktop.timedate1")
            .serve_at(
                "/org/freedesktop/timedate1",
                MockTimedate {
                    zone: "Etc/UTC".into(),
                    ntp: true,
                },
            )
            .expect("serve")
            .build()
            .await
            .expect("timedate1"),
    ];
    Bus {
        child,
        address,
        _dir: dir,
        _connections: connections,
        calls,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_listed_and_controlled_within_the_allow_list() {
    let bus = private_bus().await;
    let address = bus.address.clone();
    let h = Harness::with_config(|c| c.system_bus_address = Some(address)).await;
    let mut admin = h.admin().await;

    let r = h.call(&mut admin, "GET", "/api/v1/services", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let docker = r
        .body
        .as_array()
        .expect("list")
        .iter()
        .find(|u| u["name"] == "docker.service")
        .cloned()
        .expect("docker");
    assert_eq!(
        (
            docker["active_state"].as_str(),
            docker["sub_state"].as_str()
        ),
        (Some("active"), Some("running"))
    );
    let agent = r
        .body
        .as_array()
        .expect("list")
        .iter()
        .find(|u| u["name"] == "hearth-agent.service")
        .cloned()
        .expect("agent");
    assert_eq!(agent["actions"], json!(["restart"]));

    assert_eq!(
        h.call(
            &mut admin,
            "POST",
            "/api/v1/services/docker.service/stop",
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let r = h.call(&mut admin, "GET", "/api/v1/services", None).await;
    let docker = r
        .body
        .as_array()
        .expect("list")
        .iter()
        .find(|u| u["name"] == "docker.service")
        .cloned()
        .expect("docker");
    assert_eq!(docker["active_state"], "inactive");
    assert_eq!(
        h.call(
            &mut admin,
            "POST",
            "/api/v1/services/smbd.service/start",
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );

    for (path, status, want) in [
        (
            "/api/v1/services/hearth-agent.service/stop",
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "/api/v1/services/sshd.service/start",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/v1/services/docker.service%3Breboot/start",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/v1/services/docker.service/kill",
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "/api/v1/services/ssh.service/start",
            StatusCode::CONFLICT,
            "system_refused",
        ),
    ] {
        let r = h.call(&mut admin, "POST", path, None).await;
        assert_eq!((r.status, code(&r)), (status, want), "{path}: {}", r.raw);
    }
    let calls = bus.calls.lock().expect("lock").clone();
    assert_eq!(
        calls,
        vec![
            "stop docker.service replace",
            "start smbd.service replace",
            "start ssh.service replace"
        ],
        "only allowed actions reached systemd"
    );

    let mut member = Browser::default();
    h.call(
        &mut admin,
        "POST",
        "/api/v1/users",
        Some(json!({"username": "kid", "password": common::inproc::PASSWORD, "role": "member"})),
    )
    .await;
    h.login(&mut member, "kid", common::inproc::PASSWORD).await;
    assert_eq!(
        h.call(&mut member, "GET", "/api/v1/services", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.call(
            &mut member,
            "POST",
            "/api/v1/services/docker.service/start",
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_power_go_through_hostname1_timedate1_and_login1() {
    let bus = private_bus().await;
    let address = bus.address.clone();
    let h = Harness::with_config(|c| c.system_bus_address = Some(address)).await;
    let mut admin = h.admin().await;
    let r = h
        .call(&mut admin, "GET", "/api/v1/system/settings", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(
        (r.body["timezone"].as_str(), r.body["ntp"].as_bool()),
        (Some("Etc/UTC"), Some(true))
    );

    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/system/settings",
            Some(json!({"hostname": "attic", "timezone": "Europe/Berlin", "ntp": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(
        (
            r.body["hostname"].as_str(),
            r.body["timezone"].as_str(),
            r.body["ntp"].as_bool()
        ),
        (Some("attic"), Some("Europe/Berlin"), Some(false))
    );
    let status = h
        .call(&mut admin, "GET", "/api/v1/system/status", None)
        .await;
    assert_eq!(
        status.body["hostname"], "attic",
        "the agent uses the new name too"
    );

    for bad in [
        json!({"hostname": "Bad_Name"}),
        json!({"timezone": "../../etc/shadow"}),
        json!({"hostname": "ok", "extra": 1}),
    ] {
        let r = h
            .call(
                &mut admin,
                "PATCH",
                "/api/v1/system/settings",
                Some(bad.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = h
        .call(&mut admin, "GET", "/api/v1/system/settings", None)
        .await;
    assert_eq!(
        r.body["hostname"], "attic",
        "refused changes change nothing"
    );

    let r = h
        .call(
            &mut admin,
            "POST",
            "/api/v1/system/reboot",
            Some(json!({"confirm": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        h.call(
            &mut admin,
            "POST",
            "/api/v1/system/reboot",
            Some(json!({"confirm": true}))
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        h.call(
            &mut admin,
            "POST",
            "/api/v1/system/poweroff",
            Some(json!({"confirm": true}))
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        h.call(
            &mut admin,
            "POST",
            "/api/v1/system/selfdestruct",
            Some(json!({"confirm": true}))
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let calls = bus.calls.lock().expect("lock").clone();
    assert_eq!(calls, vec!["reboot false", "poweroff false"]);
}

#[tokio::test]
async fn a_missing_system_bus_is_reported_as_unavailable() {
    let h =
        Harness::with_config(|c| c.system_bus_address = Some("unix:path=/nonexistent/bus".into()))
            .await;
    let mut admin = h.admin().await;
    let r = h.call(&mut admin, "GET", "/api/v1/services", None).await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/system/settings",
            Some(json!({"hostname": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = h
        .call(&mut admin, "GET", "/api/v1/system/status", None)
        .await;
    assert_ne!(r.body["hostname"], "x", "nothing was stored");
}
