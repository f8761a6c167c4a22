//! The host side of an install: folders under the app-data and user-data roots (created owned
//! by PUID:PGID, refusing any path that leaves its root through a symlink), side files, the
//! project folder, and the host ports already listening.

use crate::apps::plan::{DeviceSettings, HostPort, PathZone, Protocol, zone};
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

/// Creates `path` (a folder under one of the roots) and any missing parents below the root.
/// Returns the folders it created, outermost first, so a failed install can remove exactly
/// those. A component that is a symlink must resolve inside the same root.
pub fn create_folder(path: &Path, device: &DeviceSettings) -> Result<Vec<PathBuf>, HostError> {
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
    std::fs::create_dir_all(root).map_err(io(root))?;
    let canon_root = root.canonicalize().map_err(io(root))?;
    let rel = path.strip_prefix(root).unwrap_or(Path::new(""));
    let mut created = Vec::new();
    let mut cur = root.to_path_buf();
    let parts: Vec<Component> = rel.components().collect();
    for (i, c) in parts.iter().enumerate() {
        let Component::Normal(name) = c else {
            return Err(HostError::Path {
                path: path.to_path_buf(),
                message: "not a plain path".into(),
            });
        };
        cur.push(name);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = cur.canonicalize().map_err(io(&cur))?;
                if !target.starts_with(&canon_root) {
                    return Err(HostError::Path {
                        path: cur.clone(),
                        message: format!("is a symlink leading out of {}", root.display()),
                    });
                }
            }
            Ok(m) if m.is_dir() => {}
            // The last component may be an existing file (binding a single file).
            Ok(_) if i + 1 == parts.len() => {}
            Ok(_) => {
                return Err(HostError::Path {
                    path: cur.clone(),
                    message: "is not a folder".into(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&cur).map_err(io(&cur))?;
                // Best effort: an unprivileged agent (tests) cannot chown.
                let _ = std::os::unix::fs::chown(&cur, Some(device.puid), Some(device.pgid));
                created.push(cur.clone());
            }
            Err(e) => return Err(io(&cur)(e)),
        }
    }
    Ok(created)
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
}
