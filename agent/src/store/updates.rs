//! Over-the-air update state (schema version 5): the policy, what was accepted from the
//! repository, the last check, the install in progress and the history, in the `updates` tree.

use super::{Store, StoreError, Table};
use crate::update::records::{CheckRecord, HistoryEntry, InstallRecord, TrustRecord, UpdatePolicy};

pub(super) const KEY_POLICY: &str = "policy";
const KEY_TRUST: &str = "trust";
const KEY_CHECK: &str = "check";
const KEY_INSTALL: &str = "install";
/// The highest history id whose banner an admin dismissed.
const KEY_NOTICE_DISMISSED: &str = "notice_dismissed";
/// History entries are `history/<id, 20 digits>` so they sort by id.
const HISTORY_PREFIX: &str = "history/";
/// Entries kept; older ones are dropped.
const HISTORY_KEEP: usize = 100;

impl Store {
    pub fn update_policy(&self) -> Result<Option<UpdatePolicy>, StoreError> {
        self.get(Table::Updates, KEY_POLICY)
    }

    pub fn put_update_policy(&self, policy: &UpdatePolicy) -> Result<(), StoreError> {
        self.put(Table::Updates, KEY_POLICY, policy)
    }

    pub fn update_trust(&self) -> Result<TrustRecord, StoreError> {
        Ok(self.get(Table::Updates, KEY_TRUST)?.unwrap_or_default())
    }

    pub fn put_update_trust(&self, trust: &TrustRecord) -> Result<(), StoreError> {
        self.put(Table::Updates, KEY_TRUST, trust)
    }

    pub fn update_check(&self) -> Result<Option<CheckRecord>, StoreError> {
        self.get(Table::Updates, KEY_CHECK)
    }

    pub fn put_update_check(&self, check: &CheckRecord) -> Result<(), StoreError> {
        self.put(Table::Updates, KEY_CHECK, check)
    }

    pub fn update_install(&self) -> Result<Option<InstallRecord>, StoreError> {
        self.get(Table::Updates, KEY_INSTALL)
    }

    pub fn put_update_install(&self, record: &InstallRecord) -> Result<(), StoreError> {
        self.put(Table::Updates, KEY_INSTALL, record)
    }

    pub fn clear_update_install(&self) -> Result<(), StoreError> {
        self.remove(Table::Updates, KEY_INSTALL).map(|_| ())
    }

    pub fn update_notice_dismissed(&self) -> Result<u64, StoreError> {
        Ok(self.get(Table::Updates, KEY_NOTICE_DISMISSED)?.unwrap_or(0))
    }

    pub fn put_update_notice_dismissed(&self, through: u64) -> Result<(), StoreError> {
        self.put(Table::Updates, KEY_NOTICE_DISMISSED, &through)
    }

    /// The history, newest first.
    pub fn update_history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self.updates.scan_prefix(HISTORY_PREFIX) {
            let (k, v) = item?;
            out.push(super::decode::<HistoryEntry>(Table::Updates, &k, &v)?);
        }
        out.reverse();
        Ok(out)
    }

    /// Appends an entry (its id is assigned here) and returns it.
    pub fn push_update_history(&self, mut entry: HistoryEntry) -> Result<HistoryEntry, StoreError> {
        let keys: Vec<sled::IVec> = self
            .updates
            .scan_prefix(HISTORY_PREFIX)
            .keys()
            .collect::<Result<_, _>>()?;
        let last = keys
            .last()
            .and_then(|k| {
                String::from_utf8_lossy(k)[HISTORY_PREFIX.len()..]
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
        entry.id = last + 1;
        self.updates.insert(
            format!("{HISTORY_PREFIX}{:020}", entry.id),
            super::encode(&entry)?,
        )?;
        for old in keys
            .iter()
            .take((keys.len() + 1).saturating_sub(HISTORY_KEEP))
        {
            self.updates.remove(old)?;
        }
        self.sync()?;
        Ok(entry)
    }
}
