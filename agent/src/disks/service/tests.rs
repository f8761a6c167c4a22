//! The disks service over the in-memory block devices and system: no root, no loop devices.

use super::*;
use crate::disks::hotplug::AutomountPolicy;
use crate::disks::{FakeBlockDevices, Filesystem, Partition};
use crate::system::fake::FakeSystem;

struct Fixture {
    service: Service,
    devices: FakeBlockDevices,
    system: FakeSystem,
    store: Store,
    events: Events,
    media: PathBuf,
    _dir: tempfile::TempDir,
}

fn partition(name: &str, fs: Option<&str>, uuid: Option<&str>) -> Partition {
    Partition {
        name: name.into(),
        path: format!("/dev/{name}"),
        number: 1,
        size_bytes: 1 << 30,
        fs_type: fs.map(Into::into),
        label: None,
        uuid: uuid.map(Into::into),
        mount_points: Vec::new(),
        usage: None,
    }
}

fn disk(name: &str, bus: &str, system: bool, partitions: Vec<Partition>) -> Disk {
    Disk {
        name: name.into(),
        path: format!("/dev/{name}"),
        size_bytes: 1 << 30,
        model: None,
        serial: None,
        bus: bus.into(),
        removable: bus == "usb",
        rotational: false,
        system,
        fs_type: None,
        label: None,
        mount_points: Vec::new(),
        partitions,
        smart: None,
    }
}

/// `sda`: the system disk (mounted at /); `sdb`: a USB disk with an ext4 partition; `sdc`: an
/// empty SATA disk.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let mut sda1 = partition("sda1", Some("ext4"), Some("root-uuid"));
    sda1.mount_points.push("/".into());
    let devices = FakeBlockDevices::new(vec![
        disk("sda", "sata", true, vec![sda1]),
        disk(
            "sdb",
            "usb",
            false,
            vec![partition("sdb1", Some("ext4"), Some("data-uuid"))],
        ),
        disk("sdc", "sata", false, Vec::new()),
    ]);
    let system = FakeSystem::default().with_block_devices(devices.clone());
    let store = Store::open(&dir.path().join("store")).expect("store");
    let events = Events::new();
    let media = dir.path().join("media");
    let service = Service::new(
        Arc::new(devices.clone()),
        Arc::new(system.clone()),
        store.clone(),
        events.clone(),
        media.clone(),
        false,
    );
    Fixture {
        service,
        devices,
        system,
        store,
        events,
        media,
        _dir: dir,
    }
}

fn format_request(filesystem: Filesystem, confirm: &str) -> FormatRequest {
    FormatRequest {
        filesystem,
        label: Some("Backup".into()),
        confirm: confirm.into(),
    }
}

#[tokio::test]
async fn lists_the_disks_and_finds_one_by_name() {
    let f = fixture();
    let names: Vec<String> = f
        .service
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["sda", "sdb", "sdc"]);
    assert!(f.service.get("sda").await.expect("sda").system);
    for missing in ["sdz", "../sda", ""] {
        assert!(
            matches!(
                f.service.get(missing).await,
                Err(ServiceError::Disks(DiskError::NotFound(_)))
            ),
            "{missing:?}"
        );
    }
}

#[tokio::test]
async fn format_is_refused_on_the_system_disk_and_without_confirmation() {
    let f = fixture();
    let err = f
        .service
        .format("sda", format_request(Filesystem::Ext4, "sda"), "admin")
        .await;
    assert!(
        matches!(err, Err(ServiceError::Disks(DiskError::SystemDisk(_)))),
        "{err:?}"
    );
    let err = f
        .service
        .format("sdc", format_request(Filesystem::Ext4, "sdb"), "admin")
        .await;
    assert!(
        matches!(err, Err(ServiceError::Disks(DiskError::Invalid(_)))),
        "{err:?}"
    );
    let mut bad_label = format_request(Filesystem::Ext4, "sdc");
    bad_label.label = Some("a;rm -rf /".into());
    let err = f.service.format("sdc", bad_label, "admin").await;
    assert!(
        matches!(err, Err(ServiceError::Disks(DiskError::Invalid(_)))),
        "{err:?}"
    );
    assert!(f.devices.formatted().is_empty(), "nothing was formatted");
}

#[tokio::test]
async fn format_is_refused_for_a_mounted_disk_and_formats_an_idle_one() {
    let f = fixture();
    f.service.mount("sdb", None).await.expect("mount");
    let err = f
        .service
        .format("sdb", format_request(Filesystem::Exfat, "sdb"), "admin")
        .await;
    assert!(
        matches!(err, Err(ServiceError::Disks(DiskError::InUse(..)))),
        "{err:?}"
    );
    let disk = f
        .service
        .format("sdc", format_request(Filesystem::Exfat, "sdc"), "admin")
        .await
        .expect("format");
    assert_eq!(
        f.devices.formatted(),
        [("sdc".to_string(), Filesystem::Exfat, "Backup".to_string())]
    );
    assert_eq!(disk.partitions.len(), 1);
    assert_eq!(disk.partitions[0].fs_type.as_deref(), Some("exfat"));
}

#[tokio::test]
async fn mount_is_remembered_and_unmount_forgets_it() {
    let f = fixture();
    let disk = f.service.mount("sdb", None).await.expect("mount");
    let point = f.media.join("sdb1");
    assert_eq!(
        disk.partitions[0].mount_points,
        [point.display().to_string()]
    );
    assert!(point.is_dir(), "the mount point was made");
    let plan = f
        .system
        .mounts()
        .remove(&unit_name_for(&point))
        .expect("mount unit started");
    assert_eq!(
        (plan.what.as_str(), plan.fs_type.as_str()),
        ("/dev/sdb1", "ext4")
    );
    assert!(plan.options.contains("nosuid") && plan.options.contains("nodev"));
    assert_eq!(
        f.store.mounts().expect("mounts"),
        [PersistedMount {
            uuid: "data-uuid".into(),
            fs_type: "ext4".into(),
            mount_point: point.clone()
        }]
    );
    let err = f.service.mount("sdb", None).await;
    assert!(
        matches!(err, Err(ServiceError::Disks(DiskError::InUse(..)))),
        "{err:?}"
    );

    let disk = f.service.unmount("sdb").await.expect("unmount");
    assert!(disk.partitions[0].mount_points.is_empty());
    assert!(f.system.mounts().is_empty(), "the mount unit was stopped");
    assert!(f.store.mounts().expect("mounts").is_empty(), "forgotten");
    assert!(!point.exists(), "the empty mount point is removed");
}

#[tokio::test]
async fn mount_and_unmount_are_refused_on_the_system_disk_and_for_foreign_mounts() {
    let f = fixture();
    for result in [
        f.service.mount("sda", None).await.map(|_| ()),
        f.service.unmount("sda").await.map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(ServiceError::Disks(DiskError::SystemDisk(_)))),
            "{result:?}"
        );
    }
    assert!(
        matches!(
            f.service.mount("sdc", None).await,
            Err(ServiceError::Disks(DiskError::Invalid(_)))
        ),
        "a disk without a file system"
    );
    f.devices.set_mounted("sdb1", vec!["/mnt/elsewhere".into()]);
    let err = f.service.unmount("sdb").await;
    assert!(
        matches!(err, Err(ServiceError::Disks(DiskError::Invalid(_)))),
        "{err:?}"
    );
    assert_eq!(
        f.service.get("sdb").await.expect("sdb").partitions[0].mount_points,
        ["/mnt/elsewhere"]
    );
}

#[tokio::test]
async fn eject_unmounts_then_releases_the_disk() {
    let f = fixture();
    f.service.mount("sdb", None).await.expect("mount");
    f.service.eject("sdb").await.expect("eject");
    assert!(f.system.mounts().is_empty(), "unmounted first");
    assert!(f.store.mounts().expect("mounts").is_empty());
    assert_eq!(f.devices.ejected(), ["sdb"]);
    assert!(
        matches!(
            f.service.get("sdb").await,
            Err(ServiceError::Disks(DiskError::NotFound(_)))
        ),
        "a USB disk is detached"
    );
    let err = f.service.eject("sda").await;
    assert!(
        matches!(err, Err(ServiceError::Disks(DiskError::SystemDisk(_)))),
        "{err:?}"
    );
    assert_eq!(
        f.devices.ejected(),
        ["sdb"],
        "the system disk is never ejected"
    );
}

#[tokio::test]
async fn remembered_mounts_come_back_after_a_restart() {
    let f = fixture();
    f.service.mount("sdb", None).await.expect("mount");
    // A reboot: the kernel's mount table is empty again, systemd knows no transient unit.
    f.devices.set_mounted("sdb1", Vec::new());
    let system = FakeSystem::default().with_block_devices(f.devices.clone());
    let restarted = Service::new(
        Arc::new(f.devices.clone()),
        Arc::new(system.clone()),
        f.store.clone(),
        f.events.clone(),
        f.media.clone(),
        false,
    );
    restarted.remount_persisted().await;
    assert_eq!(system.mounts().len(), 1);
    assert_eq!(
        restarted.get("sdb").await.expect("sdb").partitions[0].mount_points,
        [f.media.join("sdb1").display().to_string()]
    );
    // A remembered disk that is not attached is skipped, not an error.
    f.devices.unplug("sdb");
    let system = FakeSystem::default().with_block_devices(f.devices.clone());
    Service::new(
        Arc::new(f.devices.clone()),
        Arc::new(system.clone()),
        f.store.clone(),
        f.events.clone(),
        f.media.clone(),
        false,
    )
    .remount_persisted()
    .await;
    assert!(system.mounts().is_empty());
    assert_eq!(
        f.store.mounts().expect("mounts").len(),
        1,
        "still remembered"
    );
}

#[tokio::test]
async fn hotplug_automounts_removable_disks_per_policy_and_publishes() {
    let f = fixture();
    let mut rx = f.events.subscribe();
    let uevent = |disk: &str, change| BlockUevent {
        change,
        disk: disk.into(),
        device: disk.into(),
    };

    f.service
        .on_uevent(uevent("sdb", DiskChange::DiskAdded))
        .await;
    let Ok(Event::Disk(event)) = rx.try_recv() else {
        panic!("no disk event")
    };
    assert_eq!(event.change, DiskChange::DiskAdded);
    assert!(event.automounted.is_empty(), "auto-mount is off by default");
    assert!(f.system.mounts().is_empty());

    f.service
        .set_settings(&DiskSettings {
            automount: AutomountPolicy::Removable,
        })
        .expect("settings");
    assert_eq!(
        f.service.settings().expect("settings").automount,
        AutomountPolicy::Removable
    );
    f.service
        .on_uevent(uevent("sdb", DiskChange::DiskChanged))
        .await;
    let Ok(Event::Disk(event)) = rx.try_recv() else {
        panic!("no disk event")
    };
    assert_eq!(
        event.automounted,
        [f.media.join("sdb1").display().to_string()]
    );
    assert!(
        f.store.mounts().expect("mounts").is_empty(),
        "auto-mounts are not remembered"
    );

    f.service
        .on_uevent(uevent("sdc", DiskChange::DiskAdded))
        .await;
    let Ok(Event::Disk(event)) = rx.try_recv() else {
        panic!("no disk event")
    };
    assert!(event.automounted.is_empty(), "a SATA disk is not removable");

    f.devices.unplug("sdb");
    f.service
        .on_uevent(uevent("sdb", DiskChange::DiskChanged))
        .await;
    let Ok(Event::Disk(event)) = rx.try_recv() else {
        panic!("no disk event")
    };
    assert_eq!(
        (event.change, event.info.is_none()),
        (DiskChange::DiskRemoved, true)
    );

    f.service
        .on_uevent(uevent("loop3", DiskChange::DiskAdded))
        .await;
    assert!(
        rx.try_recv().is_err(),
        "loop devices are ignored unless configured"
    );
}
