//! The device's network: interfaces with their addresses, IPv4/IPv6 settings with a safe apply
//! (a NetworkManager checkpoint that rolls back by itself unless confirmed), Wi-Fi scan, connect
//! and forget, and the setup hotspot of an unclaimed device without a network.
//!
//! [`NetworkControl`] is the boundary, named in domain verbs; [`nm::NmNetwork`] is the real
//! adapter (NetworkManager over D-Bus), [`fake::FakeNetwork`] the in-memory one. Everything a
//! request names (interface, SSID, checkpoint, address) is checked here ([`validate`]) before
//! it reaches the adapter, never by the adapter.

pub mod fake;
pub mod hotspot;
pub mod nm;
pub mod proxies;
pub mod settings;
pub mod validate;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("NetworkManager is not available: {0}")]
    Unavailable(String),
    #[error("NetworkManager refused: {0}")]
    Refused(String),
    #[error("no network interface named {0}")]
    NoInterface(String),
    #[error("interface {0} has no connection profile to change")]
    NoConnection(String),
    #[error("the device has no Wi-Fi")]
    NoWifi,
    #[error("no Wi-Fi network named {0} is in range")]
    NoNetwork(String),
    #[error("no saved Wi-Fi network named {0}")]
    NotSaved(String),
    #[error("the Wi-Fi network {0} needs a password")]
    PasswordRequired(String),
    #[error("the Wi-Fi network {0} refused the password")]
    WrongPassword(String),
    #[error("{0} uses WEP or WPA2/WPA3-Enterprise, which the dashboard cannot set up")]
    Unsupported(String),
    #[error("the connection did not come up: {0}")]
    ActivationFailed(String),
    #[error("no pending network change {0}")]
    NoCheckpoint(String),
    #[error("another network change is still waiting for confirmation")]
    ChangePending,
}

/// What a network interface is.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InterfaceKind {
    Ethernet,
    Wifi,
    Loopback,
    Bridge,
    Other,
}

/// The link and activation state.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InterfaceState {
    Connected,
    Connecting,
    Disconnected,
    /// No carrier, radio off or firmware missing.
    Unavailable,
    /// NetworkManager leaves this interface alone.
    Unmanaged,
}

/// How addresses are obtained. `ignore` exists for IPv6 only (NetworkManager leaves IPv6 to
/// the kernel).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IpMethod {
    Auto,
    Manual,
    Disabled,
    Ignore,
}

/// One address family of an interface, as it is now.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct IpState {
    pub method: IpMethod,
    /// `address/prefix`, e.g. `192.168.1.5/24`.
    pub addresses: Vec<String>,
    #[schema(required = true)]
    pub gateway: Option<String>,
    pub dns: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Interface {
    pub name: String,
    pub kind: InterfaceKind,
    pub state: InterfaceState,
    #[schema(required = true)]
    pub mac: Option<String>,
    #[schema(required = true)]
    pub speed_mbps: Option<u32>,
    /// The id of the active connection profile.
    #[schema(required = true)]
    pub connection: Option<String>,
    pub ipv4: IpState,
    pub ipv6: IpState,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InterfaceList {
    pub interfaces: Vec<Interface>,
}

/// The methods a change may ask for; `disabled` and `ignore` are only ever reported (the
/// agent does not switch a family off: that could cut the dashboard's own connection).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PatchMethod {
    Auto,
    Manual,
}

impl From<PatchMethod> for IpMethod {
    fn from(m: PatchMethod) -> Self {
        match m {
            PatchMethod::Auto => IpMethod::Auto,
            PatchMethod::Manual => IpMethod::Manual,
        }
    }
}

/// A requested change to one address family; checked by [`validate::ip_patch`].
#[derive(Debug, Clone, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IpPatch {
    /// `auto` (DHCP / SLAAC) or `manual`.
    pub method: PatchMethod,
    /// With `manual` only, at least one: `address/prefix`.
    #[serde(default)]
    #[schema(max_items = 16)]
    pub addresses: Vec<String>,
    /// With `manual` only; must lie in one of the addresses' subnets (IPv4).
    #[serde(default)]
    pub gateway: Option<String>,
    /// DNS servers; with `auto` they replace the ones DHCP offers.
    #[serde(default)]
    #[schema(max_items = 8)]
    pub dns: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InterfacePatch {
    pub ipv4: Option<IpPatch>,
    pub ipv6: Option<IpPatch>,
}

/// A checked family setting, ready for the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSettings<A> {
    pub method: IpMethod,
    pub addresses: Vec<(A, u8)>,
    pub gateway: Option<A>,
    pub dns: Vec<A>,
}

/// A checked interface change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpChange {
    pub ipv4: Option<IpSettings<std::net::Ipv4Addr>>,
    pub ipv6: Option<IpSettings<std::net::Ipv6Addr>>,
}

/// The answer to a change: confirm the checkpoint within `rollback_seconds` or it is undone.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PendingChange {
    pub checkpoint: String,
    pub rollback_seconds: u32,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
pub enum WifiSecurity {
    #[serde(rename = "open")]
    Open,
    #[serde(rename = "wep")]
    Wep,
    #[serde(rename = "wpa2")]
    Wpa2,
    #[serde(rename = "wpa3")]
    Wpa3,
    #[serde(rename = "wpa2-enterprise")]
    Wpa2Enterprise,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct WifiNetwork {
    pub ssid: String,
    /// 0–100.
    pub signal: u8,
    pub security: WifiSecurity,
    pub frequency_mhz: u32,
    /// A saved connection profile exists for this SSID.
    pub known: bool,
    /// The Wi-Fi device is connected to it now.
    pub active: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WifiList {
    /// The Wi-Fi interface, `null` when the device has none.
    #[schema(required = true)]
    pub device: Option<String>,
    /// One entry per SSID (its strongest access point), strongest first.
    pub networks: Vec<WifiNetwork>,
}

/// What the setup hotspot needs to know about the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connectivity {
    pub has_wifi: bool,
    /// Some connection gives the device a LAN address (or the internet is reachable).
    pub online: bool,
    /// Some interface has an address, if only a link-local one (NetworkManager's
    /// `CONNECTED_LOCAL` and up): what the update health gate asks of a home network.
    pub local: bool,
}

/// A started access point: what stops it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotspotHandle {
    pub active_connection: String,
    pub connection: String,
}

/// The operating-system boundary for the device's network. Inputs are already validated.
pub trait NetworkControl: Send + Sync + std::fmt::Debug {
    fn interfaces(&self) -> BoxFuture<'_, Result<Vec<Interface>, NetworkError>>;
    /// Takes a checkpoint of `name` that rolls back after `rollback_secs`, then changes its
    /// connection profile and reactivates it. Returns the checkpoint id.
    fn apply_ip<'a>(
        &'a self,
        name: &'a str,
        change: &'a IpChange,
        rollback_secs: u32,
    ) -> BoxFuture<'a, Result<String, NetworkError>>;
    fn confirm<'a>(&'a self, checkpoint: &'a str) -> BoxFuture<'a, Result<(), NetworkError>>;
    fn rollback<'a>(&'a self, checkpoint: &'a str) -> BoxFuture<'a, Result<(), NetworkError>>;
    fn wifi(&self) -> BoxFuture<'_, Result<WifiList, NetworkError>>;
    fn scan(&self) -> BoxFuture<'_, Result<(), NetworkError>>;
    /// Joins `ssid` (a saved profile, or a new WPA2/WPA3-personal one with `password`) and
    /// returns the Wi-Fi interface once it is up.
    fn connect<'a>(
        &'a self,
        ssid: &'a str,
        password: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Interface, NetworkError>>;
    /// Deletes every saved profile for `ssid`.
    fn forget<'a>(&'a self, ssid: &'a str) -> BoxFuture<'a, Result<(), NetworkError>>;
    fn connectivity(&self) -> BoxFuture<'_, Result<Connectivity, NetworkError>>;
    /// Starts a WPA2 access point on the Wi-Fi device (a profile that is not saved to disk).
    fn start_hotspot<'a>(
        &'a self,
        ssid: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<HotspotHandle, NetworkError>>;
    fn stop_hotspot<'a>(
        &'a self,
        handle: &'a HotspotHandle,
    ) -> BoxFuture<'a, Result<(), NetworkError>>;
}
