//! `hearth-image flash` against real loop devices (needs root and `losetup`; skipped with a
//! message otherwise). A loop device is not removable, so it also exercises the refusal and
//! `--force`.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hearth-image"))
}

fn can_loop() -> bool {
    // /proc/self belongs to the process's effective user.
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("/proc")) == 0
        && Command::new("losetup")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// A loop device over a sparse file of `size` bytes; detached on drop.
struct Loop {
    dev: String,
}

impl Loop {
    fn new(dir: &Path, name: &str, size: u64) -> Loop {
        let file = dir.join(name);
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(size))
            .expect("backing file");
        let out = Command::new("losetup")
            .args(["--find", "--show", "--"])
            .arg(&file)
            .output()
            .expect("losetup");
        assert!(out.status.success(), "losetup: {out:?}");
        Loop {
            dev: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg(&self.dev)
            .stderr(std::process::Stdio::null())
            .status();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

fn flash(image: &Path, dev: &str, extra: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("flash")
        .arg("--image")
        .arg(image)
        .args(["--device", dev, "--quiet"])
        .args(extra)
        .output()
        .expect("run hearth-image")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn read_prefix(dev: &str, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let mut f = std::fs::File::open(dev).expect("open device");
    std::io::Read::read_exact(&mut f, &mut buf).expect("read device");
    buf
}

#[test]
fn flash_on_loop_devices() {
    if !can_loop() {
        eprintln!("skipped: needs root and losetup");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let data = pattern(9 << 20);
    let image = tmp.path().join("hearth-test.img");
    std::fs::write(&image, &data).expect("image");

    let target = Loop::new(tmp.path(), "target", 16 << 20);
    // Not removable: refused without --force, and nothing written.
    let o = flash(&image, &target.dev, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a removable disk"),
        "{}",
        stderr(&o)
    );
    assert!(read_prefix(&target.dev, 4096).iter().all(|&b| b == 0));

    // Forced: written, synced and verified.
    let o = flash(&image, &target.dev, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("verified"));
    assert_eq!(read_prefix(&target.dev, data.len()), data);

    // Compressed input is decompressed on the fly.
    let st = Command::new("xz")
        .args(["-k", "-0", "--"])
        .arg(&image)
        .status()
        .expect("xz");
    assert!(st.success());
    let xz = tmp.path().join("hearth-test.img.xz");
    let other = Loop::new(tmp.path(), "target2", 16 << 20);
    let o = flash(&xz, &other.dev, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_prefix(&other.dev, data.len()), data);

    // A target smaller than the image is refused before anything is written.
    let small = Loop::new(tmp.path(), "small", 4 << 20);
    let o = flash(&image, &small.dev, &["--force"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("smaller than the image"),
        "{}",
        stderr(&o)
    );
    assert!(read_prefix(&small.dev, 4096).iter().all(|&b| b == 0));

    // A mounted target is refused even with --force.
    let mounted = Loop::new(tmp.path(), "mounted", 32 << 20);
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", &mounted.dev])
        .status()
        .expect("mkfs");
    assert!(st.success());
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mnt");
    let st = Command::new("mount")
        .arg(&mounted.dev)
        .arg(&mnt)
        .status()
        .expect("mount");
    assert!(st.success());
    let o = flash(&image, &mounted.dev, &["--force"]);
    let _ = Command::new("umount").arg(&mnt).status();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("in use"), "{}", stderr(&o));

    // Not a block device, and a partition-less missing path.
    let o = flash(&image, image.to_str().expect("utf-8"), &["--force"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a block device"), "{}", stderr(&o));
    let o = flash(&image, "/dev/hearth-no-such-disk", &["--force"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no such device"), "{}", stderr(&o));

    // A corrupt .xz is refused before anything is written.
    let bad = tmp.path().join("bad.img.xz");
    std::fs::File::create(&bad)
        .and_then(|mut f| f.write_all(b"not xz at all"))
        .expect("bad");
    let o = flash(&bad, &small.dev, &["--force"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a valid .xz"), "{}", stderr(&o));
}

/// The disk holding `/` is refused even with --force; only the checks run (nothing is opened
/// for writing), so this is safe on any machine.
#[test]
fn system_disk_is_refused() {
    let system = hearth_image::flash::system_disks().expect("system disks");
    let tmp = tempfile::tempdir().expect("tmp");
    let image = tmp.path().join("x.img");
    std::fs::write(&image, [1u8; 4096]).expect("image");
    for name in &system {
        let dev = PathBuf::from(format!("/dev/{name}"));
        if !dev.exists() {
            continue;
        }
        let err = hearth_image::flash::check(&image, &dev, true)
            .expect_err("the system disk must be refused");
        assert!(
            err.to_string().contains("running system"),
            "{name}: {err:#}"
        );
    }
    // Where / has a real backing disk, it is found.
    let root_dev = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| l.split(' ').nth(2).map(str::to_string))
        .expect("root mount");
    if !root_dev.starts_with("0:") {
        assert!(
            !system.is_empty(),
            "root on {root_dev} but no system disk found"
        );
    }
}
