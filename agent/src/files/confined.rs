//! A directory that file operations cannot leave, enforced by the kernel.
//!
//! Every path is resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` relative to a
//! handle on the root directory: `..` above the root, absolute symlinks, symlinks pointing out,
//! and `/proc/self/root`-style magic links all fail inside the kernel, whatever the string looked
//! like. Operations that create, replace or remove act on the final name relative to a handle on
//! its parent with `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`, so a planted symlink is never written
//! through, and a directory swapped for a symlink mid-operation is not followed either.

use super::path::{PathError, RelPath};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;
use std::fs::File;
use std::path::{Path, PathBuf};

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);
/// Names at the top of a root that belong to Hearth (trash, partial uploads), not to users.
pub const INTERNAL_NAMES: [&str; 2] = [".hearth-trash", ".hearth-uploads"];

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{0}")]
    Path(#[from] PathError),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} is not a folder")]
    NotADirectory(String),
    #[error("{0} is a folder")]
    IsADirectory(String),
    #[error("{0} is not a regular file")]
    NotRegular(String),
    #[error("{0} leads outside its root")]
    Escapes(String),
    #[error("{0} has other hard links and is not written through")]
    HardLinked(String),
    #[error("{0} is reserved for Hearth")]
    Reserved(String),
    #[error("the folder {0} is not empty")]
    NotEmpty(String),
    #[error("permission denied on {0}")]
    PermissionDenied(String),
    #[error("a folder cannot be moved into itself: {0}")]
    IntoItself(String),
    #[error("{0} is on another disk")]
    CrossDevice(String),
    #[error("file system error on {path}: {errno}")]
    Io { path: String, errno: Errno },
}

impl FsError {
    pub fn from_errno(errno: Errno, path: &RelPath) -> Self {
        let p = path.to_string();
        match errno {
            Errno::NOENT => FsError::NotFound(p),
            Errno::EXIST => FsError::Exists(p),
            Errno::NOTEMPTY => FsError::NotEmpty(p),
            Errno::NOTDIR => FsError::NotADirectory(p),
            Errno::ISDIR => FsError::IsADirectory(p),
            // openat2 answers EXDEV when resolution would leave the root and ELOOP for a
            // forbidden (magic) link or a symlink where none may be followed.
            Errno::XDEV | Errno::LOOP => FsError::Escapes(p),
            Errno::ACCESS | Errno::PERM => FsError::PermissionDenied(p),
            _ => FsError::Io { path: p, errno },
        }
    }
}

pub type FsResult<T> = Result<T, FsError>;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub modified: i64,
    /// Sub-second part of the modification time, for change detection (ETags).
    #[serde(skip)]
    pub modified_nanos: u32,
}

fn entry_from_stat(name: String, st: &rustix::fs::Stat) -> Entry {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => EntryKind::File,
        FileType::Directory => EntryKind::Directory,
        FileType::Symlink => EntryKind::Symlink,
        _ => EntryKind::Other,
    };
    Entry {
        name,
        kind,
        size: st.st_size as u64,
        modified: st.st_mtime,
        modified_nanos: st.st_mtime_nsec as u32,
    }
}

/// A root directory. Cheap to clone (the handle is shared).
#[derive(Debug, Clone)]
pub struct Root {
    dir: std::sync::Arc<OwnedFd>,
    path: PathBuf,
}

impl Root {
    /// Opens `path` (creating it if `create`) as a root.
    pub fn open(path: &Path, create: bool) -> std::io::Result<Root> {
        if create {
            crate::fsutil::ensure_dir(path, 0o755)?;
        }
        let dir = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            dir: std::sync::Arc::new(dir),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses user paths into Hearth's own folders at the top of the root.
    pub fn check_user_path(&self, rel: &RelPath) -> FsResult<()> {
        match rel.first() {
            Some(first) if INTERNAL_NAMES.contains(&first) => {
                Err(FsError::Reserved(rel.to_string()))
            }
            _ => Ok(()),
        }
    }

    fn resolve(&self, rel: &RelPath, flags: OFlags, mode: Mode) -> FsResult<OwnedFd> {
        rustix::fs::openat2(
            self.dir.as_fd(),
            rel.as_os_path(),
            flags | OFlags::CLOEXEC,
            mode,
            RESOLVE,
        )
        .map_err(|e| FsError::from_errno(e, rel))
    }

    /// A handle on the parent folder of `rel`, and the final name.
    fn parent<'a>(&self, rel: &'a RelPath) -> FsResult<(OwnedFd, &'a str)> {
        let (parent, name) = rel.split_last()?;
        let fd = self.resolve(&parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        Ok((fd, name))
    }

    pub fn stat(&self, rel: &RelPath) -> FsResult<Entry> {
        if rel.is_root() {
            let st =
                rustix::fs::fstat(self.dir.as_fd()).map_err(|e| FsError::from_errno(e, rel))?;
            return Ok(entry_from_stat(String::new(), &st));
        }
        let (parent, name) = self.parent(rel)?;
        let st = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| FsError::from_errno(e, rel))?;
        Ok(entry_from_stat(name.to_string(), &st))
    }

    /// The entries of a folder, unsorted; Hearth's own folders are hidden at the top.
    pub fn list(&self, rel: &RelPath) -> FsResult<Vec<Entry>> {
        let fd = self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        let mut entries = Vec::new();
        let dir = rustix::fs::Dir::read_from(&fd).map_err(|e| FsError::from_errno(e, rel))?;
        for item in dir {
            let item = item.map_err(|e| FsError::from_errno(e, rel))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name == "."
                || name == ".."
                || (rel.is_root() && INTERNAL_NAMES.contains(&name.as_str()))
            {
                continue;
            }
            // An entry that vanished between readdir and stat is simply not listed.
            if let Ok(st) = rustix::fs::statat(&fd, item.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                entries.push(entry_from_stat(name, &st));
            }
        }
        Ok(entries)
    }

    /// A readable handle on a folder inside the root.
    pub fn open_dir(&self, rel: &RelPath) -> FsResult<OwnedFd> {
        self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
    }

    /// Opens a regular file for reading. FIFOs and devices are refused without blocking.
    pub fn open_read(&self, rel: &RelPath) -> FsResult<File> {
        let fd = self.resolve(rel, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())?;
        let st = rustix::fs::fstat(&fd).map_err(|e| FsError::from_errno(e, rel))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {}
            FileType::Directory => return Err(FsError::IsADirectory(rel.to_string())),
            _ => return Err(FsError::NotRegular(rel.to_string())),
        }
        rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(|e| FsError::from_errno(e, rel))?;
        Ok(File::from(fd))
    }

    /// Creates a new file; never follows or replaces an existing name (symlinks included).
    pub fn create_new(&self, rel: &RelPath) -> FsResult<File> {
        let (parent, name) = self.parent(rel)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&parent, name, flags, Mode::from_raw_mode(0o644))
            .map_err(|e| FsError::from_errno(e, rel))?;
        Ok(File::from(fd))
    }

    /// Opens an existing regular file for appending; a symlink in its place is refused.
    pub fn open_append(&self, rel: &RelPath) -> FsResult<File> {
        let (parent, name) = self.parent(rel)?;
        let flags =
            OFlags::WRONLY | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&parent, name, flags, Mode::empty())
            .map_err(|e| FsError::from_errno(e, rel))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| FsError::from_errno(e, rel))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(FsError::NotRegular(rel.to_string()));
        }
        // A second name for the same inode may have been planted to point at a file elsewhere.
        if st.st_nlink > 1 {
            return Err(FsError::HardLinked(rel.to_string()));
        }
        rustix::fs::fcntl_setfl(&fd, OFlags::APPEND).map_err(|e| FsError::from_errno(e, rel))?;
        Ok(File::from(fd))
    }

    pub fn mkdir(&self, rel: &RelPath) -> FsResult<()> {
        let (parent, name) = self.parent(rel)?;
        rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755))
            .map_err(|e| FsError::from_errno(e, rel))
    }

    /// Creates `rel` and any missing parents.
    pub fn mkdir_all(&self, rel: &RelPath) -> FsResult<()> {
        let mut current = RelPath::root();
        let parts: Vec<String> = rel
            .as_os_path()
            .split('/')
            .filter(|p| *p != ".")
            .map(str::to_string)
            .collect();
        for part in parts {
            current = current.join(&part)?;
            match self.mkdir(&current) {
                Ok(()) | Err(FsError::Exists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves `from` (in this root) to `to` in `dest` (this or another root on the same file
    /// system). Never replaces an existing name.
    pub fn rename_to(&self, from: &RelPath, dest: &Root, to: &RelPath) -> FsResult<()> {
        let (from_parent, from_name) = self.parent(from)?;
        let (to_parent, to_name) = dest.parent(to)?;
        rustix::fs::renameat_with(
            &from_parent,
            from_name,
            &to_parent,
            to_name,
            RenameFlags::NOREPLACE,
        )
        .map_err(|e| match e {
            Errno::INVAL => FsError::IntoItself(from.to_string()),
            Errno::XDEV => FsError::CrossDevice(to.to_string()),
            Errno::NOENT => FsError::from_errno(e, from),
            other => FsError::from_errno(other, to),
        })
    }

    /// Puts file `from` in place of `to` (same root), replacing a file already there. Only the
    /// name is replaced: a symlink or hard link at `to` is swapped out, never written through.
    pub fn replace_file(&self, from: &RelPath, to: &RelPath) -> FsResult<()> {
        let (from_parent, from_name) = self.parent(from)?;
        let (to_parent, to_name) = self.parent(to)?;
        if let Ok(st) = rustix::fs::statat(&to_parent, to_name, AtFlags::SYMLINK_NOFOLLOW)
            && FileType::from_raw_mode(st.st_mode) == FileType::Directory
        {
            return Err(FsError::IsADirectory(to.to_string()));
        }
        rustix::fs::renameat(&from_parent, from_name, &to_parent, to_name)
            .map_err(|e| FsError::from_errno(e, to))
    }

    /// Removes a file, or a folder with everything in it. Symlinks are removed, never followed.
    pub fn remove_all(&self, rel: &RelPath) -> FsResult<()> {
        let (parent, name) = self.parent(rel)?;
        remove_entry(&parent, name, rel)
    }

    /// Copies a file or folder tree to `to` in `dest`, which must not exist. Symlinks are
    /// recreated as symlinks (their targets stay confined when read through a root); other
    /// special files are skipped. Calls `progress` with bytes copied so far.
    pub fn copy_to(
        &self,
        from: &RelPath,
        dest: &Root,
        to: &RelPath,
        progress: &mut dyn FnMut(u64) -> bool,
    ) -> FsResult<u64> {
        let (from_parent, from_name) = self.parent(from)?;
        let (to_parent, to_name) = dest.parent(to)?;
        let mut copied = 0;
        copy_entry(
            &from_parent,
            from_name,
            &to_parent,
            to_name,
            from,
            &mut copied,
            progress,
        )?;
        Ok(copied)
    }
}

/// The names in an open directory, without `.` and `..`.
fn child_names(dir: &OwnedFd, rel: &RelPath) -> FsResult<Vec<String>> {
    Ok(rustix::fs::Dir::read_from(dir)
        .map_err(|e| FsError::from_errno(e, rel))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .collect())
}

fn remove_entry(parent: &OwnedFd, name: &str, rel: &RelPath) -> FsResult<()> {
    let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| FsError::from_errno(e, rel))?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = rustix::fs::openat(parent, name, flags, Mode::empty())
            .map_err(|e| FsError::from_errno(e, rel))?;
        for child in child_names(&dir, rel)? {
            let child_rel = rel.join(&child).unwrap_or_else(|_| rel.clone());
            remove_entry(&dir, &child, &child_rel)?;
        }
        rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)
            .map_err(|e| FsError::from_errno(e, rel))
    } else {
        rustix::fs::unlinkat(parent, name, AtFlags::empty())
            .map_err(|e| FsError::from_errno(e, rel))
    }
}

fn copy_entry(
    from_parent: &OwnedFd,
    from_name: &str,
    to_parent: &OwnedFd,
    to_name: &str,
    rel: &RelPath,
    copied: &mut u64,
    progress: &mut dyn FnMut(u64) -> bool,
) -> FsResult<()> {
    let errno = |e| FsError::from_errno(e, rel);
    let st =
        rustix::fs::statat(from_parent, from_name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let src =
                rustix::fs::openat(from_parent, from_name, flags, Mode::empty()).map_err(errno)?;
            rustix::fs::mkdirat(to_parent, to_name, Mode::from_raw_mode(0o755)).map_err(errno)?;
            let dst =
                rustix::fs::openat(to_parent, to_name, flags, Mode::empty()).map_err(errno)?;
            for child in child_names(&src, rel)? {
                let child_rel = rel.join(&child).unwrap_or_else(|_| rel.clone());
                copy_entry(&src, &child, &dst, &child, &child_rel, copied, progress)?;
            }
            Ok(())
        }
        FileType::RegularFile => {
            let read_flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let src = rustix::fs::openat(from_parent, from_name, read_flags, Mode::empty())
                .map_err(errno)?;
            let write_flags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let dst =
                rustix::fs::openat(to_parent, to_name, write_flags, Mode::from_raw_mode(0o644))
                    .map_err(errno)?;
            let (mut src, mut dst) = (File::from(src), File::from(dst));
            let mut buf = vec![0u8; 1 << 20];
            loop {
                use std::io::{Read, Write};
                let n = src.read(&mut buf).map_err(|e| io_error(e, rel))?;
                if n == 0 {
                    break;
                }
                dst.write_all(&buf[..n]).map_err(|e| io_error(e, rel))?;
                *copied += n as u64;
                if !progress(*copied) {
                    return Err(FsError::Io {
                        path: rel.to_string(),
                        errno: Errno::CANCELED,
                    });
                }
            }
            Ok(())
        }
        FileType::Symlink => {
            let target =
                rustix::fs::readlinkat(from_parent, from_name, Vec::new()).map_err(errno)?;
            rustix::fs::symlinkat(target.as_c_str(), to_parent, to_name).map_err(errno)
        }
        _ => Ok(()),
    }
}

pub fn io_error(e: std::io::Error, rel: &RelPath) -> FsError {
    match e.raw_os_error() {
        Some(code) => FsError::from_errno(Errno::from_raw_os_error(code), rel),
        None => FsError::Io {
            path: rel.to_string(),
            errno: Errno::IO,
        },
    }
}
