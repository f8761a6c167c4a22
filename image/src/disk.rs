//! Assembles a disk image from partition files without loop devices: a sparse file, the GPT
//! written by `sfdisk`, each partition copied to its offset (zero blocks skipped, so the image
//! stays sparse), FAT file systems made with `mkfs.vfat` on a file and filled with `mcopy`,
//! ext4 made with `mkfs.ext4 -d`.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{CmdError, Runner};
use crate::partition::Plan;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error("{file} is {size} bytes, larger than partition {name} ({room} bytes)")]
    TooBig {
        file: PathBuf,
        name: String,
        size: u64,
        room: u64,
    },
    #[error("the plan has no partition {0}")]
    NoPartition(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError {
    let path = path.to_path_buf();
    move |source| DiskError::Io { path, source }
}

/// Makes a FAT file system of `size` bytes in `image` holding the files under `staging`.
pub fn make_fat(
    image: &Path,
    size: u64,
    label: &str,
    volume_id: &str,
    staging: &Path,
    epoch: u64,
    runner: &Runner,
) -> Result<(), DiskError> {
    let _ = std::fs::remove_file(image);
    // FAT32 needs ~33 MiB at least; smaller partitions (the Pi's bootconfig) get FAT16.
    let fat_bits = if size >= 64 * 1024 * 1024 { "32" } else { "16" };
    runner.run(
        Command::new("mkfs.vfat")
            .args(["-F", fat_bits, "-n", label, "-i", volume_id, "-C"])
            .arg(image)
            .arg((size / 1024).to_string()),
        false,
    )?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(staging)
        .map_err(io(staging))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    set_times(staging, epoch)?;
    if entries.is_empty() {
        return Ok(());
    }
    runner.run(
        Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(image)
            .args(["-s", "-p", "-m", "-Q"])
            .args(&entries)
            .arg("::/"),
        false,
    )?;
    Ok(())
}

/// Sets every file's modification time under `dir` to `epoch` (FAT keeps them).
fn set_times(dir: &Path, epoch: u64) -> Result<(), DiskError> {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    for rel in crate::fsutil::walk_sorted(dir).map_err(io(dir))? {
        let path = dir.join(rel);
        if path.is_file() {
            File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(time))
                .map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Makes an ext4 file system of `size` bytes in `image` holding `content`.
pub fn make_ext4(
    image: &Path,
    size: u64,
    label: &str,
    uuid: &str,
    content: &Path,
    epoch: u64,
    runner: &Runner,
) -> Result<(), DiskError> {
    let _ = std::fs::remove_file(image);
    runner.run(
        Command::new("mkfs.ext4")
            .env("E2FSPROGS_FAKE_TIME", epoch.to_string())
            .args(["-q", "-F", "-L", label, "-U", uuid])
            .arg("-E")
            .arg(format!("hash_seed={},root_owner=0:0", uuid.to_lowercase()))
            .arg("-d")
            .arg(content)
            .arg(image)
            .arg(format!("{}k", size / 1024)),
        false,
    )?;
    Ok(())
}

/// Writes the partition table and copies each `(name, file)` into its partition.
pub fn assemble(
    plan: &Plan,
    files: &[(&str, &Path)],
    out: &Path,
    runner: &Runner,
) -> Result<(), DiskError> {
    let disk = File::create(out).map_err(io(out))?;
    disk.set_len(plan.disk_size).map_err(io(out))?;
    drop(disk);
    runner.run_with_input(
        Command::new("sfdisk")
            .args([
                "--quiet",
                "--no-reread",
                "--no-tell-kernel",
                "--wipe",
                "always",
            ])
            .arg(out),
        plan.sfdisk_script().as_bytes(),
    )?;
    for (name, file) in files {
        let part = plan
            .get(name)
            .ok_or_else(|| DiskError::NoPartition(name.to_string()))?;
        let size = std::fs::metadata(file).map_err(io(file))?.len();
        if size > part.size {
            return Err(DiskError::TooBig {
                file: file.to_path_buf(),
                name: name.to_string(),
                size,
                room: part.size,
            });
        }
        copy_sparse(file, out, part.offset)?;
    }
    Ok(())
}

/// Copies `from` into `to` at `offset`, skipping all-zero blocks (like `dd conv=sparse`).
pub fn copy_sparse(from: &Path, to: &Path, offset: u64) -> Result<(), DiskError> {
    const BLOCK: usize = 1 << 20;
    let mut src = File::open(from).map_err(io(from))?;
    let mut dst = File::options().write(true).open(to).map_err(io(to))?;
    let mut buf = vec![0u8; BLOCK];
    let mut pos = offset;
    loop {
        let n = read_full(&mut src, &mut buf).map_err(io(from))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            dst.seek(SeekFrom::Start(pos)).map_err(io(to))?;
            dst.write_all(&buf[..n]).map_err(io(to))?;
        }
        pos += n as u64;
    }
    dst.sync_all().map_err(io(to))
}

fn read_full(src: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_copy_places_data_at_the_offset_and_keeps_holes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        let mut data = vec![0u8; 3 << 20];
        data[(2 << 20) + 5] = 7;
        std::fs::write(&src, &data).expect("write");
        File::create(&dst)
            .and_then(|f| f.set_len(8 << 20))
            .expect("create");
        copy_sparse(&src, &dst, 1 << 20).expect("copy");
        let out = std::fs::read(&dst).expect("read");
        assert_eq!(out[(3 << 20) + 5], 7);
        assert_eq!(out.iter().filter(|&&b| b != 0).count(), 1);
    }
}
