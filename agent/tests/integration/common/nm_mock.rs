//! A mock NetworkManager on a private bus: the subset Hearth uses, with the real bus name,
//! object paths, interface names and signatures (`org.freedesktop.NetworkManager`, `.Device`,
//! `.Device.Wired`, `.Device.Wireless`, `.AccessPoint`, `.Settings`, `.Settings.Connection`,
//! `.Connection.Active`, `.IP4Config`, `.IP6Config`, `.Checkpoint`).
//!
//! Activation is immediate. A Wi-Fi profile whose `psk` differs from the access point's fails
//! like NetworkManager does: the active connection goes away and the device's `StateReason`
//! says `NO_SECRETS` (7). Checkpoints snapshot every profile and device and roll back by
//! themselves after the timeout the client passes, as NetworkManager's do.
//!
//! `serve_network_manager(address, MockNetworkConfig::…)` is the one call a test or a dev bus
//! needs. It depends on zbus and tokio only, so an example binary can include this file with
//! `#[path = "../tests/integration/common/nm_mock.rs"] mod nm_mock;`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zbus::object_server::ObjectServer;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};
use zbus::{fdo, interface};

pub type Settings = HashMap<String, HashMap<String, OwnedValue>>;

const NM: &str = "/org/freedesktop/NetworkManager";

fn op(p: String) -> OwnedObjectPath {
    OwnedObjectPath::try_from(p).expect("object path")
}

fn root() -> OwnedObjectPath {
    op("/".into())
}

fn ov<'a>(v: impl Into<Value<'a>>) -> OwnedValue {
    OwnedValue::try_from(v.into()).expect("plain value")
}

fn get_str(s: &Settings, setting: &str, key: &str) -> Option<String> {
    s.get(setting)?
        .get(key)
        .and_then(|v| String::try_from(v.clone()).ok())
}

fn get_ssid(s: &Settings) -> Option<String> {
    let bytes = s.get("802-11-wireless")?.get("ssid")?.clone();
    String::from_utf8(Vec::<u8>::try_from(bytes).ok()?).ok()
}

fn id_of(path: &OwnedObjectPath) -> Option<u32> {
    path.as_str().rsplit('/').next()?.parse().ok()
}

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop.NetworkManager")]
pub enum NmError {
    #[zbus(error)]
    ZBus(zbus::Error),
    InvalidArguments(String),
    UnknownConnection(String),
    UnknownDevice(String),
    ConnectionNotActive(String),
}

/// A DHCP lease the mock "receives" for `auto`.
#[derive(Debug, Clone)]
pub struct Lease {
    pub address: String,
    pub prefix: u32,
    pub gateway: String,
    pub dns: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MockDevice {
    pub name: String,
    /// `NMDeviceType`: 1 ethernet, 2 wifi, 13 bridge, 32 loopback.
    pub kind: u32,
    pub mac: String,
    pub speed: u32,
    /// `NMDeviceState` at start: 100 activated, 30 disconnected, 20 unavailable, 10 unmanaged.
    pub state: u32,
    pub lease: Option<Lease>,
}

#[derive(Debug, Clone)]
pub struct MockAccessPoint {
    pub ssid: String,
    pub strength: u8,
    pub frequency: u32,
    pub flags: u32,
    pub wpa_flags: u32,
    pub rsn_flags: u32,
    /// The passphrase it accepts (`None`: open).
    pub psk: Option<String>,
    /// Only seen after a `RequestScan`.
    pub after_scan: bool,
}

#[derive(Debug, Clone)]
pub struct MockNetworkConfig {
    pub devices: Vec<MockDevice>,
    pub access_points: Vec<MockAccessPoint>,
    /// Saved profiles; the first whose interface matches a device in state 100 is active there.
    pub profiles: Vec<Settings>,
}

pub fn ethernet_profile(id: &str, iface: &str) -> Settings {
    Settings::from([
        (
            "connection".into(),
            HashMap::from([
                ("id".into(), ov(id)),
                ("uuid".into(), ov(format!("uuid-{id}"))),
                ("type".into(), ov("802-3-ethernet")),
                ("interface-name".into(), ov(iface)),
            ]),
        ),
        (
            "ipv4".into(),
            HashMap::from([
                ("method".into(), ov("auto")),
                ("route-metric".into(), ov(-1i64)),
                // NetworkManager still reports the legacy key beside address-data.
                ("addresses".into(), ov(Vec::<Vec<u32>>::new())),
            ]),
        ),
        (
            "ipv6".into(),
            HashMap::from([("method".into(), ov("auto"))]),
        ),
    ])
}

pub fn wifi_profile(ssid: &str, psk: &str) -> Settings {
    Settings::from([
        (
            "connection".into(),
            HashMap::from([
                ("id".into(), ov(ssid)),
                ("type".into(), ov("802-11-wireless")),
            ]),
        ),
        (
            "802-11-wireless".into(),
            HashMap::from([
                ("ssid".into(), ov(ssid.as_bytes().to_vec())),
                ("mode".into(), ov("infrastructure")),
            ]),
        ),
        (
            "802-11-wireless-security".into(),
            HashMap::from([("key-mgmt".into(), ov("wpa-psk")), ("psk".into(), ov(psk))]),
        ),
        (
            "ipv4".into(),
            HashMap::from([("method".into(), ov("auto"))]),
        ),
    ])
}

fn ap(ssid: &str, strength: u8, frequency: u32, rsn: u32, psk: Option<&str>) -> MockAccessPoint {
    MockAccessPoint {
        ssid: ssid.into(),
        strength,
        frequency,
        flags: u32::from(rsn != 0),
        wpa_flags: 0,
        rsn_flags: rsn,
        psk: psk.map(str::to_string),
        after_scan: false,
    }
}

pub const HOME_PSK: &str = "correct horse battery";

impl MockNetworkConfig {
    /// eth0 connected by DHCP, wlan0 disconnected, lo unmanaged; five networks in range
    /// (HomeNet twice, on 2.4 and 5 GHz) and one more after a scan; a saved "Office" profile.
    pub fn home() -> Self {
        let lease = Lease {
            address: "192.168.1.50".into(),
            prefix: 24,
            gateway: "192.168.1.1".into(),
            dns: vec!["192.168.1.1".into()],
        };
        Self {
            devices: vec![
                MockDevice {
                    name: "lo".into(),
                    kind: 32,
                    mac: "00:00:00:00:00:00".into(),
                    speed: 0,
                    state: 10,
                    lease: None,
                },
                MockDevice {
                    name: "eth0".into(),
                    kind: 1,
                    mac: "52:54:00:12:34:56".into(),
                    speed: 1000,
                    state: 100,
                    lease: Some(lease.clone()),
                },
                MockDevice {
                    name: "wlan0".into(),
                    kind: 2,
                    mac: "52:54:00:ab:cd:ef".into(),
                    speed: 0,
                    state: 30,
                    lease: Some(Lease {
                        address: "192.168.1.77".into(),
                        ..lease
                    }),
                },
            ],
            access_points: vec![
                ap("HomeNet", 60, 2437, 0x188, Some(HOME_PSK)),
                ap("HomeNet", 85, 5180, 0x188, Some(HOME_PSK)),
                ap("CafeOpen", 40, 2412, 0, None),
                ap("Modern", 70, 5500, 0x488, Some("sae passphrase")),
                ap("Office", 55, 2462, 0x288, None),
                MockAccessPoint {
                    after_scan: true,
                    ..ap("Neighbour", 20, 2412, 0x188, Some("their secret"))
                },
            ],
            profiles: vec![
                ethernet_profile("Wired connection 1", "eth0"),
                wifi_profile("OldCafe", "old password"),
            ],
        }
    }

    /// First boot in a place without a network: no cable (eth0 unavailable), Wi-Fi idle.
    pub fn offline_with_wifi() -> Self {
        let mut c = Self::home();
        c.devices[1].state = 20;
        c.profiles.truncate(1);
        c
    }
}

#[derive(Debug, Clone)]
struct Dev {
    spec: MockDevice,
    state: u32,
    reason: u32,
    active: Option<u32>,
}

#[derive(Debug, Clone)]
struct ActiveRec {
    profile: u32,
    device: usize,
}

#[derive(Debug, Clone)]
struct Snapshot {
    devices: Vec<usize>,
    profiles: BTreeMap<u32, Settings>,
    dev: Vec<Dev>,
    actives: BTreeMap<u32, ActiveRec>,
}

/// Everything the mock knows; tests read it through [`MockNetwork`].
#[derive(Debug, Default)]
pub struct NmState {
    devs: Vec<Dev>,
    aps: Vec<MockAccessPoint>,
    scanned: bool,
    profiles: BTreeMap<u32, Settings>,
    volatile: Vec<u32>,
    actives: BTreeMap<u32, ActiveRec>,
    checkpoints: BTreeMap<u32, Snapshot>,
    next: u32,
    pub calls: Vec<String>,
}

type Shared = Arc<Mutex<NmState>>;

impl NmState {
    fn next_id(&mut self) -> u32 {
        self.next += 1;
        self.next
    }

    fn dev_index(&self, path: &OwnedObjectPath) -> Result<usize, NmError> {
        id_of(path)
            .and_then(|i| i.checked_sub(1))
            .map(|i| i as usize)
            .filter(|i| *i < self.devs.len())
            .ok_or_else(|| NmError::UnknownDevice(format!("no device {path}")))
    }

    fn visible_aps(&self) -> impl Iterator<Item = (usize, &MockAccessPoint)> {
        self.aps
            .iter()
            .enumerate()
            .filter(|(_, a)| self.scanned || !a.after_scan)
    }

    fn profile_on(&self, dev: usize) -> Option<&Settings> {
        let active = self.devs[dev].active?;
        self.profiles.get(&self.actives.get(&active)?.profile)
    }

    fn online(&self) -> bool {
        (0..self.devs.len()).any(|i| {
            self.devs[i].state == 100
                && self
                    .profile_on(i)
                    .is_some_and(|p| get_str(p, "802-11-wireless", "mode").as_deref() != Some("ap"))
        })
    }

    fn deactivate_device(&mut self, dev: usize) {
        if let Some(a) = self.devs[dev].active.take()
            && let Some(rec) = self.actives.remove(&a)
            && self.volatile.contains(&rec.profile)
        {
            self.profiles.remove(&rec.profile);
        }
        if self.devs[dev].state == 100 {
            self.devs[dev].state = 30;
        }
    }

    /// Activates `profile` on `dev` at once; `Ok(None)` means it failed the way a wrong
    /// password fails.
    fn activate(&mut self, profile: u32, dev: usize) -> Result<Option<u32>, NmError> {
        let settings = self
            .profiles
            .get(&profile)
            .cloned()
            .ok_or_else(|| NmError::UnknownConnection(format!("no connection {profile}")))?;
        let kind = self.devs[dev].spec.kind;
        let wifi = get_str(&settings, "connection", "type").as_deref() == Some("802-11-wireless");
        if (kind == 2) != wifi || !matches!(kind, 1 | 2) {
            return Err(NmError::InvalidArguments(
                "connection is not compatible with the device".into(),
            ));
        }
        if self.devs[dev].state <= 20 {
            return Err(NmError::UnknownDevice("device not available".into()));
        }
        if let Some(a) = self.devs[dev].active
            && let Some(rec) = self.actives.remove(&a)
            && rec.profile != profile
            && self.volatile.contains(&rec.profile)
        {
            self.profiles.remove(&rec.profile);
        }
        self.devs[dev].active = None;
        if wifi && get_str(&settings, "802-11-wireless", "mode").as_deref() != Some("ap") {
            let ssid = get_ssid(&settings).unwrap_or_default();
            let psk = get_str(&settings, "802-11-wireless-security", "psk");
            let Some((_, ap)) = self.visible_aps().find(|(_, a)| a.ssid == ssid) else {
                self.devs[dev].state = 30;
                self.devs[dev].reason = 53; // SSID_NOT_FOUND
                return Ok(None);
            };
            if ap.psk.is_some() && ap.psk != psk {
                self.devs[dev].state = 30;
                self.devs[dev].reason = 7; // NO_SECRETS
                return Ok(None);
            }
        }
        let id = self.next_id();
        self.actives.insert(
            id,
            ActiveRec {
                profile,
                device: dev,
            },
        );
        self.devs[dev].active = Some(id);
        self.devs[dev].state = 100;
        self.devs[dev].reason = 0;
        Ok(Some(id))
    }

    fn snapshot(&self, devices: Vec<usize>) -> Snapshot {
        Snapshot {
            devices,
            profiles: self.profiles.clone(),
            dev: self.devs.clone(),
            actives: self.actives.clone(),
        }
    }

    fn restore(&mut self, snap: &Snapshot) {
        for (id, s) in &snap.profiles {
            if self.profiles.contains_key(id) {
                self.profiles.insert(*id, s.clone());
            }
        }
        for &d in &snap.devices {
            if let Some(a) = self.devs[d].active.take() {
                self.actives.remove(&a);
            }
            self.devs[d] = snap.dev[d].clone();
            if let Some(a) = self.devs[d].active
                && let Some(rec) = snap.actives.get(&a)
            {
                self.actives.insert(a, rec.clone());
            }
        }
    }
}

struct Root {
    s: Shared,
}

impl Root {
    async fn publish_active(server: &ObjectServer, s: &Shared, id: u32) {
        let _ = server
            .at(
                format!("{NM}/ActiveConnection/{id}"),
                Active { s: s.clone(), id },
            )
            .await;
    }

    async fn add_profile(&self, server: &ObjectServer, settings: Settings, volatile: bool) -> u32 {
        let id = {
            let mut st = self.s.lock().expect("lock");
            let id = st.next_id();
            st.profiles.insert(id, settings);
            if volatile {
                st.volatile.push(id);
            }
            id
        };
        let _ = server
            .at(
                format!("{NM}/Settings/{id}"),
                Connection {
                    s: self.s.clone(),
                    id,
                },
            )
            .await;
        id
    }

    async fn add_and_activate(
        &self,
        server: &ObjectServer,
        connection: Settings,
        device: OwnedObjectPath,
        volatile: bool,
    ) -> Result<(OwnedObjectPath, OwnedObjectPath), NmError> {
        let dev = self.s.lock().expect("lock").dev_index(&device)?;
        let id = get_str(&connection, "connection", "id").unwrap_or_default();
        self.s
            .lock()
            .expect("lock")
            .calls
            .push(format!("add-activate {id}"));
        let profile = self.add_profile(server, connection, volatile).await;
        let active = self.s.lock().expect("lock").activate(profile, dev)?;
        // A failed activation still hands out an active-connection path that then vanishes.
        let active = match active {
            Some(a) => {
                Self::publish_active(server, &self.s, a).await;
                a
            }
            None => self.s.lock().expect("lock").next_id(),
        };
        Ok((
            op(format!("{NM}/Settings/{profile}")),
            op(format!("{NM}/ActiveConnection/{active}")),
        ))
    }
}

#[interface(name = "org.freedesktop.NetworkManager")]
impl Root {
    fn get_devices(&self) -> Vec<OwnedObjectPath> {
        let n = self.s.lock().expect("lock").devs.len();
        (1..=n).map(|i| op(format!("{NM}/Devices/{i}"))).collect()
    }

    async fn activate_connection(
        &self,
        connection: OwnedObjectPath,
        device: OwnedObjectPath,
        _specific_object: OwnedObjectPath,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, NmError> {
        let result = {
            let mut st = self.s.lock().expect("lock");
            let dev = st.dev_index(&device)?;
            let profile = id_of(&connection)
                .ok_or_else(|| NmError::UnknownConnection(connection.to_string()))?;
            let line = format!("activate {} on {}", profile, st.devs[dev].spec.name);
            st.calls.push(line);
            let active = st.activate(profile, dev)?;
            active.unwrap_or_else(|| st.next_id())
        };
        Self::publish_active(server, &self.s, result).await;
        Ok(op(format!("{NM}/ActiveConnection/{result}")))
    }

    async fn add_and_activate_connection(
        &self,
        connection: Settings,
        device: OwnedObjectPath,
        _specific_object: OwnedObjectPath,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<(OwnedObjectPath, OwnedObjectPath), NmError> {
        self.add_and_activate(server, connection, device, false)
            .await
    }

    async fn add_and_activate_connection2(
        &self,
        connection: Settings,
        device: OwnedObjectPath,
        _specific_object: OwnedObjectPath,
        options: HashMap<String, OwnedValue>,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<
        (
            OwnedObjectPath,
            OwnedObjectPath,
            HashMap<String, OwnedValue>,
        ),
        NmError,
    > {
        let volatile = options
            .get("persist")
            .and_then(|v| String::try_from(v.clone()).ok())
            .as_deref()
            == Some("volatile");
        let (p, a) = self
            .add_and_activate(server, connection, device, volatile)
            .await?;
        Ok((p, a, HashMap::new()))
    }

    fn deactivate_connection(&self, active_connection: OwnedObjectPath) -> Result<(), NmError> {
        let mut st = self.s.lock().expect("lock");
        let id = id_of(&active_connection).unwrap_or(0);
        let dev = st
            .actives
            .get(&id)
            .map(|r| r.device)
            .ok_or_else(|| NmError::ConnectionNotActive("not active".into()))?;
        st.calls.push(format!("deactivate {id}"));
        st.deactivate_device(dev);
        Ok(())
    }

    async fn checkpoint_create(
        &self,
        devices: Vec<OwnedObjectPath>,
        rollback_timeout: u32,
        _flags: u32,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<OwnedObjectPath, NmError> {
        let id = {
            let mut st = self.s.lock().expect("lock");
            let idx = devices
                .iter()
                .map(|d| st.dev_index(d))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some((c, _)) = st
                .checkpoints
                .iter()
                .find(|(_, s)| s.devices.iter().any(|d| idx.contains(d)))
            {
                return Err(NmError::InvalidArguments(format!(
                    "device is already included in checkpoint {c}"
                )));
            }
            let id = st.next_id();
            st.calls
                .push(format!("checkpoint {id} timeout {rollback_timeout}"));
            let snap = st.snapshot(idx);
            st.checkpoints.insert(id, snap);
            id
        };
        let path = format!("{NM}/Checkpoint/{id}");
        let _ = conn
            .object_server()
            .at(
                path.as_str(),
                Checkpoint {
                    s: self.s.clone(),
                    id,
                    timeout: rollback_timeout,
                },
            )
            .await;
        if rollback_timeout > 0 {
            let (s, conn) = (self.s.clone(), conn.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(u64::from(rollback_timeout))).await;
                let _ = rollback(&s, conn.object_server(), id, "timeout").await;
            });
        }
        Ok(op(path))
    }

    async fn checkpoint_destroy(
        &self,
        checkpoint: OwnedObjectPath,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<(), NmError> {
        let id = id_of(&checkpoint).unwrap_or(0);
        let gone = {
            let mut st = self.s.lock().expect("lock");
            let gone = st.checkpoints.remove(&id).is_some();
            if gone {
                st.calls.push(format!("destroy {id}"));
            }
            gone
        };
        if !gone {
            return Err(NmError::InvalidArguments(
                "checkpoint does not exist".into(),
            ));
        }
        let _ = server.remove::<Checkpoint, _>(checkpoint.as_str()).await;
        Ok(())
    }

    async fn checkpoint_rollback(
        &self,
        checkpoint: OwnedObjectPath,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<HashMap<String, u32>, NmError> {
        rollback(&self.s, server, id_of(&checkpoint).unwrap_or(0), "request").await
    }

    #[zbus(property)]
    fn state(&self) -> u32 {
        if self.s.lock().expect("lock").online() {
            70
        } else {
            20
        }
    }

    #[zbus(property)]
    fn connectivity(&self) -> u32 {
        if self.s.lock().expect("lock").online() {
            4
        } else {
            1
        }
    }
}

async fn rollback(
    s: &Shared,
    server: &ObjectServer,
    id: u32,
    why: &str,
) -> Result<HashMap<String, u32>, NmError> {
    let (devices, actives) = {
        let mut st = s.lock().expect("lock");
        let snap = st
            .checkpoints
            .remove(&id)
            .ok_or_else(|| NmError::InvalidArguments("checkpoint does not exist".into()))?;
        st.restore(&snap);
        st.calls.push(format!("rollback {id} ({why})"));
        let actives: Vec<u32> = snap
            .devices
            .iter()
            .filter_map(|d| st.devs[*d].active)
            .collect();
        (snap.devices, actives)
    };
    for a in actives {
        Root::publish_active(server, s, a).await;
    }
    let _ = server
        .remove::<Checkpoint, _>(format!("{NM}/Checkpoint/{id}"))
        .await;
    Ok(devices
        .into_iter()
        .map(|d| (format!("{NM}/Devices/{}", d + 1), 0))
        .collect())
}

struct Checkpoint {
    s: Shared,
    id: u32,
    timeout: u32,
}

#[interface(name = "org.freedesktop.NetworkManager.Checkpoint")]
impl Checkpoint {
    #[zbus(property)]
    fn devices(&self) -> Vec<OwnedObjectPath> {
        let st = self.s.lock().expect("lock");
        st.checkpoints
            .get(&self.id)
            .map(|c| {
                c.devices
                    .iter()
                    .map(|d| op(format!("{NM}/Devices/{}", d + 1)))
                    .collect()
            })
            .unwrap_or_default()
    }
    #[zbus(property)]
    fn rollback_timeout(&self) -> u32 {
        self.timeout
    }
}

struct Device {
    s: Shared,
    i: usize,
}

impl Device {
    fn with<T>(&self, f: impl FnOnce(&NmState, &Dev) -> T) -> T {
        let st = self.s.lock().expect("lock");
        f(&st, &st.devs[self.i])
    }
}

#[interface(name = "org.freedesktop.NetworkManager.Device")]
impl Device {
    #[zbus(property)]
    fn interface(&self) -> String {
        self.with(|_, d| d.spec.name.clone())
    }
    #[zbus(property)]
    fn device_type(&self) -> u32 {
        self.with(|_, d| d.spec.kind)
    }
    #[zbus(property)]
    fn state(&self) -> u32 {
        self.with(|_, d| d.state)
    }
    #[zbus(property)]
    fn state_reason(&self) -> (u32, u32) {
        self.with(|_, d| (d.state, d.reason))
    }
    #[zbus(property)]
    fn hw_address(&self) -> String {
        self.with(|_, d| d.spec.mac.clone())
    }
    #[zbus(property)]
    fn ip4_config(&self) -> OwnedObjectPath {
        self.with(|_, d| match d.state {
            100 => op(format!("{NM}/IP4Config/{}", self.i + 1)),
            _ => root(),
        })
    }
    #[zbus(property)]
    fn ip6_config(&self) -> OwnedObjectPath {
        self.with(|_, d| match d.state {
            100 => op(format!("{NM}/IP6Config/{}", self.i + 1)),
            _ => root(),
        })
    }
    #[zbus(property)]
    fn active_connection(&self) -> OwnedObjectPath {
        self.with(|_, d| match d.active {
            Some(a) => op(format!("{NM}/ActiveConnection/{a}")),
            None => root(),
        })
    }
    #[zbus(property)]
    fn available_connections(&self) -> Vec<OwnedObjectPath> {
        self.with(|st, d| {
            st.profiles
                .iter()
                .filter(|(_, p)| {
                    let ty = get_str(p, "connection", "type");
                    let iface = get_str(p, "connection", "interface-name");
                    let fits = match d.spec.kind {
                        1 => ty.as_deref() == Some("802-3-ethernet"),
                        2 => ty.as_deref() == Some("802-11-wireless"),
                        _ => false,
                    };
                    fits && iface.is_none_or(|i| i == d.spec.name)
                })
                .map(|(id, _)| op(format!("{NM}/Settings/{id}")))
                .collect()
        })
    }
}

struct Wired {
    s: Shared,
    i: usize,
}

#[interface(name = "org.freedesktop.NetworkManager.Device.Wired")]
impl Wired {
    #[zbus(property)]
    fn speed(&self) -> u32 {
        let st = self.s.lock().expect("lock");
        if st.devs[self.i].state == 100 {
            st.devs[self.i].spec.speed
        } else {
            0
        }
    }
}

struct Wireless {
    s: Shared,
    i: usize,
}

#[interface(name = "org.freedesktop.NetworkManager.Device.Wireless")]
impl Wireless {
    fn get_all_access_points(&self) -> Vec<OwnedObjectPath> {
        let st = self.s.lock().expect("lock");
        st.visible_aps()
            .map(|(i, _)| op(format!("{NM}/AccessPoint/{}", i + 1)))
            .collect()
    }

    fn request_scan(&self, _options: HashMap<String, OwnedValue>) {
        let mut st = self.s.lock().expect("lock");
        st.scanned = true;
        st.calls.push("scan".into());
    }

    #[zbus(property)]
    fn active_access_point(&self) -> OwnedObjectPath {
        let st = self.s.lock().expect("lock");
        let Some(ssid) = st.profile_on(self.i).and_then(get_ssid) else {
            return root();
        };
        st.visible_aps()
            .filter(|(_, a)| a.ssid == ssid)
            .max_by_key(|(_, a)| a.strength)
            .map_or_else(root, |(i, _)| op(format!("{NM}/AccessPoint/{}", i + 1)))
    }

    #[zbus(property)]
    fn bitrate(&self) -> u32 {
        if self.s.lock().expect("lock").devs[self.i].state == 100 {
            270_000
        } else {
            0
        }
    }
}

struct AccessPoint {
    ap: MockAccessPoint,
}

#[interface(name = "org.freedesktop.NetworkManager.AccessPoint")]
impl AccessPoint {
    #[zbus(property)]
    fn ssid(&self) -> Vec<u8> {
        self.ap.ssid.as_bytes().to_vec()
    }
    #[zbus(property)]
    fn strength(&self) -> u8 {
        self.ap.strength
    }
    #[zbus(property)]
    fn frequency(&self) -> u32 {
        self.ap.frequency
    }
    #[zbus(property)]
    fn flags(&self) -> u32 {
        self.ap.flags
    }
    #[zbus(property)]
    fn wpa_flags(&self) -> u32 {
        self.ap.wpa_flags
    }
    #[zbus(property)]
    fn rsn_flags(&self) -> u32 {
        self.ap.rsn_flags
    }
}

struct SettingsRoot {
    s: Shared,
}

#[interface(name = "org.freedesktop.NetworkManager.Settings")]
impl SettingsRoot {
    fn list_connections(&self) -> Vec<OwnedObjectPath> {
        let st = self.s.lock().expect("lock");
        st.profiles
            .keys()
            .map(|id| op(format!("{NM}/Settings/{id}")))
            .collect()
    }
}

struct Connection {
    s: Shared,
    id: u32,
}

impl Connection {
    fn settings(&self) -> Result<Settings, NmError> {
        self.s
            .lock()
            .expect("lock")
            .profiles
            .get(&self.id)
            .cloned()
            .ok_or_else(|| NmError::UnknownConnection("deleted".into()))
    }
}

#[interface(name = "org.freedesktop.NetworkManager.Settings.Connection")]
impl Connection {
    /// Without secrets, as NetworkManager answers.
    fn get_settings(&self) -> Result<Settings, NmError> {
        let mut s = self.settings()?;
        if let Some(sec) = s.get_mut("802-11-wireless-security") {
            sec.remove("psk");
        }
        Ok(s)
    }

    fn get_secrets(&self, setting_name: String) -> Result<Settings, NmError> {
        let s = self.settings()?;
        let psk = s
            .get(&setting_name)
            .and_then(|m| m.get("psk"))
            .cloned()
            .into_iter()
            .map(|v| ("psk".to_string(), v))
            .collect();
        Ok(Settings::from([(setting_name, psk)]))
    }

    /// Replaces the whole profile, secrets included, as NetworkManager does.
    fn update(&self, properties: Settings) -> Result<(), NmError> {
        self.settings()?;
        let mut st = self.s.lock().expect("lock");
        st.calls.push(format!("update {}", self.id));
        st.profiles.insert(self.id, properties);
        Ok(())
    }

    fn delete(&self) -> Result<(), NmError> {
        self.settings()?;
        let mut st = self.s.lock().expect("lock");
        let id = st
            .profiles
            .get(&self.id)
            .and_then(|p| get_str(p, "connection", "id"));
        st.calls.push(format!("delete {}", id.unwrap_or_default()));
        st.profiles.remove(&self.id);
        let on: Vec<usize> = (0..st.devs.len())
            .filter(|d| {
                st.devs[*d]
                    .active
                    .and_then(|a| st.actives.get(&a))
                    .is_some_and(|r| r.profile == self.id)
            })
            .collect();
        for d in on {
            st.deactivate_device(d);
        }
        Ok(())
    }
}

struct Active {
    s: Shared,
    id: u32,
}

impl Active {
    fn rec(&self) -> fdo::Result<(ActiveRec, Settings)> {
        let st = self.s.lock().expect("lock");
        let rec = st
            .actives
            .get(&self.id)
            .cloned()
            .ok_or_else(|| fdo::Error::UnknownObject("gone".into()))?;
        let s = st.profiles.get(&rec.profile).cloned().unwrap_or_default();
        Ok((rec, s))
    }
}

#[interface(name = "org.freedesktop.NetworkManager.Connection.Active")]
impl Active {
    #[zbus(property)]
    fn id(&self) -> fdo::Result<String> {
        Ok(get_str(&self.rec()?.1, "connection", "id").unwrap_or_default())
    }
    #[zbus(property)]
    fn connection(&self) -> fdo::Result<OwnedObjectPath> {
        Ok(op(format!("{NM}/Settings/{}", self.rec()?.0.profile)))
    }
    #[zbus(property)]
    fn state(&self) -> fdo::Result<u32> {
        self.rec().map(|_| 2)
    }
    #[zbus(property)]
    fn devices(&self) -> fdo::Result<Vec<OwnedObjectPath>> {
        Ok(vec![op(format!(
            "{NM}/Devices/{}",
            self.rec()?.0.device + 1
        ))])
    }
}

/// The addresses a device has now: its profile's for `manual`, its lease's for `auto`.
fn family_state(
    st: &NmState,
    dev: usize,
    family: &str,
) -> (Vec<(String, u32)>, String, Vec<String>) {
    let d = &st.devs[dev];
    let Some(p) = st.profile_on(dev) else {
        return (Vec::new(), String::new(), Vec::new());
    };
    // NetworkManager fills a missing method with `auto`.
    let method = get_str(p, family, "method").unwrap_or_else(|| "auto".into());
    match Some(method.as_str()) {
        Some("manual") => {
            let addrs = p
                .get(family)
                .and_then(|m| m.get("address-data"))
                .and_then(|v| Vec::<HashMap<String, OwnedValue>>::try_from(v.clone()).ok())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|e| {
                    Some((
                        String::try_from(e.get("address")?.clone()).ok()?,
                        u32::try_from(e.get("prefix")?.clone()).ok()?,
                    ))
                })
                .collect();
            let dns = p.get(family).and_then(|m| m.get("dns")).cloned();
            let dns = match (family, dns) {
                ("ipv4", Some(v)) => Vec::<u32>::try_from(v)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|n| std::net::Ipv4Addr::from(n.to_ne_bytes()).to_string())
                    .collect(),
                (_, Some(v)) => Vec::<Vec<u8>>::try_from(v)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|b| <[u8; 16]>::try_from(b).ok())
                    .map(|b| std::net::Ipv6Addr::from(b).to_string())
                    .collect(),
                _ => Vec::new(),
            };
            (
                addrs,
                get_str(p, family, "gateway").unwrap_or_default(),
                dns,
            )
        }
        Some("shared") => (vec![("10.42.0.1".into(), 24)], String::new(), Vec::new()),
        Some("auto") if family == "ipv4" => match &d.spec.lease {
            Some(l) => (
                vec![(l.address.clone(), l.prefix)],
                l.gateway.clone(),
                l.dns.clone(),
            ),
            None => (Vec::new(), String::new(), Vec::new()),
        },
        _ => (Vec::new(), String::new(), Vec::new()),
    }
}

fn address_data(addrs: Vec<(String, u32)>) -> Vec<HashMap<String, OwnedValue>> {
    addrs
        .into_iter()
        .map(|(a, p)| HashMap::from([("address".into(), ov(a)), ("prefix".into(), ov(p))]))
        .collect()
}

struct Ip4Config {
    s: Shared,
    i: usize,
}

#[interface(name = "org.freedesktop.NetworkManager.IP4Config")]
impl Ip4Config {
    #[zbus(property)]
    fn address_data(&self) -> Vec<HashMap<String, OwnedValue>> {
        address_data(family_state(&self.s.lock().expect("lock"), self.i, "ipv4").0)
    }
    #[zbus(property)]
    fn gateway(&self) -> String {
        family_state(&self.s.lock().expect("lock"), self.i, "ipv4").1
    }
    #[zbus(property)]
    fn nameserver_data(&self) -> Vec<HashMap<String, OwnedValue>> {
        family_state(&self.s.lock().expect("lock"), self.i, "ipv4")
            .2
            .into_iter()
            .map(|a| HashMap::from([("address".to_string(), ov(a))]))
            .collect()
    }
}

struct Ip6Config {
    s: Shared,
    i: usize,
}

#[interface(name = "org.freedesktop.NetworkManager.IP6Config")]
impl Ip6Config {
    #[zbus(property)]
    fn address_data(&self) -> Vec<HashMap<String, OwnedValue>> {
        address_data(family_state(&self.s.lock().expect("lock"), self.i, "ipv6").0)
    }
    #[zbus(property)]
    fn gateway(&self) -> String {
        family_state(&self.s.lock().expect("lock"), self.i, "ipv6").1
    }
    #[zbus(property)]
    fn nameservers(&self) -> Vec<Vec<u8>> {
        family_state(&self.s.lock().expect("lock"), self.i, "ipv6")
            .2
            .into_iter()
            .filter_map(|a| a.parse::<std::net::Ipv6Addr>().ok())
            .map(|a| a.octets().to_vec())
            .collect()
    }
}

/// The running mock: keep it alive as long as the test needs NetworkManager.
pub struct MockNetwork {
    pub connection: zbus::Connection,
    pub state: Shared,
}

impl MockNetwork {
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().expect("lock").calls.clone()
    }

    /// The stored profile (with secrets) whose `connection.id` is `id`.
    pub fn profile(&self, id: &str) -> Option<Settings> {
        let st = self.state.lock().expect("lock");
        st.profiles
            .values()
            .find(|p| get_str(p, "connection", "id").as_deref() == Some(id))
            .cloned()
    }

    pub fn profile_ids(&self) -> Vec<String> {
        let st = self.state.lock().expect("lock");
        st.profiles
            .values()
            .filter_map(|p| get_str(p, "connection", "id"))
            .collect()
    }

    /// The id of the profile active on `iface`.
    pub fn active_on(&self, iface: &str) -> Option<String> {
        let st = self.state.lock().expect("lock");
        let i = st.devs.iter().position(|d| d.spec.name == iface)?;
        st.profile_on(i)
            .and_then(|p| get_str(p, "connection", "id"))
    }

    pub fn pending_checkpoints(&self) -> usize {
        self.state.lock().expect("lock").checkpoints.len()
    }
}

/// Serves a mock NetworkManager on the bus at `address` under its real name.
pub async fn serve_network_manager(address: &str, config: MockNetworkConfig) -> MockNetwork {
    let state: Shared = Arc::default();
    {
        let mut st = state.lock().expect("lock");
        st.aps = config.access_points.clone();
        st.devs = config
            .devices
            .iter()
            .map(|d| Dev {
                spec: d.clone(),
                state: d.state,
                reason: 0,
                active: None,
            })
            .collect();
    }
    let connection = zbus::connection::Builder::address(address)
        .expect("address")
        .name("org.freedesktop.NetworkManager")
        .expect("name")
        .serve_at(NM, Root { s: state.clone() })
        .expect("serve")
        .serve_at(format!("{NM}/Settings"), SettingsRoot { s: state.clone() })
        .expect("serve")
        .build()
        .await
        .expect("NetworkManager mock");
    let server = connection.object_server();
    for (i, d) in config.devices.iter().enumerate() {
        let at = format!("{NM}/Devices/{}", i + 1);
        let s = state.clone();
        server
            .at(at.as_str(), Device { s: s.clone(), i })
            .await
            .expect("device");
        match d.kind {
            1 => server.at(at.as_str(), Wired { s: s.clone(), i }).await,
            2 => server.at(at.as_str(), Wireless { s: s.clone(), i }).await,
            _ => Ok(true),
        }
        .expect("device kind");
        server
            .at(
                format!("{NM}/IP4Config/{}", i + 1),
                Ip4Config { s: s.clone(), i },
            )
            .await
            .expect("ip4");
        server
            .at(format!("{NM}/IP6Config/{}", i + 1), Ip6Config { s, i })
            .await
            .expect("ip6");
    }
    for (i, ap) in config.access_points.iter().enumerate() {
        server
            .at(
                format!("{NM}/AccessPoint/{}", i + 1),
                AccessPoint { ap: ap.clone() },
            )
            .await
            .expect("ap");
    }
    let root = Root { s: state.clone() };
    for p in config.profiles {
        let iface = get_str(&p, "connection", "interface-name");
        let id = root.add_profile(server, p, false).await;
        let dev = iface.and_then(|n| {
            let st = state.lock().expect("lock");
            st.devs
                .iter()
                .position(|d| d.spec.name == n && d.state == 100)
        });
        if let Some(dev) = dev {
            let active = state
                .lock()
                .expect("lock")
                .activate(id, dev)
                .expect("activate");
            if let Some(a) = active {
                Root::publish_active(server, &state, a).await;
            }
        }
    }
    MockNetwork { connection, state }
}
