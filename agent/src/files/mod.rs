//! The file manager's core: named roots (each user's home, the shared folder, app data for
//! admins), confined by the kernel, with a trash.
//!
//! This module decides which roots a user may open; `confined` makes sure nothing leaves a root
//! once opened. Nothing here trusts a path string to be harmless.

pub mod archive;
pub mod confined;
pub mod path;
pub mod trash;

pub use confined::{Entry, EntryKind, FsError, FsResult, Root};
pub use path::RelPath;

use crate::store::Role;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RootInfo {
    /// The name used in URLs: `home`, `shared` or `appdata`.
    pub name: String,
    pub writable: bool,
}

/// Where the roots live.
#[derive(Debug, Clone)]
pub struct FileRoots {
    /// `<data_dir>/files`: `home/<user>` and `shared` below it.
    files_dir: PathBuf,
    /// The app-data root (admins only).
    app_data_dir: PathBuf,
    /// Mounted disks, each a root `disk-<name>` (admins only).
    media_dir: PathBuf,
}

impl FileRoots {
    pub fn new(
        data_dir: &std::path::Path,
        app_data_dir: &std::path::Path,
        media_dir: &std::path::Path,
    ) -> Self {
        Self {
            files_dir: data_dir.join("files"),
            app_data_dir: app_data_dir.to_path_buf(),
            media_dir: media_dir.to_path_buf(),
        }
    }

    /// Names of the folders under the media folder that are mount points.
    fn mounted_disks(&self) -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        let Ok(media) = std::fs::metadata(&self.media_dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = std::fs::read_dir(&self.media_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                std::fs::symlink_metadata(e.path())
                    .is_ok_and(|m| m.is_dir() && m.dev() != media.dev())
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| crate::disks::valid_name(n))
            .collect();
        names.sort();
        names
    }

    /// The roots `username` may open.
    pub fn available(&self, role: Role) -> Vec<RootInfo> {
        let mut roots = vec![
            RootInfo {
                name: "home".into(),
                writable: true,
            },
            RootInfo {
                name: "shared".into(),
                writable: true,
            },
        ];
        if role == Role::Admin {
            roots.push(RootInfo {
                name: "appdata".into(),
                writable: true,
            });
            roots.extend(self.mounted_disks().into_iter().map(|d| RootInfo {
                name: format!("disk-{d}"),
                writable: true,
            }));
        }
        roots
    }

    /// Opens root `name` for `username`; `None` if it does not exist for them (members get the
    /// same answer for `appdata` as for a name that does not exist).
    pub fn open(&self, name: &str, username: &str, role: Role) -> std::io::Result<Option<Root>> {
        crate::validate::username(username).map_err(std::io::Error::other)?;
        let path = match (name, role) {
            ("home", _) => self.files_dir.join("home").join(username),
            ("shared", _) => self.files_dir.join("shared"),
            ("appdata", Role::Admin) => self.app_data_dir.clone(),
            (other, Role::Admin) => match other.strip_prefix("disk-") {
                Some(disk) if self.mounted_disks().iter().any(|d| d == disk) => {
                    self.media_dir.join(disk)
                }
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        Root::open(&path, true).map(Some)
    }
}

#[cfg(test)]
mod tests;
