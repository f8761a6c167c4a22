//! Unpacking a downloaded store zip safely. Every entry is checked before anything is written:
//! only plain relative names (no `..`, no absolute paths, no drive letters or backslashes),
//! only regular files and folders (no symlinks, devices, FIFOs or sockets), no encrypted
//! entries, no duplicate names, at most [`MAX_ENTRIES`] entries and [`MAX_UNPACKED_BYTES`]
//! bytes counted as they are inflated (a zip bomb's headers lie). Files are created with
//! `O_EXCL` inside a fresh folder, so nothing outside it can be touched.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Largest store zip downloaded.
pub const MAX_ZIP_BYTES: u64 = 64 * 1024 * 1024;
/// Largest total size unpacked (the CasaOS store is about 10 MiB).
pub const MAX_UNPACKED_BYTES: u64 = 256 * 1024 * 1024;
pub const MAX_ENTRIES: usize = 20_000;

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;

/// The number of entries the zip's end-of-central-directory record announces (None for zip64
/// or when it cannot be found; the zip reader then reports the problem).
fn announced_entries(bytes: &[u8]) -> Option<usize> {
    let tail_start = bytes.len().saturating_sub(22 + 65_535);
    let tail = &bytes[tail_start..];
    let pos = tail.windows(4).rposition(|w| w == b"PK\x05\x06")?;
    let rec = tail.get(pos..pos + 22)?;
    let total = u16::from_le_bytes([rec[10], rec[11]]);
    (total != 0xffff).then_some(total as usize)
}

fn check_name(name: &str) -> Result<PathBuf, String> {
    let trimmed = name.trim_end_matches('/');
    if trimmed.is_empty() || name.contains('\\') || name.contains('\0') {
        return Err(format!("entry {name:?}: not a plain relative path"));
    }
    let p = Path::new(trimmed);
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!(
            "entry {name:?}: absolute paths, '.' and '..' are not allowed"
        ));
    }
    if p.components().next().is_some_and(|c| {
        let s = c.as_os_str().to_string_lossy();
        s.len() == 2 && s.ends_with(':')
    }) {
        return Err(format!("entry {name:?}: not a plain relative path"));
    }
    Ok(p.to_path_buf())
}

/// How much a zip may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub entries: usize,
    pub unpacked_bytes: u64,
}

impl Limits {
    pub const STORE: Limits = Limits {
        entries: MAX_ENTRIES,
        unpacked_bytes: MAX_UNPACKED_BYTES,
    };
}

/// Unpacks `bytes` into `dest` (which must not exist yet) within [`Limits::STORE`].
pub fn extract(bytes: &[u8], dest: &Path) -> Result<(), String> {
    extract_with(bytes, dest, Limits::STORE)
}

/// Unpacks `bytes` into `dest` (which must not exist yet). On error `dest` may hold part of the
/// archive: the caller removes it.
pub fn extract_with(bytes: &[u8], dest: &Path, limits: Limits) -> Result<(), String> {
    if !bytes.starts_with(b"PK\x03\x04") && !bytes.starts_with(b"PK\x05\x06") {
        return Err("not a zip file".into());
    }
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable zip file: {e}"))?;
    if zip.len() > limits.entries {
        return Err(format!("more than {} entries", limits.entries));
    }
    if announced_entries(bytes).is_some_and(|n| n != zip.len()) {
        return Err("the zip holds duplicate entry names".into());
    }
    // First pass: names and kinds, nothing written.
    let mut seen = HashSet::new();
    let mut plan = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).map_err(|e| format!("entry {i}: {e}"))?;
        let name = f.name().map_err(|e| format!("entry {i}: {e}"))?.to_string();
        let rel = check_name(&name)?;
        if f.encrypted() {
            return Err(format!("entry {name:?}: encrypted entries are not allowed"));
        }
        let is_dir = f.is_dir();
        if let Some(mode) = f.unix_mode() {
            let kind = mode & S_IFMT;
            let ok = kind == 0 || (is_dir && kind == S_IFDIR) || (!is_dir && kind == S_IFREG);
            if !ok {
                let what = match kind {
                    0o120_000 => "a symbolic link",
                    0o020_000 | 0o060_000 => "a device file",
                    0o010_000 => "a FIFO",
                    0o140_000 => "a socket",
                    _ => "not a regular file or folder",
                };
                return Err(format!("entry {name:?} is {what}: not allowed in a store"));
            }
        }
        if f.is_symlink() {
            return Err(format!(
                "entry {name:?} is a symbolic link: not allowed in a store"
            ));
        }
        if !seen.insert(rel.clone()) {
            return Err(format!("entry {name:?} appears twice"));
        }
        plan.push((i, rel, is_dir));
    }
    std::fs::create_dir(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut budget = limits.unpacked_bytes;
    for (i, rel, is_dir) in plan {
        let target = dest.join(&rel);
        let io = |e: std::io::Error| format!("{}: {e}", rel.display());
        if is_dir {
            std::fs::create_dir_all(&target).map_err(io)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let f = zip
            .by_index(i)
            .map_err(|e| format!("{}: {e}", rel.display()))?;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(io)?;
        let mut limited = f.take(budget + 1);
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = limited.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            if n as u64 > budget {
                return Err(format!(
                    "unpacks to more than {} bytes (a zip bomb?)",
                    limits.unpacked_bytes
                ));
            }
            budget -= n as u64;
            out.write_all(&buf[..n]).map_err(io)?;
        }
    }
    Ok(())
}

/// The store folder inside an unpacked zip: the folder itself when it holds `Apps/`, else its
/// only top-level folder (GitHub's `<repo>-<branch>/`) when that holds `Apps/`.
pub fn store_root(dir: &Path) -> Result<PathBuf, String> {
    if dir.join("Apps").is_dir() {
        return Ok(dir.to_path_buf());
    }
    let entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .collect();
    if let [only] = entries.as_slice()
        && only.path().join("Apps").is_dir()
    {
        return Ok(only.path());
    }
    Err("the zip holds no Apps/ folder (neither at the top nor under one top folder)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, SimpleFileOptions::default())
                .expect("start");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    #[test]
    fn a_nested_store_unpacks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let z = zip_of(&[
            ("store-main/Apps/A/docker-compose.yml", b"services: {}"),
            ("store-main/category-list.json", b"[]"),
        ]);
        let dest = dir.path().join("x");
        extract(&z, &dest).expect("extracts");
        assert_eq!(store_root(&dest).expect("root"), dest.join("store-main"));
    }

    #[test]
    fn bad_entries_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, want) in [
            ("../evil", "'..'"),
            ("/etc/evil", "absolute"),
            ("a/../../evil", "'..'"),
            ("a\\..\\evil", "plain relative"),
            ("C:/evil", "plain relative"),
        ] {
            let z = zip_of(&[("ok/Apps/A/x", b"1"), (name, b"2")]);
            let dest = dir.path().join("d");
            let err = extract(&z, &dest).expect_err(name);
            assert!(err.contains(want), "{name}: {err}");
            assert!(!dest.exists(), "{name}: nothing written");
        }
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.add_symlink("link", "/etc/passwd", SimpleFileOptions::default())
            .expect("symlink");
        let z = w.finish().expect("finish").into_inner();
        let err = extract(&z, &dir.path().join("s")).expect_err("symlink");
        assert!(err.contains("symbolic link"), "{err}");
        let err = extract(b"<html>not found</html>", &dir.path().join("h")).expect_err("html");
        assert_eq!(err, "not a zip file");
    }

    #[test]
    fn a_zip_bomb_and_too_many_entries_stop_at_the_limits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let small = Limits {
            entries: 3,
            unpacked_bytes: 1024 * 1024,
        };
        let zeros = vec![0u8; 4 * 1024 * 1024];
        let z = zip_of(&[("bomb", &zeros)]);
        assert!(z.len() < 64 * 1024, "compressed well: {}", z.len());
        let err = extract_with(&z, &dir.path().join("b"), small).expect_err("bomb");
        assert!(err.contains("zip bomb"), "{err}");
        let z = zip_of(&[("a", b"1"), ("b", b"1"), ("c", b"1"), ("d", b"1")]);
        let err = extract_with(&z, &dir.path().join("n"), small).expect_err("entries");
        assert!(err.contains("more than 3 entries"), "{err}");
        assert!(!dir.path().join("n").exists());
    }
}
