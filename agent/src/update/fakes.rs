//! In-memory stand-ins for the OS boundaries the update service and the health gate use
//! (unit tests only): units with fixed states, a network with a fixed connectivity, reboots
//! recorded instead of done.

use crate::network::{
    Connectivity, HotspotHandle, Interface, IpChange, NetworkControl, NetworkError, WifiList,
};
use crate::system::{
    PowerAction, SystemControl, SystemError, TimeSettings, UnitAction, UnitStatus,
};
use futures_util::future::{BoxFuture, FutureExt};
use hearth_ota::boot::RebootRequest;
use std::collections::BTreeMap;
use std::sync::Mutex;

fn unsupported<T: Send + 'static>(
    what: &'static str,
) -> BoxFuture<'static, Result<T, SystemError>> {
    async move {
        Err(SystemError::Refused {
            service: "fake",
            message: format!("{what} is not part of this fake"),
        })
    }
    .boxed()
}

/// Units by name with their active state (missing: `not-found`); reboots are recorded.
#[derive(Debug, Default)]
pub struct FakeSystem {
    pub units: Mutex<BTreeMap<String, String>>,
    pub reboots: Mutex<Vec<RebootRequest>>,
    /// The bus is down: every call fails.
    pub unavailable: bool,
}

impl FakeSystem {
    pub fn with_units(units: &[(&str, &str)]) -> Self {
        FakeSystem {
            units: Mutex::new(
                units
                    .iter()
                    .map(|(n, s)| (n.to_string(), s.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    pub fn set_unit(&self, name: &str, state: &str) {
        self.units
            .lock()
            .expect("units")
            .insert(name.into(), state.into());
    }

    fn down(&self) -> Result<(), SystemError> {
        if self.unavailable {
            Err(SystemError::Unavailable("fake bus down".into()))
        } else {
            Ok(())
        }
    }
}

impl SystemControl for FakeSystem {
    fn units<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<UnitStatus>, SystemError>> {
        async move {
            self.down()?;
            let units = self.units.lock().expect("units");
            Ok(names
                .iter()
                .map(|n| {
                    let (load, active) = match units.get(n) {
                        Some(s) => ("loaded", s.as_str()),
                        None => ("not-found", "inactive"),
                    };
                    UnitStatus {
                        name: n.clone(),
                        description: String::new(),
                        load_state: load.into(),
                        active_state: active.into(),
                        sub_state: String::new(),
                        actions: vec![],
                    }
                })
                .collect())
        }
        .boxed()
    }

    fn unit_action<'a>(
        &'a self,
        _unit: &'a str,
        _action: UnitAction,
    ) -> BoxFuture<'a, Result<(), SystemError>> {
        unsupported("unit_action")
    }

    fn power(&self, action: PowerAction) -> BoxFuture<'_, Result<(), SystemError>> {
        async move {
            self.down()?;
            if action == PowerAction::Reboot {
                self.reboots
                    .lock()
                    .expect("reboots")
                    .push(RebootRequest::Plain);
            }
            Ok(())
        }
        .boxed()
    }

    fn reboot<'a>(&'a self, request: &'a RebootRequest) -> BoxFuture<'a, Result<(), SystemError>> {
        async move {
            self.down()?;
            self.reboots.lock().expect("reboots").push(request.clone());
            Ok(())
        }
        .boxed()
    }

    fn hostname(&self) -> BoxFuture<'_, Result<String, SystemError>> {
        unsupported("hostname")
    }

    fn set_hostname<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, Result<(), SystemError>> {
        unsupported("set_hostname")
    }

    fn time(&self) -> BoxFuture<'_, Result<TimeSettings, SystemError>> {
        unsupported("time")
    }

    fn set_timezone<'a>(&'a self, _zone: &'a str) -> BoxFuture<'a, Result<(), SystemError>> {
        unsupported("set_timezone")
    }

    fn set_ntp(&self, _on: bool) -> BoxFuture<'_, Result<(), SystemError>> {
        unsupported("set_ntp")
    }

    fn start_mount<'a>(
        &'a self,
        _plan: &'a crate::disks::mount::MountPlan,
    ) -> BoxFuture<'a, Result<(), SystemError>> {
        unsupported("start_mount")
    }

    fn stop_mount<'a>(&'a self, _unit: &'a str) -> BoxFuture<'a, Result<(), SystemError>> {
        unsupported("stop_mount")
    }
}

/// A network whose connectivity is fixed (`None`: NetworkManager is not available).
#[derive(Debug)]
pub struct FakeNetwork(pub Mutex<Option<Connectivity>>);

impl FakeNetwork {
    pub fn new(local: bool) -> Self {
        FakeNetwork(Mutex::new(Some(Connectivity {
            has_wifi: false,
            online: local,
            local,
        })))
    }
}

fn no_network<T: Send + 'static>() -> BoxFuture<'static, Result<T, NetworkError>> {
    async { Err(NetworkError::Unavailable("not part of this fake".into())) }.boxed()
}

impl NetworkControl for FakeNetwork {
    fn interfaces(&self) -> BoxFuture<'_, Result<Vec<Interface>, NetworkError>> {
        no_network()
    }

    fn apply_ip<'a>(
        &'a self,
        _name: &'a str,
        _change: &'a IpChange,
        _rollback_secs: u32,
    ) -> BoxFuture<'a, Result<String, NetworkError>> {
        no_network()
    }

    fn confirm<'a>(&'a self, _checkpoint: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        no_network()
    }

    fn rollback<'a>(&'a self, _checkpoint: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        no_network()
    }

    fn wifi(&self) -> BoxFuture<'_, Result<WifiList, NetworkError>> {
        no_network()
    }

    fn scan(&self) -> BoxFuture<'_, Result<(), NetworkError>> {
        no_network()
    }

    fn connect<'a>(
        &'a self,
        _ssid: &'a str,
        _password: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Interface, NetworkError>> {
        no_network()
    }

    fn forget<'a>(&'a self, _ssid: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        no_network()
    }

    fn connectivity(&self) -> BoxFuture<'_, Result<Connectivity, NetworkError>> {
        let c = *self.0.lock().expect("connectivity");
        async move { c.ok_or_else(|| NetworkError::Unavailable("fake network down".into())) }
            .boxed()
    }

    fn start_hotspot<'a>(
        &'a self,
        _ssid: &'a str,
        _password: &'a str,
    ) -> BoxFuture<'a, Result<HotspotHandle, NetworkError>> {
        no_network()
    }

    fn stop_hotspot<'a>(
        &'a self,
        _handle: &'a HotspotHandle,
    ) -> BoxFuture<'a, Result<(), NetworkError>> {
        no_network()
    }
}
