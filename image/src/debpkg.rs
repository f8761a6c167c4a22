//! One Debian package of the board's architecture and suite, downloaded with apt (its own
//! state and cache folders, nothing of the host's) and unpacked, not installed: the boot
//! firmware that goes onto a board's boot partitions or before its first partition (the Pi's
//! `raspi-firmware`, a U-Boot board's `u-boot-*`). Cached per suite and package.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::board::Board;
use crate::cmd::Runner;

/// An unpacked package: its files under `dir` (as they would be under `/`).
pub struct Fetched {
    pub dir: PathBuf,
    pub package: String,
    pub version: String,
}

/// Downloads and unpacks `package` (once: later calls find it in `cache`).
pub fn fetch(
    board: &Board,
    package: &str,
    mirror: &str,
    cache: &Path,
    runner: &Runner,
) -> Result<Fetched> {
    let base = cache
        .join("debs")
        .join(format!("{}-{}", board.suite, board.arch.debian()))
        .join(package);
    let extracted = base.join("extracted");
    let version_file = base.join("version");
    if extracted.is_dir() && version_file.is_file() {
        let version = std::fs::read_to_string(&version_file)?.trim().to_string();
        return Ok(Fetched {
            dir: extracted,
            package: package.to_string(),
            version,
        });
    }
    let apt = base.join("apt");
    for d in ["state/lists/partial", "cache/archives/partial", "etc"] {
        std::fs::create_dir_all(apt.join(d))?;
    }
    let sources = apt.join("etc/sources.list");
    let comps = board.components.join(" ");
    std::fs::write(
        &sources,
        format!(
            "deb [arch={arch} signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} {suite} {comps}\n",
            arch = board.arch.debian(),
            suite = board.suite,
        ),
    )?;
    let apt_args = |cmd: &mut Command| {
        cmd.arg(format!("-oDir::State={}", apt.join("state").display()))
            .arg(format!("-oDir::Cache={}", apt.join("cache").display()))
            .arg(format!("-oDir::Etc::SourceList={}", sources.display()))
            .arg("-oDir::Etc::SourceParts=/nonexistent")
            .arg(format!("-oAPT::Architecture={}", board.arch.debian()))
            .arg(format!("-oAPT::Architectures={}", board.arch.debian()))
            .arg("-oAcquire::Check-Valid-Until=false")
            .arg("-oDebug::NoLocking=true")
            .arg("-qq");
    };
    let mut update = Command::new("apt-get");
    apt_args(&mut update);
    update.arg("update");
    runner
        .run(&mut update, true)
        .with_context(|| format!("cannot read the {} package index", board.suite))?;
    let download_dir = base.join("deb");
    crate::fsutil::remove_all(&download_dir)?;
    std::fs::create_dir_all(&download_dir)?;
    let mut download = Command::new("apt-get");
    apt_args(&mut download);
    download
        .current_dir(&download_dir)
        .arg("download")
        .arg(package);
    runner
        .run(&mut download, true)
        .with_context(|| format!("cannot download {package}"))?;
    let deb = std::fs::read_dir(&download_dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download left no {package} .deb"))?;
    let version = runner
        .output(
            Command::new("dpkg-deb")
                .args(["--show", "--showformat=${Version}"])
                .arg(&deb),
        )?
        .trim()
        .to_string();
    let tmp = base.join(".extracting");
    crate::fsutil::remove_all(&tmp)?;
    runner.run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp),
        false,
    )?;
    crate::fsutil::remove_all(&extracted)?;
    std::fs::rename(&tmp, &extracted)?;
    std::fs::write(&version_file, format!("{version}\n"))?;
    Ok(Fetched {
        dir: extracted,
        package: package.to_string(),
        version,
    })
}
