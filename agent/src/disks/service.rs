//! The disks service: everything the API and the background tasks do with disks. It decides
//! (what may be formatted, mounted, unmounted or ejected; which mounts come back after a reboot;
//! what a hot-plug event auto-mounts) and reaches the system only through [`BlockDevices`] and
//! `SystemControl`. It never knows about HTTP.

use super::hotplug::{BlockUevent, DiskChange, DiskSettings, automount_plans};
use super::mount::{MountPlan, PersistedMount, plan_mount, unit_name_for};
use super::{BlockDevices, Disk, DiskError, FormatRequest};
use crate::error::ServiceError;
use crate::events::{DiskEvent, Event, Events};
use crate::store::Store;
use crate::system::SystemControl;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Cloning shares the same devices, system and store.
#[derive(Debug, Clone)]
pub struct Service {
    devices: Arc<dyn BlockDevices>,
    system: Arc<dyn SystemControl>,
    store: Store,
    events: Events,
    /// Where disks are mounted (`<media_dir>/<partition>`); Hearth unmounts nothing outside it.
    media_dir: PathBuf,
    /// Whether hot-plug events of loop devices count (tests use loop devices as disks).
    include_loop: bool,
}

impl Service {
    pub fn new(
        devices: Arc<dyn BlockDevices>,
        system: Arc<dyn SystemControl>,
        store: Store,
        events: Events,
        media_dir: PathBuf,
        include_loop: bool,
    ) -> Self {
        Self {
            devices,
            system,
            store,
            events,
            media_dir,
            include_loop,
        }
    }

    /// Runs a blocking device call off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&dyn BlockDevices) -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let devices = self.devices.clone();
        tokio::task::spawn_blocking(move || f(devices.as_ref()))
            .await
            .map_err(|e| ServiceError::Internal(format!("{what} failed: {e}")))
    }

    /// Every disk, with partitions, file systems, mounts, usage and SMART health.
    pub async fn list(&self) -> Result<Vec<Disk>, ServiceError> {
        self.blocking("disk listing", |d| d.list()).await
    }

    pub async fn get(&self, name: &str) -> Result<Disk, ServiceError> {
        let name = name.to_string();
        Ok(self
            .blocking("disk listing", move |d| d.get(&name))
            .await??)
    }

    /// Erases a disk and makes one partition with one file system: refused for the system disk,
    /// a disk in use and without the disk's name as confirmation. The disk as it is afterwards.
    pub async fn format(
        &self,
        name: &str,
        req: FormatRequest,
        admin: &str,
    ) -> Result<Disk, ServiceError> {
        let disk = self.get(name).await?;
        let label = super::format::check(&disk, &req)?;
        let filesystem = req.filesystem;
        self.blocking("format task", move |d| d.format(&disk, filesystem, &label))
            .await??;
        tracing::warn!(admin = %admin, disk = %name, "disk formatted");
        self.get(name).await
    }

    /// Mounts a partition (the first with a file system by default) under the media folder and
    /// remembers it by file-system UUID, so it comes back after a reboot.
    pub async fn mount(&self, name: &str, partition: Option<&str>) -> Result<Disk, ServiceError> {
        let disk = self.get(name).await?;
        let plan = plan_mount(&disk, partition, &self.media_dir)?;
        self.start(&plan).await?;
        if let Some(uuid) = &plan.uuid {
            let mut mounts = self.store.mounts()?;
            mounts.retain(|m| m.mount_point != plan.mount_point && &m.uuid != uuid);
            mounts.push(PersistedMount {
                uuid: uuid.clone(),
                fs_type: plan.fs_type.clone(),
                mount_point: plan.mount_point.clone(),
            });
            self.store.put_mounts(&mounts)?;
        }
        self.get(name).await
    }

    async fn start(&self, plan: &MountPlan) -> Result<(), ServiceError> {
        crate::fsutil::ensure_dir(&plan.mount_point, 0o755).map_err(|e| {
            ServiceError::Internal(format!("cannot create {}: {e}", plan.mount_point.display()))
        })?;
        Ok(self.system.start_mount(plan).await?)
    }

    /// Unmounts every Hearth mount of the disk and forgets them; the disk as it is afterwards.
    pub async fn unmount(&self, name: &str) -> Result<Disk, ServiceError> {
        self.unmount_all(name).await?;
        self.get(name).await
    }

    async fn unmount_all(&self, name: &str) -> Result<(), ServiceError> {
        let disk = self.get(name).await?;
        if disk.system {
            return Err(DiskError::SystemDisk(disk.name).into());
        }
        let points: Vec<String> = disk
            .mount_points
            .iter()
            .chain(disk.partitions.iter().flat_map(|p| p.mount_points.iter()))
            .cloned()
            .collect();
        for point in &points {
            let path = Path::new(point);
            if !path.starts_with(&self.media_dir) {
                return Err(
                    DiskError::Invalid(format!("{point} was not mounted by Hearth.")).into(),
                );
            }
            self.system.stop_mount(&unit_name_for(path)).await?;
            let _ = std::fs::remove_dir(path);
        }
        let mut mounts = self.store.mounts()?;
        mounts.retain(|m| !points.iter().any(|p| Path::new(p) == m.mount_point));
        self.store.put_mounts(&mounts)?;
        Ok(())
    }

    /// Unmounts the disk and lets the kernel release it, so it can be unplugged.
    pub async fn eject(&self, name: &str) -> Result<(), ServiceError> {
        self.unmount_all(name).await?;
        let disk = self.get(name).await?;
        Ok(self.blocking("eject", move |d| d.eject(&disk)).await??)
    }

    /// The auto-mount policy.
    pub fn settings(&self) -> Result<DiskSettings, ServiceError> {
        Ok(self.store.disk_settings()?)
    }

    pub fn set_settings(&self, settings: &DiskSettings) -> Result<(), ServiceError> {
        Ok(self.store.put_disk_settings(settings)?)
    }

    /// Mounts the disks recorded in the store again (at agent start); a disk that is not
    /// attached or cannot be mounted is logged and skipped.
    pub async fn remount_persisted(&self) {
        let Ok(persisted) = self.store.mounts() else {
            return;
        };
        if persisted.is_empty() {
            return;
        }
        let Ok(list) = self.list().await else {
            return;
        };
        for m in persisted {
            let found = list.iter().find_map(|d| {
                d.partitions
                    .iter()
                    .find(|p| p.uuid.as_deref() == Some(&m.uuid))
                    .map(|p| (d, p))
            });
            let Some((disk, part)) = found else {
                tracing::info!(uuid = %m.uuid, "remembered disk is not attached");
                continue;
            };
            if !part.mount_points.is_empty() {
                continue;
            }
            let started = match plan_mount(disk, Some(&part.name), &self.media_dir) {
                Ok(plan) => self.start(&plan).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = started {
                tracing::warn!(disk = %part.name, error = %e, "cannot mount remembered disk");
            }
        }
    }

    /// Follows kernel uevents for block devices for as long as the agent runs (see
    /// [`Service::on_uevent`]). Without a uevent socket (no permission, a container), hot-plug
    /// is just off.
    pub async fn follow_hotplug(self) {
        let mut rx = match super::hotplug::listen() {
            Ok(rx) => rx,
            Err(e) => {
                tracing::warn!("disk hot-plug is off: cannot listen to kernel uevents: {e}");
                return;
            }
        };
        while let Some(uevent) = rx.recv().await {
            self.on_uevent(uevent).await;
        }
    }

    /// One block uevent: auto-mounts per the policy and publishes `disk_added` /
    /// `disk_removed` / `disk_changed` with the fresh listing. Loop devices are ignored unless
    /// configured.
    pub async fn on_uevent(&self, uevent: BlockUevent) {
        if uevent.disk.starts_with("loop") && !self.include_loop {
            return;
        }
        let info = self.get(&uevent.disk).await.ok();
        // A disk that changed into one Hearth does not list (a card reader without its card, a
        // detached loop device: size 0) has gone, as far as the dashboard is concerned.
        let change = match (&info, uevent.change) {
            (None, _) => DiskChange::DiskRemoved,
            (Some(_), change) => change,
        };
        let mut automounted = Vec::new();
        if let (Some(disk), DiskChange::DiskAdded | DiskChange::DiskChanged) = (&info, change) {
            let policy = self.store.disk_settings().unwrap_or_default().automount;
            for plan in automount_plans(disk, policy, &self.media_dir) {
                // Not recorded in the store: an auto-mount does not come back after a reboot.
                match self.start(&plan).await {
                    Ok(()) => automounted.push(plan.mount_point.display().to_string()),
                    Err(e) => tracing::warn!("auto-mount of {} failed: {e}", plan.what),
                }
            }
        }
        self.events.publish(Event::Disk(Box::new(DiskEvent {
            change,
            disk: uevent.disk,
            device: uevent.device,
            info,
            automounted,
        })));
    }
}

#[cfg(test)]
mod tests;
