//! Wi-Fi through NetworkManager: access points, saved profiles, joining and forgetting
//! networks, and the setup access point.

use super::{Ap, NmNetwork, SavedWifi, all_properties, nm_err, path, px, root};
use crate::network::proxies::{
    ActiveProxy, ConnectionProxy, DeviceProxy, NmSettingsProxy, WirelessProxy,
};
use crate::network::settings;
use crate::network::{
    Connectivity, HotspotHandle, Interface, NetworkError, WifiList, WifiNetwork, WifiSecurity,
};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use zbus::names::InterfaceName;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

const AP_INTERFACE: InterfaceName<'static> =
    InterfaceName::from_static_str_unchecked("org.freedesktop.NetworkManager.AccessPoint");

/// An access point's properties as the API's network; `None` for hidden networks and SSIDs that
/// are not text, which a request could not name.
fn ap_network(props: &HashMap<String, OwnedValue>, active: bool) -> Option<WifiNetwork> {
    let u32_of = |key: &str| u32::try_from(props.get(key)?.clone()).ok();
    let ssid = String::from_utf8(Vec::<u8>::try_from(props.get("Ssid")?.clone()).ok()?).ok()?;
    crate::network::validate::ssid(&ssid).ok()?;
    Some(WifiNetwork {
        ssid,
        signal: u8::try_from(props.get("Strength")?.clone()).ok()?.min(100),
        security: settings::security(
            u32_of("Flags").unwrap_or(0),
            u32_of("WpaFlags").unwrap_or(0),
            u32_of("RsnFlags").unwrap_or(0),
        ),
        frequency_mhz: u32_of("Frequency").unwrap_or(0),
        known: false,
        active,
    })
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
            // One GetAll per access point instead of six property reads.
            let props = all_properties(conn, &p, AP_INTERFACE).await?;
            if let Some(network) = ap_network(&props, p == active) {
                out.push(Ap { network, path: p });
            }
        }
        Ok(out)
    }

    pub(super) async fn wifi_impl(&self) -> Result<WifiList, NetworkError> {
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

    pub(super) async fn scan_impl(&self) -> Result<(), NetworkError> {
        let (dev, _) = self.wifi_device().await?.ok_or(NetworkError::NoWifi)?;
        let w: WirelessProxy = px(self.conn().await?, &dev).await?;
        w.request_scan(HashMap::new()).await.map_err(nm_err)
    }

    pub(super) async fn connect_impl(
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

    pub(super) async fn forget_impl(&self, ssid: &str) -> Result<(), NetworkError> {
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
    pub(super) async fn connectivity_impl(&self) -> Result<Connectivity, NetworkError> {
        let nm = self.nm().await?;
        let state = nm.state().await.map_err(nm_err)?;
        let connectivity = nm.connectivity().await.map_err(nm_err)?;
        Ok(Connectivity {
            has_wifi: self.wifi_device().await?.is_some(),
            online: state >= 60 || connectivity == 4,
            local: state >= 50,
        })
    }

    pub(super) async fn start_hotspot_impl(
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

    pub(super) async fn stop_hotspot_impl(
        &self,
        handle: &HotspotHandle,
    ) -> Result<(), NetworkError> {
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
