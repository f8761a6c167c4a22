//! The file manager's core: named roots (each user's home, shared folders with member grants,
//! app data and mounted disks for admins), confined by the kernel, with a trash.
//!
//! This module decides which roots a user may open; `confined` makes sure nothing leaves a root
//! once opened. Nothing here trusts a path string to be harmless.

pub mod archive;
pub mod confined;
pub mod path;
pub mod share_admin;
pub mod shares;
pub mod transfer;
pub mod trash;

pub use confined::{Entry, EntryKind, FsError, FsResult, Root};
pub use path::RelPath;

use crate::store::{Access, Role, ShareRecord};
use std::path::PathBuf;

/// What kind of folder a root is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RootKind {
    Home,
    Share,
    Appdata,
    Disk,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RootInfo {
    /// The name used in URLs: `home`, a share's name (e.g. `shared`), `appdata` or `disk-<name>`.
    pub name: String,
    pub kind: RootKind,
    /// False for a share granted read-only: uploads, changes and deletions are refused (403).
    pub writable: bool,
}

/// A root opened for a user, with whether they may change it.
#[derive(Debug, Clone)]
pub struct OpenRoot {
    pub root: Root,
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

    /// The roots `username` may open, given the device's shares.
    pub fn available(&self, username: &str, role: Role, shares: &[ShareRecord]) -> Vec<RootInfo> {
        let info = |name: String, kind, writable| RootInfo {
            name,
            kind,
            writable,
        };
        let mut roots = vec![info("home".into(), RootKind::Home, true)];
        roots.extend(
            shares
                .iter()
                .filter_map(|s| Some((s, shares::access(s, username, role)?)))
                .map(|(s, access)| info(s.name.clone(), RootKind::Share, access == Access::Write)),
        );
        if role == Role::Admin {
            roots.push(info("appdata".into(), RootKind::Appdata, true));
            roots.extend(
                self.mounted_disks()
                    .into_iter()
                    .map(|d| info(format!("disk-{d}"), RootKind::Disk, true)),
            );
        }
        roots
    }

    /// Opens root `name` for `username`; `None` if it does not exist for them (members get the
    /// same answer for `appdata` or an ungranted share as for a name that does not exist).
    pub fn open(
        &self,
        name: &str,
        username: &str,
        role: Role,
        shares: &[ShareRecord],
    ) -> std::io::Result<Option<OpenRoot>> {
        crate::validate::username(username).map_err(std::io::Error::other)?;
        let (path, writable) = match (name, role) {
            ("home", _) => (self.files_dir.join("home").join(username), true),
            ("appdata", Role::Admin) => (self.app_data_dir.clone(), true),
            (other, _) if other.starts_with("disk-") => match other.strip_prefix("disk-") {
                Some(disk)
                    if role == Role::Admin && self.mounted_disks().iter().any(|d| d == disk) =>
                {
                    (self.media_dir.join(disk), true)
                }
                _ => return Ok(None),
            },
            (other, _) => {
                let Some(share) = shares.iter().find(|s| s.name == other) else {
                    return Ok(None);
                };
                let Some(access) = shares::access(share, username, role) else {
                    return Ok(None);
                };
                (self.share_dir(share)?, access == Access::Write)
            }
        };
        Ok(Some(OpenRoot {
            root: Root::open(&path, true)?,
            writable,
        }))
    }

    /// The folder of a share, from its record (checked: `shared` or `shares/<valid name>`).
    pub fn share_dir(&self, share: &ShareRecord) -> std::io::Result<PathBuf> {
        shares::folder_path(&self.files_dir, &share.folder)
    }

    /// The folder a share named `name` gets when it is created or renamed.
    pub fn new_share_folder(name: &str) -> String {
        format!("shares/{name}")
    }

    pub fn files_dir(&self) -> &std::path::Path {
        &self.files_dir
    }
}

#[cfg(test)]
mod tests;
