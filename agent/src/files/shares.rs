//! Shared folders: the name grammar, who may open one, and their folders on disk.
//!
//! A share's folder is `<data_dir>/files/shares/<name>` (or `<data_dir>/files/shared` for the
//! folder that existed before shares had names, until it is renamed). Names come from admins'
//! requests, so they are checked against a strict grammar before they reach a path.

use crate::store::{Access, Role, ShareRecord};
use std::path::{Path, PathBuf};

pub const MAX_SHARE_NAME: usize = 64;

/// Root names that are not shares (and any name starting with `disk-`).
pub const RESERVED: [&str; 3] = ["home", "appdata", "shares"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareNameError {
    #[error(
        "use 1 to {MAX_SHARE_NAME} letters, digits, spaces, '-', '_' or '.', starting with a letter or digit and not ending with a space or '.'"
    )]
    Grammar,
    #[error("{0} is reserved")]
    Reserved(String),
}

/// ASCII letters and digits first, then also space, `-`, `_`, `.`; no trailing space or dot
/// (both trouble for SMB clients); not a name other roots use.
pub fn validate_name(name: &str) -> Result<(), ShareNameError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || " -_.".contains(c);
    let grammar = !name.is_empty()
        && name.len() <= MAX_SHARE_NAME
        && name.chars().all(ok_char)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !name.ends_with([' ', '.']);
    if !grammar {
        return Err(ShareNameError::Grammar);
    }
    if RESERVED.contains(&name) || name.starts_with("disk-") {
        return Err(ShareNameError::Reserved(name.to_string()));
    }
    Ok(())
}

/// What `username` may do in `share`: admins everything, members what they were granted.
pub fn access(share: &ShareRecord, username: &str, role: Role) -> Option<Access> {
    match role {
        Role::Admin => Some(Access::Write),
        Role::Member => share.grants.get(username).copied(),
    }
}

/// The host path of a share folder recorded as `folder` (`shared` or `shares/<name>`).
pub fn folder_path(files_dir: &Path, folder: &str) -> std::io::Result<PathBuf> {
    let valid = folder == "shared"
        || folder
            .strip_prefix("shares/")
            .is_some_and(|n| validate_name(n).is_ok());
    if !valid {
        return Err(std::io::Error::other(format!(
            "share folder {folder:?} is not one Hearth makes"
        )));
    }
    Ok(files_dir.join(folder))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_names_follow_a_strict_grammar() {
        for good in ["shared", "Family Photos", "a", "x-1_2.3", &"n".repeat(64)] {
            assert_eq!(validate_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            " lead",
            ".hidden",
            "trail ",
            "trail.",
            "a/b",
            "..",
            "a\0b",
            "a\nb",
            "ünï",
            "a\\b",
            &"n".repeat(65),
        ] {
            assert_eq!(validate_name(bad), Err(ShareNameError::Grammar), "{bad:?}");
        }
        for reserved in ["home", "appdata", "shares", "disk-usb"] {
            assert!(
                matches!(validate_name(reserved), Err(ShareNameError::Reserved(_))),
                "{reserved}"
            );
        }
    }

    #[test]
    fn recorded_folders_are_checked_before_use() {
        let dir = Path::new("/data/files");
        assert_eq!(
            folder_path(dir, "shares/Family").expect("ok"),
            dir.join("shares/Family")
        );
        assert!(folder_path(dir, "shared").is_ok());
        for bad in [
            "shares/../../etc",
            "/etc",
            "home/admin",
            "shares/",
            "shares/a/b",
        ] {
            assert!(folder_path(dir, bad).is_err(), "{bad}");
        }
    }
}
