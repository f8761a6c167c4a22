//! The host side of an install: folders under the app-data and user-data roots (created owned
//! by PUID:PGID with `openat2` beneath the root, refusing any symlink on the way), the check of
//! every bind source before each start, and the host ports already listening.

use crate::apps::plan::{DeviceSettings, HostPort, PathZone, Protocol, zone};
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{path}: {message}")]
    Path { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HostError + '_ {
    move |source| HostError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Resolution for bind sources: beneath the zone root, and no symlink anywhere on the way (a
/// symlink in a bind source is exactly what a swap plants; Hearth never creates one).
const NO_LINKS: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// The zone root `path` lies under, and `path` relative to it.
fn root_of<'a>(
    path: &'a Path,
    device: &'a DeviceSettings,
) -> Result<(&'a Path, &'a Path), HostError> {
    let root = match zone(path, &device.app_data_root, &device.user_data_root) {
        PathZone::AppData => &device.app_data_root,
        PathZone::UserData => &device.user_data_root,
        PathZone::Outside => {
            return Err(HostError::Path {
                path: path.to_path_buf(),
                message: "not under the app-data or user-data root".into(),
            });
        }
    };
    let rel = path.strip_prefix(root).unwrap_or(Path::new(""));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(HostError::Path {
            path: path.to_path_buf(),
            message: "not a plain path".into(),
        });
    }
    Ok((root, rel))
}

fn open_root(root: &Path) -> Result<OwnedFd, HostError> {
    std::fs::create_dir_all(root).map_err(io(root))?;
    rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| HostError::Io {
        path: root.to_path_buf(),
        source: e.into(),
    })
}

fn link_error(path: &Path, e: Errno) -> HostError {
    match e {
        Errno::LOOP | Errno::XDEV => HostError::Path {
            path: path.to_path_buf(),
            message: "is or passes through a symlink, which a bind source may not (it could \
                      have been planted to reach another folder)"
                .into(),
        },
        other => HostError::Io {
            path: path.to_path_buf(),
            source: other.into(),
        },
    }
}

/// Creates `path` (a folder under one of the roots) and any missing parents below the root,
/// each with `mkdirat` relative to its parent's handle and never through a symlink: a symlink
/// anywhere below the root is refused. Returns the folders it created, outermost first, so a
/// failed install can remove exactly those.
pub fn create_folder(path: &Path, device: &DeviceSettings) -> Result<Vec<PathBuf>, HostError> {
    let (root, rel) = root_of(path, device)?;
    let mut dir = open_root(root)?;
    let mut created = Vec::new();
    let mut cur = root.to_path_buf();
    let parts: Vec<&std::ffi::OsStr> = rel.iter().collect();
    for (i, name) in parts.iter().enumerate() {
        cur.push(name);
        let last = i + 1 == parts.len();
        let open = |dir: &OwnedFd| {
            rustix::fs::openat2(
                dir,
                *name,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                NO_LINKS,
            )
        };
        let fd = match open(&dir) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(&dir, *name, Mode::from_raw_mode(0o755)) {
                    Ok(()) => {
                        // Best effort: an unprivileged agent (tests) cannot chown.
                        let _ = rustix::fs::chownat(
                            &dir,
                            *name,
                            Some(rustix::fs::Uid::from_raw(device.puid)),
                            Some(rustix::fs::Gid::from_raw(device.pgid)),
                            AtFlags::SYMLINK_NOFOLLOW,
                        );
                        created.push(cur.clone());
                    }
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(link_error(&cur, e)),
                }
                open(&dir).map_err(|e| link_error(&cur, e))?
            }
            Err(e) => return Err(link_error(&cur, e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| link_error(&cur, e))?;
        let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
        match kind {
            rustix::fs::FileType::Directory => dir = fd,
            // The last component may be an existing file (binding a single file).
            rustix::fs::FileType::RegularFile if last => {}
            _ => {
                return Err(HostError::Path {
                    path: cur.clone(),
                    message: "is not a folder".into(),
                });
            }
        }
    }
    Ok(created)
}

/// Checks that `path` (a bind source under one of the roots) still resolves beneath its root
/// without any symlink: run before every start Hearth makes, so a source replaced while the app
/// was stopped is refused instead of mounted.
pub fn verify_source(path: &Path, device: &DeviceSettings) -> Result<(), HostError> {
    let (root, rel) = root_of(path, device)?;
    let dir = open_root(root)?;
    if rel.as_os_str().is_empty() {
        return Ok(());
    }
    rustix::fs::openat2(
        &dir,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        NO_LINKS,
    )
    .map(drop)
    .map_err(|e| link_error(path, e))
}

/// Host ports something is listening on (TCP) or bound to (UDP), from `/proc/net`.
pub fn listening_ports(proc_net: &Path) -> BTreeSet<HostPort> {
    let mut out = BTreeSet::new();
    for (file, proto) in [
        ("tcp", Protocol::Tcp),
        ("tcp6", Protocol::Tcp),
        ("udp", Protocol::Udp),
        ("udp6", Protocol::Udp),
    ] {
        if let Ok(text) = std::fs::read_to_string(proc_net.join(file)) {
            out.extend(parse_proc_net(&text, proto));
        }
    }
    out
}

/// Parses one `/proc/net/{tcp,udp}[6]` table: listening TCP sockets (state 0A) and every UDP one.
pub fn parse_proc_net(text: &str, proto: Protocol) -> Vec<HostPort> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let local = f.nth(1)?;
            let state = f.nth(1)?;
            if proto == Protocol::Tcp && state != "0A" {
                return None;
            }
            let port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (port != 0).then_some((port, proto))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_listeners_are_parsed() {
        let tcp = "  sl  local_address rem_address   st\n\
                   0: 00000000:1F90 00000000:0000 0A 0\n\
                   1: 0100007F:0050 0100007F:9C40 01 0\n";
        assert_eq!(parse_proc_net(tcp, Protocol::Tcp), [(8080, Protocol::Tcp)]);
        let udp = "  sl  local_address rem_address   st\n   0: 00000000:0035 00000000:0000 07 0\n";
        assert_eq!(parse_proc_net(udp, Protocol::Udp), [(53, Protocol::Udp)]);
    }

    #[test]
    fn folders_are_created_under_the_root_and_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let device = DeviceSettings::under(dir.path());
        let target = device.app_data_root.join("app/data/db");
        let created = create_folder(&target, &device).expect("creates");
        assert_eq!(created.len(), 3);
        assert!(target.is_dir());
        assert!(create_folder(&target, &device).expect("again").is_empty());
    }

    #[test]
    fn a_symlink_out_of_the_root_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let device = DeviceSettings::under(dir.path());
        std::fs::create_dir_all(&device.app_data_root).expect("mkdir");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, device.app_data_root.join("evil")).expect("symlink");
        let err =
            create_folder(&device.app_data_root.join("evil/data"), &device).expect_err("escapes");
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(!outside.join("data").exists());
    }

    #[test]
    fn a_symlink_inside_the_root_is_refused_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let device = DeviceSettings::under(dir.path());
        let real = device.app_data_root.join("app/real");
        create_folder(&real, &device).expect("creates");
        std::os::unix::fs::symlink(&real, device.app_data_root.join("app/data")).expect("link");
        let err = create_folder(&device.app_data_root.join("app/data"), &device)
            .expect_err("a link is refused");
        assert!(err.to_string().contains("symlink"), "{err}");
    }

    #[test]
    fn a_source_swapped_for_a_link_fails_verification() {
        let dir = tempfile::tempdir().expect("tempdir");
        let device = DeviceSettings::under(dir.path());
        let data = device.app_data_root.join("app/data");
        create_folder(&data, &device).expect("creates");
        verify_source(&data, &device).expect("a plain folder passes");
        std::fs::remove_dir(&data).expect("rmdir");
        std::os::unix::fs::symlink("/", &data).expect("swap");
        let err = verify_source(&data, &device).expect_err("the swap is caught");
        assert!(err.to_string().contains("symlink"), "{err}");
        // A link on a parent is caught as well.
        std::fs::remove_file(&data).expect("rm");
        std::fs::rename(device.app_data_root.join("app"), dir.path().join("moved")).expect("mv");
        std::os::unix::fs::symlink(dir.path().join("moved"), device.app_data_root.join("app"))
            .expect("link parent");
        assert!(verify_source(&data, &device).is_err());
    }
}
