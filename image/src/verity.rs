//! dm-verity for a sealed root (every board): `veritysetup format` writes the hash tree into the
//! same file, right after the file system (padded to 4 KiB), so a slot's root partition and the
//! OTA bundle's `root` payload carry data and tree together and the A/B install needs no new
//! partition or payload. The root hash goes into a small initramfs layer appended to the slot's
//! initrd ([`boot_initrd`]): on EFI boards the one on the ESP (the signed bundle's `initrd`
//! payload, or inside the UKI), on a Raspberry Pi the `initrd.img` of the boot partition (the
//! bundle's `boot` payload). The early-boot script
//! `overlays/initrd-layer/scripts/local-premount/hearth-verity` opens the root with it.
//!
//! The salt is derived from the board's name and the UUID from the build's seed (board and
//! version), so the same root gives the same tree and root hash (`ci/image-repro`). One salt for
//! all of a board's releases: the next release's tree then differs from the running one only in
//! the digests of the blocks that changed (and the levels above them), and the updater's delta
//! finds the rest in the active slot (measured on an agent-only update of qemu-x86_64: 146 KB of
//! tree downloaded instead of all 1.75 MB). The salt only keys the tree; what a device trusts is
//! the root hash in the signed payload, which covers the salt.
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::board::BootMethod;
use crate::cmd::{CmdError, Runner};

/// Data and hash block size: the page size, what the kernel reads the root in.
pub const BLOCK: u64 = 4096;
/// The file of the verity layer that carries the root hash (and the tree's offset).
pub const CONF: &str = "etc/hearth-verity.conf";
/// In the root's own initramfs layer on boards whose roots are verity-protected: an initrd that
/// has this marker but no [`CONF`] refuses to boot (it was stripped of its root hash).
pub const REQUIRED_MARKER: &str = "etc/hearth-verity-required";
/// In the root's own initramfs layer: the board's boot method ([`BootMethod::name`]), which
/// tells the early-boot script how to refuse a slot (systemd-boot's loader entries on the ESP,
/// or the Pi's `autoboot.txt` on `bootconfig`). Missing in older initrds: systemd-boot.
pub const BOOT_METHOD_FILE: &str = "etc/hearth-boot-method";
/// The early-boot script (in `overlays/initrd-layer`) that opens the root.
pub const SCRIPT: &str = "scripts/local-premount/hearth-verity";

#[derive(Debug, thiserror::Error)]
pub enum VerityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("veritysetup failed: {0}")]
    Tool(#[from] CmdError),
    #[error("veritysetup wrote no usable root hash ({0:?})")]
    BadRootHash(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VerityError {
    let path = path.to_path_buf();
    move |source| VerityError::Io { path, source }
}

/// What a verity-formatted root is opened with; recorded in the build manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerityInfo {
    /// sha256 root hash, lower-case hex.
    pub root_hash: String,
    /// Byte offset of the hash tree (its superblock first) in the root file: the size of the
    /// file system, padded to [`BLOCK`].
    pub hash_offset: u64,
    pub data_blocks: u64,
    pub salt: String,
    pub uuid: String,
    /// The whole root file, file system and tree.
    pub total_size: u64,
}

/// Salt of a board's trees: derived from `seed` (the board's name), 32 bytes hex.
pub fn derived_salt(seed: &str) -> String {
    crate::hex(&Sha256::digest(
        format!("hearth-verity-salt\0{seed}").as_bytes(),
    ))
}

/// The `veritysetup format` argv: tree in `img` itself at `hash_offset`, fixed salt and UUID.
pub fn format_command(
    img: &Path,
    hash_offset: u64,
    salt: &str,
    uuid: &str,
    root_hash_file: &Path,
) -> Command {
    let mut cmd = Command::new("veritysetup");
    cmd.arg("format")
        .arg(format!("--data-block-size={BLOCK}"))
        .arg(format!("--hash-block-size={BLOCK}"))
        .arg("--hash=sha256")
        .arg(format!("--salt={salt}"))
        .arg(format!("--uuid={uuid}"))
        .arg(format!("--hash-offset={hash_offset}"))
        .arg(format!("--data-blocks={}", hash_offset / BLOCK))
        .arg("--root-hash-file")
        .arg(root_hash_file)
        .arg(img)
        .arg(img);
    cmd
}

/// The `veritysetup verify` argv: reads every data and hash block of `img` against `root_hash`.
pub fn verify_command(img: &Path, hash_offset: u64, root_hash: &str) -> Command {
    let mut cmd = Command::new("veritysetup");
    cmd.arg("verify")
        .arg(format!("--hash-offset={hash_offset}"))
        .arg(img)
        .arg(img)
        .arg(root_hash);
    cmd
}

/// Pads the sealed root to [`BLOCK`] and appends its hash tree; returns what the initramfs
/// opens it with. The tree is checked once with `veritysetup verify` before this returns.
pub fn format(
    img: &Path,
    salt_seed: &str,
    uuid: &str,
    runner: &Runner,
) -> Result<VerityInfo, VerityError> {
    let len = std::fs::metadata(img).map_err(io(img))?.len();
    let hash_offset = len.div_ceil(BLOCK) * BLOCK;
    if hash_offset != len {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(img)
            .map_err(io(img))?;
        f.set_len(hash_offset).map_err(io(img))?;
    }
    let salt = derived_salt(salt_seed);
    let hash_file = img.with_extension("roothash");
    runner.run(
        &mut format_command(img, hash_offset, &salt, uuid, &hash_file),
        false,
    )?;
    let text = std::fs::read_to_string(&hash_file).map_err(io(&hash_file))?;
    let _ = std::fs::remove_file(&hash_file);
    let root_hash = text.trim().to_string();
    if root_hash.len() != 64 || !root_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VerityError::BadRootHash(root_hash));
    }
    let root_hash = root_hash.to_ascii_lowercase();
    runner.run(&mut verify_command(img, hash_offset, &root_hash), false)?;
    let total_size = std::fs::metadata(img).map_err(io(img))?.len();
    Ok(VerityInfo {
        root_hash,
        hash_offset,
        data_blocks: hash_offset / BLOCK,
        salt,
        uuid: uuid.to_string(),
        total_size,
    })
}

/// The files Hearth's layer in the root's own initramfs carries for dm-verity: the marker that
/// makes an initrd without a root hash refuse to boot, and the boot method the refusal acts on.
/// Every board's root is verity-protected, so both are always there.
pub fn root_layer_files(boot: BootMethod) -> [(&'static str, &'static [u8]); 2] {
    let method: &'static [u8] = match boot {
        BootMethod::SystemdBoot => b"systemd-boot\n",
        BootMethod::RpiTryboot => b"rpi-tryboot\n",
        BootMethod::UBoot => b"u-boot\n",
    };
    [(REQUIRED_MARKER, b"1\n"), (BOOT_METHOD_FILE, method)]
}

/// The text of [`CONF`]: shell-readable `KEY=value` lines the initramfs script parses (it
/// accepts only hex and digits for the hash and offset). `HEARTH_VERSION` (the release the
/// slot holds) goes into the record of a refused slot the agent reports.
pub fn conf_text(info: &VerityInfo, version: &str) -> String {
    format!(
        "HEARTH_VERITY_ROOT_HASH={}\nHEARTH_VERITY_HASH_OFFSET={}\nHEARTH_VERSION={version}\n",
        info.root_hash, info.hash_offset
    )
}

/// The slot's initrd (the ESP's, or a Pi boot partition's `initrd.img`): the root's initramfs
/// (with Hearth's layer) followed by a layer holding [`CONF`]. Written to `out`.
pub fn boot_initrd(
    root_initrd: &Path,
    info: &VerityInfo,
    version: &str,
    epoch: u64,
    out: &Path,
) -> Result<(), VerityError> {
    let mut bytes = std::fs::read(root_initrd).map_err(io(root_initrd))?;
    while !bytes.len().is_multiple_of(4) {
        bytes.push(0);
    }
    bytes.extend(crate::initrd::files_layer(
        &[(CONF, conf_text(info, version).as_bytes())],
        epoch,
    ));
    std::fs::write(out, bytes).map_err(io(out))
}

/// The root hash a slot's initrd carries (its last [`CONF`]), if any: for checks of a built image.
pub fn root_hash_in_initrd(initrd: &Path) -> Option<String> {
    let bytes = std::fs::read(initrd).ok()?;
    let key = b"HEARTH_VERITY_ROOT_HASH=";
    let at = bytes.windows(key.len()).rposition(|w| w == key)? + key.len();
    let hash = bytes.get(at..at + 64)?;
    let hash = std::str::from_utf8(hash).ok()?;
    hash.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    fn has_veritysetup() -> bool {
        crate::cmd::which("veritysetup").is_some()
    }

    #[test]
    fn format_argv_pins_salt_uuid_and_puts_the_tree_after_the_data() {
        let cmd = format_command(
            Path::new("/w/root.squashfs"),
            8192,
            "ab",
            "u-u",
            Path::new("/w/h"),
        );
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(cmd.get_program(), "veritysetup");
        for want in [
            "format",
            "--salt=ab",
            "--uuid=u-u",
            "--hash-offset=8192",
            "--data-blocks=2",
            "--hash=sha256",
        ] {
            assert!(args.contains(&want.to_string()), "{want} in {args:?}");
        }
        assert_eq!(
            &args[args.len() - 2..],
            ["/w/root.squashfs", "/w/root.squashfs"]
        );
        assert_eq!(derived_salt("qemu 1.0"), derived_salt("qemu 1.0"));
        assert_ne!(derived_salt("qemu 1.0"), derived_salt("qemu 1.1"));
        assert_eq!(derived_salt("x").len(), 64);
    }

    /// The real `veritysetup` (cryptsetup-bin, installed by ci/image-deps): the tree lands after
    /// the padded data, the same input gives the same root hash, and a flipped data byte fails
    /// verification.
    #[test]
    fn a_formatted_root_verifies_and_a_flipped_byte_does_not() {
        assert!(
            has_veritysetup(),
            "veritysetup is missing: run ci/image-deps (cryptsetup-bin)"
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let runner = Runner::new(None, false).expect("runner");
        let make = |name: &str| {
            let p = tmp.path().join(name);
            let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(&p, data).expect("write");
            p
        };
        let a = make("a.img");
        let info = format(
            &a,
            "board 1.0",
            "12345678-1234-4234-8234-123456789abc",
            &runner,
        )
        .expect("format");
        assert_eq!(info.hash_offset, 1_003_520, "padded to 4 KiB");
        assert_eq!(info.data_blocks, 245);
        assert!(info.total_size > info.hash_offset);
        let len = std::fs::metadata(&a).expect("meta").len();
        assert_eq!(len, info.total_size);
        let b = make("b.img");
        let again = format(
            &b,
            "board 1.0",
            "12345678-1234-4234-8234-123456789abc",
            &runner,
        )
        .expect("format");
        assert_eq!(info, again, "reproducible");
        assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
        // One byte flipped in the data: the whole-image check fails.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&b)
            .expect("open");
        f.seek(SeekFrom::Start(500_000)).expect("seek");
        f.write_all(&[0xff]).expect("write");
        drop(f);
        let err = runner.run(
            &mut verify_command(&b, info.hash_offset, &info.root_hash),
            false,
        );
        assert!(err.is_err(), "a corrupted root must not verify");
        runner
            .run(
                &mut verify_command(&a, info.hash_offset, &info.root_hash),
                false,
            )
            .expect("the untouched root verifies");
    }

    /// The updater's delta index (hearth-ota's `fs_extent::index_len`) reads a sealed root in a
    /// larger slot through its hash tree, as mksquashfs and veritysetup made them: the next
    /// release then finds the unchanged part of its tree in the active slot.
    #[test]
    fn the_delta_index_of_a_sealed_root_in_a_slot_covers_its_hash_tree() {
        assert!(
            has_veritysetup(),
            "veritysetup is missing: run ci/image-deps (cryptsetup-bin)"
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(root.join("usr/bin/hearth-agent"), data).expect("write");
        let img = tmp.path().join("root.squashfs");
        let mut cmd = crate::seal::command(
            crate::board::RootFs::Squashfs,
            &root,
            &img,
            1,
            "0123",
            None,
            crate::seal::Compression::Fast,
        );
        let st = cmd.stdout(std::process::Stdio::null()).status();
        assert!(st.expect("mksquashfs").success());
        let runner = Runner::new(None, false).expect("runner");
        let info = format(
            &img,
            "board 1.0",
            "12345678-1234-4234-8234-123456789abc",
            &runner,
        )
        .expect("format");
        assert!(info.total_size > info.hash_offset + 4096, "{info:?}");
        // The slot: the sealed root, then what an older, larger image left behind.
        let slot_path = tmp.path().join("slot");
        let mut slot_bytes = std::fs::read(&img).expect("read");
        slot_bytes.resize(slot_bytes.len() + (4 << 20), 0x5A);
        std::fs::write(&slot_path, &slot_bytes).expect("write");
        let mut slot =
            hearth_ota::storage::FileSlot::open_read_only(&slot_path).expect("open slot");
        assert_eq!(
            hearth_ota::fs_extent::index_len(&mut slot).expect("index_len"),
            info.total_size
        );
    }

    #[test]
    fn the_boot_initrd_appends_the_root_hash_after_the_roots_initramfs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root_initrd = tmp.path().join("initrd.img-6.12");
        std::fs::write(&root_initrd, b"zstd!").expect("write");
        let info = VerityInfo {
            root_hash: "ab".repeat(32),
            hash_offset: 4096,
            data_blocks: 1,
            salt: "00".into(),
            uuid: "u".into(),
            total_size: 8192,
        };
        let out = tmp.path().join("initrd.img");
        boot_initrd(&root_initrd, &info, "1.2.3", 0, &out).expect("initrd");
        let bytes = std::fs::read(&out).expect("read");
        assert_eq!(&bytes[..8], b"zstd!\0\0\0", "padded to 4 bytes");
        assert_eq!(&bytes[8..14], b"070701", "a newc archive follows");
        assert_eq!(root_hash_in_initrd(&out), Some("ab".repeat(32)));
        assert_eq!(root_hash_in_initrd(&root_initrd), None);
        let conf = conf_text(&info, "1.2.3");
        assert!(conf.contains("HEARTH_VERITY_HASH_OFFSET=4096\n"), "{conf}");
        assert!(conf.ends_with("HEARTH_VERSION=1.2.3\n"), "{conf}");
    }

    /// Issue 13 item 4: a Pi root's initramfs carried no REQUIRED marker, so an initrd stripped
    /// of its root hash booted the root unverified. Every boot method has it now, and names
    /// itself for the refusal.
    #[test]
    fn every_boot_method_requires_a_root_hash_and_names_itself() {
        for (boot, name) in [
            (BootMethod::SystemdBoot, "systemd-boot"),
            (BootMethod::RpiTryboot, "rpi-tryboot"),
        ] {
            let files = root_layer_files(boot);
            assert!(
                files.contains(&(REQUIRED_MARKER, b"1\n".as_slice())),
                "{boot:?}"
            );
            let method = files
                .iter()
                .find(|(p, _)| *p == BOOT_METHOD_FILE)
                .map(|(_, b)| String::from_utf8_lossy(b).trim().to_string());
            assert_eq!(method.as_deref(), Some(name));
            assert_eq!(method.as_deref(), Some(boot.name()));
        }
    }
}
