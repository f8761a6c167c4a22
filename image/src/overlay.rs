//! Lays overlay folders over a root: directories are merged, files and symlinks replace what
//! is there. `.keep` files only make git keep an empty directory and are not copied.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::fsutil::walk_sorted;

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("overlay {0} does not exist")]
    Missing(PathBuf),
    #[error("overlay {overlay}: cannot place {path}: {source}")]
    Io {
        overlay: PathBuf,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Applies `overlay` onto `root`. Returns how many entries were placed.
pub fn apply(overlay: &Path, root: &Path) -> Result<usize, OverlayError> {
    if !overlay.is_dir() {
        return Err(OverlayError::Missing(overlay.to_path_buf()));
    }
    let err = |path: &Path| {
        let (overlay, path) = (overlay.to_path_buf(), path.to_path_buf());
        move |source| OverlayError::Io {
            overlay,
            path,
            source,
        }
    };
    let entries = walk_sorted(overlay).map_err(err(overlay))?;
    let mut placed = 0;
    for rel in entries {
        let src = overlay.join(&rel);
        let dst = root.join(&rel);
        let meta = std::fs::symlink_metadata(&src).map_err(err(&src))?;
        if meta.is_dir() {
            place_dir(&dst, meta.permissions().mode()).map_err(err(&dst))?;
        } else if rel.file_name().is_some_and(|n| n == ".keep") {
            continue;
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src).map_err(err(&src))?;
            replace(&dst).map_err(err(&dst))?;
            std::os::unix::fs::symlink(&target, &dst).map_err(err(&dst))?;
        } else {
            replace(&dst).map_err(err(&dst))?;
            std::fs::copy(&src, &dst).map_err(err(&dst))?;
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))
                .map_err(err(&dst))?;
        }
        placed += 1;
    }
    Ok(placed)
}

/// A directory stays a directory; a symlink in the root where the overlay has a directory is
/// an error (it would silently write elsewhere).
fn place_dir(dst: &Path, mode: u32) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dst) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a non-directory is in the way",
        )),
        Err(_) => {
            std::fs::create_dir_all(dst)?;
            std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode & 0o7777))
        }
    }
}

/// Removes what is at `dst` so a file or symlink can take its place; a directory must be
/// empty (replacing a populated directory would hide files from the package manager's view).
fn replace(dst: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dst) {
        Ok(m) if m.is_dir() => std::fs::remove_dir(dst),
        Ok(_) => std::fs::remove_file(dst),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_replaces_files_and_empty_dirs_with_symlinks_and_skips_keep_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ov, root) = (tmp.path().join("ov"), tmp.path().join("root"));
        std::fs::create_dir_all(ov.join("etc/empty")).expect("mkdir");
        std::fs::create_dir_all(root.join("etc/NetworkManager/system-connections")).expect("mkdir");
        std::fs::write(root.join("etc/hostname"), "vm\n").expect("write");
        std::os::unix::fs::symlink("../var/lib/hearth/etc/hostname", ov.join("etc/hostname"))
            .expect("symlink");
        std::fs::create_dir_all(ov.join("etc/NetworkManager")).expect("mkdir");
        std::os::unix::fs::symlink("/var/x", ov.join("etc/NetworkManager/system-connections"))
            .expect("symlink");
        std::fs::write(ov.join("etc/empty/.keep"), "").expect("write");
        std::fs::write(ov.join("etc/tool"), "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(ov.join("etc/tool"), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");

        apply(&ov, &root).expect("apply");
        assert_eq!(
            std::fs::read_link(root.join("etc/hostname")).expect("link"),
            Path::new("../var/lib/hearth/etc/hostname")
        );
        assert!(
            root.join("etc/NetworkManager/system-connections")
                .is_symlink()
        );
        assert!(root.join("etc/empty").is_dir());
        assert!(!root.join("etc/empty/.keep").exists());
        let mode = std::fs::metadata(root.join("etc/tool"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn overlay_refuses_to_replace_a_populated_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ov, root) = (tmp.path().join("ov"), tmp.path().join("root"));
        std::fs::create_dir_all(&ov).expect("mkdir");
        std::fs::create_dir_all(root.join("data")).expect("mkdir");
        std::fs::write(root.join("data/file"), "x").expect("write");
        std::os::unix::fs::symlink("/elsewhere", ov.join("data")).expect("symlink");
        assert!(apply(&ov, &root).is_err());
    }

    #[test]
    fn missing_overlay_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            apply(&tmp.path().join("nope"), tmp.path()),
            Err(OverlayError::Missing(_))
        ));
    }
}
