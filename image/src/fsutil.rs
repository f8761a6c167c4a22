//! Small file-system helpers shared by the build steps.
use std::path::Path;

use sha2::{Digest, Sha256};

/// Removes a file or a whole tree; absent is fine.
pub fn remove_all(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A digest of a tree: relative paths, modes, symlink targets and file contents, in sorted
/// order, so it changes exactly when the tree does.
pub fn tree_digest(root: &Path) -> std::io::Result<[u8; 32]> {
    use std::os::unix::fs::PermissionsExt;
    let mut h = Sha256::new();
    for rel in walk_sorted(root)? {
        let path = root.join(&rel);
        let meta = std::fs::symlink_metadata(&path)?;
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(meta.permissions().mode().to_le_bytes());
        if meta.file_type().is_symlink() {
            h.update(std::fs::read_link(&path)?.to_string_lossy().as_bytes());
        } else if meta.is_file() {
            h.update(std::fs::read(&path)?);
        }
        h.update([0]);
    }
    Ok(h.finalize().into())
}

/// Every entry below `root` (not following symlinks), as relative paths, sorted; parents come
/// before their children.
pub fn walk_sorted(root: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(&rel))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|e| rel.join(e.file_name()))
            .collect();
        entries.sort();
        for entry in entries {
            out.push(entry.clone());
            if std::fs::symlink_metadata(root.join(&entry))?.is_dir() {
                stack.push(entry);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_digest_changes_with_content_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        std::fs::write(dir.path().join("a/b/hook"), "one").expect("write");
        let first = tree_digest(dir.path()).expect("digest");
        assert_eq!(first, tree_digest(dir.path()).expect("digest"));
        std::fs::write(dir.path().join("a/b/hook"), "two").expect("write");
        let second = tree_digest(dir.path()).expect("digest");
        assert_ne!(first, second);
        std::fs::set_permissions(
            dir.path().join("a/b/hook"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        assert_ne!(second, tree_digest(dir.path()).expect("digest"));
    }
}
