//! `hearth-image verify IMAGE`: checks a built image offline, with what the image chain has
//! today (docs/image.md, "Verified boot"):
//!  1. the ed25519 signature of `<prefix>.SHA256SUMS` under the release's image signing key;
//!  2. the sha256 of every file the signed list names that lies beside the image (the image
//!     itself and its manifest at least; the root and the bundle when present);
//!  3. on verity boards, for every slot: the root hash the slot's initrd carries (what the
//!     initramfs opens the root with: on EFI boards the ESP's `hearth/SLOT/initrd.img`, the
//!     signed bundle's `initrd` payload; on a Raspberry Pi the `initrd.img` of the slot's boot
//!     partition `boot-SLOT`, the bundle's `boot` payload) equals the signed manifest's, and the
//!     slot's root partition, file system and hash tree, verifies against it (`veritysetup
//!     verify`: every block read). An empty slot is reported, not failed; a slot the manifest
//!     says is filled but has no initrd fails. On UKI boards
//!     (`EFI/Linux/hearth-SLOT.efi`) the initrd is the UKI's `.initrd` section, and first the UKI
//!     has every section of a Hearth UKI, its `.cmdline` carries the manifest's root hash
//!     (`hearth.roothash=`, exactly once) and the slot's addon names the slot's own root.
//!
//! Every check is printed (`ok`, `FAIL`, `skip`); any `FAIL` makes the command exit non-zero.
//! Nothing is written beside the image: the FAT boot partitions are read in place (mtools'
//! `image@@offset`),
//! each root is copied (sparse) into a private temporary folder, removed at the end.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use crate::artifacts::sha256_file;
use crate::cmd::{Runner, which};
use crate::verity::{self, VerityInfo};

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail,
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub outcome: Outcome,
    pub what: String,
    /// Why it failed or was skipped, or what it found.
    pub detail: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.outcome {
            Outcome::Ok => "ok  ",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        };
        if self.detail.is_empty() {
            write!(f, "{tag} {}", self.what)
        } else {
            write!(f, "{tag} {}: {}", self.what, self.detail)
        }
    }
}

/// Everything `verify` checked, in order.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
    /// Print each check as it is recorded.
    echo: bool,
}

impl Report {
    fn push(&mut self, outcome: Outcome, what: impl Into<String>, detail: impl Into<String>) {
        let check = Check {
            outcome,
            what: what.into(),
            detail: detail.into(),
        };
        if self.echo {
            println!("{check}");
        }
        self.checks.push(check);
    }

    /// No check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Fail)
    }

    pub fn failed(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .count()
    }
}

/// The parts of the build manifest (`artifacts::Manifest`) the checks need.
#[derive(Debug, Deserialize)]
struct ManifestView {
    board: String,
    #[serde(default)]
    verity: Option<VerityInfo>,
    #[serde(default)]
    slots_filled: Vec<String>,
    partitions: Vec<PartitionView>,
}

#[derive(Debug, Deserialize)]
struct PartitionView {
    name: String,
    offset: u64,
    size: u64,
}

impl ManifestView {
    fn partition(&self, name: &str) -> Option<&PartitionView> {
        self.partitions.iter().find(|p| p.name == name)
    }
}

/// Where a slot's boot files are, by the manifest's partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootLayout {
    /// EFI boards: one ESP for both slots (`hearth/SLOT/initrd.img`, or `EFI/Linux/` UKIs).
    Esp { offset: u64 },
    /// Raspberry Pi: a boot partition per slot (`boot-a`, `boot-b`), `initrd.img` at its top.
    PiBootPartitions { a: u64, b: u64 },
}

/// Where one slot's initrd is: the FAT partition's offset in the image, the path in it, and
/// how the report names that place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitrdPlace {
    pub fat_offset: u64,
    pub path: String,
    pub on: String,
}

impl BootLayout {
    /// The layout of a manifest's partition table: an `esp` partition, or `boot-a` and
    /// `boot-b`; `None` for anything else.
    fn of(manifest: &ManifestView) -> Option<BootLayout> {
        if let Some(esp) = manifest.partition("esp") {
            return Some(BootLayout::Esp { offset: esp.offset });
        }
        match (manifest.partition("boot-a"), manifest.partition("boot-b")) {
            (Some(a), Some(b)) => Some(BootLayout::PiBootPartitions {
                a: a.offset,
                b: b.offset,
            }),
            _ => None,
        }
    }

    /// Where slot `slot` (`a` or `b`) keeps its plain initrd.
    pub fn initrd(self, slot: &str) -> InitrdPlace {
        match self {
            BootLayout::Esp { offset } => InitrdPlace {
                fat_offset: offset,
                path: format!("hearth/{slot}/initrd.img"),
                on: "the ESP".into(),
            },
            BootLayout::PiBootPartitions { a, b } => InitrdPlace {
                fat_offset: if slot == "b" { b } else { a },
                path: "initrd.img".into(),
                on: format!("boot-{slot}"),
            },
        }
    }
}

/// `hearth-1.0.0-qemu-x86_64` of `…/hearth-1.0.0-qemu-x86_64.img[.xz]`.
pub fn prefix_of(image: &Path) -> Result<String> {
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix(".img.xz")
        .or_else(|| name.strip_suffix(".img"))
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .with_context(|| {
            format!(
                "{} is not a built image (expected a name ending in .img or .img.xz)",
                image.display()
            )
        })
}

/// `sha256  name` lines of a `SHA256SUMS` text.
fn parse_sums(text: &str) -> Result<Vec<(String, String)>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (sum, name) = l
                .split_once("  ")
                .with_context(|| format!("malformed SHA256SUMS line {l:?}"))?;
            if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("malformed SHA256SUMS line {l:?}");
            }
            Ok((sum.to_ascii_lowercase(), name.to_string()))
        })
        .collect()
}

/// The root hash and hash offset of the last verity layer in an ESP initrd.
pub fn verity_conf_in_initrd(bytes: &[u8]) -> Option<(String, u64)> {
    let value = |key: &[u8], len_max: usize| -> Option<String> {
        let at = bytes.windows(key.len()).rposition(|w| w == key)? + key.len();
        let rest = &bytes[at..bytes.len().min(at + len_max)];
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let hash = value(b"HEARTH_VERITY_ROOT_HASH=", 64)?;
    let offset = value(b"HEARTH_VERITY_HASH_OFFSET=", 20)?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((hash, offset.parse().ok()?))
}

/// A private temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let base = std::env::temp_dir();
        for n in 0..1000u32 {
            let p = base.join(format!("hearth-verify-{}-{n}", std::process::id()));
            if std::fs::create_dir(&p).is_ok() {
                return Ok(TempDir(p));
            }
        }
        bail!("cannot create a temporary folder in {}", base.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies `len` bytes of `from` starting at `offset` into the new file `to`, leaving zero
/// blocks as holes.
fn copy_range(from: &mut dyn Read, to: &Path, len: u64) -> Result<()> {
    let mut out = File::create(to).with_context(|| format!("cannot create {}", to.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < len {
        let want = buf.len().min((len - done) as usize);
        let n = from.read(&mut buf[..want])?;
        if n == 0 {
            bail!("the image ends {} bytes early", len - done);
        }
        if buf[..n].iter().all(|&b| b == 0) {
            out.seek(SeekFrom::Current(n as i64))?;
        } else {
            out.write_all(&buf[..n])?;
        }
        done += n as u64;
    }
    out.set_len(len)?;
    Ok(())
}

/// The raw image: `image` itself, or for `.xz` its decompressed copy in `tmp`.
fn raw_image(image: &Path, tmp: &Path) -> Result<PathBuf> {
    if image.extension().is_none_or(|e| e != "xz") {
        return Ok(image.to_path_buf());
    }
    let (size, _) = crate::flash::image_size(image)?;
    let raw = tmp.join("image.raw");
    let mut child = Command::new("xz")
        .arg("-dc")
        .arg(image)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start xz (install xz-utils)")?;
    let mut stdout = child.stdout.take().context("xz stdout")?;
    let copied = copy_range(&mut stdout, &raw, size);
    let status = child.wait()?;
    copied?;
    if !status.success() {
        bail!("xz could not decompress {}", image.display());
    }
    Ok(raw)
}

/// Checks `image` (and the files beside it) against the image signing key `key`; prints each
/// check as it ends when `echo`. Errors are for what makes checking impossible (a missing
/// checksum list, an unreadable image, tools missing); mismatches are failed checks.
/// `sb_cert`: the release's Secure Boot db certificate; systemd-boot, the UKIs and their
/// addons must carry its signature (checked with `sbverify`).
pub fn verify(
    image: &Path,
    key: &VerifyingKey,
    sb_cert: Option<&Path>,
    echo: bool,
) -> Result<Report> {
    let mut report = Report {
        echo,
        ..Report::default()
    };
    let prefix = prefix_of(image)?;
    let dir = image
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !image.is_file() {
        bail!("{} does not exist", image.display());
    }
    let image_name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sums_path = dir.join(format!("{prefix}.SHA256SUMS"));
    let sig_path = dir.join(format!("{prefix}.SHA256SUMS.sig"));
    let sums_text = std::fs::read(&sums_path).with_context(|| {
        format!(
            "cannot read {} (the signed checksum list published with the image)",
            sums_path.display()
        )
    })?;
    let sig =
        std::fs::read(&sig_path).with_context(|| format!("cannot read {}", sig_path.display()))?;

    // 1. The signature of the checksum list.
    let key_id = hearth_ota::hexutil::encode(&hearth_ota::keys::key_id(key));
    let what = format!("{prefix}.SHA256SUMS is signed by the image key {key_id}");
    match ed25519_dalek::Signature::from_slice(&sig) {
        Ok(s) => match key.verify_strict(&sums_text, &s) {
            Ok(()) => report.push(Outcome::Ok, what, ""),
            Err(_) => report.push(
                Outcome::Fail,
                what,
                "the signature does not verify (another key, or the list was changed)",
            ),
        },
        Err(_) => report.push(
            Outcome::Fail,
            what,
            format!("{} is not a 64-byte ed25519 signature", sig_path.display()),
        ),
    }

    // 2. The listed files' checksums.
    let sums = parse_sums(&String::from_utf8_lossy(&sums_text))?;
    let manifest_name = format!("{prefix}.manifest.json");
    for required in [&image_name, &manifest_name] {
        if !sums.iter().any(|(_, n)| n == required) {
            report.push(
                Outcome::Fail,
                format!("{required} is in the signed checksum list"),
                "it is not listed",
            );
        }
    }
    for (sum, name) in &sums {
        let path = dir.join(name);
        if name.contains('/') || !path.is_file() {
            report.push(
                Outcome::Skip,
                format!("sha256 of {name}"),
                "not beside the image",
            );
            continue;
        }
        let actual = sha256_file(&path)?;
        if &actual == sum {
            report.push(Outcome::Ok, format!("sha256 of {name}"), "");
        } else {
            report.push(
                Outcome::Fail,
                format!("sha256 of {name}"),
                format!("is {actual}, the signed list says {sum}"),
            );
        }
    }

    // 3. Every slot's root against the root hash its initrd carries.
    let manifest_path = dir.join(&manifest_name);
    let manifest: ManifestView = serde_json::from_slice(
        &std::fs::read(&manifest_path)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?,
    )
    .with_context(|| format!("{} is not a build manifest", manifest_path.display()))?;
    let Some(info) = &manifest.verity else {
        report.push(
            Outcome::Skip,
            "slot roots against a dm-verity root hash",
            format!(
                "board {} has no dm-verity roots: its roots are covered by the image checksum only",
                manifest.board
            ),
        );
        return Ok(report);
    };
    for tool in ["veritysetup", "mcopy"] {
        if which(tool).is_none() {
            bail!("{tool} is missing (install cryptsetup-bin and mtools, or run ci/image-deps)");
        }
    }
    let layout = BootLayout::of(&manifest)
        .context("the manifest lists neither an esp partition nor boot-a and boot-b")?;
    let tmp = TempDir::new()?;
    let raw = raw_image(image, &tmp.0)?;
    let runner = Runner::new(None, false)?;
    let inputs = SlotInputs {
        manifest: &manifest,
        info,
        raw: &raw,
        layout,
        tmp: &tmp.0,
        runner: &runner,
        sb_cert,
    };
    let mut ukis = false;
    for slot in ["a", "b"] {
        ukis |= check_slot(&mut report, slot, &inputs)?;
    }
    // 4. The boot loader's Secure Boot signature (UKI boards sign it with the UKIs).
    if let (true, BootLayout::Esp { offset }) = (ukis, layout) {
        for name in ["EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/BOOTAA64.EFI"] {
            let file = tmp.0.join("loader.efi");
            if fat_file(&raw, offset, name, &file)? {
                secure_boot_check(&mut report, name, &file, &inputs);
            }
        }
    }
    Ok(report)
}

/// The Secure Boot signature of `file` (`what` names it) against the db certificate, or a
/// skip without one.
fn secure_boot_check(report: &mut Report, what: &str, file: &Path, i: &SlotInputs<'_>) {
    let what = format!("Secure Boot signature of {what}");
    match i.sb_cert {
        None => report.push(
            Outcome::Skip,
            what,
            "no --secure-boot-cert (the release's db.crt)",
        ),
        Some(cert) => match crate::secureboot::verify_signature(file, cert, i.runner) {
            Ok(()) => report.push(Outcome::Ok, what, format!("signed by {}", cert.display())),
            Err(e) => report.push(Outcome::Fail, what, format!("{e:#}")),
        },
    }
    let _ = std::fs::remove_file(file);
}

/// What every slot's check reads.
struct SlotInputs<'a> {
    manifest: &'a ManifestView,
    info: &'a VerityInfo,
    raw: &'a Path,
    layout: BootLayout,
    tmp: &'a Path,
    runner: &'a Runner,
    sb_cert: Option<&'a Path>,
}

/// Slot `slot`: the root hash its initrd (on the ESP, or its Pi boot partition) carries against
/// the manifest's, then its root partition against that hash. True when the slot boots a UKI.
fn check_slot(report: &mut Report, slot: &str, i: &SlotInputs<'_>) -> Result<bool> {
    let SlotInputs {
        manifest,
        info,
        raw,
        layout,
        tmp,
        runner,
        ..
    } = *i;
    let filled = manifest.slots_filled.iter().any(|s| s == slot);
    // A UKI board's slot boots EFI/Linux/hearth-SLOT.efi: its initrd is the UKI's `.initrd`.
    let uki_file = tmp.join(format!("uki-{slot}.efi"));
    let uki_boot = match layout {
        BootLayout::Esp { offset } => fat_file(
            raw,
            offset,
            &format!("EFI/Linux/hearth-{slot}.efi"),
            &uki_file,
        )?,
        BootLayout::PiBootPartitions { .. } => false,
    };
    let bytes = if let (true, BootLayout::Esp { offset: esp_offset }) = (uki_boot, layout) {
        let uki = std::fs::read(&uki_file)?;
        secure_boot_check(report, &format!("slot {slot}'s UKI"), &uki_file, i);
        let addon = tmp.join(format!("addon-{slot}.efi"));
        let addon_path = format!("EFI/Linux/hearth-{slot}.efi.extra.d/slot.addon.efi");
        let addon_bytes = if fat_file(raw, esp_offset, &addon_path, &addon)? {
            let b = std::fs::read(&addon)?;
            secure_boot_check(report, &format!("slot {slot}'s addon"), &addon, i);
            Some(b)
        } else {
            None
        };
        let Some(initrd) = check_uki(report, slot, &uki, addon_bytes.as_deref(), info) else {
            return Ok(true);
        };
        initrd
    } else {
        let initrd = tmp.join(format!("initrd-{slot}.img"));
        let place = layout.initrd(slot);
        let copied = fat_file(raw, place.fat_offset, &place.path, &initrd)?;
        if !copied {
            if filled {
                report.push(
                    Outcome::Fail,
                    format!("slot {slot}'s initrd on {}", place.on),
                    "missing, but the manifest says the slot is filled",
                );
            } else {
                report.push(
                    Outcome::Skip,
                    format!("slot {slot}"),
                    format!("empty (no initrd on {})", place.on),
                );
            }
            return Ok(uki_boot);
        }
        let bytes = std::fs::read(&initrd)?;
        let _ = std::fs::remove_file(&initrd);
        bytes
    };
    let what = format!("slot {slot}'s initrd carries the signed manifest's root hash");
    let Some((hash, offset)) = verity_conf_in_initrd(&bytes) else {
        report.push(Outcome::Fail, what, "it carries no root hash");
        return Ok(uki_boot);
    };
    if hash == info.root_hash && offset == info.hash_offset {
        report.push(Outcome::Ok, what, hash.as_str());
    } else {
        report.push(
            Outcome::Fail,
            what,
            format!(
                "it carries {hash} at offset {offset}, the manifest {} at {}",
                info.root_hash, info.hash_offset
            ),
        );
    }
    let part_name = format!("root-{slot}");
    let Some(part) = manifest.partition(&part_name) else {
        report.push(
            Outcome::Fail,
            format!("slot {slot}'s root"),
            format!("the manifest lists no partition {part_name}"),
        );
        return Ok(uki_boot);
    };
    if info.total_size > part.size || offset >= part.size {
        report.push(
            Outcome::Fail,
            format!("slot {slot}'s root"),
            format!(
                "the root ({} bytes) does not fit its partition ({} bytes)",
                info.total_size, part.size
            ),
        );
        return Ok(uki_boot);
    }
    let root = tmp.join(format!("root-{slot}.img"));
    let mut src = File::open(raw)?;
    src.seek(SeekFrom::Start(part.offset))?;
    copy_range(&mut src, &root, info.total_size.max(offset))?;
    let what = format!("slot {slot}'s root ({part_name}) verifies against the initrd's root hash");
    match runner.output(&mut verity::verify_command(&root, offset, &hash)) {
        Ok(_) => report.push(
            Outcome::Ok,
            what,
            format!("{} MiB read", info.total_size >> 20),
        ),
        Err(e) => report.push(
            Outcome::Fail,
            what,
            format!("dm-verity mismatch: {}", one_line(&e.to_string())),
        ),
    }
    let _ = std::fs::remove_file(&root);
    Ok(uki_boot)
}

/// Copies `path` from the FAT partition (the ESP, or a Pi boot partition) at `fat_offset` of
/// `raw` to `out`; false when it is not there.
fn fat_file(raw: &Path, fat_offset: u64, path: &str, out: &Path) -> Result<bool> {
    Ok(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-n")
        .arg("-i")
        .arg(format!("{}@@{}", raw.display(), fat_offset))
        .arg(format!("::/{path}"))
        .arg(out)
        .stderr(Stdio::null())
        .status()
        .context("cannot run mcopy")?
        .success())
}

/// A slot's UKI (`uki`) and its command-line addon (`addon`): the UKI has the sections a
/// Hearth UKI is made of, its command line carries the signed manifest's root hash, and the
/// addon names the slot's own root. Returns the UKI's initrd for the root-hash checks that
/// follow, or None when the UKI cannot be read (already reported).
pub fn check_uki(
    report: &mut Report,
    slot: &str,
    uki: &[u8],
    addon: Option<&[u8]>,
    info: &VerityInfo,
) -> Option<Vec<u8>> {
    let what = format!(
        "slot {slot}'s UKI has the sections {}",
        crate::uki::SECTIONS.join(" ")
    );
    let names = match crate::uki::sections(uki) {
        Ok(s) => s.into_iter().map(|s| s.name).collect::<Vec<_>>(),
        Err(e) => {
            report.push(Outcome::Fail, what, e.to_string());
            return None;
        }
    };
    let missing: Vec<&str> = crate::uki::SECTIONS
        .iter()
        .copied()
        .filter(|n| !names.iter().any(|m| m == n))
        .collect();
    if missing.is_empty() {
        report.push(Outcome::Ok, what, "");
    } else {
        report.push(
            Outcome::Fail,
            what,
            format!("missing {}", missing.join(" ")),
        );
        return None;
    }
    let what = format!("slot {slot}'s UKI command line carries the signed manifest's root hash");
    let line = crate::uki::cmdline(uki).ok().flatten().unwrap_or_default();
    let hashes: Vec<&str> = line
        .split_whitespace()
        .filter_map(|a| a.strip_prefix("hearth.roothash="))
        .collect();
    if hashes == [info.root_hash.as_str()] {
        report.push(Outcome::Ok, what, "");
    } else {
        report.push(Outcome::Fail, what, format!("its command line is {line:?}"));
    }
    let what = format!("slot {slot}'s UKI addon names root-{slot}");
    let want = format!("root=PARTLABEL=root-{slot} hearth.slot={slot}");
    match addon.map(crate::uki::cmdline) {
        Some(Ok(Some(l))) if l == want => report.push(Outcome::Ok, what, ""),
        Some(Ok(Some(l))) => report.push(Outcome::Fail, what, format!("it says {l:?}")),
        Some(_) => report.push(Outcome::Fail, what, "the addon has no command line"),
        None => report.push(Outcome::Fail, what, "no addon on the ESP"),
    }
    match crate::uki::section(uki, ".initrd") {
        Ok(Some(i)) => Some(i.to_vec()),
        _ => None,
    }
}

fn one_line(s: &str) -> String {
    let s: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut s = s.join("; ");
    if s.len() > 300 {
        s.truncate(300);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_checksum_lines_parse() {
        assert_eq!(
            prefix_of(Path::new("/o/hearth-1.0.0-qemu-x86_64.img.xz")).expect("parses"),
            "hearth-1.0.0-qemu-x86_64"
        );
        assert_eq!(prefix_of(Path::new("x.img")).expect("parses"), "x");
        assert!(prefix_of(Path::new("x.bundle")).is_err());
        assert!(prefix_of(Path::new(".img")).is_err());
        let sums = parse_sums(&format!("{}  a.img\n\n", "AB".repeat(32))).expect("parses");
        assert_eq!(sums, vec![("ab".repeat(32), "a.img".to_string())]);
        assert!(parse_sums("xyz  a.img\n").is_err());
        assert!(parse_sums(&format!("{} a.img\n", "ab".repeat(32))).is_err());
    }

    fn manifest(parts: &[(&str, u64)]) -> ManifestView {
        ManifestView {
            board: "x".into(),
            verity: None,
            slots_filled: vec!["a".into()],
            partitions: parts
                .iter()
                .map(|(n, o)| PartitionView {
                    name: n.to_string(),
                    offset: *o,
                    size: 1 << 20,
                })
                .collect(),
        }
    }

    /// Issue 13 item 4: a Pi slot's initrd is the `initrd.img` of its own boot partition, not
    /// a file on an ESP the Pi does not have.
    #[test]
    fn a_slots_initrd_is_on_the_esp_or_on_its_pi_boot_partition() {
        let efi = manifest(&[("esp", 1 << 20), ("root-a", 300 << 20)]);
        let layout = BootLayout::of(&efi).expect("efi");
        assert_eq!(layout, BootLayout::Esp { offset: 1 << 20 });
        assert_eq!(
            layout.initrd("b"),
            InitrdPlace {
                fat_offset: 1 << 20,
                path: "hearth/b/initrd.img".into(),
                on: "the ESP".into(),
            }
        );
        let pi = manifest(&[
            ("bootconfig", 1 << 20),
            ("boot-a", 33 << 20),
            ("boot-b", 289 << 20),
            ("root-a", 545 << 20),
        ]);
        let layout = BootLayout::of(&pi).expect("pi");
        let a = layout.initrd("a");
        let b = layout.initrd("b");
        assert_eq!((a.fat_offset, a.path.as_str()), (33 << 20, "initrd.img"));
        assert_eq!((b.fat_offset, b.on.as_str()), (289 << 20, "boot-b"));
        assert_eq!(
            BootLayout::of(&manifest(&[("boot-a", 1), ("root-a", 2)])),
            None
        );
    }

    #[test]
    fn the_last_verity_layer_of_an_initrd_is_read() {
        let old = format!(
            "HEARTH_VERITY_ROOT_HASH={}\nHEARTH_VERITY_HASH_OFFSET=4096\n",
            "11".repeat(32)
        );
        let new = format!(
            "HEARTH_VERITY_ROOT_HASH={}\nHEARTH_VERITY_HASH_OFFSET=8192\n",
            "22".repeat(32)
        );
        let bytes = [b"zstd".as_slice(), old.as_bytes(), b"\0\0", new.as_bytes()].concat();
        assert_eq!(verity_conf_in_initrd(&bytes), Some(("22".repeat(32), 8192)));
        assert_eq!(verity_conf_in_initrd(b"no layer"), None);
        let short = b"HEARTH_VERITY_ROOT_HASH=abc\nHEARTH_VERITY_HASH_OFFSET=1\n";
        assert_eq!(verity_conf_in_initrd(short), None);
    }

    fn uki_with(cmdline: &str, initrd: &[u8]) -> Vec<u8> {
        let mut line = cmdline.as_bytes().to_vec();
        line.push(0);
        crate::uki::add_sections(
            &crate::uki::tests::fake_stub(2),
            &[
                (".osrel", b"ID=debian\n"),
                (".cmdline", &line),
                (".uname", b"6.12"),
                (".initrd", initrd),
                (".linux", b"MZ kernel"),
            ],
        )
        .expect("uki")
    }

    fn info(hash: &str) -> VerityInfo {
        VerityInfo {
            root_hash: hash.to_string(),
            hash_offset: 4096,
            data_blocks: 1,
            salt: String::new(),
            uuid: String::new(),
            total_size: 8192,
        }
    }

    #[test]
    fn a_uki_is_checked_for_its_sections_root_hash_and_slot_addon() {
        let hash = "ab".repeat(32);
        let conf = format!("HEARTH_VERITY_ROOT_HASH={hash}\nHEARTH_VERITY_HASH_OFFSET=4096\n");
        let good = uki_with(&format!("ro hearth.roothash={hash} quiet"), conf.as_bytes());
        let addon = |l: &str| {
            crate::uki::add_sections(
                &crate::uki::tests::fake_stub(1),
                &[(".cmdline", format!("{l}\0").as_bytes())],
            )
            .expect("addon")
        };
        let addon_b = addon("root=PARTLABEL=root-b hearth.slot=b");
        let mut r = Report::default();
        let initrd = check_uki(&mut r, "b", &good, Some(&addon_b), &info(&hash));
        assert!(r.passed(), "{:?}", r.checks);
        assert_eq!(r.checks.len(), 3);
        assert_eq!(
            verity_conf_in_initrd(&initrd.expect("initrd")).map(|c| c.0),
            Some(hash.clone())
        );

        // Another root hash on the command line, the other slot's addon, no addon.
        let other = uki_with(&format!("ro hearth.roothash={}", "cd".repeat(32)), b"x");
        let mut r = Report::default();
        check_uki(
            &mut r,
            "b",
            &other,
            Some(&addon("root=PARTLABEL=root-a hearth.slot=a")),
            &info(&hash),
        );
        assert_eq!(r.failed(), 2, "{:?}", r.checks);
        let mut r = Report::default();
        check_uki(&mut r, "b", &good, None, &info(&hash));
        assert_eq!(r.failed(), 1);
        // Two root hashes (one appended by an edit) are not the signed one.
        let twice = uki_with(
            &format!("hearth.roothash={hash} hearth.roothash={}", "cd".repeat(32)),
            b"x",
        );
        let mut r = Report::default();
        check_uki(&mut r, "b", &twice, Some(&addon_b), &info(&hash));
        assert_eq!(r.failed(), 1);
        // A PE without the kernel section, and not a PE at all.
        let no_linux =
            crate::uki::add_sections(&crate::uki::tests::fake_stub(1), &[(".cmdline", b"x\0")])
                .expect("pe");
        let mut r = Report::default();
        assert!(check_uki(&mut r, "a", &no_linux, Some(&addon_b), &info(&hash)).is_none());
        assert!(r.checks[0].detail.contains(".linux"), "{:?}", r.checks);
        let mut r = Report::default();
        assert!(check_uki(&mut r, "a", b"not a PE", None, &info(&hash)).is_none());
        assert_eq!(r.failed(), 1);
    }
}
