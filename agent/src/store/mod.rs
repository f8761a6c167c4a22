//! The agent's persistent state: users, sessions, device settings and identity, in sled.
//!
//! Every write is flushed to disk before the call returns, so a write the API acknowledged
//! survives `kill -9` of the agent (`tests/integration/store_crash.rs` proves it). Multi-record changes (the
//! claim, deleting a user with their sessions) are sled transactions. This module owns the
//! on-disk schema and its version; nothing else opens the database.

mod apps;
mod migrations;
mod records;
mod shares;
mod updates;

pub use migrations::CURRENT_VERSION;
pub use records::{
    Access, DeviceSettings, KnownDevice, Role, SessionRecord, ShareRecord, TotpState, UserRecord,
};

use serde::{Serialize, de::DeserializeOwned};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("store record {table}/{key} is unreadable: {message}")]
    Corrupt {
        table: &'static str,
        key: String,
        message: String,
    },
    #[error("store at {path} has schema version {found}, newer than this agent's {supported}")]
    SchemaTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("cannot encode record: {0}")]
    Encode(serde_json::Error),
}

/// The trees of the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Meta,
    Users,
    Sessions,
    Settings,
    Devices,
    Apps,
    Shares,
    Updates,
}

impl Table {
    pub const ALL: [Table; 8] = [
        Table::Meta,
        Table::Users,
        Table::Sessions,
        Table::Settings,
        Table::Devices,
        Table::Apps,
        Table::Shares,
        Table::Updates,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Users => "users",
            Table::Sessions => "sessions",
            Table::Settings => "settings",
            Table::Devices => "devices",
            Table::Apps => "apps",
            Table::Shares => "shares",
            Table::Updates => "updates",
        }
    }
}

const KEY_SCHEMA: &str = "schema_version";
const KEY_CLAIMED: &str = "claimed_at";
const KEY_SETUP_CODE: &str = "setup_code";
const KEY_DEVICE: &str = "device";
const KEY_MOUNTS: &str = "mounts";
const KEY_DISK_SETTINGS: &str = "disks";

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    users: sled::Tree,
    sessions: sled::Tree,
    settings: sled::Tree,
    devices: sled::Tree,
    apps: sled::Tree,
    shares: sled::Tree,
    updates: sled::Tree,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(StoreError::Encode)
}

fn decode<T: DeserializeOwned>(table: Table, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table: table.name(),
        key: String::from_utf8_lossy(key).into_owned(),
        message: e.to_string(),
    })
}

fn abort(error: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(error)
}

fn tx_error(error: TransactionError<StoreError>) -> StoreError {
    match error {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir` and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db =
            crate::memory::with_mmap_threshold(crate::memory::STORE_OPEN_MMAP_THRESHOLD, || {
                sled::Config::new()
                    .path(dir)
                    .cache_capacity(16 * 1024 * 1024)
                    .mode(sled::Mode::LowSpace)
                    .open()
            })?;
        let tree = |t: Table| db.open_tree(t.name());
        let store = Store {
            meta: tree(Table::Meta)?,
            users: tree(Table::Users)?,
            sessions: tree(Table::Sessions)?,
            settings: tree(Table::Settings)?,
            devices: tree(Table::Devices)?,
            apps: tree(Table::Apps)?,
            shares: tree(Table::Shares)?,
            updates: tree(Table::Updates)?,
            db,
        };
        store.migrate(dir)?;
        Ok(store)
    }

    fn migrate(&self, dir: &Path) -> Result<(), StoreError> {
        let found = match self.meta.get(KEY_SCHEMA)? {
            Some(v) => decode::<u32>(Table::Meta, KEY_SCHEMA.as_bytes(), &v)?,
            // A store without a version is either brand new (start at the current version) or
            // from before versions were recorded, which never shipped.
            None => CURRENT_VERSION,
        };
        if found > CURRENT_VERSION {
            return Err(StoreError::SchemaTooNew {
                path: dir.to_path_buf(),
                found,
                supported: CURRENT_VERSION,
            });
        }
        for version in found..CURRENT_VERSION {
            migrations::MIGRATIONS[(version - 1) as usize](&self.db)?;
            self.set_schema_version(version + 1)?;
            tracing::info!(from = version, to = version + 1, "store schema migrated");
        }
        if self.meta.get(KEY_SCHEMA)?.is_none() {
            migrations::seed_new_store(&self.db)?;
            self.set_schema_version(CURRENT_VERSION)?;
        }
        Ok(())
    }

    /// For migration tests: pretend to be an older schema.
    pub fn set_schema_version(&self, version: u32) -> Result<(), StoreError> {
        self.meta.insert(KEY_SCHEMA, encode(&version)?)?;
        self.sync()
    }

    pub fn schema_version(&self) -> Result<u32, StoreError> {
        match self.meta.get(KEY_SCHEMA)? {
            Some(v) => decode(Table::Meta, KEY_SCHEMA.as_bytes(), &v),
            None => Ok(0),
        }
    }

    /// Raw access for migrations' tests.
    pub fn put_raw(&self, table: Table, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.db.open_tree(table.name())?.insert(key, value)?;
        self.sync()
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, StoreError> {
        match self.tree(table).get(key)? {
            Some(bytes) => decode(table, key.as_bytes(), &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<(), StoreError> {
        self.tree(table).insert(key, encode(value)?)?;
        self.sync()
    }

    fn remove(&self, table: Table, key: &str) -> Result<bool, StoreError> {
        let existed = self.tree(table).remove(key)?.is_some();
        self.sync()?;
        Ok(existed)
    }

    fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<T>, StoreError> {
        self.tree(table)
            .iter()
            .map(|item| {
                let (k, v) = item?;
                decode(table, &k, &v)
            })
            .collect()
    }

    fn tree(&self, table: Table) -> &sled::Tree {
        match table {
            Table::Meta => &self.meta,
            Table::Users => &self.users,
            Table::Sessions => &self.sessions,
            Table::Settings => &self.settings,
            Table::Devices => &self.devices,
            Table::Apps => &self.apps,
            Table::Shares => &self.shares,
            Table::Updates => &self.updates,
        }
    }

    // --- users ---

    pub fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.get(Table::Users, username)
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.list(Table::Users)
    }

    pub fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.put(Table::Users, &user.username, user)
    }

    /// Inserts `user` only if no user of that name exists; returns false if one does.
    pub fn insert_new_user(&self, user: &UserRecord) -> Result<bool, StoreError> {
        let swapped = self.users.compare_and_swap(
            user.username.as_bytes(),
            None as Option<&[u8]>,
            Some(encode(user)?),
        )?;
        self.sync()?;
        Ok(swapped.is_ok())
    }

    /// Deletes a user together with all their sessions, known devices and share grants,
    /// atomically (a user created later under the same name inherits nothing).
    pub fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        let session_keys =
            self.keys_where(Table::Sessions, |s: &SessionRecord| s.username == username)?;
        let device_keys =
            self.keys_where(Table::Devices, |d: &KnownDevice| d.username == username)?;
        let mut regranted = Vec::new();
        for mut share in self.shares()? {
            if share.grants.remove(username).is_some() {
                regranted.push((share.name.clone(), encode(&share)?));
            }
        }
        let existed = (&self.users, &self.sessions, &self.devices, &self.shares)
            .transaction(|(users, sessions, devices, shares)| {
                for key in &session_keys {
                    sessions.remove(key.as_slice())?;
                }
                for key in &device_keys {
                    devices.remove(key.as_slice())?;
                }
                for (name, bytes) in &regranted {
                    shares.insert(name.as_bytes(), bytes.as_slice())?;
                }
                Ok(users.remove(username.as_bytes())?.is_some())
            })
            .map_err(tx_error)?;
        self.sync()?;
        Ok(existed)
    }

    fn keys_where<T: DeserializeOwned>(
        &self,
        table: Table,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut keys = Vec::new();
        for item in self.tree(table).iter() {
            let (k, v) = item?;
            if keep(&decode(table, &k, &v)?) {
                keys.push(k.to_vec());
            }
        }
        Ok(keys)
    }

    // --- sessions (keyed by the hash of the secret token) ---

    pub fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.get(Table::Sessions, token_hash)
    }

    pub fn put_session(&self, token_hash: &str, session: &SessionRecord) -> Result<(), StoreError> {
        self.put(Table::Sessions, token_hash, session)
    }

    pub fn delete_session(&self, token_hash: &str) -> Result<bool, StoreError> {
        self.remove(Table::Sessions, token_hash)
    }

    /// All sessions with their storage keys.
    pub fn sessions(&self) -> Result<Vec<(String, SessionRecord)>, StoreError> {
        self.sessions
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    decode(Table::Sessions, &k, &v)?,
                ))
            })
            .collect()
    }

    /// Revokes every session of `username` except the one stored under `keep`.
    pub fn delete_sessions_of(
        &self,
        username: &str,
        keep: Option<&str>,
    ) -> Result<usize, StoreError> {
        let keys = self.keys_where(Table::Sessions, |s: &SessionRecord| s.username == username)?;
        let mut removed = 0;
        for key in keys
            .iter()
            .filter(|k| Some(k.as_slice()) != keep.map(str::as_bytes))
        {
            self.sessions.remove(key.as_slice())?;
            removed += 1;
        }
        self.sync()?;
        Ok(removed)
    }

    // --- known devices (keyed by the hash of the device token) ---

    pub fn known_device(&self, token_hash: &str) -> Result<Option<KnownDevice>, StoreError> {
        self.get(Table::Devices, token_hash)
    }

    pub fn put_known_device(
        &self,
        token_hash: &str,
        device: &KnownDevice,
    ) -> Result<(), StoreError> {
        self.put(Table::Devices, token_hash, device)
    }

    // --- device settings and claim ---

    pub fn device_settings(&self) -> Result<DeviceSettings, StoreError> {
        Ok(self.get(Table::Settings, KEY_DEVICE)?.unwrap_or_default())
    }

    pub fn put_device_settings(&self, settings: &DeviceSettings) -> Result<(), StoreError> {
        self.put(Table::Settings, KEY_DEVICE, settings)
    }

    /// Disks the agent mounts again at every start.
    pub fn mounts(&self) -> Result<Vec<crate::disks::mount::PersistedMount>, StoreError> {
        Ok(self.get(Table::Settings, KEY_MOUNTS)?.unwrap_or_default())
    }

    pub fn put_mounts(
        &self,
        mounts: &[crate::disks::mount::PersistedMount],
    ) -> Result<(), StoreError> {
        self.put(Table::Settings, KEY_MOUNTS, &mounts)
    }

    /// Disk settings (the auto-mount policy); defaults when never set.
    pub fn disk_settings(&self) -> Result<crate::disks::hotplug::DiskSettings, StoreError> {
        Ok(self
            .get(Table::Settings, KEY_DISK_SETTINGS)?
            .unwrap_or_default())
    }

    pub fn put_disk_settings(
        &self,
        settings: &crate::disks::hotplug::DiskSettings,
    ) -> Result<(), StoreError> {
        self.put(Table::Settings, KEY_DISK_SETTINGS, settings)
    }

    pub fn claimed_at(&self) -> Result<Option<String>, StoreError> {
        self.get(Table::Meta, KEY_CLAIMED)
    }

    pub fn setup_code(&self) -> Result<Option<String>, StoreError> {
        self.get(Table::Meta, KEY_SETUP_CODE)
    }

    pub fn put_setup_code(&self, code: &str) -> Result<(), StoreError> {
        self.put(Table::Meta, KEY_SETUP_CODE, &code)
    }

    /// Claims the device: in one transaction, checks it is unclaimed, records the claim, creates
    /// the first admin, stores the device settings and the update policy chosen in the wizard,
    /// and destroys the setup code. Returns false
    /// (and changes nothing) if the device was already claimed.
    pub fn claim(
        &self,
        admin: &UserRecord,
        settings: &DeviceSettings,
        update_policy: &crate::update::records::UpdatePolicy,
        claimed_at: &str,
    ) -> Result<bool, StoreError> {
        let admin_bytes = encode(admin)?;
        let settings_bytes = encode(settings)?;
        let policy_bytes = encode(update_policy)?;
        let claimed_bytes = encode(&claimed_at)?;
        let won = (&self.meta, &self.users, &self.settings, &self.updates)
            .transaction(|(meta, users, settings, updates)| {
                if meta.get(KEY_CLAIMED)?.is_some() {
                    return Ok(false);
                }
                if users.get(admin.username.as_bytes())?.is_some() {
                    return Err(abort(StoreError::Corrupt {
                        table: "users",
                        key: admin.username.clone(),
                        message: "a user exists on an unclaimed device".into(),
                    }));
                }
                meta.insert(KEY_CLAIMED, claimed_bytes.as_slice())?;
                meta.remove(KEY_SETUP_CODE)?;
                users.insert(admin.username.as_bytes(), admin_bytes.as_slice())?;
                settings.insert(KEY_DEVICE, settings_bytes.as_slice())?;
                updates.insert(updates::KEY_POLICY, policy_bytes.as_slice())?;
                Ok(true)
            })
            .map_err(tx_error)?;
        self.sync()?;
        Ok(won)
    }

    /// Reads and decodes every record of every table; the first unreadable one is an error.
    /// Returns the number of records checked.
    pub fn verify(&self) -> Result<usize, StoreError> {
        let mut count = 0;
        count += self.list::<UserRecord>(Table::Users)?.len();
        count += self.list::<SessionRecord>(Table::Sessions)?.len();
        count += self.list::<KnownDevice>(Table::Devices)?.len();
        count += self
            .get::<DeviceSettings>(Table::Settings, KEY_DEVICE)?
            .map_or(0, |_| 1);
        count += self.mounts()?.len();
        // Each settings key has its own record type; those without a typed reader here must
        // still be JSON.
        count += self
            .get::<crate::disks::hotplug::DiskSettings>(Table::Settings, KEY_DISK_SETTINGS)?
            .map_or(0, |_| 1);
        count += self.list::<serde_json::Value>(Table::Settings)?.len();
        count += self
            .list::<crate::apps::record::AppRecord>(Table::Apps)?
            .len();
        count += self.shares()?.len();
        count += self.update_policy()?.map_or(0, |_| 1);
        count += self.update_check()?.map_or(0, |_| 1);
        count += self.update_install()?.map_or(0, |_| 1);
        count += self.update_history()?.len();
        count += self.list::<serde_json::Value>(Table::Updates)?.len();
        for item in self.meta.iter() {
            let (k, v) = item?;
            decode::<serde_json::Value>(Table::Meta, &k, &v)?;
            count += 1;
        }
        if self.schema_version()? != CURRENT_VERSION {
            return Err(StoreError::Corrupt {
                table: "meta",
                key: KEY_SCHEMA.into(),
                message: "schema version missing or stale".into(),
            });
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests;
