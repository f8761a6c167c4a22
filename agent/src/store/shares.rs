//! Shared folders and their member grants: one record per share name in the `shares` tree
//! (added in schema version 4).

use super::{ShareRecord, Store, StoreError, Table, encode, tx_error};
use sled::Transactional;

impl Store {
    pub fn share(&self, name: &str) -> Result<Option<ShareRecord>, StoreError> {
        self.get(Table::Shares, name)
    }

    /// All shares, sorted by name.
    pub fn shares(&self) -> Result<Vec<ShareRecord>, StoreError> {
        self.list(Table::Shares)
    }

    /// Inserts a new share; false (nothing written) if one of that name exists.
    pub fn insert_new_share(&self, share: &ShareRecord) -> Result<bool, StoreError> {
        let swapped = self.shares.compare_and_swap(
            share.name.as_bytes(),
            None as Option<&[u8]>,
            Some(encode(share)?),
        )?;
        self.sync()?;
        Ok(swapped.is_ok())
    }

    /// Replaces the record stored under `old_name` with `share` (which may have a new name),
    /// atomically. False (nothing written) if the new name is taken by another share.
    pub fn replace_share(&self, old_name: &str, share: &ShareRecord) -> Result<bool, StoreError> {
        let bytes = encode(share)?;
        let done = (&self.shares,)
            .transaction(|(shares,)| {
                if share.name != old_name && shares.get(share.name.as_bytes())?.is_some() {
                    return Ok(false);
                }
                shares.remove(old_name.as_bytes())?;
                shares.insert(share.name.as_bytes(), bytes.as_slice())?;
                Ok(true)
            })
            .map_err(tx_error)?;
        self.sync()?;
        Ok(done)
    }

    pub fn delete_share(&self, name: &str) -> Result<bool, StoreError> {
        self.remove(Table::Shares, name)
    }
}
