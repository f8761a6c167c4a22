//! Hearth's early-boot scripts as an initramfs layer: an uncompressed `newc` cpio archive
//! appended to the root's `/boot/initrd.img-*`. The kernel unpacks concatenated archives in
//! order, later files replacing earlier ones, so the scripts can change without rebuilding the
//! initramfs (which the cached base builds once, with the modules and tools the scripts need;
//! under qemu-user an arm64 rebuild takes minutes).
//!
//! The archive is reproducible: sorted entries, fixed owner, times and inode numbers.
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::fsutil::walk_sorted;

/// Every layer carries this file; the lint finds it at the end of the initramfs.
pub const MARKER: &str = "etc/hearth-initrd-layer";

#[derive(Debug, thiserror::Error)]
pub enum InitrdError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the root has no /boot/initrd.img-*")]
    NoInitrd,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitrdError {
    let path = path.to_path_buf();
    move |source| InitrdError::Io { path, source }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn entry(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, mtime: u64, name: &str, data: &[u8]) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        u32::try_from(mtime).unwrap_or(u32::MAX),
        u32::try_from(data.len()).unwrap_or(u32::MAX),
        0,
        0,
        0,
        0,
        u32::try_from(name.len() + 1).unwrap_or(u32::MAX),
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// The `newc` archive of the folder `dir` (paths relative to it), plus the marker file.
pub fn layer(dir: &Path, mtime: u64, marker: &str) -> Result<Vec<u8>, InitrdError> {
    layer_with_files(dir, mtime, marker, &[])
}

/// [`layer`] plus `extra` regular files (relative path, content), e.g. the board's verity marker.
pub fn layer_with_files(
    dir: &Path,
    mtime: u64,
    marker: &str,
    extra: &[(&str, &[u8])],
) -> Result<Vec<u8>, InitrdError> {
    let mut out = Vec::new();
    let mut ino = 0x4845_0000u32; // away from the base archive's numbers
    let mut names = walk_sorted(dir).map_err(io(dir))?;
    names.push(PathBuf::from(MARKER));
    names.extend(extra.iter().map(|(n, _)| PathBuf::from(n)));
    names.sort();
    for rel in names {
        ino += 1;
        let name = rel.to_string_lossy().into_owned();
        if rel == Path::new(MARKER) {
            entry(&mut out, ino, 0o100644, 1, mtime, &name, marker.as_bytes());
            continue;
        }
        if let Some((_, data)) = extra.iter().find(|(n, _)| Path::new(n) == rel) {
            entry(&mut out, ino, 0o100644, 1, mtime, &name, data);
            continue;
        }
        let path = dir.join(&rel);
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(io(&path))?;
            let target = target.to_string_lossy().into_owned();
            entry(&mut out, ino, 0o120777, 1, mtime, &name, target.as_bytes());
        } else if meta.is_dir() {
            entry(&mut out, ino, 0o040755, 2, mtime, &name, &[]);
        } else {
            let exec = meta.permissions().mode() & 0o111 != 0;
            let mode = if exec { 0o100755 } else { 0o100644 };
            let data = std::fs::read(&path).map_err(io(&path))?;
            entry(&mut out, ino, mode, 1, mtime, &name, &data);
        }
    }
    entry(&mut out, 0, 0, 1, 0, "TRAILER!!!", &[]);
    Ok(out)
}

/// A `newc` archive of regular files only (sorted by name): a layer appended after the
/// root's initramfs, such as the slot's verity root hash on the ESP.
pub fn files_layer(files: &[(&str, &[u8])], mtime: u64) -> Vec<u8> {
    let mut sorted: Vec<&(&str, &[u8])> = files.iter().collect();
    sorted.sort_by_key(|(n, _)| *n);
    let mut out = Vec::new();
    let mut ino = 0x4856_0000u32;
    for (name, data) in sorted {
        ino += 1;
        entry(&mut out, ino, 0o100644, 1, mtime, name, data);
    }
    entry(&mut out, 0, 0, 1, 0, "TRAILER!!!", &[]);
    out
}

/// Appends `layer` to every `/boot/initrd.img-*` of `root` (zero-padded to the 4-byte
/// boundary the kernel expects of an uncompressed archive after a compressed one).
/// Returns the initramfs files it changed.
pub fn append_to_root(root: &Path, layer: &[u8]) -> Result<Vec<PathBuf>, InitrdError> {
    let boot = root.join("boot");
    let mut changed = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&boot)
        .map_err(io(&boot))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("initrd.img-"))
        })
        .filter(|p| !p.is_symlink())
        .collect();
    entries.sort();
    for path in entries {
        let len = std::fs::metadata(&path).map_err(io(&path))?.len();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let pad = (4 - len % 4) % 4;
        f.write_all(&vec![0u8; pad as usize]).map_err(io(&path))?;
        f.write_all(layer).map_err(io(&path))?;
        changed.push(path);
    }
    if changed.is_empty() {
        return Err(InitrdError::NoInitrd);
    }
    Ok(changed)
}

/// Whether the initramfs at `path` ends with a Hearth layer (its marker is in the last
/// archive). Reads only the tail.
pub fn has_layer(path: &Path) -> bool {
    tail_contains(path, MARKER)
}

/// Whether the last 256 KiB of the initramfs at `path` (Hearth's layers) name `needle`.
pub fn tail_contains(path: &Path, needle: &str) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(len) = f.seek(SeekFrom::End(0)) else {
        return false;
    };
    let start = len.saturating_sub(256 * 1024);
    let mut tail = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut tail).is_err() {
        return false;
    }
    tail.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a `newc` archive into (name, mode, data) triples, stopping at the trailer.
    fn parse(mut buf: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let total = buf.len();
        loop {
            assert_eq!(&buf[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(
                    std::str::from_utf8(&buf[6 + 8 * i..14 + 8 * i]).expect("valid archive"),
                    16,
                )
                .expect("valid archive")
            };
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let name = std::str::from_utf8(&buf[110..110 + namesize - 1])
                .expect("valid archive")
                .to_string();
            let consumed = total - buf.len();
            let data_start = (consumed + 110 + namesize).div_ceil(4) * 4 - consumed;
            let data = buf[data_start..data_start + size].to_vec();
            let next = (consumed + data_start + size).div_ceil(4) * 4 - consumed;
            buf = &buf[next..];
            if name == "TRAILER!!!" {
                assert!(buf.is_empty());
                return out;
            }
            out.push((name, mode, data));
        }
    }

    #[test]
    fn the_layer_holds_the_tree_with_modes_and_the_marker() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("layer");
        std::fs::create_dir_all(dir.join("scripts/local-bottom")).expect("mkdir");
        let script = dir.join("scripts/local-bottom/hearth-data");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o775)).expect("chmod");
        std::fs::write(dir.join("scripts/local-bottom/ORDER"), "x\n").expect("write");
        let a = layer(&dir, 1_735_689_600, "v1").expect("layer");
        let b = layer(&dir, 1_735_689_600, "v1").expect("layer");
        assert_eq!(a, b, "the layer is reproducible");
        let entries = parse(&a);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/hearth-initrd-layer",
                "scripts",
                "scripts/local-bottom",
                "scripts/local-bottom/ORDER",
                "scripts/local-bottom/hearth-data",
            ]
        );
        assert_eq!(entries[4].1, 0o100755);
        assert_eq!(entries[3].1, 0o100644);
        assert_eq!(entries[1].1, 0o040755);
        assert_eq!(entries[4].2, b"#!/bin/sh\nexit 0\n");
        assert_eq!(entries[0].2, b"v1");
    }

    #[test]
    fn extra_files_and_file_layers_are_archived() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("layer");
        std::fs::create_dir_all(dir.join("scripts")).expect("mkdir");
        let l = layer_with_files(&dir, 0, "m", &[("etc/hearth-verity-required", b"1\n")])
            .expect("layer");
        let entries = parse(&l);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/hearth-initrd-layer",
                "etc/hearth-verity-required",
                "scripts"
            ]
        );
        assert_eq!(entries[1].2, b"1\n");
        let f = files_layer(&[("b", b"2"), ("a", b"1")], 7);
        let entries = parse(&f);
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (entries[0].0.as_str(), entries[0].2.as_slice()),
            ("a", &b"1"[..])
        );
        assert_eq!(entries[1].1, 0o100644);
    }

    #[test]
    fn appending_pads_to_four_bytes_and_the_lint_finds_the_layer() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join("boot")).expect("mkdir");
        let initrd = root.join("boot/initrd.img-6.12");
        std::fs::write(&initrd, b"compressed!").expect("write"); // 11 bytes
        assert!(!has_layer(&initrd));
        let dir = root.join("layer");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let l = layer(&dir, 0, "v").expect("layer");
        let changed = append_to_root(root, &l).expect("append");
        assert_eq!(changed, vec![initrd.clone()]);
        let bytes = std::fs::read(&initrd).expect("read");
        assert_eq!(&bytes[..12], b"compressed!\0");
        assert_eq!(&bytes[12..], &l[..]);
        assert!(has_layer(&initrd));
    }

    #[test]
    fn a_root_without_an_initramfs_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("boot")).expect("mkdir");
        assert!(matches!(
            append_to_root(tmp.path(), b""),
            Err(InitrdError::NoInitrd)
        ));
    }
}
