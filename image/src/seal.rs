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

/// Files of the prepared root the running system never reads, left out of the sealed image
/// (paths relative to the root; a trailing `*` matches the rest of the last name). The
/// builder itself still reads them from the prepared root, and the lints still see them.
/// Measured on the qemu-x86_64 root: 99 MiB of 577 (docs/image.md, "What the root leaves
/// out").
pub const NOT_SHIPPED: [(&str, &str); 5] = [
    (
        "boot/vmlinuz-*",
        "the kernel boots from the ESP or the Pi's boot partition, and an update carries it as its own payload",
    ),
    ("boot/initrd.img-*", "the initramfs: likewise"),
    (
        "usr/bin/ctr",
        "containerd's debugging client; Docker talks to containerd over its API",
    ),
    (
        "usr/bin/containerd-shim",
        "containerd's v1 shim; Docker runs containers with io.containerd.runc.v2",
    ),
    ("usr/bin/containerd-shim-runc-v1", "likewise"),
];

/// Whether `rel` (a path relative to the root, no leading `/`) is one of [`NOT_SHIPPED`].
pub fn not_shipped(rel: &str) -> bool {
    NOT_SHIPPED
        .iter()
        .any(|(pattern, _)| match pattern.strip_suffix('*') {
            Some(prefix) => rel
                .strip_prefix(prefix)
                .is_some_and(|rest| !rest.contains('/')),
            None => rel == *pattern,
        })
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
            // `-e` takes every argument after it: it comes last. With `-wildcards`, `*`
            // matches within one name, as `not_shipped` does.
            cmd.args(["-wildcards", "-e"])
                .args(NOT_SHIPPED.iter().map(|(p, _)| *p));
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
            .arg("--quiet");
            // mkfs.erofs matches the regular expression against the path below the root.
            for (pattern, _) in NOT_SHIPPED {
                cmd.arg(format!("--exclude-regex={}", erofs_regex(pattern)));
            }
            cmd.arg(out).arg(root);
            cmd
        }
    }
}

/// A [`NOT_SHIPPED`] pattern as the anchored POSIX regular expression mkfs.erofs takes.
fn erofs_regex(pattern: &str) -> String {
    let (literal, any) = match pattern.strip_suffix('*') {
        Some(p) => (p, "[^/]*"),
        None => (pattern, ""),
    };
    let mut re = String::from("^");
    for c in literal.chars() {
        if ".[]()*+?{}|^$\\".contains(c) {
            re.push('\\');
        }
        re.push(c);
    }
    format!("{re}{any}$")
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

    #[test]
    fn not_shipped_matches_the_kernel_files_and_nothing_beside_them() {
        assert!(not_shipped("boot/vmlinuz-6.12.118+deb13-amd64"));
        assert!(not_shipped("boot/initrd.img-6.12"));
        assert!(not_shipped("usr/bin/ctr"));
        assert!(not_shipped("usr/bin/containerd-shim"));
        for kept in [
            "boot/config-6.12",
            "boot/vmlinuz-6.12/inner",
            "usr/bin/ctrl",
            "usr/bin/containerd",
            "usr/bin/containerd-shim-runc-v2",
            "usr/sbin/ctr",
        ] {
            assert!(!not_shipped(kept), "{kept}");
        }
        assert_eq!(erofs_regex("boot/vmlinuz-*"), "^boot/vmlinuz-[^/]*$");
        assert_eq!(erofs_regex("usr/bin/ctr"), "^usr/bin/ctr$");
        assert_eq!(erofs_regex("a.b+c"), "^a\\.b\\+c$");
    }

    /// The real tools leave exactly the `NOT_SHIPPED` files out (squashfs with `-wildcards`,
    /// EROFS with its regular expressions), whatever `not_shipped` says of each name.
    #[test]
    fn both_file_systems_leave_out_what_not_shipped_says() {
        let have = |tool: &str| {
            Command::new(tool)
                .arg("-version")
                .output()
                .is_ok_and(|o| !o.stdout.is_empty() || !o.stderr.is_empty())
        };
        assert!(
            have("mksquashfs") && have("unsquashfs"),
            "squashfs-tools is needed (ci/image-deps)"
        );
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("r");
        let files = [
            "boot/vmlinuz-6.12",
            "boot/initrd.img-6.12",
            "boot/config-6.12",
            "usr/bin/ctr",
            "usr/bin/ctrl",
            "usr/bin/containerd-shim",
            "usr/bin/containerd-shim-runc-v1",
            "usr/bin/containerd-shim-runc-v2",
        ];
        for f in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, f).expect("write");
        }
        let img = tmp.path().join("root.squashfs");
        let mut cmd = command(
            RootFs::Squashfs,
            &root,
            &img,
            1,
            "0123",
            None,
            Compression::Fast,
        );
        let st = cmd.stdout(std::process::Stdio::null()).status();
        assert!(st.expect("mksquashfs").success());
        let out = Command::new("unsquashfs")
            .arg("-l")
            .arg(&img)
            .output()
            .expect("unsquashfs");
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        for f in files {
            let present = listed
                .lines()
                .any(|l| l.strip_prefix("squashfs-root/") == Some(f));
            assert_eq!(present, !not_shipped(f), "squashfs {f}: {listed}");
        }
        {
            let img = tmp.path().join("root.erofs");
            let mut cmd = command(
                RootFs::Erofs,
                &root,
                &img,
                1,
                "01234567-89ab-cdef-0123-456789abcdef",
                None,
                Compression::Fast,
            );
            assert!(cmd.status().expect("mkfs.erofs").success());
            let x = tmp.path().join("x");
            let st = Command::new("fsck.erofs")
                .arg(format!("--extract={}", x.display()))
                .arg(&img)
                .status()
                .expect("fsck.erofs");
            assert!(st.success());
            for f in files {
                assert_eq!(x.join(f).exists(), !not_shipped(f), "erofs {f}");
            }
        }
    }
}
