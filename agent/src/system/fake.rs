//! An in-memory [`SystemControl`] for tests: host name, time zone and NTP are values, unit
//! actions, power requests and mount units are recorded. Given a [`FakeBlockDevices`], starting
//! and stopping a mount unit changes that fake's mount table the way the kernel would.

use super::{PowerAction, SystemControl, SystemError, TimeSettings, UnitAction, UnitStatus};
use crate::clock::SharedClock;
use crate::disks::FakeBlockDevices;
use crate::disks::mount::MountPlan;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
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
            })),
            devices: None,
            clock,
        }
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
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    std::future::ready(value).boxed()
}

impl SystemControl for FakeSystem {
    fn units<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<UnitStatus>, SystemError>> {
        let units = names
            .iter()
            .map(|name| UnitStatus {
                name: name.clone(),
                description: name.clone(),
                load_state: "loaded".into(),
                active_state: "active".into(),
                sub_state: "running".into(),
                actions: Vec::new(),
            })
            .collect();
        ready(Ok(units))
    }

    fn unit_action<'a>(
        &'a self,
        unit: &'a str,
        action: UnitAction,
    ) -> BoxFuture<'a, Result<(), SystemError>> {
        self.inner().actions.push((unit.to_string(), action));
        ready(Ok(()))
    }

    fn power(&self, action: PowerAction) -> BoxFuture<'_, Result<(), SystemError>> {
        let name = match action {
            PowerAction::Reboot => "reboot",
            PowerAction::PowerOff => "poweroff",
        };
        self.inner().power.push(name.into());
        ready(Ok(()))
    }

    fn reboot<'a>(
        &'a self,
        request: &'a hearth_ota::boot::RebootRequest,
    ) -> BoxFuture<'a, Result<(), SystemError>> {
        let entry = match request {
            hearth_ota::boot::RebootRequest::Plain => "reboot".to_string(),
            hearth_ota::boot::RebootRequest::WithParameter(p) => format!("reboot {p}"),
        };
        self.inner().power.push(entry);
        ready(Ok(()))
    }

    fn hostname(&self) -> BoxFuture<'_, Result<String, SystemError>> {
        ready(Ok(self.inner().hostname.clone()))
    }

    fn set_hostname<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), SystemError>> {
        self.inner().hostname = name.to_string();
        ready(Ok(()))
    }

    fn time(&self) -> BoxFuture<'_, Result<TimeSettings, SystemError>> {
        let inner = self.inner();
        let now = self.clock.now().unix_timestamp_nanos() / 1000;
        ready(Ok(TimeSettings {
            timezone: inner.timezone.clone(),
            ntp: inner.ntp,
            ntp_synchronized: inner.ntp,
            time_usec: u64::try_from(now).unwrap_or(0),
        }))
    }

    fn set_timezone<'a>(&'a self, zone: &'a str) -> BoxFuture<'a, Result<(), SystemError>> {
        self.inner().timezone = zone.to_string();
        ready(Ok(()))
    }

    fn set_ntp(&self, on: bool) -> BoxFuture<'_, Result<(), SystemError>> {
        self.inner().ntp = on;
        ready(Ok(()))
    }

    fn start_mount<'a>(&'a self, plan: &'a MountPlan) -> BoxFuture<'a, Result<(), SystemError>> {
        let mut inner = self.inner();
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
        let Some(plan) = self.inner().mounts.remove(unit) else {
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
