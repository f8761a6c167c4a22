//! The records the store keeps. Every record is JSON inside sled, so a schema migration is a
//! plain function over these types.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpState {
    /// Base32 secret (RFC 4648, no padding).
    pub secret: String,
    /// False while enrolment awaits its first code.
    pub enabled: bool,
    /// The last time step a code was accepted for; a code is never accepted twice.
    pub last_step: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: String,
    /// PHC string (argon2id).
    pub password_hash: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub totp: Option<TotpState>,
    /// A member may read app logs (they often print admin passwords); admins always may.
    #[serde(default)]
    pub app_logs: bool,
}

impl UserRecord {
    pub fn totp_enabled(&self) -> bool {
        self.totp.as_ref().is_some_and(|t| t.enabled)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Public identifier (not the secret token) for listing and revoking.
    pub id: String,
    pub username: String,
    pub csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSettings {
    pub hostname: Option<String>,
    pub timezone: String,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        Self {
            hostname: None,
            timezone: "Etc/UTC".to_string(),
        }
    }
}

/// A browser that has logged in as a user before; exempt from that account's lockout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDevice {
    pub username: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What a member may do in a shared folder.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

/// A shared folder (schema version 4). Admins see every share; members only those granting them
/// access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRecord {
    pub name: String,
    /// The folder below `<data_dir>/files`: `shared` for the folder from before shares had
    /// names, `shares/<name>` for the others.
    pub folder: String,
    pub grants: std::collections::BTreeMap<String, Access>,
}
