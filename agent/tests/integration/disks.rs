//! Disks on real loop devices: listed, formatted through the API, protected when they hold the
//! system or are in use.

use crate::common;

use common::inproc::{Harness, code};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A loop device backed by a sparse file, detached on drop.
struct Loop {
    dev: String,
    _file: tempfile::NamedTempFile,
}

impl Loop {
    fn new(mib: u64) -> Loop {
        let file = tempfile::NamedTempFile::new().expect("backing file");
        file.as_file().set_len(mib << 20).expect("size");
        let out = Command::new("losetup")
            .args(["--find", "--show", "--partscan"])
            .arg(file.path())
            .output()
            .expect("losetup (util-linux) must be installed");
        assert!(
            out.status.success(),
            "losetup failed (loop devices are needed): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop {
            dev: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            _file: file,
        }
    }

    fn name(&self) -> &str {
        self.dev.trim_start_matches("/dev/")
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg(format!("{}p1", self.dev))
            .output();
        let _ = Command::new("losetup")
            .args(["--detach", &self.dev])
            .output();
    }
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .expect("disks")
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {list}"))
}

async fn harness(protected: Vec<PathBuf>) -> Harness {
    Harness::with_config(move |c| {
        c.disks_include_loop = true;
        c.protected_paths = protected;
    })
    .await
}

#[tokio::test]
async fn a_loop_disk_is_listed_and_formatted_with_each_file_system() {
    let disk = Loop::new(300);
    let h = harness(Vec::new()).await;
    let mut admin = h.admin().await;
    let r = h.call(&mut admin, "GET", "/api/v1/disks", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let d = find(&r.body, disk.name());
    assert_eq!(
        (
            d["bus"].as_str(),
            d["system"].as_bool(),
            d["size_bytes"].as_u64()
        ),
        (Some("loop"), Some(false), Some(300 << 20))
    );
    let root_disk = r
        .body
        .as_array()
        .expect("disks")
        .iter()
        .any(|d| d["system"] == true);
    assert!(
        root_disk,
        "the disk holding / is marked as the system's: {}",
        r.raw
    );

    let url = format!("/api/v1/disks/{}/format", disk.name());
    let wrong = h
        .call(
            &mut admin,
            "POST",
            &url,
            Some(json!({"filesystem": "ext4", "confirm": "sda"})),
        )
        .await;
    assert_eq!(
        (wrong.status, code(&wrong)),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    let bad_label = h
        .call(
            &mut admin,
            "POST",
            &url,
            Some(json!({"filesystem": "ext4", "label": "x;reboot", "confirm": disk.name()})),
        )
        .await;
    assert_eq!(bad_label.status, StatusCode::BAD_REQUEST);
    let bad_fs = h
        .call(
            &mut admin,
            "POST",
            &url,
            Some(json!({"filesystem": "ntfs", "confirm": disk.name()})),
        )
        .await;
    assert_eq!(bad_fs.status, StatusCode::BAD_REQUEST);

    for (fs, label) in [("ext4", "Photos"), ("exfat", "USB"), ("btrfs", "Backup")] {
        let r = h
            .call(
                &mut admin,
                "POST",
                &url,
                Some(json!({"filesystem": fs, "label": label, "confirm": disk.name()})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{fs}: {}", r.raw);
        let parts = r.body["partitions"].as_array().expect("partitions");
        assert_eq!(parts.len(), 1, "{fs}: {}", r.raw);
        assert_eq!(
            (parts[0]["fs_type"].as_str(), parts[0]["label"].as_str()),
            (Some(fs), Some(label)),
            "{}",
            r.raw
        );
    }
}

#[tokio::test]
async fn mounted_and_system_disks_are_never_formatted() {
    let disk = Loop::new(64);
    let part = format!("{}p1", disk.dev);
    let h = harness(Vec::new()).await;
    let mut admin = h.admin().await;
    let url = format!("/api/v1/disks/{}/format", disk.name());
    let r = h
        .call(
            &mut admin,
            "POST",
            &url,
            Some(json!({"filesystem": "ext4", "label": "data", "confirm": disk.name()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let mnt = tempfile::tempdir().expect("mountpoint");
    let status = Command::new("mount")
        .arg(&part)
        .arg(mnt.path())
        .status()
        .expect("mount");
    assert!(status.success());
    std::fs::write(mnt.path().join("keep.txt"), b"precious").expect("write");

    let r = h
        .call(
            &mut admin,
            "POST",
            &url,
            Some(json!({"filesystem": "btrfs", "confirm": disk.name()})),
        )
        .await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::CONFLICT, "in_use"),
        "{}",
        r.raw
    );

    // The same disk holding a protected (system) path is refused outright.
    let guarded = harness(vec![mnt.path().join("keep.txt")]).await;
    let mut admin2 = guarded.admin().await;
    let list = guarded
        .call(&mut admin2, "GET", "/api/v1/disks", None)
        .await;
    assert_eq!(find(&list.body, disk.name())["system"], true);
    let r = guarded
        .call(
            &mut admin2,
            "POST",
            &url,
            Some(json!({"filesystem": "ext4", "confirm": disk.name()})),
        )
        .await;
    assert_eq!((r.status, code(&r)), (StatusCode::FORBIDDEN, "system_disk"));
    assert_eq!(
        std::fs::read(mnt.path().join("keep.txt")).expect("read"),
        b"precious",
        "data untouched"
    );
    let _ = Command::new("umount").arg(mnt.path()).status();
    assert!(Path::new(&part).exists());
}

#[tokio::test]
async fn unknown_and_malformed_disk_names_are_not_found() {
    let h = harness(Vec::new()).await;
    let mut admin = h.admin().await;
    for id in ["nosuchdisk", "sda%2F..", "..", "loop0;reboot"] {
        let r = h
            .call(
                &mut admin,
                "POST",
                &format!("/api/v1/disks/{id}/format"),
                Some(json!({"filesystem": "ext4", "confirm": id})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.raw);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_are_systemd_units_remembered_and_files_reach_the_disk() {
    let disk = Loop::new(64);
    let bus = common::dbus_mock::private_bus().await;
    let address = bus.address.clone();
    let h = Harness::with_config(move |c| {
        c.disks_include_loop = true;
        c.system_bus_address = Some(address);
    })
    .await;
    let mut admin = h.admin().await;
    let name = disk.name().to_string();
    let r = h
        .call(
            &mut admin,
            "POST",
            &format!("/api/v1/disks/{name}/format"),
            Some(json!({"filesystem": "ext4", "label": "media", "confirm": name})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let r = h
        .call(
            &mut admin,
            "POST",
            &format!("/api/v1/disks/{name}/mount"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let part = format!("{name}p1");
    let point = h.dir.path().join("media").join(&part);
    assert_eq!(
        r.body["partitions"][0]["mount_points"][0],
        point.to_string_lossy().as_ref(),
        "{}",
        r.raw
    );
    let calls = bus.calls.lock().expect("lock").clone();
    let transient = calls
        .iter()
        .find(|c| c.starts_with("transient "))
        .expect("a transient mount unit was started");
    assert!(
        transient.contains("nosuid,nodev,noexec") && transient.contains(".mount fail /dev/"),
        "{transient}"
    );
    let remembered = h.state.store.mounts().expect("mounts");
    assert_eq!(remembered.len(), 1);
    assert_eq!(remembered[0].mount_point, point);

    // The mounted disk is a file root for admins; a file written there lands on the disk.
    let roots = h.call(&mut admin, "GET", "/api/v1/files", None).await;
    let root_name = format!("disk-{part}");
    assert!(roots.raw.contains(&root_name), "{}", roots.raw);
    let r = h
        .call(
            &mut admin,
            "POST",
            &format!("/api/v1/files/{root_name}/photos"),
            Some(json!({"action": "mkdir"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    assert!(point.join("photos").is_dir());

    let again = h
        .call(
            &mut admin,
            "POST",
            &format!("/api/v1/disks/{name}/mount"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (again.status, code(&again)),
        (StatusCode::CONFLICT, "in_use")
    );
    let r = h
        .call(
            &mut admin,
            "POST",
            &format!("/api/v1/disks/{name}/unmount"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert!(
        r.body["partitions"][0]["mount_points"]
            .as_array()
            .expect("points")
            .is_empty()
    );
    assert!(
        h.state.store.mounts().expect("mounts").is_empty(),
        "an unmounted disk is forgotten"
    );

    // Remembered mounts come back at start: remember it again, unmount behind the agent's back,
    // and let the start-up step mount it.
    let r = h
        .call(
            &mut admin,
            "POST",
            &format!("/api/v1/disks/{name}/mount"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let status = Command::new("umount").arg(&point).status().expect("umount");
    assert!(status.success());
    h.state.disks.remount_persisted().await;
    let list = h.call(&mut admin, "GET", "/api/v1/disks", None).await;
    assert_eq!(
        find(&list.body, &name)["partitions"][0]["mount_points"][0],
        point.to_string_lossy().as_ref()
    );
    let _ = Command::new("umount").arg(&point).status();
}

/// The same API over the in-memory adapters (`Adapters::fakes`): what the handlers map and the
/// service decides, without root or loop devices.
#[tokio::test]
async fn the_disks_api_runs_over_in_memory_block_devices() {
    use hearth_agent::disks::{Disk, Partition};
    let h = Harness::with_fakes().await;
    let fakes = h.fakes.clone().expect("fakes");
    let disk = |name: &str, system: bool, fs: Option<&str>| Disk {
        name: name.into(),
        path: format!("/dev/{name}"),
        size_bytes: 1 << 30,
        model: None,
        serial: None,
        bus: "usb".into(),
        removable: true,
        rotational: false,
        system,
        fs_type: None,
        label: None,
        mount_points: Vec::new(),
        partitions: fs
            .map(|fs| Partition {
                name: format!("{name}1"),
                path: format!("/dev/{name}1"),
                number: 1,
                size_bytes: 1 << 30,
                fs_type: Some(fs.into()),
                label: None,
                uuid: Some(format!("uuid-{name}")),
                mount_points: Vec::new(),
                usage: None,
            })
            .into_iter()
            .collect(),
        smart: None,
    };
    fakes.block_devices.plug(disk("sda", true, Some("ext4")));
    fakes.block_devices.plug(disk("sdb", false, None));
    let mut admin = h.admin().await;

    let list = h.call(&mut admin, "GET", "/api/v1/disks", None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.raw);
    assert_eq!(find(&list.body, "sda")["system"], true);
    let r = h
        .call(
            &mut admin,
            "POST",
            "/api/v1/disks/sda/format",
            Some(json!({"filesystem": "ext4", "confirm": "sda"})),
        )
        .await;
    assert_eq!((r.status, code(&r)), (StatusCode::FORBIDDEN, "system_disk"));
    let r = h
        .call(
            &mut admin,
            "POST",
            "/api/v1/disks/sdb/format",
            Some(json!({"filesystem": "exfat", "label": "Photos", "confirm": "sdb"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body["partitions"][0]["fs_type"], "exfat");
    let r = h
        .call(
            &mut admin,
            "POST",
            "/api/v1/disks/sdb/mount",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(fakes.system.mounts().len(), 1);
    let r = h
        .call(&mut admin, "POST", "/api/v1/disks/sdb/eject", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    assert!(fakes.system.mounts().is_empty());
    assert_eq!(fakes.block_devices.ejected(), ["sdb"]);
    let r = h
        .call(&mut admin, "POST", "/api/v1/disks/sdb/eject", None)
        .await;
    assert_eq!((r.status, code(&r)), (StatusCode::NOT_FOUND, "not_found"));
}
