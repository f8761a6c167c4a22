//! Disks on real loop devices: listed, formatted through the API, protected when they hold the
//! system or are in use.

mod common;

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
