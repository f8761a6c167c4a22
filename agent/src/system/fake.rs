//! The one in-memory [`SystemControl`] for tests: host name, time zone and NTP are values, unit
//! actions, power requests, reboots and mount units are recorded, unit states can be set and
//! the bus can be down. Given a [`FakeBlockDevices`], starting and stopping a mount unit changes
//! that fake's mount table the way the kernel would.

use super::{PowerAction, SystemControl, SystemError, TimeSettings, UnitAction, UnitStatus};
use crate::clock::SharedClock;
use crate::disks::FakeBlockDevices;
use crate::disks::mount::MountPlan;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hearth_ota::boot::RebootRequest;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug)]
struct Inner {
    hostname: String,
    timezone: String,
    ntp: bool,
    actions: Vec<(String, UnitAction)>,
    power: Vec<String>,
    /// Active mount units: unit name → plan.
    mounts: BTreeMap<String, MountPlan>,
    /// Mount units that fail to start (`What` paths).
    failing_mounts: Vec<String>,
    /// Unit name → active state; `None`: every unit is loaded and active, `Some`: units not
    /// listed are `not-found`.
    units: Option<BTreeMap<String, String>>,
    /// Reboots asked for (`reboot`, and `power(Reboot)` as a plain one).
    reboots: Vec<RebootRequest>,
    /// The bus is down: every call fails as `Unavailable`.
    down: bool,
}

/// Cloning shares the same state.
#[derive(Debug, Clone)]
pub struct FakeSystem {
    inner: Arc<Mutex<Inner>>,
    devices: Option<FakeBlockDevices>,
    clock: SharedClock,
}

impl Default for FakeSystem {
    fn default() -> Self {
        Self::new(Arc::new(crate::clock::SystemClock))
    }
}

impl FakeSystem {
    /// The device's time is `clock`'s.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                hostname: "hearth".into(),
                timezone: "Etc/UTC".into(),
                ntp: true,
                actions: Vec::new(),
                power: Vec::new(),
                mounts: BTreeMap::new(),
                failing_mounts: Vec::new(),
                units: None,
                reboots: Vec::new(),
                down: false,
            })),
            devices: None,
            clock,
        }
    }

    /// Only these units exist, in these active states (others are `not-found`).
    pub fn with_units(units: &[(&str, &str)]) -> Self {
        let fake = Self::default();
        fake.inner().units = Some(
            units
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
        );
        fake
    }

    /// The system bus is down: every call fails as `Unavailable`.
    pub fn with_bus_down(self) -> Self {
        self.inner().down = true;
        self
    }

    /// Sets a unit's active state (the unit exists from now on).
    pub fn set_unit(&self, name: &str, state: &str) {
        self.inner()
            .units
            .get_or_insert_with(BTreeMap::new)
            .insert(name.into(), state.into());
    }

    /// Reboots asked for so far, in order.
    pub fn reboots(&self) -> Vec<RebootRequest> {
        self.inner().reboots.clone()
    }

    /// Mount units change `devices`' mount table.
    pub fn with_block_devices(mut self, devices: FakeBlockDevices) -> Self {
        self.devices = Some(devices);
        self
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Active mount units: unit name → plan.
    pub fn mounts(&self) -> BTreeMap<String, MountPlan> {
        self.inner().mounts.clone()
    }

    /// Starting a mount of `what` (a device path) fails from now on.
    pub fn fail_mounts_of(&self, what: &str) {
        self.inner().failing_mounts.push(what.to_string());
    }

    /// Unit actions so far.
    pub fn actions(&self) -> Vec<(String, UnitAction)> {
        self.inner().actions.clone()
    }

    /// Power requests so far (`reboot`, `poweroff`, `reboot <parameter>`).
    pub fn power_requests(&self) -> Vec<String> {
        self.inner().power.clone()
    }

    fn device_of(what: &str) -> &str {
        what.trim_start_matches("/dev/")
    }

    /// The guard, or `Unavailable` while the bus is down.
    fn up(&self) -> Result<MutexGuard<'_, Inner>, SystemError> {
        let inner = self.inner();
        if inner.down {
            Err(SystemError::Unavailable("fake bus down".into()))
        } else {
            Ok(inner)
        }
    }
}

/// Answers with the guard, or returns the bus-down error at once.
macro_rules! up_or_return {
    ($fake:expr) => {
        match $fake.up() {
            Ok(inner) => inner,
            Err(e) => return ready(Err(e)),
        }
    };
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    std::future::ready(value).boxed()
}

impl SystemControl for FakeSystem {
    fn units<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<UnitStatus>, SystemError>> {
        let inner = up_or_return!(self);
        let units = names
            .iter()
            .map(|name| {
                let (load, active) = match &inner.units {
                    None => ("loaded", "active"),
                    Some(known) => known
                        .get(name)
                        .map_or(("not-found", "inactive"), |s| ("loaded", s.as_str())),
                };
                UnitStatus {
                    name: name.clone(),
                    description: name.clone(),
                    load_state: load.into(),
                    active_state: active.into(),
                    sub_state: if active == "active" {
                        "running"
                    } else {
                        "dead"
                    }
                    .into(),
                    actions: Vec::new(),
                }
            })
            .collect();
        ready(Ok(units))
    }

    fn unit_action<'a>(
        &'a self,
        unit: &'a str,
        action: UnitAction,
    ) -> BoxFuture<'a, Result<(), SystemError>> {
        up_or_return!(self).actions.push((unit.to_string(), action));
        ready(Ok(()))
    }

    fn power(&self, action: PowerAction) -> BoxFuture<'_, Result<(), SystemError>> {
        let name = match action {
            PowerAction::Reboot => "reboot",
            PowerAction::PowerOff => "poweroff",
        };
        let mut inner = up_or_return!(self);
        inner.power.push(name.into());
        if action == PowerAction::Reboot {
            inner.reboots.push(RebootRequest::Plain);
        }
        ready(Ok(()))
    }

    fn reboot<'a>(&'a self, request: &'a RebootRequest) -> BoxFuture<'a, Result<(), SystemError>> {
        let entry = match request {
            RebootRequest::Plain => "reboot".to_string(),
            RebootRequest::WithParameter(p) => format!("reboot {p}"),
        };
        let mut inner = up_or_return!(self);
        inner.power.push(entry);
        inner.reboots.push(request.clone());
        ready(Ok(()))
    }

    fn hostname(&self) -> BoxFuture<'_, Result<String, SystemError>> {
        ready(Ok(up_or_return!(self).hostname.clone()))
    }

    fn set_hostname<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), SystemError>> {
        up_or_return!(self).hostname = name.to_string();
        ready(Ok(()))
    }

    fn time(&self) -> BoxFuture<'_, Result<TimeSettings, SystemError>> {
        let inner = up_or_return!(self);
        let now = self.clock.now().unix_timestamp_nanos() / 1000;
        ready(Ok(TimeSettings {
            timezone: inner.timezone.clone(),
            ntp: inner.ntp,
            ntp_synchronized: inner.ntp,
            time_usec: u64::try_from(now).unwrap_or(0),
        }))
    }

    fn set_timezone<'a>(&'a self, zone: &'a str) -> BoxFuture<'a, Result<(), SystemError>> {
        up_or_return!(self).timezone = zone.to_string();
        ready(Ok(()))
    }

    fn set_ntp(&self, on: bool) -> BoxFuture<'_, Result<(), SystemError>> {
        up_or_return!(self).ntp = on;
        ready(Ok(()))
    }

    fn start_mount<'a>(&'a self, plan: &'a MountPlan) -> BoxFuture<'a, Result<(), SystemError>> {
        let mut inner = up_or_return!(self);
        if inner.failing_mounts.contains(&plan.what) || inner.mounts.contains_key(&plan.unit) {
            return ready(Err(SystemError::Refused {
                service: "systemd",
                message: format!("cannot start {}", plan.unit),
            }));
        }
        inner.mounts.insert(plan.unit.clone(), plan.clone());
        if let Some(devices) = &self.devices {
            let point = plan.mount_point.display().to_string();
            devices.set_mounted(Self::device_of(&plan.what), vec![point]);
        }
        ready(Ok(()))
    }

    fn stop_mount<'a>(&'a self, unit: &'a str) -> BoxFuture<'a, Result<(), SystemError>> {
        let Some(plan) = up_or_return!(self).mounts.remove(unit) else {
            return ready(Err(SystemError::Refused {
                service: "systemd",
                message: format!("unit {unit} not loaded"),
            }));
        };
        if let Some(devices) = &self.devices {
            devices.set_mounted(Self::device_of(&plan.what), Vec::new());
        }
        ready(Ok(()))
    }
}
