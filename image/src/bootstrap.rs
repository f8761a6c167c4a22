//! The bootstrapped Debian base: one `mmdebstrap` run per set of inputs (architecture, suite,
//! archive, package set, initramfs overlay), cached by a hash of those inputs so an agent-only
//! rebuild reuses it. The initramfs overlay is synced in before the kernel is installed, so the
//! kernel's own postinst builds the initramfs Hearth needs (no second, slow rebuild).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::board::{Board, CommonConfig};
use crate::cmd::{CmdError, Runner};
use crate::fsutil;

/// Bump when the way the base is made changes, to invalidate every cached base.
const RECIPE_VERSION: &str = "hearth-base-3";

/// Files under the root that must never be cached or shipped.
const SLIM_DPKG_OPTIONS: [&str; 6] = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
];

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("mmdebstrap failed for {board}: {source}")]
    Mmdebstrap { board: String, source: CmdError },
    #[error("cannot list the installed packages: {0}")]
    Packages(CmdError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the overlay path {0} contains white space, which mmdebstrap hooks cannot take")]
    BadPath(PathBuf),
    #[error(
        "the {board} base ({key}) is not cached and {CACHED_ONLY_ENV}=1 forbids bootstrapping it"
    )]
    NotCached { board: String, key: String },
}

/// With this environment variable set to `1`, a base that is not cached is an error instead
/// of a bootstrap (`ci/bench-image` uses it so a benchmark never starts a 40-minute foreign
/// bootstrap by surprise).
pub const CACHED_ONLY_ENV: &str = "HEARTH_IMAGE_CACHED_BASE_ONLY";

/// Everything a base depends on; its hash names the cache entry.
#[derive(Debug, Clone)]
pub struct BaseInputs {
    pub arch: String,
    pub suite: String,
    pub components: Vec<String>,
    pub sources: Vec<String>,
    pub packages: BTreeSet<String>,
    pub initramfs_overlay: PathBuf,
    pub source_date_epoch: u64,
}

impl BaseInputs {
    pub fn new(board: &Board, common: &CommonConfig, initramfs_overlay: PathBuf, sde: u64) -> Self {
        let comps = board.components.join(" ");
        let suite = &board.suite;
        let sources = vec![
            format!("deb {} {suite} {comps}", common.mirror),
            format!("deb {} {suite}-updates {comps}", common.mirror),
            format!("deb {} {suite}-security {comps}", common.security_mirror),
        ];
        let mut packages: BTreeSet<String> = common.packages.iter().cloned().collect();
        packages.extend(board.packages.iter().cloned());
        packages.insert(board.kernel.clone());
        BaseInputs {
            arch: board.arch.debian().to_string(),
            suite: suite.clone(),
            components: board.components.clone(),
            sources,
            packages,
            initramfs_overlay,
            source_date_epoch: sde,
        }
    }

    /// Hash of every input (the initramfs overlay by content), hex.
    pub fn key(&self) -> Result<String, BootstrapError> {
        let mut h = Sha256::new();
        for part in [RECIPE_VERSION, &self.arch, &self.suite] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for list in [&self.components, &self.sources] {
            for s in list {
                h.update(s.as_bytes());
                h.update([0]);
            }
        }
        for p in &self.packages {
            h.update(p.as_bytes());
            h.update([0]);
        }
        h.update(self.source_date_epoch.to_le_bytes());
        let tree =
            fsutil::tree_digest(&self.initramfs_overlay).map_err(|source| BootstrapError::Io {
                path: self.initramfs_overlay.clone(),
                source,
            })?;
        h.update(tree);
        Ok(crate::hex(&h.finalize()))
    }

    /// The `mmdebstrap` argv that builds the base into `target`.
    pub fn mmdebstrap(&self, target: &Path) -> Result<Command, BootstrapError> {
        let overlay = self.initramfs_overlay.to_string_lossy();
        if overlay.chars().any(char::is_whitespace) {
            return Err(BootstrapError::BadPath(self.initramfs_overlay.clone()));
        }
        let mut cmd = Command::new("mmdebstrap");
        cmd.env("SOURCE_DATE_EPOCH", self.source_date_epoch.to_string())
            .arg("--mode=root")
            .arg("--format=directory")
            .arg("--variant=apt")
            .arg(format!("--architectures={}", self.arch))
            .arg(format!("--components={}", self.components.join(",")))
            .arg("--aptopt=Acquire::Check-Valid-Until \"false\"")
            .arg("--aptopt=APT::Install-Recommends \"false\"");
        for opt in SLIM_DPKG_OPTIONS {
            cmd.arg(format!("--dpkgopt={opt}"));
        }
        let packages: Vec<&str> = self.packages.iter().map(String::as_str).collect();
        // `sync-in` is a command of mmdebstrap itself (no shell): the initramfs hooks are in
        // place before apt installs the kernel and builds the initramfs.
        cmd.arg(format!("--essential-hook=sync-in {overlay} /"))
            .arg(format!("--include={}", packages.join(",")))
            .arg(&self.suite)
            .arg(target)
            .args(&self.sources);
        Ok(cmd)
    }
}

/// A cached base, ready to copy.
#[derive(Debug, Clone)]
pub struct Base {
    pub root: PathBuf,
    /// `name<TAB>version<TAB>arch` lines of every installed package, sorted.
    pub packages: String,
    pub key: String,
    pub cached: bool,
}

/// The cache folder of the base made from `inputs`.
pub fn entry_dir(inputs: &BaseInputs, cache: &Path) -> Result<PathBuf, BootstrapError> {
    let key = inputs.key()?;
    Ok(cache.join(format!("base-{}-{}", inputs.arch, &key[..16])))
}

/// Returns the cached base for `inputs`, bootstrapping it first when absent.
pub fn ensure(
    inputs: &BaseInputs,
    cache: &Path,
    board: &str,
    runner: &Runner,
) -> Result<Base, BootstrapError> {
    let key = inputs.key()?;
    let entry = entry_dir(inputs, cache)?;
    let root = entry.join("root");
    let manifest = entry.join("packages.tsv");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BootstrapError::Io { path, source }
    };
    if manifest.is_file() && root.is_dir() {
        let packages = std::fs::read_to_string(&manifest).map_err(io(&manifest))?;
        return Ok(Base {
            root,
            packages,
            key,
            cached: true,
        });
    }
    if std::env::var(CACHED_ONLY_ENV).is_ok_and(|v| v == "1") {
        return Err(BootstrapError::NotCached {
            board: board.to_string(),
            key: key[..16].to_string(),
        });
    }
    // Build under a temporary name; only a finished base is renamed into place.
    let tmp = cache.join(format!(".tmp-base-{}-{}", &key[..16], std::process::id()));
    fsutil::remove_all(&tmp).map_err(io(&tmp))?;
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let tmp_root = tmp.join("root");
    let result = inputs.mmdebstrap(&tmp_root).and_then(|mut cmd| {
        runner
            .run(&mut cmd, true)
            .map_err(|source| BootstrapError::Mmdebstrap {
                board: board.to_string(),
                source,
            })
    });
    if let Err(e) = result {
        let _ = fsutil::remove_all(&tmp);
        return Err(e);
    }
    let packages = list_packages(&tmp_root.join("var/lib/dpkg"), runner)?;
    std::fs::write(tmp.join("packages.tsv"), &packages).map_err(io(&tmp))?;
    fsutil::remove_all(&entry).map_err(io(&entry))?;
    std::fs::rename(&tmp, &entry).map_err(io(&entry))?;
    Ok(Base {
        root,
        packages,
        key,
        cached: false,
    })
}

/// Installed packages of a root, read with the host's dpkg-query from the root's database.
pub fn list_packages(admindir: &Path, runner: &Runner) -> Result<String, BootstrapError> {
    let out = runner
        .output(
            Command::new("dpkg-query")
                .arg(format!("--admindir={}", admindir.display()))
                .arg("--show")
                .arg("--showformat=${Package}\t${Version}\t${Architecture}\n"),
        )
        .map_err(BootstrapError::Packages)?;
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    Ok(lines.join("\n") + "\n")
}
