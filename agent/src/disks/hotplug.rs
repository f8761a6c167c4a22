//! Disk hot-plug: kernel uevents for block devices (a `NETLINK_KOBJECT_UEVENT` socket, no udev
//! daemon needed), turned into `disk_added` / `disk_removed` / `disk_changed` events on the
//! live event stream, and optional auto-mounting of removable disks.
//!
//! The parser and the auto-mount decision are pure; the socket is read on one blocking thread.
//! Auto-mounts are transient mount units that are not recorded in the store, so they do not come
//! back after a reboot (a persistent mount stays an explicit choice).

use super::{Disk, mount::MountPlan};
use serde::{Deserialize, Serialize};

/// What the kernel said happened to a block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiskChange {
    DiskAdded,
    DiskRemoved,
    DiskChanged,
}

/// A block-device uevent, reduced to what Hearth uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockUevent {
    pub change: DiskChange,
    /// Kernel name of the whole disk (`sdb` for `sdb1`).
    pub disk: String,
    /// Kernel name of the device the event is about (`sdb1`, or the disk itself).
    pub device: String,
}

/// Parses one netlink message (`action@devpath\0KEY=VALUE\0...`). `None` for anything but a
/// block disk or partition being added, removed or changed, and for udevd's re-broadcasts
/// (which start with `libudev`).
pub fn parse_uevent(message: &[u8]) -> Option<BlockUevent> {
    let mut fields = message.split(|b| *b == 0);
    let header = std::str::from_utf8(fields.next()?).ok()?;
    if !header.contains('@') {
        return None;
    }
    let (mut action, mut subsystem, mut devname, mut devtype, mut devpath) =
        (None, None, None, None, None);
    for field in fields {
        let Ok(text) = std::str::from_utf8(field) else {
            continue;
        };
        match text.split_once('=') {
            Some(("ACTION", v)) => action = Some(v),
            Some(("SUBSYSTEM", v)) => subsystem = Some(v),
            Some(("DEVNAME", v)) => devname = Some(v),
            Some(("DEVTYPE", v)) => devtype = Some(v),
            Some(("DEVPATH", v)) => devpath = Some(v),
            _ => {}
        }
    }
    if subsystem? != "block" {
        return None;
    }
    let change = match action? {
        "add" => DiskChange::DiskAdded,
        "remove" => DiskChange::DiskRemoved,
        "change" => DiskChange::DiskChanged,
        _ => return None,
    };
    let devpath = devpath?;
    let device = devname
        .map(|n| n.trim_start_matches("/dev/"))
        .or_else(|| devpath.rsplit('/').next())?
        .to_string();
    // A partition's DEVPATH ends in `.../block/<disk>/<partition>`.
    let disk = match devtype? {
        "disk" => device.clone(),
        "partition" => devpath.rsplit('/').nth(1)?.to_string(),
        _ => return None,
    };
    if !super::valid_name(&disk) || !super::valid_name(&device) {
        return None;
    }
    Some(BlockUevent {
        change,
        disk,
        device,
    })
}

/// The auto-mount policy (a device setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutomountPolicy {
    /// New disks are reported, never mounted by themselves.
    #[default]
    Off,
    /// File systems on removable disks (USB sticks and drives, SD cards) are mounted under the
    /// media folder when they appear, until they are unplugged or the device restarts.
    Removable,
}

/// Disk settings kept in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiskSettings {
    pub automount: AutomountPolicy,
}

/// Which file systems of `disk` to mount under `policy`: the disk's own or each partition's,
/// when the disk is removable (or on USB), not the system's, and not mounted yet.
pub fn automount_plans(
    disk: &Disk,
    policy: AutomountPolicy,
    media_dir: &std::path::Path,
) -> Vec<MountPlan> {
    let eligible = policy == AutomountPolicy::Removable
        && !disk.system
        && (disk.removable || disk.bus == "usb");
    if !eligible {
        return Vec::new();
    }
    let mut plans = Vec::new();
    if disk.fs_type.is_some() && disk.mount_points.is_empty() {
        plans.extend(super::mount::plan_mount(disk, None, media_dir).ok());
    }
    for part in &disk.partitions {
        if part.fs_type.is_some() && part.mount_points.is_empty() {
            plans.extend(super::mount::plan_mount(disk, Some(&part.name), media_dir).ok());
        }
    }
    plans
}

/// Reads block uevents from the kernel on a blocking thread until the receiver is gone.
pub fn listen() -> std::io::Result<tokio::sync::mpsc::Receiver<BlockUevent>> {
    use nix::sys::socket::{
        AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
    };
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )?;
    // Group 1: the kernel's own broadcasts.
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &NetlinkAddr::new(0, 1),
    )?;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    std::thread::Builder::new()
        .name("uevents".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match recv(
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                    &mut buf,
                    nix::sys::socket::MsgFlags::empty(),
                ) {
                    Ok(n) => n,
                    // ENOBUFS: the kernel dropped messages; keep listening.
                    Err(nix::errno::Errno::ENOBUFS | nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        tracing::warn!("uevent socket failed: {e}");
                        return;
                    }
                };
                if let Some(event) = parse_uevent(&buf[..n])
                    && tx.blocking_send(event).is_err()
                {
                    return;
                }
            }
        })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(fields: &[&str]) -> Vec<u8> {
        fields.join("\0").into_bytes()
    }

    #[test]
    fn block_uevents_are_parsed_and_others_ignored() {
        let usb_add = msg(&[
            "add@/devices/pci0000:00/usb1/1-1/host6/target6:0:0/6:0:0:0/block/sdb/sdb1",
            "ACTION=add",
            "DEVPATH=/devices/pci0000:00/usb1/1-1/host6/target6:0:0/6:0:0:0/block/sdb/sdb1",
            "SUBSYSTEM=block",
            "DEVNAME=sdb1",
            "DEVTYPE=partition",
            "SEQNUM=4242",
        ]);
        assert_eq!(
            parse_uevent(&usb_add),
            Some(BlockUevent {
                change: DiskChange::DiskAdded,
                disk: "sdb".into(),
                device: "sdb1".into()
            })
        );
        let loop_change = msg(&[
            "change@/devices/virtual/block/loop1",
            "ACTION=change",
            "DEVPATH=/devices/virtual/block/loop1",
            "SUBSYSTEM=block",
            "MAJOR=7",
            "MINOR=1",
            "DEVNAME=loop1",
            "DEVTYPE=disk",
        ]);
        assert_eq!(
            parse_uevent(&loop_change).map(|e| (e.change, e.disk)),
            Some((DiskChange::DiskChanged, "loop1".into()))
        );
        let removed = msg(&[
            "remove@/devices/virtual/block/sdc",
            "ACTION=remove",
            "DEVPATH=/devices/virtual/block/sdc",
            "SUBSYSTEM=block",
            "DEVNAME=sdc",
            "DEVTYPE=disk",
        ]);
        assert_eq!(
            parse_uevent(&removed).map(|e| e.change),
            Some(DiskChange::DiskRemoved)
        );
        for ignored in [
            msg(&[
                "add@/devices/x",
                "ACTION=add",
                "SUBSYSTEM=usb",
                "DEVTYPE=usb_device",
            ]),
            msg(&[
                "bind@/devices/x",
                "ACTION=bind",
                "SUBSYSTEM=block",
                "DEVTYPE=disk",
                "DEVPATH=/x/sda",
            ]),
            msg(&["libudev", "ACTION=add", "SUBSYSTEM=block"]),
            msg(&[
                "add@/x",
                "ACTION=add",
                "SUBSYSTEM=block",
                "DEVTYPE=disk",
                "DEVPATH=/x/a;b",
                "DEVNAME=../../etc",
            ]),
            b"\xff\xfe".to_vec(),
            Vec::new(),
        ] {
            assert_eq!(parse_uevent(&ignored), None, "{ignored:?}");
        }
    }

    fn disk(removable: bool, bus: &str, system: bool) -> Disk {
        Disk {
            name: "sdb".into(),
            path: "/dev/sdb".into(),
            size_bytes: 1 << 30,
            model: None,
            serial: None,
            bus: bus.into(),
            removable,
            rotational: false,
            system,
            fs_type: None,
            label: None,
            mount_points: Vec::new(),
            partitions: vec![
                super::super::Partition {
                    name: "sdb1".into(),
                    path: "/dev/sdb1".into(),
                    number: 1,
                    size_bytes: 1 << 29,
                    fs_type: Some("exfat".into()),
                    label: None,
                    uuid: Some("1234-ABCD".into()),
                    mount_points: Vec::new(),
                    usage: None,
                },
                super::super::Partition {
                    name: "sdb2".into(),
                    path: "/dev/sdb2".into(),
                    number: 2,
                    size_bytes: 1 << 29,
                    fs_type: Some("ext4".into()),
                    label: None,
                    uuid: Some("u2".into()),
                    mount_points: vec!["/somewhere".into()],
                    usage: None,
                },
            ],
            smart: None,
        }
    }

    #[test]
    fn only_removable_disks_are_automounted_and_only_when_asked() {
        let media = std::path::Path::new("/media");
        let usb = disk(true, "usb", false);
        let plans = automount_plans(&usb, AutomountPolicy::Removable, media);
        assert_eq!(
            plans.iter().map(|p| p.what.as_str()).collect::<Vec<_>>(),
            ["/dev/sdb1"],
            "the mounted partition is left alone"
        );
        assert!(plans[0].mount_point.starts_with(media));
        assert!(automount_plans(&usb, AutomountPolicy::Off, media).is_empty());
        assert!(
            automount_plans(
                &disk(false, "sata", false),
                AutomountPolicy::Removable,
                media
            )
            .is_empty()
        );
        assert!(
            automount_plans(&disk(true, "usb", true), AutomountPolicy::Removable, media).is_empty()
        );
    }
}
