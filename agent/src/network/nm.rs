//! The real [`NetworkControl`]: NetworkManager over D-Bus. Like `system::dbus`, the connection
//! is made on first use, so a machine without NetworkManager answers "unavailable" instead of
//! failing to start.

use super::proxies::{
    AccessPointProxy, ActiveProxy, CHECKPOINT_PREFIX, ConnectionProxy, DeviceProxy, Ip4ConfigProxy,
    Ip6ConfigProxy, NetworkManagerProxy, NmSettingsProxy, WiredProxy, WirelessProxy,
};
use super::settings::{self, Settings};
use super::{
    Connectivity, HotspotHandle, Interface, InterfaceKind, InterfaceState, IpChange, IpMethod,
    IpState, NetworkControl, NetworkError, WifiList, WifiNetwork, WifiSecurity,
};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::OnceCell;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, Value};

const DEVICE_ETHERNET: u32 = 1;
const DEVICE_WIFI: u32 = 2;
const DEVICE_BRIDGE: u32 = 13;
const DEVICE_LOOPBACK: u32 = 32;

#[derive(Debug)]
pub struct NmNetwork {
    /// `None`: the system bus; otherwise a bus address (tests use a private bus).
    address: Option<String>,
    connection: OnceCell<zbus::Connection>,
    /// How long a Wi-Fi connection may take to come up.
    activation_timeout: Duration,
}

/// Maps a D-Bus failure: no NetworkManager on the bus is "unavailable", anything else is
/// NetworkManager's refusal, with its message.
fn nm_err(e: zbus::Error) -> NetworkError {
    use zbus::DBusError;
    let (name, detail) = match &e {
        zbus::Error::MethodError(name, detail, _) => {
            (name.to_string(), detail.clone().unwrap_or_default())
        }
        zbus::Error::FDO(fdo) => (
            fdo.name().to_string(),
            fdo.description().unwrap_or_default().to_string(),
        ),
        other => return NetworkError::Refused(other.to_string()),
    };
    if name.ends_with(".ServiceUnknown") || name.ends_with(".NameHasNoOwner") {
        NetworkError::Unavailable("NetworkManager is not running".into())
    } else if detail.is_empty() {
        NetworkError::Refused(name)
    } else {
        NetworkError::Refused(detail)
    }
}

fn path(p: &str) -> Result<ObjectPath<'_>, NetworkError> {
    ObjectPath::try_from(p).map_err(|e| NetworkError::Refused(e.to_string()))
}

fn root() -> ObjectPath<'static> {
    ObjectPath::from_static_str_unchecked("/")
}

/// A proxy at `path` that reads every property fresh.
async fn px<'a, T>(conn: &zbus::Connection, at: &'a OwnedObjectPath) -> Result<T, NetworkError>
where
    T: From<zbus::Proxy<'a>> + zbus::proxy::Defaults,
{
    zbus::proxy::Builder::<T>::new(conn)
        .path(at.as_ref())
        .map_err(nm_err)?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(nm_err)
}

fn kind_of(device_type: u32) -> InterfaceKind {
    match device_type {
        DEVICE_ETHERNET => InterfaceKind::Ethernet,
        DEVICE_WIFI => InterfaceKind::Wifi,
        DEVICE_BRIDGE => InterfaceKind::Bridge,
        DEVICE_LOOPBACK => InterfaceKind::Loopback,
        _ => InterfaceKind::Other,
    }
}

/// `NMDeviceState` → the API's state.
fn state_of(state: u32) -> InterfaceState {
    match state {
        10 => InterfaceState::Unmanaged,
        20 => InterfaceState::Unavailable,
        40..=90 => InterfaceState::Connecting,
        100 => InterfaceState::Connected,
        _ => InterfaceState::Disconnected,
    }
}

fn address_list(data: &super::proxies::AddressData) -> Vec<String> {
    data.iter()
        .filter_map(|entry| {
            let address = String::try_from(entry.get("address")?.clone()).ok()?;
            let prefix = u32::try_from(entry.get("prefix")?.clone()).ok()?;
            Some(format!("{address}/{prefix}"))
        })
        .collect()
}

fn no_gateway(g: String) -> Option<String> {
    Some(g).filter(|g| !g.is_empty())
}

/// A saved Wi-Fi client profile.
struct SavedWifi {
    path: OwnedObjectPath,
    ssid: String,
}

/// An access point as the API sees it, with its object path.
struct Ap {
    path: OwnedObjectPath,
    network: WifiNetwork,
}

impl NmNetwork {
    pub fn new(address: Option<String>, activation_timeout: Duration) -> Self {
        Self {
            address,
            connection: OnceCell::new(),
            activation_timeout,
        }
    }

    async fn conn(&self) -> Result<&zbus::Connection, NetworkError> {
        self.connection
            .get_or_try_init(|| async {
                let result = match &self.address {
                    Some(address) => match zbus::connection::Builder::address(address.as_str()) {
                        Ok(builder) => builder.build().await,
                        Err(e) => Err(e),
                    },
                    None => zbus::Connection::system().await,
                };
                result.map_err(|e| NetworkError::Unavailable(e.to_string()))
            })
            .await
    }

    async fn nm(&self) -> Result<NetworkManagerProxy<'_>, NetworkError> {
        let conn = self.conn().await?;
        zbus::proxy::Builder::<NetworkManagerProxy>::new(conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(nm_err)
    }

    /// Every device with its interface name and type.
    async fn devices(&self) -> Result<Vec<(OwnedObjectPath, String, u32)>, NetworkError> {
        let conn = self.conn().await?;
        let mut out = Vec::new();
        for p in self.nm().await?.get_devices().await.map_err(nm_err)? {
            let d: DeviceProxy = px(conn, &p).await?;
            let name = d.interface().await.map_err(nm_err)?;
            let kind = d.device_type().await.map_err(nm_err)?;
            out.push((p, name, kind));
        }
        Ok(out)
    }

    async fn device_named(&self, name: &str) -> Result<OwnedObjectPath, NetworkError> {
        self.devices()
            .await?
            .into_iter()
            .find(|(_, n, _)| n == name)
            .map(|(p, _, _)| p)
            .ok_or_else(|| NetworkError::NoInterface(name.to_string()))
    }

    async fn wifi_device(&self) -> Result<Option<(OwnedObjectPath, String)>, NetworkError> {
        Ok(self
            .devices()
            .await?
            .into_iter()
            .find(|(_, _, t)| *t == DEVICE_WIFI)
            .map(|(p, n, _)| (p, n)))
    }

    /// The profile a device runs now, else the first it could run.
    async fn profile_of(
        &self,
        dev: &DeviceProxy<'_>,
    ) -> Result<Option<OwnedObjectPath>, NetworkError> {
        let active = dev.active_connection().await.map_err(nm_err)?;
        if active.as_str() != "/" {
            let a: ActiveProxy = px(self.conn().await?, &active).await?;
            return Ok(Some(a.connection().await.map_err(nm_err)?));
        }
        Ok(dev
            .available_connections()
            .await
            .map_err(nm_err)?
            .into_iter()
            .next())
    }

    async fn settings_of(&self, profile: &OwnedObjectPath) -> Result<Settings, NetworkError> {
        let c: ConnectionProxy = px(self.conn().await?, profile).await?;
        c.get_settings().await.map_err(nm_err)
    }

    async fn interface(&self, at: &OwnedObjectPath) -> Result<Interface, NetworkError> {
        let conn = self.conn().await?;
        let d: DeviceProxy = px(conn, at).await?;
        let kind = kind_of(d.device_type().await.map_err(nm_err)?);
        let speed = match kind {
            InterfaceKind::Ethernet => px::<WiredProxy>(conn, at).await?.speed().await.ok(),
            InterfaceKind::Wifi => px::<WirelessProxy>(conn, at)
                .await?
                .bitrate()
                .await
                .ok()
                .map(|kbits| kbits / 1000),
            InterfaceKind::Loopback | InterfaceKind::Bridge | InterfaceKind::Other => None,
        };
        let active = d.active_connection().await.map_err(nm_err)?;
        let connection = if active.as_str() == "/" {
            None
        } else {
            px::<ActiveProxy>(conn, &active).await?.id().await.ok()
        };
        let profile = match self.profile_of(&d).await? {
            Some(p) => self.settings_of(&p).await.ok(),
            None => None,
        };
        let method = |family: &str| match &profile {
            Some(s) => settings::method_of(s, family),
            None => IpMethod::Disabled,
        };
        let mut ipv4 = IpState {
            method: method("ipv4"),
            addresses: Vec::new(),
            gateway: None,
            dns: Vec::new(),
        };
        let mut ipv6 = IpState {
            method: method("ipv6"),
            ..ipv4.clone()
        };
        let p4 = d.ip4_config().await.map_err(nm_err)?;
        if p4.as_str() != "/" {
            let c: Ip4ConfigProxy = px(conn, &p4).await?;
            ipv4.addresses = address_list(&c.address_data().await.map_err(nm_err)?);
            ipv4.gateway = no_gateway(c.gateway().await.map_err(nm_err)?);
            ipv4.dns = c
                .nameserver_data()
                .await
                .unwrap_or_default()
                .iter()
                .filter_map(|e| String::try_from(e.get("address")?.clone()).ok())
                .collect();
        }
        let p6 = d.ip6_config().await.map_err(nm_err)?;
        if p6.as_str() != "/" {
            let c: Ip6ConfigProxy = px(conn, &p6).await?;
            ipv6.addresses = address_list(&c.address_data().await.map_err(nm_err)?);
            ipv6.gateway = no_gateway(c.gateway().await.map_err(nm_err)?);
            ipv6.dns = c
                .nameservers()
                .await
                .unwrap_or_default()
                .into_iter()
                .filter_map(|b| <[u8; 16]>::try_from(b).ok())
                .map(|b| std::net::Ipv6Addr::from(b).to_string())
                .collect();
        }
        Ok(Interface {
            name: d.interface().await.map_err(nm_err)?,
            kind,
            state: state_of(d.state().await.map_err(nm_err)?),
            mac: Some(d.hw_address().await.map_err(nm_err)?).filter(|m| !m.is_empty()),
            speed_mbps: speed.filter(|s| *s > 0),
            connection,
            ipv4,
            ipv6,
        })
    }

    async fn interfaces_impl(&self) -> Result<Vec<Interface>, NetworkError> {
        let mut out = Vec::new();
        for (p, _, _) in self.devices().await? {
            out.push(self.interface(&p).await?);
        }
        Ok(out)
    }
}

/// Checkpoints and changes.
impl NmNetwork {
    async fn apply_ip_impl(
        &self,
        name: &str,
        change: &IpChange,
        rollback_secs: u32,
    ) -> Result<String, NetworkError> {
        let conn = self.conn().await?;
        let dev_path = self.device_named(name).await?;
        let d: DeviceProxy = px(conn, &dev_path).await?;
        let profile = self
            .profile_of(&d)
            .await?
            .ok_or_else(|| NetworkError::NoConnection(name.to_string()))?;
        let c: ConnectionProxy = px(conn, &profile).await?;
        let mut s = c.get_settings().await.map_err(nm_err)?;
        // Update replaces the whole profile, secrets included: carry the Wi-Fi key over.
        if s.contains_key("802-11-wireless-security")
            && let Ok(secrets) = c.get_secrets("802-11-wireless-security").await
        {
            for (setting, values) in secrets {
                s.entry(setting).or_default().extend(values);
            }
        }
        settings::apply_change(&mut s, change);
        let nm = self.nm().await?;
        let checkpoint = nm
            .checkpoint_create(&[dev_path.as_ref()], rollback_secs, 0)
            .await
            .map_err(|e| match nm_err(e) {
                NetworkError::Refused(m) if m.contains("checkpoint") => NetworkError::ChangePending,
                other => other,
            })?;
        let applied = async {
            c.update(s).await.map_err(nm_err)?;
            nm.activate_connection(&profile.as_ref(), &dev_path.as_ref(), &root())
                .await
                .map_err(nm_err)
        }
        .await;
        if let Err(e) = applied {
            // Undo at once rather than leaving a half-applied change for a minute.
            let _ = nm.checkpoint_rollback(&checkpoint.as_ref()).await;
            return Err(e);
        }
        let id = checkpoint
            .as_str()
            .strip_prefix(CHECKPOINT_PREFIX)
            .unwrap_or_default()
            .to_string();
        tracing::info!(interface = name, checkpoint = %id, rollback_secs, "network change applied, waiting for confirmation");
        Ok(id)
    }

    async fn checkpoint_call(&self, id: &str, rollback: bool) -> Result<(), NetworkError> {
        let at = format!("{CHECKPOINT_PREFIX}{id}");
        let nm = self.nm().await?;
        let result = if rollback {
            nm.checkpoint_rollback(&path(&at)?).await.map(|devices| {
                for (device, code) in devices.iter().filter(|(_, c)| **c != 0) {
                    tracing::warn!(%device, code, "checkpoint rollback incomplete");
                }
            })
        } else {
            nm.checkpoint_destroy(&path(&at)?).await
        };
        result.map_err(|e| match nm_err(e) {
            NetworkError::Unavailable(m) => NetworkError::Unavailable(m),
            _ => NetworkError::NoCheckpoint(id.to_string()),
        })
    }
}

/// Wi-Fi.
impl NmNetwork {
    async fn saved_wifi(&self) -> Result<Vec<SavedWifi>, NetworkError> {
        let conn = self.conn().await?;
        let list: NmSettingsProxy = zbus::proxy::Builder::new(conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(nm_err)?;
        let mut out = Vec::new();
        for p in list.list_connections().await.map_err(nm_err)? {
            if let Ok(s) = self.settings_of(&p).await
                && let Some(ssid) = settings::client_ssid(&s)
            {
                out.push(SavedWifi { path: p, ssid });
            }
        }
        Ok(out)
    }

    async fn access_points(&self, dev: &OwnedObjectPath) -> Result<Vec<Ap>, NetworkError> {
        let conn = self.conn().await?;
        let w: WirelessProxy = px(conn, dev).await?;
        let active = w.active_access_point().await.map_err(nm_err)?;
        let mut out = Vec::new();
        for p in w.get_all_access_points().await.map_err(nm_err)? {
            let ap: AccessPointProxy = px(conn, &p).await?;
            // Hidden networks and SSIDs that are not text cannot be named in a request.
            let Ok(ssid) = String::from_utf8(ap.ssid().await.map_err(nm_err)?) else {
                continue;
            };
            if super::validate::ssid(&ssid).is_err() {
                continue;
            }
            let security = settings::security(
                ap.flags().await.map_err(nm_err)?,
                ap.wpa_flags().await.map_err(nm_err)?,
                ap.rsn_flags().await.map_err(nm_err)?,
            );
            out.push(Ap {
                network: WifiNetwork {
                    ssid,
                    signal: ap.strength().await.map_err(nm_err)?.min(100),
                    security,
                    frequency_mhz: ap.frequency().await.map_err(nm_err)?,
                    known: false,
                    active: p == active,
                },
                path: p,
            });
        }
        Ok(out)
    }

    async fn wifi_impl(&self) -> Result<WifiList, NetworkError> {
        let Some((dev, name)) = self.wifi_device().await? else {
            return Ok(WifiList {
                device: None,
                networks: Vec::new(),
            });
        };
        let saved = self.saved_wifi().await?;
        let mut best: BTreeMap<String, WifiNetwork> = BTreeMap::new();
        for ap in self.access_points(&dev).await? {
            let mut n = ap.network;
            n.known = saved.iter().any(|s| s.ssid == n.ssid);
            match best.get_mut(&n.ssid) {
                Some(b) => {
                    b.active |= n.active;
                    if n.signal > b.signal {
                        let active = b.active;
                        *b = WifiNetwork { active, ..n };
                    }
                }
                None => {
                    best.insert(n.ssid.clone(), n);
                }
            }
        }
        let mut networks: Vec<WifiNetwork> = best.into_values().collect();
        networks.sort_by(|a, b| b.signal.cmp(&a.signal).then_with(|| a.ssid.cmp(&b.ssid)));
        Ok(WifiList {
            device: Some(name),
            networks,
        })
    }

    async fn scan_impl(&self) -> Result<(), NetworkError> {
        let (dev, _) = self.wifi_device().await?.ok_or(NetworkError::NoWifi)?;
        let w: WirelessProxy = px(self.conn().await?, &dev).await?;
        w.request_scan(HashMap::new()).await.map_err(nm_err)
    }

    async fn connect_impl(
        &self,
        ssid: &str,
        password: Option<&str>,
    ) -> Result<Interface, NetworkError> {
        let (dev, _) = self.wifi_device().await?.ok_or(NetworkError::NoWifi)?;
        let ap = self
            .access_points(&dev)
            .await?
            .into_iter()
            .filter(|ap| ap.network.ssid == ssid)
            .max_by_key(|ap| ap.network.signal)
            .ok_or_else(|| NetworkError::NoNetwork(ssid.to_string()))?;
        let security = ap.network.security;
        if matches!(security, WifiSecurity::Wep | WifiSecurity::Wpa2Enterprise) {
            return Err(NetworkError::Unsupported(ssid.to_string()));
        }
        let saved: Vec<OwnedObjectPath> = self
            .saved_wifi()
            .await?
            .into_iter()
            .filter(|s| s.ssid == ssid)
            .map(|s| s.path)
            .collect();
        let nm = self.nm().await?;
        let (profile, active, added) = match (password, saved.first()) {
            (None, Some(profile)) => {
                let active = nm
                    .activate_connection(&profile.as_ref(), &dev.as_ref(), &ap.path.as_ref())
                    .await
                    .map_err(nm_err)?;
                (profile.clone(), active, false)
            }
            (None, None) if security != WifiSecurity::Open => {
                return Err(NetworkError::PasswordRequired(ssid.to_string()));
            }
            _ => {
                let s = settings::wifi_client(ssid, security, password);
                let (profile, active) = nm
                    .add_and_activate_connection(s, &dev.as_ref(), &ap.path.as_ref())
                    .await
                    .map_err(nm_err)?;
                (profile, active, true)
            }
        };
        match self.wait_activated(&dev, &active, ssid).await {
            Ok(()) => {
                if added {
                    // The new profile replaces older ones for the same network.
                    for old in saved {
                        let _ = px::<ConnectionProxy>(self.conn().await?, &old)
                            .await?
                            .delete()
                            .await;
                    }
                }
                self.interface(&dev).await
            }
            Err(e) => {
                if added {
                    // A refused password is not kept.
                    let _ = px::<ConnectionProxy>(self.conn().await?, &profile)
                        .await?
                        .delete()
                        .await;
                }
                Err(e)
            }
        }
    }

    /// Waits until the active connection is up, or says why it is not.
    async fn wait_activated(
        &self,
        dev: &OwnedObjectPath,
        active: &OwnedObjectPath,
        ssid: &str,
    ) -> Result<(), NetworkError> {
        let conn = self.conn().await?;
        let a: ActiveProxy = px(conn, active).await?;
        let deadline = tokio::time::Instant::now() + self.activation_timeout;
        loop {
            // The active connection object disappears when activation fails.
            match a.state().await {
                Ok(2) => return Ok(()),
                Ok(0 | 1) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(0 | 1) => {
                    let _ = self
                        .nm()
                        .await?
                        .deactivate_connection(&active.as_ref())
                        .await;
                    return Err(NetworkError::ActivationFailed("timed out".into()));
                }
                Ok(_) | Err(_) => break,
            }
        }
        let d: DeviceProxy = px(conn, dev).await?;
        let (_, reason) = d.state_reason().await.map_err(nm_err)?;
        // NO_SECRETS, SUPPLICANT_DISCONNECT, _CONFIG_FAILED, _FAILED, _TIMEOUT.
        if (7..=11).contains(&reason) {
            Err(NetworkError::WrongPassword(ssid.to_string()))
        } else {
            Err(NetworkError::ActivationFailed(format!(
                "NetworkManager reason {reason}"
            )))
        }
    }

    async fn forget_impl(&self, ssid: &str) -> Result<(), NetworkError> {
        let conn = self.conn().await?;
        let saved: Vec<SavedWifi> = self
            .saved_wifi()
            .await?
            .into_iter()
            .filter(|s| s.ssid == ssid)
            .collect();
        if saved.is_empty() {
            return Err(NetworkError::NotSaved(ssid.to_string()));
        }
        for s in saved {
            px::<ConnectionProxy>(conn, &s.path)
                .await?
                .delete()
                .await
                .map_err(nm_err)?;
        }
        Ok(())
    }
}

/// The setup hotspot.
impl NmNetwork {
    async fn connectivity_impl(&self) -> Result<Connectivity, NetworkError> {
        let nm = self.nm().await?;
        let state = nm.state().await.map_err(nm_err)?;
        let connectivity = nm.connectivity().await.map_err(nm_err)?;
        Ok(Connectivity {
            has_wifi: self.wifi_device().await?.is_some(),
            online: state >= 60 || connectivity == 4,
        })
    }

    async fn start_hotspot_impl(
        &self,
        ssid: &str,
        password: &str,
    ) -> Result<HotspotHandle, NetworkError> {
        let (dev, _) = self.wifi_device().await?.ok_or(NetworkError::NoWifi)?;
        // A volatile profile is never written to disk and vanishes when it goes down.
        let options = HashMap::from([("persist", Value::from("volatile"))]);
        let (profile, active, _) = self
            .nm()
            .await?
            .add_and_activate_connection2(
                settings::access_point(ssid, password),
                &dev.as_ref(),
                &root(),
                options,
            )
            .await
            .map_err(nm_err)?;
        Ok(HotspotHandle {
            active_connection: active.to_string(),
            connection: profile.to_string(),
        })
    }

    async fn stop_hotspot_impl(&self, handle: &HotspotHandle) -> Result<(), NetworkError> {
        let nm = self.nm().await?;
        nm.deactivate_connection(&path(&handle.active_connection)?)
            .await
            .map_err(nm_err)?;
        // Normally gone already (volatile); make sure.
        let profile = OwnedObjectPath::from(path(&handle.connection)?.into_owned());
        if let Ok(c) = px::<ConnectionProxy>(self.conn().await?, &profile).await {
            let _ = c.delete().await;
        }
        Ok(())
    }
}

impl NetworkControl for NmNetwork {
    fn interfaces(&self) -> BoxFuture<'_, Result<Vec<Interface>, NetworkError>> {
        self.interfaces_impl().boxed()
    }

    fn apply_ip<'a>(
        &'a self,
        name: &'a str,
        change: &'a IpChange,
        rollback_secs: u32,
    ) -> BoxFuture<'a, Result<String, NetworkError>> {
        self.apply_ip_impl(name, change, rollback_secs).boxed()
    }

    fn confirm<'a>(&'a self, checkpoint: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        self.checkpoint_call(checkpoint, false).boxed()
    }

    fn rollback<'a>(&'a self, checkpoint: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        self.checkpoint_call(checkpoint, true).boxed()
    }

    fn wifi(&self) -> BoxFuture<'_, Result<WifiList, NetworkError>> {
        self.wifi_impl().boxed()
    }

    fn scan(&self) -> BoxFuture<'_, Result<(), NetworkError>> {
        self.scan_impl().boxed()
    }

    fn connect<'a>(
        &'a self,
        ssid: &'a str,
        password: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Interface, NetworkError>> {
        self.connect_impl(ssid, password).boxed()
    }

    fn forget<'a>(&'a self, ssid: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        self.forget_impl(ssid).boxed()
    }

    fn connectivity(&self) -> BoxFuture<'_, Result<Connectivity, NetworkError>> {
        self.connectivity_impl().boxed()
    }

    fn start_hotspot<'a>(
        &'a self,
        ssid: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<HotspotHandle, NetworkError>> {
        self.start_hotspot_impl(ssid, password).boxed()
    }

    fn stop_hotspot<'a>(
        &'a self,
        handle: &'a HotspotHandle,
    ) -> BoxFuture<'a, Result<(), NetworkError>> {
        self.stop_hotspot_impl(handle).boxed()
    }
}
