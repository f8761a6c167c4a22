//! Schema versions and the migrations between them.
//!
//! Version N's migration turns a store of version N-1 into version N. Each runs in order and the
//! version is bumped durably after each, so an interrupted upgrade resumes where it stopped.
//! Migrations must be idempotent for that reason.

use super::{StoreError, Table};

pub const CURRENT_VERSION: u32 = 5;

type Migration = fn(&sled::Db) -> Result<(), StoreError>;

/// `MIGRATIONS[i]` upgrades version `i + 1` to version `i + 2`.
pub const MIGRATIONS: [Migration; (CURRENT_VERSION - 1) as usize] =
    [v2_device_settings, v3_apps, v4_shares, v5_updates];

/// Version 1 kept the device name and time zone as two loose `meta` keys; version 2 keeps them as
/// one `settings/device` record so they change together.
fn v2_device_settings(db: &sled::Db) -> Result<(), StoreError> {
    let meta = db.open_tree(Table::Meta.name())?;
    let settings = db.open_tree(Table::Settings.name())?;
    let hostname = meta
        .get("hostname")?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let timezone = meta
        .get("timezone")?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    if settings.get("device")?.is_none() && (hostname.is_some() || timezone.is_some()) {
        let record = super::DeviceSettings {
            hostname,
            timezone: timezone.unwrap_or_else(|| "Etc/UTC".into()),
        };
        settings.insert(
            "device",
            serde_json::to_vec(&record).map_err(StoreError::Encode)?,
        )?;
    }
    meta.remove("hostname")?;
    meta.remove("timezone")?;
    Ok(())
}

/// Version 3 adds the `apps` tree (installed apps with their plans and consents). Opening the
/// tree creates it; nothing to convert.
fn v3_apps(db: &sled::Db) -> Result<(), StoreError> {
    db.open_tree(Table::Apps.name())?;
    Ok(())
}

/// Version 5 adds the `updates` tree (over-the-air update policy, state and history). Opening
/// the tree creates it; nothing to convert.
fn v5_updates(db: &sled::Db) -> Result<(), StoreError> {
    db.open_tree(Table::Updates.name())?;
    Ok(())
}

/// What a brand-new store starts with: the `shared` folder (no member grants yet).
pub fn seed_new_store(db: &sled::Db) -> Result<(), StoreError> {
    v4_shares(db)
}

/// Version 4 gives shared folders names and member grants. The one `shared` folder every user
/// could write before becomes the share `shared`, granting write access to every member that
/// existed (admins see all shares anyway), so nobody loses access in the upgrade.
fn v4_shares(db: &sled::Db) -> Result<(), StoreError> {
    let shares = db.open_tree(Table::Shares.name())?;
    if shares.get("shared")?.is_some() {
        return Ok(());
    }
    let users = db.open_tree(Table::Users.name())?;
    let mut grants = std::collections::BTreeMap::new();
    for item in users.iter() {
        let (key, value) = item?;
        let user: super::UserRecord = super::decode(Table::Users, &key, &value)?;
        if user.role == super::Role::Member {
            grants.insert(user.username, super::Access::Write);
        }
    }
    let record = super::ShareRecord {
        name: "shared".into(),
        folder: "shared".into(),
        grants,
    };
    shares.insert("shared", super::encode(&record)?)?;
    Ok(())
}
