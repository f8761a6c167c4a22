//! Seals a prepared root into a read-only file-system image (squashfs or EROFS), with fixed
//! timestamps and identifiers so the same root gives the same bytes.
use std::path::Path;
use std::process::Command;

use crate::board::RootFs;
use crate::cmd::{CmdError, Runner};

/// How hard the root is compressed. `Release` is what published images get; `Fast` is for
/// local and CI builds that are booted and thrown away (`hearth-image build --fast`): measured
/// on the amd64 base (573 MiB), squashfs at zstd level 3 instead of mksquashfs' default 15 is
/// 7 % larger and about 3× faster on two cores (docs/image.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Release,
    Fast,
}

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
    compression: Compression,
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
            if compression == Compression::Fast {
                cmd.args(["-Xcompression-level", "3"]);
            }
            cmd
        }
        RootFs::Erofs => {
            let mut cmd = Command::new("mkfs.erofs");
            cmd.arg(match compression {
                Compression::Release => "-zlz4hc",
                Compression::Fast => "-zlz4",
            })
            .arg(format!("-T{epoch}"))
            .arg(format!("-U{}", uuid.to_lowercase()))
            .arg("--quiet")
            .arg(out)
            .arg(root);
            cmd
        }
    }
}

/// Packs the root with `cmd` (from [`command`]) into `out`; returns the image size in bytes.
pub fn seal(mut cmd: Command, out: &Path, runner: &Runner) -> Result<u64, CmdError> {
    runner.run(&mut cmd, false)?;
    Ok(std::fs::metadata(out).map(|m| m.len()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(kind: RootFs, compression: Compression) -> Vec<String> {
        let cmd = command(
            kind,
            Path::new("/r"),
            Path::new("/o"),
            1,
            "0123",
            None,
            compression,
        );
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn fast_squashfs_lowers_the_zstd_level_and_release_keeps_the_default() {
        let fast = args(RootFs::Squashfs, Compression::Fast);
        let at = fast.iter().position(|a| a == "-Xcompression-level");
        assert_eq!(at.map(|i| fast[i + 1].as_str()), Some("3"), "{fast:?}");
        let release = args(RootFs::Squashfs, Compression::Release);
        assert!(
            !release.iter().any(|a| a == "-Xcompression-level"),
            "{release:?}"
        );
        assert!(release.windows(2).any(|w| w == ["-comp", "zstd"]));
    }

    #[test]
    fn fast_erofs_uses_lz4_and_release_lz4hc() {
        assert_eq!(args(RootFs::Erofs, Compression::Fast)[0], "-zlz4");
        assert_eq!(args(RootFs::Erofs, Compression::Release)[0], "-zlz4hc");
    }
}
