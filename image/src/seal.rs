//! Seals a prepared root into a read-only file-system image (squashfs or EROFS), with fixed
//! timestamps and identifiers so the same root gives the same bytes.
use std::path::Path;
use std::process::Command;

use crate::board::RootFs;
use crate::cmd::{CmdError, Runner};

/// The argv that packs `root` into `out`. `sort` is a mksquashfs sort file (`PATH PRIORITY`
/// lines; lower priority = later in the image): files that change with every release go last
/// so the rest keeps its offsets and OTA deltas stay small. mkfs.erofs (1.5) has no such
/// option; the file is ignored there.
///
/// Block size 128 KiB (mksquashfs' default), not 1 MiB: measured on a pair of roots differing
/// by four files added early in the tree, 1 MiB blocks rewrite two thirds of the image (the
/// fragment and data blocks after the insertion all change: xdelta3 10.8 MB, Hearth 11.0 MB of
/// 16.4 MB), 128 KiB blocks keep the rest byte for byte (xdelta3 0.20 MB, Hearth 0.28 MB) for
/// 5.7 % more image. `-no-fragments` at 1 MiB also keeps them (0.33 MB) but costs 21 %.
/// See docs/ota.md.
pub fn command(
    kind: RootFs,
    root: &Path,
    out: &Path,
    epoch: u64,
    uuid: &str,
    sort: Option<&Path>,
) -> Command {
    match kind {
        RootFs::Squashfs => {
            let mut cmd = Command::new("mksquashfs");
            cmd.arg(root)
                .arg(out)
                .args(["-noappend", "-comp", "zstd", "-b", "128K", "-no-progress"])
                .args(["-processors", "2"])
                .arg("-mkfs-time")
                .arg(epoch.to_string())
                .arg("-all-time")
                .arg(epoch.to_string())
                // mksquashfs refuses explicit times while SOURCE_DATE_EPOCH is set; the epoch
                // given above is the build's SOURCE_DATE_EPOCH anyway.
                .env_remove("SOURCE_DATE_EPOCH");
            if let Some(sort) = sort {
                cmd.arg("-sort").arg(sort);
            }
            cmd
        }
        RootFs::Erofs => {
            let mut cmd = Command::new("mkfs.erofs");
            cmd.arg("-zlz4hc")
                .arg(format!("-T{epoch}"))
                .arg(format!("-U{}", uuid.to_lowercase()))
                .arg("--quiet")
                .arg(out)
                .arg(root);
            cmd
        }
    }
}

/// Packs the root; returns the image size in bytes.
pub fn seal(
    kind: RootFs,
    root: &Path,
    out: &Path,
    epoch: u64,
    uuid: &str,
    sort: Option<&Path>,
    runner: &Runner,
) -> Result<u64, CmdError> {
    runner.run(&mut command(kind, root, out, epoch, uuid, sort), false)?;
    Ok(std::fs::metadata(out).map(|m| m.len()).unwrap_or(0))
}
