//! Mock systemd1, login1, hostname1 and timedate1 services on a private `dbus-daemon`, with
//! the real interface names and signatures (the subset Hearth uses).

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use zbus::interface;
use zbus::zvariant::OwnedObjectPath;

pub type Calls = Arc<Mutex<Vec<String>>>;

struct MockSystemd {
    calls: Calls,
    active: Arc<Mutex<std::collections::HashMap<String, bool>>>,
    /// Transient mount units: unit name → mount point. The mock mounts for real, as systemd would.
    mounts: Arc<Mutex<std::collections::HashMap<String, String>>>,
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
        if let Some(point) = self.mounts.lock().expect("lock").remove(&name) {
            self.calls
                .lock()
                .expect("lock")
                .push(format!("stop {name} {mode}"));
            let status = std::process::Command::new("umount")
                .arg(&point)
                .status()
                .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
            return if status.success() {
                Ok(job())
            } else {
                Err(zbus::fdo::Error::Failed(format!("umount {point} failed")))
            };
        }
        self.set(name, mode, "stop", false)
    }

    fn start_transient_unit(
        &self,
        name: String,
        mode: String,
        properties: Vec<(String, zbus::zvariant::OwnedValue)>,
        _aux: Vec<(String, Vec<(String, zbus::zvariant::OwnedValue)>)>,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        let prop = |key: &str| -> String {
            properties
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| String::try_from(v.clone()).ok())
                .unwrap_or_default()
        };
        let (what, point, fs, options) =
            (prop("What"), prop("Where"), prop("Type"), prop("Options"));
        self.calls.lock().expect("lock").push(format!(
            "transient {name} {mode} {what} {point} {fs} {options}"
        ));
        let status = std::process::Command::new("mount")
            .args(["-t", &fs, "-o", &options, &what, &point])
            .status()
            .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
        if !status.success() {
            return Err(zbus::fdo::Error::Failed(format!("mount {what} failed")));
        }
        self.mounts.lock().expect("lock").insert(name, point);
        Ok(job())
    }

    fn restart_unit(&self, name: String, mode: String) -> zbus::fdo::Result<OwnedObjectPath> {
        self.set(name, mode, "restart", true)
    }
}

fn job() -> OwnedObjectPath {
    OwnedObjectPath::try_from("/org/freedesktop/systemd1/job/1").expect("path")
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

pub struct Bus {
    child: Child,
    /// Kept open so that the daemon never writes into a closed pipe.
    _stdout: std::process::ChildStdout,
    pub address: String,
    _dir: tempfile::TempDir,
    _connections: Vec<zbus::Connection>,
    pub calls: Calls,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn private_bus() -> Bus {
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
    let mut child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .arg("--nofork")
        .arg("--print-address")
        .stdout(Stdio::piped())
        .spawn()
        .expect("dbus-daemon (package dbus-daemon) must be installed");
    // dbus-daemon prints its address once it listens: the readiness handshake.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut stdout), &mut line)
        .expect("read the bus address");
    assert!(
        line.starts_with("unix:"),
        "dbus-daemon exited before it listened: {line:?}"
    );
    let address = format!("unix:path={}", socket.display());
    let calls: Calls = Arc::default();
    let connections = register_mocks(&address, &calls).await;
    Bus {
        child,
        _stdout: stdout,
        address,
        _dir: dir,
        _connections: connections,
        calls,
    }
}

/// Claims the well-known `name` on the bus at `address` and serves `mock` at the object path
/// spelled like the name (`org.freedesktop.login1` → `/org/freedesktop/login1`).
async fn serve<I: zbus::object_server::Interface>(
    address: &str,
    name: &'static str,
    mock: I,
) -> zbus::Connection {
    let path = format!("/{}", name.replace('.', "/"));
    zbus::connection::Builder::address(address)
        .expect("address")
        .name(name)
        .expect("name")
        .serve_at(path, mock)
        .expect("serve")
        .build()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Registers every mock service on the bus at `address`, recording calls in `calls`.
/// Another mock is one more line here.
pub async fn register_mocks(address: &str, calls: &Calls) -> Vec<zbus::Connection> {
    let units = [
        ("docker.service", true),
        ("hearth-agent.service", true),
        ("smbd.service", false),
    ];
    let active = Arc::new(Mutex::new(
        units.into_iter().map(|(n, a)| (n.to_string(), a)).collect(),
    ));
    let systemd = MockSystemd {
        calls: calls.clone(),
        active,
        mounts: Arc::default(),
    };
    let login = MockLogin {
        calls: calls.clone(),
    };
    let hostname = MockHostname {
        name: "hearth".into(),
    };
    let timedate = MockTimedate {
        zone: "Etc/UTC".into(),
        ntp: true,
    };
    vec![
        serve(address, "org.freedesktop.systemd1", systemd).await,
        serve(address, "org.freedesktop.login1", login).await,
        serve(address, "org.freedesktop.hostname1", hostname).await,
        serve(address, "org.freedesktop.timedate1", timedate).await,
    ]
}
