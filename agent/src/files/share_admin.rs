//! Managing shared folders: create, rename, change grants, delete — the record in the store and
//! the folder on disk kept together. The HTTP handlers (`api::shares`) parse and map; the rules
//! (names, grants that name existing users, no silent replace, a share with files is kept unless
//! purged) live here. Never decides who may open a share: that is `shares::access`.

use super::shares::validate_name;
use super::{FileRoots, FsError, RelPath, Root};
use crate::accounts::Accounts;
use crate::error::ServiceError;
use crate::store::{Access, ShareRecord, Store};
use std::collections::BTreeMap;
use std::path::Path;

type Result<T> = std::result::Result<T, ServiceError>;

/// The shared folders of one device (borrowed from the application state).
#[derive(Debug, Clone, Copy)]
pub struct Shares<'a> {
    pub store: &'a Store,
    pub roots: &'a FileRoots,
    pub accounts: &'a Accounts,
}

fn io(e: std::io::Error, what: &str) -> ServiceError {
    ServiceError::Internal(format!("{what}: {e}"))
}

fn check_name(name: &str) -> Result<()> {
    validate_name(name).map_err(|e| ServiceError::invalid("name", e.to_string()))
}

fn taken(name: &str) -> ServiceError {
    ServiceError::Conflict(format!("a share named {name} exists"))
}

impl Shares<'_> {
    /// Every share record.
    pub fn all(&self) -> Result<Vec<ShareRecord>> {
        Ok(self.store.shares()?)
    }

    /// The share named `name` (404 when there is none).
    pub fn get(&self, name: &str) -> Result<ShareRecord> {
        self.store
            .share(name)?
            .ok_or_else(|| ServiceError::NotFound(format!("share {name}")))
    }

    /// Grants may only name existing users.
    fn check_grants(&self, grants: &BTreeMap<String, Access>) -> Result<()> {
        let users = self.accounts.users()?;
        match grants
            .keys()
            .find(|g| !users.iter().any(|u| &u.username == *g))
        {
            Some(unknown) => Err(ServiceError::UnknownName {
                field: "grants",
                message: format!("there is no user named {unknown}"),
            }),
            None => Ok(()),
        }
    }

    /// Creates a share (an existing folder of that name under `files/shares` is adopted).
    pub fn create(&self, name: String, grants: BTreeMap<String, Access>) -> Result<ShareRecord> {
        check_name(&name)?;
        self.check_grants(&grants)?;
        let record = ShareRecord {
            folder: FileRoots::new_share_folder(&name),
            name,
            grants,
        };
        if self.store.share(&record.name)?.is_some() {
            return Err(taken(&record.name));
        }
        let dir = self.roots.share_dir(&record).map_err(|e| io(e, "share"))?;
        crate::fsutil::ensure_dir(&dir, 0o755).map_err(|e| io(e, "cannot create the folder"))?;
        if !self.store.insert_new_share(&record)? {
            return Err(taken(&record.name));
        }
        Ok(record)
    }

    /// Renames a share (and its folder) and/or replaces its grants; a rename that loses the
    /// race for the new name moves the folder back.
    pub fn update(
        &self,
        name: &str,
        new_name: Option<String>,
        grants: Option<BTreeMap<String, Access>>,
    ) -> Result<ShareRecord> {
        let old = self.get(name)?;
        let mut record = old.clone();
        if let Some(grants) = grants {
            self.check_grants(&grants)?;
            record.grants = grants;
        }
        let renamed = new_name.as_ref().is_some_and(|n| *n != old.name);
        if let Some(new_name) = new_name.filter(|_| renamed) {
            check_name(&new_name)?;
            if self.store.share(&new_name)?.is_some() {
                return Err(taken(&new_name));
            }
            record.folder = FileRoots::new_share_folder(&new_name);
            record.name = new_name;
            move_folder(&self.dir(&old)?, &self.dir(&record)?)?;
        }
        if !self.store.replace_share(&old.name, &record)? {
            if renamed {
                let _ = move_folder(&self.dir(&record)?, &self.dir(&old)?);
            }
            return Err(taken(&record.name));
        }
        Ok(record)
    }

    /// Deletes a share; its files go with it only with `purge` (else a share with files is a
    /// `not_empty` refusal and nothing changes).
    pub fn delete(&self, name: &str, purge: bool) -> Result<()> {
        let record = self.get(name)?;
        let dir = self.dir(&record)?;
        if dir.exists() {
            let root = Root::open(&dir, false).map_err(|e| io(e, "share"))?;
            let top = RelPath::root();
            let has_files = std::fs::read_dir(&dir)
                .map_err(|e| io(e, "share"))?
                .next()
                .is_some();
            if has_files && !purge {
                return Err(FsError::NotEmpty(format!("share {name}")).into());
            }
            for entry in std::fs::read_dir(&dir)
                .map_err(|e| io(e, "share"))?
                .flatten()
            {
                let child = top
                    .join(&entry.file_name().to_string_lossy())
                    .map_err(FsError::from)?;
                root.remove_all(&child)?;
            }
            std::fs::remove_dir(&dir).map_err(|e| io(e, "cannot remove the folder"))?;
        }
        self.store.delete_share(name)?;
        Ok(())
    }

    fn dir(&self, share: &ShareRecord) -> Result<std::path::PathBuf> {
        self.roots.share_dir(share).map_err(|e| io(e, "share"))
    }
}

/// Renames a share's folder without replacing anything already at the new place.
fn move_folder(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        crate::fsutil::ensure_dir(parent, 0o755).map_err(|e| io(e, "shares folder"))?;
    }
    if !from.exists() {
        return Ok(());
    }
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        from,
        rustix::fs::CWD,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(|e| match e {
        rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY => {
            ServiceError::Conflict(format!("a folder named {} is already there", to.display()))
        }
        other => io(other.into(), "cannot rename the folder"),
    })
}
