//! Folders as a zip, written while the tree is walked, for streamed downloads.
//!
//! The walk starts from a folder resolved inside its root (`openat2`, `RESOLVE_BENEATH`) and
//! descends with `O_NOFOLLOW | O_DIRECTORY` relative to each parent's handle, so it never leaves
//! the root, not even when a folder is swapped for a symlink during the walk. Symlinks, devices,
//! FIFOs and sockets are left out of the archive (a symlink's target is not content of the root,
//! and an unpacked link to `/etc` would be a trap on the user's computer). Entries are stored,
//! not compressed (most large files are media that does not compress, and a small board's CPU
//! would be the bottleneck); ZIP64 is used where sizes or counts need it. Memory is one copy
//! buffer plus the central directory (about a hundred bytes per entry).

use super::confined::{FsError, FsResult, Root, io_error};
use super::path::RelPath;
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::ffi::CString;
use std::io::{Read, Write};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// Writes `rel` (a folder in `root`) as a zip to `out`; entry names start with `top/`.
pub fn write_zip<W: Write>(root: &Root, rel: &RelPath, top: &str, out: W) -> FsResult<W> {
    let dir = root.open_dir(rel)?;
    let mut zip = ZipWriter::new_stream(out);
    let st = rustix::fs::fstat(&dir).map_err(|e| FsError::from_errno(e, rel))?;
    zip.add_directory(top, options(&st, false))
        .map_err(|e| zip_error(e, rel))?;
    let mut buf = vec![0u8; 256 * 1024];
    walk(&dir, rel, top, rel.is_root(), &mut zip, &mut buf)?;
    let stream = zip.finish().map_err(|e| zip_error(e, rel))?;
    Ok(stream.into_inner())
}

fn walk<W: Write>(
    dir: &OwnedFd,
    rel: &RelPath,
    prefix: &str,
    at_root: bool,
    zip: &mut ZipWriter<zip::write::StreamWriter<W>>,
    buf: &mut [u8],
) -> FsResult<()> {
    for name in sorted_names(dir, rel)? {
        let shown = name.to_string_lossy().into_owned();
        if at_root && super::confined::INTERNAL_NAMES.contains(&shown.as_str()) {
            continue;
        }
        let child_rel = rel.join(&shown).unwrap_or_else(|_| rel.clone());
        // Vanished since readdir: left out, like `list` does.
        let Ok(st) = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let entry_name = format!("{prefix}/{shown}");
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let child = match rustix::fs::openat(dir, &name, flags, Mode::empty()) {
                    Ok(fd) => fd,
                    // Swapped for a symlink or removed since the stat: not followed, left out.
                    Err(_) => continue,
                };
                zip.add_directory(entry_name.clone(), options(&st, false))
                    .map_err(|e| zip_error(e, &child_rel))?;
                walk(&child, &child_rel, &entry_name, false, zip, buf)?;
            }
            FileType::RegularFile => {
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
                let Ok(fd) = rustix::fs::openat(dir, &name, flags, Mode::empty()) else {
                    continue;
                };
                let st = rustix::fs::fstat(&fd).map_err(|e| FsError::from_errno(e, &child_rel))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    continue;
                }
                let size = st.st_size as u64;
                zip.start_file(entry_name, options(&st, size >= u64::from(u32::MAX)))
                    .map_err(|e| zip_error(e, &child_rel))?;
                // Exactly the size seen at the start: a file that grows meanwhile does not break
                // the entry's ZIP64 decision.
                let mut file = std::fs::File::from(fd).take(size);
                loop {
                    let n = file.read(buf).map_err(|e| io_error(e, &child_rel))?;
                    if n == 0 {
                        break;
                    }
                    zip.write_all(&buf[..n])
                        .map_err(|e| io_error(e, &child_rel))?;
                }
            }
            // Symlinks, devices, FIFOs, sockets: not part of a download.
            _ => {}
        }
    }
    Ok(())
}

fn sorted_names(dir: &OwnedFd, rel: &RelPath) -> FsResult<Vec<CString>> {
    let mut names: Vec<CString> = rustix::fs::Dir::read_from(dir)
        .map_err(|e| FsError::from_errno(e, rel))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    names.sort();
    Ok(names)
}

fn options(st: &rustix::fs::Stat, large: bool) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(large)
        .unix_permissions(st.st_mode & 0o777)
        .last_modified_time(zip_time(st.st_mtime))
}

/// Zip times are local-free calendar fields from 1980 to 2107; outside that, the nearest end.
fn zip_time(secs: i64) -> DateTime {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    DateTime::from_date_and_time(
        t.year().clamp(1980, 2107) as u16,
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
    .unwrap_or_default()
}

fn zip_error(e: zip::result::ZipError, rel: &RelPath) -> FsError {
    match e {
        zip::result::ZipError::Io(io) => io_error(io, rel),
        _ => FsError::Io {
            path: rel.to_string(),
            errno: rustix::io::Errno::IO,
        },
    }
}

/// A `Write` that hands full buffers to an async receiver, blocking when it is behind (flat
/// memory: at most `depth` buffers in flight). Fails with `BrokenPipe` once the receiver is gone.
pub struct ChannelWriter {
    tx: ChunkSender,
    buf: Vec<u8>,
}

pub const CHUNK: usize = 256 * 1024;

/// Chunks of a streamed body; an `Err` ends the body as failed.
pub type ChunkSender = tokio::sync::mpsc::Sender<std::io::Result<axum::body::Bytes>>;

impl ChannelWriter {
    pub fn new(tx: ChunkSender) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(axum::body::Bytes::from(chunk)))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More than 65535 entries need the ZIP64 end records; Python's reader must see them all.
    #[test]
    fn many_entries_use_zip64_and_stay_readable() {
        let dir = tempfile::tempdir().expect("tmp");
        let many = dir.path().join("many");
        std::fs::create_dir(&many).expect("mkdir");
        for i in 0..66_000 {
            std::fs::File::create(many.join(format!("{i}"))).expect("create");
        }
        let root = Root::open(dir.path(), false).expect("root");
        let rel = RelPath::parse("many").expect("rel");
        let zip = write_zip(&root, &rel, "many", Vec::new()).expect("zip");
        let file = dir.path().join("many.zip");
        std::fs::write(&file, &zip).expect("write");
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile; print(len(zipfile.ZipFile(sys.argv[1]).infolist()))",
            ])
            .arg(&file)
            .output()
            .expect("python3");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "66001");
        // The ZIP64 end-of-central-directory record signature.
        assert!(zip.windows(4).any(|w| w == [0x50, 0x4b, 0x06, 0x06]));
    }
}
