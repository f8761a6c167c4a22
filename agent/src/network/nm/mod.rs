//! The real [`NetworkControl`]: NetworkManager over D-Bus. Like `system::dbus`, the connection
//! is made on first use, so a machine without NetworkManager answers "unavailable" instead of
//! failing to start.

mod wifi;

use super::proxies::{
    ActiveProxy, CHECKPOINT_PREFIX, ConnectionProxy, Ip4ConfigProxy, Ip6ConfigProxy,
    NetworkManagerProxy, WiredProxy, WirelessProxy,
};
use super::settings::{self, Settings};
use super::{
    Connectivity, HotspotHandle, Interface, InterfaceKind, InterfaceState, IpChange, IpMethod,
    IpState, NetworkControl, NetworkError, WifiList, WifiNetwork,
};
use crate::system::bus::LazyBus;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::time::Duration;
use zbus::names::InterfaceName;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};

const DEVICE_ETHERNET: u32 = 1;
const DEVICE_WIFI: u32 = 2;
const DEVICE_BRIDGE: u32 = 13;
const DEVICE_LOOPBACK: u32 = 32;

#[derive(Debug)]
pub struct NmNetwork {
    bus: LazyBus,
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

const DEVICE_INTERFACE: InterfaceName<'static> =
    InterfaceName::from_static_str_unchecked("org.freedesktop.NetworkManager.Device");

/// The device properties Hearth reads.
struct DeviceProps {
    name: String,
    device_type: u32,
    state: u32,
    mac: Option<String>,
    ip4: OwnedObjectPath,
    ip6: OwnedObjectPath,
    active: OwnedObjectPath,
    available: Vec<OwnedObjectPath>,
}

/// Every property of one interface of an object, in one round trip.
pub(super) async fn all_properties(
    conn: &zbus::Connection,
    at: &OwnedObjectPath,
    interface: InterfaceName<'static>,
) -> Result<HashMap<String, OwnedValue>, NetworkError> {
    zbus::fdo::PropertiesProxy::builder(conn)
        .destination(super::proxies::SERVICE)
        .map_err(nm_err)?
        .path(at.as_ref())
        .map_err(nm_err)?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(nm_err)?
        .get_all(interface)
        .await
        .map_err(|e| nm_err(e.into()))
}

/// The IPv4 addresses, gateway and DNS a device has now (`/`: none).
async fn ipv4_state(
    conn: &zbus::Connection,
    at: OwnedObjectPath,
    method: IpMethod,
) -> Result<IpState, NetworkError> {
    let mut state = IpState {
        method,
        addresses: Vec::new(),
        gateway: None,
        dns: Vec::new(),
    };
    if at.as_str() != "/" {
        let c: Ip4ConfigProxy = px(conn, &at).await?;
        state.addresses = address_list(&c.address_data().await.map_err(nm_err)?);
        state.gateway = no_gateway(c.gateway().await.map_err(nm_err)?);
        state.dns = c
            .nameserver_data()
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|e| String::try_from(e.get("address")?.clone()).ok())
            .collect();
    }
    Ok(state)
}

/// The IPv6 addresses, gateway and DNS a device has now (`/`: none).
async fn ipv6_state(
    conn: &zbus::Connection,
    at: OwnedObjectPath,
    method: IpMethod,
) -> Result<IpState, NetworkError> {
    let mut state = IpState {
        method,
        addresses: Vec::new(),
        gateway: None,
        dns: Vec::new(),
    };
    if at.as_str() != "/" {
        let c: Ip6ConfigProxy = px(conn, &at).await?;
        state.addresses = address_list(&c.address_data().await.map_err(nm_err)?);
        state.gateway = no_gateway(c.gateway().await.map_err(nm_err)?);
        state.dns = c
            .nameservers()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|b| <[u8; 16]>::try_from(b).ok())
            .map(|b| std::net::Ipv6Addr::from(b).to_string())
            .collect();
    }
    Ok(state)
}

/// A saved Wi-Fi client profile.
pub(super) struct SavedWifi {
    path: OwnedObjectPath,
    ssid: String,
}

/// An access point as the API sees it, with its object path.
pub(super) struct Ap {
    path: OwnedObjectPath,
    network: WifiNetwork,
}

impl NmNetwork {
    pub fn new(address: Option<String>, activation_timeout: Duration) -> Self {
        Self {
            bus: LazyBus::new(address),
            activation_timeout,
        }
    }

    async fn conn(&self) -> Result<&zbus::Connection, NetworkError> {
        self.bus
            .get()
            .await
            .map_err(|e| NetworkError::Unavailable(e.to_string()))
    }

    async fn nm(&self) -> Result<NetworkManagerProxy<'_>, NetworkError> {
        let conn = self.conn().await?;
        zbus::proxy::Builder::<NetworkManagerProxy>::new(conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(nm_err)
    }

    /// One device's properties, read with a single `GetAll`.
    async fn device_props(&self, at: &OwnedObjectPath) -> Result<DeviceProps, NetworkError> {
        let all = all_properties(self.conn().await?, at, DEVICE_INTERFACE).await?;
        let path = |key: &str| {
            all.get(key)
                .and_then(|v| OwnedObjectPath::try_from(v.clone()).ok())
                .unwrap_or_else(|| OwnedObjectPath::from(root()))
        };
        let text = |key: &str| all.get(key).and_then(|v| String::try_from(v.clone()).ok());
        let number = |key: &str| all.get(key).and_then(|v| u32::try_from(v.clone()).ok());
        Ok(DeviceProps {
            name: text("Interface").unwrap_or_default(),
            device_type: number("DeviceType").unwrap_or(0),
            state: number("State").unwrap_or(0),
            mac: text("HwAddress").filter(|m| !m.is_empty()),
            ip4: path("Ip4Config"),
            ip6: path("Ip6Config"),
            active: path("ActiveConnection"),
            available: all
                .get("AvailableConnections")
                .and_then(|v| Vec::<OwnedObjectPath>::try_from(v.clone()).ok())
                .unwrap_or_default(),
        })
    }

    /// Every device with its properties.
    async fn devices(&self) -> Result<Vec<(OwnedObjectPath, DeviceProps)>, NetworkError> {
        let mut out = Vec::new();
        for p in self.nm().await?.get_devices().await.map_err(nm_err)? {
            let props = self.device_props(&p).await?;
            out.push((p, props));
        }
        Ok(out)
    }

    async fn device_named(&self, name: &str) -> Result<OwnedObjectPath, NetworkError> {
        self.devices()
            .await?
            .into_iter()
            .find(|(_, d)| d.name == name)
            .map(|(p, _)| p)
            .ok_or_else(|| NetworkError::NoInterface(name.to_string()))
    }

    async fn wifi_device(&self) -> Result<Option<(OwnedObjectPath, String)>, NetworkError> {
        Ok(self
            .devices()
            .await?
            .into_iter()
            .find(|(_, d)| d.device_type == DEVICE_WIFI)
            .map(|(p, d)| (p, d.name)))
    }

    /// The profile a device runs now, else the first it could run.
    async fn profile_of(&self, dev: &DeviceProps) -> Result<Option<OwnedObjectPath>, NetworkError> {
        if dev.active.as_str() != "/" {
            let a: ActiveProxy = px(self.conn().await?, &dev.active).await?;
            return Ok(Some(a.connection().await.map_err(nm_err)?));
        }
        Ok(dev.available.first().cloned())
    }

    async fn settings_of(&self, profile: &OwnedObjectPath) -> Result<Settings, NetworkError> {
        let c: ConnectionProxy = px(self.conn().await?, profile).await?;
        c.get_settings().await.map_err(nm_err)
    }

    async fn interface(&self, at: &OwnedObjectPath) -> Result<Interface, NetworkError> {
        let props = self.device_props(at).await?;
        self.interface_from(at, props).await
    }

    async fn interface_from(
        &self,
        at: &OwnedObjectPath,
        d: DeviceProps,
    ) -> Result<Interface, NetworkError> {
        let conn = self.conn().await?;
        let kind = kind_of(d.device_type);
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
        let connection = if d.active.as_str() == "/" {
            None
        } else {
            px::<ActiveProxy>(conn, &d.active).await?.id().await.ok()
        };
        let profile = match self.profile_of(&d).await? {
            Some(p) => self.settings_of(&p).await.ok(),
            None => None,
        };
        let method = |family: &str| match &profile {
            Some(s) => settings::method_of(s, family),
            None => IpMethod::Disabled,
        };
        Ok(Interface {
            ipv4: ipv4_state(conn, d.ip4, method("ipv4")).await?,
            ipv6: ipv6_state(conn, d.ip6, method("ipv6")).await?,
            name: d.name,
            kind,
            state: state_of(d.state),
            mac: d.mac,
            speed_mbps: speed.filter(|s| *s > 0),
            connection,
        })
    }

    async fn interfaces_impl(&self) -> Result<Vec<Interface>, NetworkError> {
        let mut out = Vec::new();
        for (p, props) in self.devices().await? {
            out.push(self.interface_from(&p, props).await?);
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
        let d = self.device_props(&dev_path).await?;
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
