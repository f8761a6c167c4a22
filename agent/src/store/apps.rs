//! Installed apps: one record per app id in the `apps` tree (added in schema version 3).

use super::{Store, StoreError, Table};
use crate::apps::record::AppRecord;

impl Store {
    pub fn app(&self, id: &str) -> Result<Option<AppRecord>, StoreError> {
        self.get(Table::Apps, id)
    }

    pub fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        self.list(Table::Apps)
    }

    /// Writes the record durably (flushed before returning).
    pub fn put_app(&self, record: &AppRecord) -> Result<(), StoreError> {
        self.put(Table::Apps, &record.id, record)
    }

    pub fn delete_app(&self, id: &str) -> Result<bool, StoreError> {
        self.remove(Table::Apps, id)
    }
}
