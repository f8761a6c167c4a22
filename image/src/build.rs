//! The image pipeline: bootstrap → root → lints → seal → boot files → disk → artifacts.
use std::path::{Path, PathBuf};

use crate::board::Board;
use crate::bootstrap::{self, Base, BaseInputs};
use crate::cmd::Runner;
use crate::workspace::Workspace;

/// SOURCE_DATE_EPOCH of everything the builder makes, unless the environment sets one:
/// a constant, so the cached base stays valid from one commit to the next.
pub const DEFAULT_EPOCH: u64 = 1_735_689_600; // 2025-01-01T00:00:00Z

pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_EPOCH)
}

pub fn base_inputs(ws: &Workspace, board: &Board) -> anyhow::Result<BaseInputs> {
    let common = ws.boards().common()?;
    Ok(BaseInputs::new(
        board,
        &common,
        ws.overlays().join("initramfs"),
        source_date_epoch(),
    ))
}

/// Only the first step: makes sure the board's base is in the cache.
pub fn bootstrap_only(
    ws: &Workspace,
    board: &str,
    cache: &Path,
    verbose: bool,
) -> anyhow::Result<Base> {
    let board = ws.boards().load(board)?;
    let inputs = base_inputs(ws, &board)?;
    let log: PathBuf = cache.join(format!("bootstrap-{}.log", board.name));
    let runner = Runner::new(Some(&log), verbose)?;
    eprintln!("bootstrapping {} base (log: {})", board.arch, log.display());
    Ok(bootstrap::ensure(&inputs, cache, &board.name, &runner)?)
}

/// Everything `hearth-image build` takes.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub board: String,
    pub version: String,
    /// Signing key; `None` uses (and on first use makes) a development key in the cache.
    pub key: Option<PathBuf>,
    pub out: PathBuf,
    pub agent_bin: Option<PathBuf>,
    pub cache: PathBuf,
    pub ssh_key: Option<PathBuf>,
    pub rootfs: Option<crate::board::RootFs>,
    /// Write the root into both slots (default: slot a only; b is marked empty).
    pub both_slots: bool,
    pub keep_work: bool,
    /// Publish the raw (sparse) `.img` instead of `.img.xz`: for local boots, where xz would
    /// only cost minutes.
    pub no_xz: bool,
    /// A local or CI build, booted and thrown away: the root sealed with fast compression
    /// (`seal::Compression::Fast`) and no `.img.xz` (as `no_xz`). Published images leave it off.
    pub fast: bool,
    pub verbose: bool,
    /// The bundle's monotonic version number; `None` derives it from `version`
    /// (`ota::version_number`).
    pub version_number: Option<u64>,
    /// Oldest version number the bundle may update from (0: any).
    pub min_version_number: u64,
    /// OTA release key, key list and root public key; `None` uses (and on first use makes)
    /// development OTA keys in the cache.
    pub ota_keys: Option<crate::ota::OtaKeyFiles>,
    /// Update repository written into the agent's device configuration (`[update] repo_url`).
    pub update_url: Option<String>,
    /// More overlay folders, laid after the board's overlays in the given order.
    pub extra_overlays: Vec<PathBuf>,
    /// Make the sealed root and the update bundle only (no disk image, no xz).
    pub bundle_only: bool,
    /// Also write the release in this older bundle format (1 or 2; `*.vN.bundle`) for devices
    /// on a release that reads only that format (docs/ota-bundle.md, "Versioning").
    pub bridge_bundle: Option<u16>,
    /// The release's Secure Boot key set (`hearth-image keygen`'s FILE.secureboot/), which
    /// signs systemd-boot, the UKIs and the addons on `uki = true` boards; `None` uses (and on
    /// first use makes) a development key set in the cache.
    pub secure_boot_keys: Option<PathBuf>,
}

/// What a finished build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// The disk image, or the bundle of a `--bundle-only` build.
    pub image: PathBuf,
    pub bundle: PathBuf,
    pub files: Vec<PathBuf>,
    pub summary: String,
}

/// Programs the pipeline runs; checked before anything starts.
pub(crate) const TOOLS: [&str; 15] = [
    "mmdebstrap",
    "mksquashfs",
    "mkfs.erofs",
    "sfdisk",
    "mkfs.vfat",
    "mcopy",
    "mkfs.ext4",
    "debugfs",
    "xz",
    "systemctl",
    "dpkg-query",
    "openssl",
    "sbsign",
    "cert-to-efi-sig-list",
    "sign-efi-sig-list",
];

/// Free space the work folder needs (base copy, sealed root, partition files, image). A
/// qemu-x86_64 build peaks at about 2 GiB allocated (the image and partition files are sparse);
/// twice that leaves room for bigger boards without refusing builds that would fit.
pub(crate) const NEEDED_FREE_BYTES: u64 = 4 << 30;

pub fn build(ws: &Workspace, opts: &BuildOptions) -> anyhow::Result<BuildResult> {
    crate::pipeline::run(ws, opts)
}
