//! The real [`SystemControl`]: systemd1 through systemd-zbus, and small proxies for login1,
//! hostname1 and timedate1. The connection is made on first use, so an agent on a machine
//! without a system bus (a developer's `--dev` run) starts and reports "unavailable" instead.

use super::bus::LazyBus;
use super::{
    PowerAction, SystemControl, SystemError, TimeSettings, UnitAction, UnitPolicy, UnitStatus,
};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use systemd_zbus::{ManagerProxy, Mode};

#[zbus::proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1"
)]
pub trait Login1 {
    fn reboot(&self, interactive: bool) -> zbus::Result<()>;
    fn set_reboot_parameter(&self, parameter: &str) -> zbus::Result<()>;
    fn power_off(&self, interactive: bool) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.hostname1",
    default_service = "org.freedesktop.hostname1",
    default_path = "/org/freedesktop/hostname1"
)]
pub trait Hostname1 {
    fn set_static_hostname(&self, hostname: &str, interactive: bool) -> zbus::Result<()>;
    #[zbus(property)]
    fn static_hostname(&self) -> zbus::Result<String>;
}

#[zbus::proxy(
    interface = "org.freedesktop.timedate1",
    default_service = "org.freedesktop.timedate1",
    default_path = "/org/freedesktop/timedate1"
)]
pub trait Timedate1 {
    fn set_timezone(&self, timezone: &str, interactive: bool) -> zbus::Result<()>;
    #[zbus(name = "SetNTP")]
    fn set_ntp(&self, use_ntp: bool, interactive: bool) -> zbus::Result<()>;
    #[zbus(property)]
    fn timezone(&self) -> zbus::Result<String>;
    #[zbus(property, name = "NTP")]
    fn ntp(&self) -> zbus::Result<bool>;
    #[zbus(property, name = "NTPSynchronized")]
    fn ntp_synchronized(&self) -> zbus::Result<bool>;
    #[zbus(property, name = "TimeUSec")]
    fn time_usec(&self) -> zbus::Result<u64>;
}

#[derive(Debug)]
pub struct DbusSystem {
    bus: LazyBus,
    policy: UnitPolicy,
}

fn refused(service: &'static str) -> impl Fn(zbus::Error) -> SystemError {
    move |e| SystemError::Refused {
        service,
        message: match e {
            zbus::Error::MethodError(name, detail, _) => detail.unwrap_or_else(|| name.to_string()),
            other => other.to_string(),
        },
    }
}

impl DbusSystem {
    pub fn new(address: Option<String>, policy: UnitPolicy) -> Self {
        Self {
            bus: LazyBus::new(address),
            policy,
        }
    }

    async fn conn(&self) -> Result<&zbus::Connection, SystemError> {
        self.bus
            .get()
            .await
            .map_err(|e| SystemError::Unavailable(e.to_string()))
    }

    async fn units_impl(&self, names: &[String]) -> Result<Vec<UnitStatus>, SystemError> {
        let manager = ManagerProxy::new(self.conn().await?)
            .await
            .map_err(refused("systemd"))?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let units = manager
            .list_units_by_names(&refs)
            .await
            .map_err(refused("systemd"))?;
        Ok(units
            .into_iter()
            .map(|u| UnitStatus {
                actions: self.policy.allowed_actions(&u.name),
                load_state: <&str>::from(&u.load).to_string(),
                active_state: <&str>::from(&u.active).to_string(),
                sub_state: <&str>::from(&u.sub_state).to_string(),
                name: u.name,
                description: u.description,
            })
            .collect())
    }

    async fn unit_action_impl(&self, unit: &str, action: UnitAction) -> Result<(), SystemError> {
        self.policy.check_action(unit, action)?;
        let manager = ManagerProxy::new(self.conn().await?)
            .await
            .map_err(refused("systemd"))?;
        let result = match action {
            UnitAction::Start => manager.start_unit(unit, Mode::Replace).await,
            UnitAction::Stop => manager.stop_unit(unit, Mode::Replace).await,
            UnitAction::Restart => manager.restart_unit(unit, Mode::Replace).await,
        };
        result.map(|_job| ()).map_err(refused("systemd"))
    }

    async fn power_impl(&self, action: PowerAction) -> Result<(), SystemError> {
        let login = Login1Proxy::new(self.conn().await?)
            .await
            .map_err(refused("logind"))?;
        match action {
            PowerAction::Reboot => login.reboot(false).await,
            PowerAction::PowerOff => login.power_off(false).await,
        }
        .map_err(refused("logind"))
    }

    async fn hostname1(&self) -> Result<Hostname1Proxy<'_>, SystemError> {
        Hostname1Proxy::new(self.conn().await?)
            .await
            .map_err(refused("hostnamed"))
    }

    async fn timedate1(&self) -> Result<Timedate1Proxy<'_>, SystemError> {
        Timedate1Proxy::new(self.conn().await?)
            .await
            .map_err(refused("timedated"))
    }

    async fn time_impl(&self) -> Result<TimeSettings, SystemError> {
        let t = self.timedate1().await?;
        let err = refused("timedated");
        Ok(TimeSettings {
            timezone: t.timezone().await.map_err(&err)?,
            ntp: t.ntp().await.map_err(&err)?,
            ntp_synchronized: t.ntp_synchronized().await.map_err(&err)?,
            time_usec: t.time_usec().await.map_err(&err)?,
        })
    }
}

impl DbusSystem {
    async fn start_mount_impl(
        &self,
        plan: &crate::disks::mount::MountPlan,
    ) -> Result<(), SystemError> {
        use zbus::zvariant::Value;
        let manager = ManagerProxy::new(self.conn().await?)
            .await
            .map_err(refused("systemd"))?;
        let where_ = plan.mount_point.to_string_lossy().into_owned();
        let properties = [
            (
                "Description",
                Value::from(format!("Hearth disk {}", plan.what)),
            ),
            ("What", Value::from(plan.what.as_str())),
            ("Where", Value::from(where_.as_str())),
            ("Type", Value::from(plan.fs_type.as_str())),
            ("Options", Value::from(plan.options.as_str())),
        ];
        manager
            .start_transient_unit(&plan.unit, Mode::Fail, &properties, &[])
            .await
            .map(|_job| ())
            .map_err(refused("systemd"))
    }

    async fn stop_mount_impl(&self, unit: &str) -> Result<(), SystemError> {
        if !unit.ends_with(".mount") {
            return Err(SystemError::UnitNotManaged(unit.to_string()));
        }
        let manager = ManagerProxy::new(self.conn().await?)
            .await
            .map_err(refused("systemd"))?;
        manager
            .stop_unit(unit, Mode::Replace)
            .await
            .map(|_job| ())
            .map_err(refused("systemd"))
    }
}

impl SystemControl for DbusSystem {
    fn units<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<UnitStatus>, SystemError>> {
        self.units_impl(names).boxed()
    }

    fn unit_action<'a>(
        &'a self,
        unit: &'a str,
        action: UnitAction,
    ) -> BoxFuture<'a, Result<(), SystemError>> {
        self.unit_action_impl(unit, action).boxed()
    }

    fn power(&self, action: PowerAction) -> BoxFuture<'_, Result<(), SystemError>> {
        self.power_impl(action).boxed()
    }

    fn reboot<'a>(
        &'a self,
        request: &'a hearth_ota::boot::RebootRequest,
    ) -> BoxFuture<'a, Result<(), SystemError>> {
        async move {
            let hearth_ota::boot::RebootRequest::WithParameter(parameter) = request else {
                return self.power_impl(PowerAction::Reboot).await;
            };
            let login = Login1Proxy::new(self.conn().await?)
                .await
                .map_err(refused("logind"))?;
            login
                .set_reboot_parameter(parameter)
                .await
                .map_err(refused("logind"))?;
            login.reboot(false).await.map_err(refused("logind"))
        }
        .boxed()
    }

    fn hostname(&self) -> BoxFuture<'_, Result<String, SystemError>> {
        async move {
            self.hostname1()
                .await?
                .static_hostname()
                .await
                .map_err(refused("hostnamed"))
        }
        .boxed()
    }

    fn set_hostname<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), SystemError>> {
        async move {
            self.hostname1()
                .await?
                .set_static_hostname(name, false)
                .await
                .map_err(refused("hostnamed"))
        }
        .boxed()
    }

    fn time(&self) -> BoxFuture<'_, Result<TimeSettings, SystemError>> {
        self.time_impl().boxed()
    }

    fn set_timezone<'a>(&'a self, zone: &'a str) -> BoxFuture<'a, Result<(), SystemError>> {
        async move {
            self.timedate1()
                .await?
                .set_timezone(zone, false)
                .await
                .map_err(refused("timedated"))
        }
        .boxed()
    }

    fn start_mount<'a>(
        &'a self,
        plan: &'a crate::disks::mount::MountPlan,
    ) -> BoxFuture<'a, Result<(), SystemError>> {
        self.start_mount_impl(plan).boxed()
    }

    fn stop_mount<'a>(&'a self, unit: &'a str) -> BoxFuture<'a, Result<(), SystemError>> {
        self.stop_mount_impl(unit).boxed()
    }

    fn set_ntp(&self, on: bool) -> BoxFuture<'_, Result<(), SystemError>> {
        async move {
            self.timedate1()
                .await?
                .set_ntp(on, false)
                .await
                .map_err(refused("timedated"))
        }
        .boxed()
    }
}
