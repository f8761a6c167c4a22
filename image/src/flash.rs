//! `hearth-image flash`: writes a built image (`.img`, or `.img.xz` decompressed on the fly) to
//! a whole block device, with progress, `fsync`, and a read-back verification.
//!
//! Safety rules, all checked before the device is opened for writing:
//! - the target must be a whole disk (not a partition, not a regular file);
//! - never the running system's disk: the disks under `/`, `/usr`, `/boot`, `/boot/efi`,
//!   `/efi` and `/var`, and under active swap, followed through partitions and device-mapper /
//!   RAID members — `--force` does not change this;
//! - never a disk with anything mounted from it (or a partition, or a mapping on top of it);
//!   the device is also opened with `O_EXCL`, which the kernel refuses for a disk in use;
//! - only a removable disk (the kernel's `removable` flag, USB, or an SD card) unless `--force`;
//! - the image must fit.
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// What the checks found out about the target; `flash` writes only through one of these.
#[derive(Debug, Clone)]
pub struct Target {
    pub device: PathBuf,
    /// Kernel name of the disk (`sdb`, `mmcblk0`, `loop3`).
    pub name: String,
    pub size: u64,
    pub removable: bool,
    /// Bytes the image has once decompressed.
    pub image_size: u64,
    pub compressed: bool,
}

#[derive(Debug, Clone)]
pub struct FlashReport {
    pub bytes: u64,
    pub sha256: String,
    pub seconds: f64,
}

/// `major:minor` of a device number.
fn split_dev(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

/// The sysfs folder of a block device number (`/sys/devices/.../block/sda[/sda1]`).
fn sysfs_of(major: u64, minor: u64) -> Option<PathBuf> {
    std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()
}

/// The whole disks a block device lives on: its own disk if it is a partition, followed down
/// through `slaves/` (device mapper, RAID, loop-on-partition stacks).
fn disks_under(sys: &Path, out: &mut BTreeSet<String>, depth: u32) {
    if depth > 8 {
        return;
    }
    let disk = if sys.join("partition").exists() {
        match sys.parent() {
            Some(p) => p.to_path_buf(),
            None => return,
        }
    } else {
        sys.to_path_buf()
    };
    let mut had_slaves = false;
    if let Ok(entries) = std::fs::read_dir(disk.join("slaves")) {
        for e in entries.flatten() {
            if let Ok(target) = std::fs::canonicalize(e.path()) {
                had_slaves = true;
                disks_under(&target, out, depth + 1);
            }
        }
    }
    if !had_slaves && let Some(name) = disk.file_name() {
        out.insert(name.to_string_lossy().into_owned());
    }
}

fn disks_of_dev(major: u64, minor: u64) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if major != 0
        && let Some(sys) = sysfs_of(major, minor)
    {
        disks_under(&sys, &mut out, 0);
    }
    out
}

/// One mount: its mount point and the disks under it.
#[derive(Debug)]
struct MountEntry {
    point: String,
    disks: BTreeSet<String>,
}

fn unescape_mount(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mounts() -> Result<Vec<MountEntry>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 5 {
            continue;
        }
        let Some((maj, min)) = f[2].split_once(':') else {
            continue;
        };
        let (Ok(maj), Ok(min)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
            continue;
        };
        out.push(MountEntry {
            point: unescape_mount(f[4]),
            disks: disks_of_dev(maj, min),
        });
    }
    Ok(out)
}

fn swap_disks() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(text) = std::fs::read_to_string("/proc/swaps") else {
        return out;
    };
    for line in text.lines().skip(1) {
        let Some(path) = line.split_whitespace().next() else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(unescape_mount(path)) else {
            continue;
        };
        let dev = if meta.file_type().is_block_device() {
            meta.rdev()
        } else {
            meta.dev() // a swap file: the disk of its file system
        };
        let (maj, min) = split_dev(dev);
        out.extend(disks_of_dev(maj, min));
    }
    out
}

/// The disks the running system lives on (see the module's rules).
pub fn system_disks() -> Result<BTreeSet<String>> {
    const SYSTEM_POINTS: [&str; 6] = ["/", "/usr", "/boot", "/boot/efi", "/efi", "/var"];
    let mut out = BTreeSet::new();
    for m in mounts()? {
        if SYSTEM_POINTS.contains(&m.point.as_str()) {
            out.extend(m.disks);
        }
    }
    // The root's own device as the kernel reports it (also when / is an overlay or a
    // squashfs on a loop: the stat of / names its backing device).
    if let Ok(meta) = std::fs::metadata("/") {
        let (maj, min) = split_dev(meta.dev());
        out.extend(disks_of_dev(maj, min));
    }
    out.extend(swap_disks());
    Ok(out)
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Uncompressed size of an image file: its length, or for `.xz` what `xz --robot --list` says.
pub fn image_size(image: &Path) -> Result<(u64, bool)> {
    let meta =
        std::fs::metadata(image).with_context(|| format!("cannot read {}", image.display()))?;
    if !meta.is_file() {
        bail!("{} is not an image file", image.display());
    }
    if image.extension().is_none_or(|e| e != "xz") {
        return Ok((meta.len(), false));
    }
    let out = Command::new("xz")
        .args(["--robot", "--list", "--"])
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .context("cannot run xz (install xz-utils)")?;
    if !out.status.success() {
        bail!(
            "{} is not a valid .xz file: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let size = text
        .lines()
        .find(|l| l.starts_with("totals\t"))
        .and_then(|l| l.split('\t').nth(4))
        .and_then(|v| v.parse::<u64>().ok())
        .with_context(|| format!("xz did not report the size of {}", image.display()))?;
    Ok((size, true))
}

/// Every check, without writing anything. `force` allows a non-removable disk.
pub fn check(image: &Path, device: &Path, force: bool) -> Result<Target> {
    let (image_size, compressed) = image_size(image)?;
    if image_size == 0 {
        bail!("{} is empty", image.display());
    }
    let meta = std::fs::metadata(device)
        .with_context(|| format!("cannot read {}: no such device", device.display()))?;
    if !meta.file_type().is_block_device() {
        bail!(
            "{} is not a block device (flash writes whole disks, e.g. /dev/sdb)",
            device.display()
        );
    }
    let (maj, min) = split_dev(meta.rdev());
    let sys = sysfs_of(maj, min)
        .with_context(|| format!("{} is not known to the kernel (sysfs)", device.display()))?;
    let name = sys
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("sysfs name")?;
    if sys.join("partition").exists() {
        let disk = sys
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        bail!(
            "{} is a partition; flash the whole disk (/dev/{disk}) instead",
            device.display()
        );
    }
    let system = system_disks()?;
    if system.contains(&name) {
        bail!(
            "refusing to write {}: it holds the running system (even with --force)",
            device.display()
        );
    }
    for m in mounts()? {
        if m.disks.contains(&name) {
            bail!(
                "refusing to write {}: it is in use (mounted on {}); unmount it first",
                device.display(),
                m.point
            );
        }
    }
    if swap_disks().contains(&name) {
        bail!(
            "refusing to write {}: it is in use as swap; swapoff first",
            device.display()
        );
    }
    let holders = std::fs::read_dir(sys.join("holders"))
        .map(|d| d.count())
        .unwrap_or(0);
    if holders > 0 {
        bail!(
            "refusing to write {}: another device is built on it (device mapper, RAID); stop that first",
            device.display()
        );
    }
    let path = sys.to_string_lossy().into_owned();
    let removable = read_trim(&sys.join("removable")).as_deref() == Some("1")
        || path.contains("/usb")
        || (name.starts_with("mmcblk")
            && read_trim(&sys.join("device/type")).as_deref() == Some("SD"));
    if !removable && !force {
        bail!(
            "refusing to write {}: it is not a removable disk (USB stick, SD card); pass --force if you are sure",
            device.display()
        );
    }
    let size = read_trim(&sys.join("size"))
        .and_then(|s| s.parse::<u64>().ok())
        .map(|sectors| sectors * 512)
        .context("cannot read the disk's size")?;
    if image_size > size {
        bail!(
            "{} ({} MiB) is smaller than the image ({} MiB)",
            device.display(),
            size >> 20,
            image_size.div_ceil(1 << 20)
        );
    }
    Ok(Target {
        device: device.to_path_buf(),
        name,
        size,
        removable,
        image_size,
        compressed,
    })
}

struct Source {
    reader: Box<dyn Read>,
    child: Option<Child>,
}

fn open_source(image: &Path, compressed: bool) -> Result<Source> {
    if compressed {
        let mut child = Command::new("xz")
            .args(["-dc", "-T2", "--"])
            .arg(image)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start xz")?;
        let out = child.stdout.take().context("xz stdout")?;
        Ok(Source {
            reader: Box::new(out),
            child: Some(child),
        })
    } else {
        let f = File::open(image).with_context(|| format!("cannot open {}", image.display()))?;
        Ok(Source {
            reader: Box::new(f),
            child: None,
        })
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct Progress {
    enabled: bool,
    label: &'static str,
    total: u64,
    start: Instant,
    last: Instant,
}

impl Progress {
    fn new(enabled: bool, label: &'static str, total: u64) -> Self {
        let now = Instant::now();
        Progress {
            enabled,
            label,
            total,
            start: now,
            last: now,
        }
    }
    fn update(&mut self, done: u64, last: bool) {
        if !self.enabled || (!last && self.last.elapsed().as_millis() < 1000) {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\r{} {} / {} MiB ({:.0} %), {:.1} MiB/s   ",
            self.label,
            done >> 20,
            self.total >> 20,
            100.0 * done as f64 / self.total.max(1) as f64,
            done as f64 / secs / 1048576.0
        );
        if last {
            eprintln!();
        }
    }
}

const CHUNK: usize = 4 << 20;

/// Writes `image` to the checked `target`, syncs, and verifies by reading back.
pub fn flash(image: &Path, target: &Target, progress: bool) -> Result<FlashReport> {
    let start = Instant::now();
    let mut source = open_source(image, target.compressed)?;
    // O_EXCL on a block device: the kernel refuses it while the disk is mounted or held.
    let mut dev = OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::EXCL.bits() as i32)
        .open(&target.device)
        .with_context(|| {
            format!(
                "cannot open {} for writing (in use?)",
                target.device.display()
            )
        })?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut written = 0u64;
    let mut bar = Progress::new(progress, "writing", target.image_size);
    loop {
        let n = fill(&mut *source.reader, &mut buf)
            .with_context(|| format!("cannot read {}", image.display()))?;
        if n == 0 {
            break;
        }
        if written + n as u64 > target.size {
            bail!(
                "the image is larger than {} said; {} is too small",
                if target.compressed { "xz" } else { "its file" },
                target.device.display()
            );
        }
        dev.write_all(&buf[..n]).with_context(|| {
            format!(
                "write to {} failed at byte {written}",
                target.device.display()
            )
        })?;
        hash.update(&buf[..n]);
        written += n as u64;
        bar.update(written, false);
    }
    if let Some(mut child) = source.child.take()
        && !child.wait()?.success()
    {
        bail!("xz could not decompress {}", image.display());
    }
    bar.update(written, true);
    if written != target.image_size {
        bail!(
            "read {written} bytes from {}, expected {}",
            image.display(),
            target.image_size
        );
    }
    if progress {
        eprintln!("syncing {} …", target.device.display());
    }
    dev.sync_all()
        .with_context(|| format!("fsync of {} failed", target.device.display()))?;
    let expected = crate::hex(&hash.finalize());

    // Read back what the disk holds, not the page cache's copy.
    let mut back = File::open(&target.device)
        .with_context(|| format!("cannot open {} to verify", target.device.display()))?;
    let _ = rustix::fs::fadvise(&back, 0, None, rustix::fs::Advice::DontNeed);
    back.seek(SeekFrom::Start(0))?;
    let mut hash = Sha256::new();
    let mut left = written;
    let mut bar = Progress::new(progress, "verifying", written);
    while left > 0 {
        let want = (left as usize).min(CHUNK);
        let n = fill(&mut back, &mut buf[..want])
            .with_context(|| format!("cannot read back {}", target.device.display()))?;
        if n == 0 {
            bail!("{} ended early while verifying", target.device.display());
        }
        hash.update(&buf[..n]);
        left -= n as u64;
        bar.update(written - left, false);
    }
    bar.update(written, true);
    let got = crate::hex(&hash.finalize());
    if got != expected {
        bail!(
            "verification failed: {} holds sha256 {got}, the image is {expected}",
            target.device.display()
        );
    }
    Ok(FlashReport {
        bytes: written,
        sha256: got,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers() {
        assert_eq!(split_dev(0x0801), (8, 1));
        assert_eq!(split_dev((259 << 8) | 3), (259, 3));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mount(r"/media/my\040disk"), "/media/my disk");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }
}
