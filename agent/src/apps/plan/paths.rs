//! Host paths: CasaOS's `/DATA` layout mapped onto the device's roots, lexical normalisation,
//! and classification (inside the app-data root, inside the user-data root, or outside both).
//! Pure: symlinks are checked by the lifecycle when folders are created, against the real disk.

use serde::Serialize;
use std::path::{Component, Path, PathBuf};

/// Where a bind mount's source lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathZone {
    AppData,
    UserData,
    Outside,
}

/// CasaOS keeps app data under `/DATA/AppData` and user files under `/DATA`.
const CASAOS_APPDATA: &str = "/DATA/AppData";
const CASAOS_DATA: &str = "/DATA";

/// Maps a compose bind source to a host path: `/DATA/AppData/...` → app-data root,
/// `/DATA/...` → user-data root, relative paths → the app's own folder; then normalises `.`
/// and `..` lexically (so an escape through `..` shows up as a path outside the roots).
pub fn map_source(src: &str, app_dir: &Path, app_root: &Path, user_root: &Path) -> PathBuf {
    let mapped = if let Some(rest) = strip_dir(src, CASAOS_APPDATA) {
        app_root.join(rest)
    } else if let Some(rest) = strip_dir(src, CASAOS_DATA) {
        user_root.join(rest)
    } else if src.starts_with('/') {
        PathBuf::from(src)
    } else {
        app_dir.join(src)
    };
    normalize(&mapped)
}

/// `src` without the directory prefix `dir` (whole components only), relative.
fn strip_dir<'a>(src: &'a str, dir: &str) -> Option<&'a str> {
    let rest = src.strip_prefix(dir)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('/')
    }
}

/// Resolves `.` and `..` without touching the disk; `..` at the root stays at the root.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
        }
    }
    out
}

pub fn zone(p: &Path, app_root: &Path, user_root: &Path) -> PathZone {
    if p.starts_with(app_root) {
        PathZone::AppData
    } else if p.starts_with(user_root) {
        PathZone::UserData
    } else {
        PathZone::Outside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(s: &str) -> PathBuf {
        map_source(
            s,
            Path::new("/apps/x"),
            Path::new("/apps"),
            Path::new("/srv/data"),
        )
    }

    #[test]
    fn casaos_layout_maps_onto_the_roots() {
        assert_eq!(map("/DATA/AppData/x/data"), PathBuf::from("/apps/x/data"));
        assert_eq!(
            map("/DATA/Media/Movies"),
            PathBuf::from("/srv/data/Media/Movies")
        );
        assert_eq!(map("/DATA"), PathBuf::from("/srv/data"));
        assert_eq!(map("/DATAX/y"), PathBuf::from("/DATAX/y"));
        assert_eq!(map("./conf"), PathBuf::from("/apps/x/conf"));
        assert_eq!(map("/etc/localtime"), PathBuf::from("/etc/localtime"));
    }

    #[test]
    fn dot_dot_escapes_are_visible_after_mapping() {
        let p = map("/DATA/AppData/x/../../../etc");
        assert_eq!(p, PathBuf::from("/etc"));
        assert_eq!(
            zone(&p, Path::new("/apps"), Path::new("/srv/data")),
            PathZone::Outside
        );
        assert_eq!(map("../../.."), PathBuf::from("/"));
        let inside = map("/DATA/AppData/x/a/../b");
        assert_eq!(inside, PathBuf::from("/apps/x/b"));
        assert_eq!(
            zone(&inside, Path::new("/apps"), Path::new("/srv/data")),
            PathZone::AppData
        );
    }

    #[test]
    fn prefix_matching_is_by_component() {
        let z = zone(
            Path::new("/appsX/y"),
            Path::new("/apps"),
            Path::new("/srv/data"),
        );
        assert_eq!(z, PathZone::Outside);
    }
}
