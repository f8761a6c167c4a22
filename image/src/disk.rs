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
///
/// Reproducible: the volume id is the caller's (derived from the build inputs), `--invariant`
/// fixes mkfs.vfat's remaining time-based fields, and every file and directory gets the
/// modification time `epoch` (set on the staging tree, kept by `mcopy -m`; directories mcopy
/// creates take `SOURCE_DATE_EPOCH`). FAT stores local time, so both tools run with `TZ=UTC`.
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
    runner.run(
        &mut mkfs_vfat_command(image, size, label, volume_id, epoch),
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
    runner.run(&mut mcopy_command(image, &entries, epoch), false)?;
    Ok(())
}

/// The environment that pins the time-based fields of FAT tools to `epoch`.
fn pin_fat_time(cmd: &mut Command, epoch: u64) -> &mut Command {
    cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env("TZ", "UTC")
}

/// `mkfs.vfat` making a `size`-byte FAT file system with fixed id and times.
fn mkfs_vfat_command(image: &Path, size: u64, label: &str, volume_id: &str, epoch: u64) -> Command {
    // FAT32 needs ~33 MiB at least; smaller partitions (the Pi's bootconfig) get FAT16.
    let fat_bits = if size >= 64 * 1024 * 1024 { "32" } else { "16" };
    let mut cmd = Command::new("mkfs.vfat");
    pin_fat_time(&mut cmd, epoch)
        .args([
            "--invariant",
            "-F",
            fat_bits,
            "-n",
            label,
            "-i",
            volume_id,
            "-C",
        ])
        .arg(image)
        .arg((size / 1024).to_string());
    cmd
}

/// `mcopy` copying `entries` (sorted) recursively into the FAT root, keeping their times.
fn mcopy_command(image: &Path, entries: &[PathBuf], epoch: u64) -> Command {
    let mut cmd = Command::new("mcopy");
    pin_fat_time(&mut cmd, epoch)
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(image)
        .args(["-s", "-p", "-m", "-Q"])
        .args(entries)
        .arg("::/");
    cmd
}

/// Sets the modification time of every file and directory under `dir` (and of `dir`) to
/// `epoch`; symbolic links are left alone (FAT has none).
fn set_times(dir: &Path, epoch: u64) -> Result<(), DiskError> {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    let mut paths: Vec<PathBuf> = crate::fsutil::walk_sorted(dir)
        .map_err(io(dir))?
        .into_iter()
        .map(|rel| dir.join(rel))
        .collect();
    // Directories last and deepest first, so setting a child's time cannot disturb a parent's.
    paths.reverse();
    paths.push(dir.to_path_buf());
    for path in paths {
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        let file = if meta.is_file() {
            File::options().write(true).open(&path)
        } else if meta.is_dir() {
            File::open(&path)
        } else {
            continue;
        };
        file.and_then(|f| f.set_modified(time)).map_err(io(&path))?;
    }
    Ok(())
}

/// Makes an ext4 file system of `size` bytes in `image` holding `content`.
///
/// Reproducible: UUID and directory hash seed are the caller's (derived from the build
/// inputs), `E2FSPROGS_FAKE_TIME` pins the superblock's and new inodes' times, and mke2fs
/// copies `content` in sorted order with the sources' atime, mtime and ctime. Those are the
/// host's (the ctime cannot be set there at all), so afterwards `debugfs -w` gives every inode
/// copied from `content` atime and ctime `epoch` and clamps its mtime to `epoch` (see
/// [`time_script`]).
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
        &mut mkfs_ext4_command(image, size, label, uuid, content, epoch),
        false,
    )?;
    let mut entries = vec![(PathBuf::new(), mtime_secs(content)?)];
    for rel in crate::fsutil::walk_sorted(content).map_err(io(content))? {
        let secs = mtime_secs(&content.join(&rel))?;
        entries.push((rel, secs));
    }
    let script = time_script(&entries, epoch)?;
    let script_path = image.with_extension("debugfs");
    std::fs::write(&script_path, script).map_err(io(&script_path))?;
    let result = runner.run(&mut debugfs_command(image, &script_path, epoch), false);
    let _ = std::fs::remove_file(&script_path);
    result?;
    Ok(())
}

/// `mkfs.ext4 -d` with a fixed UUID, hash seed and time.
fn mkfs_ext4_command(
    image: &Path,
    size: u64,
    label: &str,
    uuid: &str,
    content: &Path,
    epoch: u64,
) -> Command {
    let mut cmd = Command::new("mkfs.ext4");
    cmd.env("E2FSPROGS_FAKE_TIME", epoch.to_string())
        .args(["-q", "-F", "-L", label, "-U", uuid])
        .arg("-E")
        .arg(format!("hash_seed={},root_owner=0:0", uuid.to_lowercase()))
        .arg("-d")
        .arg(content)
        .arg(image)
        .arg(format!("{}k", size / 1024));
    cmd
}

/// `debugfs -w -f SCRIPT IMAGE` with the same fixed time as mkfs.
fn debugfs_command(image: &Path, script: &Path, epoch: u64) -> Command {
    let mut cmd = Command::new("debugfs");
    cmd.env("E2FSPROGS_FAKE_TIME", epoch.to_string())
        .arg("-w")
        .arg("-f")
        .arg(script)
        .arg(image);
    cmd
}

/// The modification time of `path` (not following symlinks) in whole seconds since 1970.
fn mtime_secs(path: &Path) -> Result<i64, DiskError> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::symlink_metadata(path).map_err(io(path))?.mtime())
}

/// A debugfs script for `entries` (paths relative to the file system's root, the root itself
/// as an empty path, with their source mtimes in seconds): atime and ctime become `epoch`,
/// an mtime later than `epoch` is clamped to it (the `SOURCE_DATE_EPOCH` convention). Paths
/// debugfs cannot quote (a `"`, a backslash or a control character) are refused rather than
/// mangled.
fn time_script(entries: &[(PathBuf, i64)], epoch: u64) -> Result<String, DiskError> {
    let mut script = String::new();
    for (rel, mtime) in entries {
        let text = rel
            .to_str()
            .filter(|t| !t.chars().any(|c| c == '"' || c == '\\' || c.is_control()));
        let Some(text) = text else {
            return Err(DiskError::Io {
                path: rel.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a file name the data partition cannot hold reproducibly",
                ),
            });
        };
        let mut fields = vec!["atime", "ctime"];
        if *mtime < 0 || *mtime as u64 > epoch {
            fields.push("mtime");
        }
        for field in fields {
            script.push_str(&format!("set_inode_field \"/{text}\" {field} @{epoch}\n"));
        }
    }
    Ok(script)
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

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn env(cmd: &Command, key: &str) -> Option<String> {
        cmd.get_envs()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    }

    fn has_pair(argv: &[String], flag: &str, value: &str) -> bool {
        argv.windows(2).any(|w| w[0] == flag && w[1] == value)
    }

    #[test]
    fn fat_commands_pin_the_volume_id_and_every_time() {
        let mkfs = mkfs_vfat_command(Path::new("esp.vfat"), 256 << 20, "ESP", "1a2b3c4d", 1234);
        let argv = args(&mkfs);
        assert!(argv.contains(&"--invariant".to_string()), "{argv:?}");
        assert!(has_pair(&argv, "-i", "1a2b3c4d"), "{argv:?}");
        assert!(has_pair(&argv, "-F", "32"), "{argv:?}");
        assert_eq!(env(&mkfs, "SOURCE_DATE_EPOCH").as_deref(), Some("1234"));
        assert_eq!(env(&mkfs, "TZ").as_deref(), Some("UTC"));
        let small = mkfs_vfat_command(Path::new("b.vfat"), 32 << 20, "B", "1a2b3c4d", 1234);
        assert!(has_pair(&args(&small), "-F", "16"));

        let entries = [PathBuf::from("s/EFI"), PathBuf::from("s/loader")];
        let mcopy = mcopy_command(Path::new("esp.vfat"), &entries, 1234);
        let argv = args(&mcopy);
        assert!(argv.contains(&"-m".to_string()), "{argv:?}");
        assert_eq!(&argv[argv.len() - 3..], ["s/EFI", "s/loader", "::/"]);
        assert_eq!(env(&mcopy, "SOURCE_DATE_EPOCH").as_deref(), Some("1234"));
        assert_eq!(env(&mcopy, "TZ").as_deref(), Some("UTC"));
    }

    #[test]
    fn ext4_commands_pin_uuid_hash_seed_and_time() {
        let uuid = "0F0E0D0C-0B0A-4908-8706-050403020100";
        let mkfs = mkfs_ext4_command(
            Path::new("data.ext4"),
            512 << 20,
            "data",
            uuid,
            Path::new("content"),
            1234,
        );
        let argv = args(&mkfs);
        assert!(has_pair(&argv, "-U", uuid), "{argv:?}");
        assert!(
            has_pair(
                &argv,
                "-E",
                "hash_seed=0f0e0d0c-0b0a-4908-8706-050403020100,root_owner=0:0"
            ),
            "{argv:?}"
        );
        assert!(has_pair(&argv, "-d", "content"), "{argv:?}");
        assert_eq!(env(&mkfs, "E2FSPROGS_FAKE_TIME").as_deref(), Some("1234"));
        let debugfs = debugfs_command(Path::new("data.ext4"), Path::new("s"), 1234);
        assert_eq!(args(&debugfs), ["-w", "-f", "s", "data.ext4"]);
        assert_eq!(
            env(&debugfs, "E2FSPROGS_FAKE_TIME").as_deref(),
            Some("1234")
        );
    }

    #[test]
    fn time_script_pins_atime_and_ctime_clamps_mtime_and_refuses_unquotable_names() {
        let entries = [
            (PathBuf::new(), 50),
            (PathBuf::from("lib"), 99),
            (PathBuf::from("lib/hearth/.seeded"), 150),
        ];
        assert_eq!(
            time_script(&entries, 99).expect("script"),
            "set_inode_field \"/\" atime @99\n\
             set_inode_field \"/\" ctime @99\n\
             set_inode_field \"/lib\" atime @99\n\
             set_inode_field \"/lib\" ctime @99\n\
             set_inode_field \"/lib/hearth/.seeded\" atime @99\n\
             set_inode_field \"/lib/hearth/.seeded\" ctime @99\n\
             set_inode_field \"/lib/hearth/.seeded\" mtime @99\n"
        );
        for bad in ["a\"b", "a\\b", "a\nb"] {
            assert!(
                time_script(&[(PathBuf::from(bad), 0)], 99).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    /// Makes a staging tree whose files were written at "now" (different for each call).
    fn staging_tree(dir: &Path) {
        std::fs::create_dir_all(dir.join("EFI/BOOT")).expect("mkdir");
        std::fs::create_dir_all(dir.join("loader/entries")).expect("mkdir");
        std::fs::write(dir.join("EFI/BOOT/BOOTX64.EFI"), b"efi").expect("write");
        std::fs::write(dir.join("loader/entries/hearth-a.conf"), b"title a\n").expect("write");
        std::fs::write(dir.join("loader/loader.conf"), b"timeout 3\n").expect("write");
    }

    /// Real mkfs.vfat, mcopy, mkfs.ext4 and debugfs: two file systems made a second apart
    /// from trees written a second apart are byte-identical.
    #[test]
    fn fat_and_ext4_made_twice_are_byte_identical() {
        let tools = ["mkfs.vfat", "mcopy", "mkfs.ext4", "debugfs"];
        if let Some(t) = tools.iter().find(|t| crate::cmd::which(t).is_none()) {
            eprintln!("skipped: needs {t} (dosfstools, mtools, e2fsprogs)");
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let runner = Runner::new(None, false).expect("runner");
        let mut fats = Vec::new();
        let mut ext4s = Vec::new();
        for n in 0..2 {
            if n == 1 {
                std::thread::sleep(std::time::Duration::from_millis(2100));
            }
            let stage = tmp.path().join(format!("stage{n}"));
            staging_tree(&stage);
            let fat = tmp.path().join(format!("{n}.vfat"));
            make_fat(
                &fat,
                64 << 20,
                "ESP",
                "1a2b3c4d",
                &stage,
                1_735_689_600,
                &runner,
            )
            .expect("make_fat");
            fats.push(std::fs::read(&fat).expect("read"));
            // A fresh tree: host atime, ctime and an mtime later than the epoch.
            let data = tmp.path().join(format!("data{n}"));
            staging_tree(&data);
            let ext4 = tmp.path().join(format!("{n}.ext4"));
            make_ext4(
                &ext4,
                16 << 20,
                "data",
                "0f0e0d0c-0b0a-4908-8706-050403020100",
                &data,
                1_735_689_600,
                &runner,
            )
            .expect("make_ext4");
            ext4s.push(std::fs::read(&ext4).expect("read"));
        }
        assert!(fats[0] == fats[1], "the FAT images differ");
        assert!(ext4s[0] == ext4s[1], "the ext4 images differ");
    }

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
