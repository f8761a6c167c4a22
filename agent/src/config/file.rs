//! One drop-in file's keys, in sections (`[server]`, `[apps]`, `[update]`, …), every key
//! optional and unknown keys refused; how files merge; and the flat keys of earlier releases,
//! still read with a deprecation warning.
//!
//! Files merge as TOML tables, generically: a later file's key wins, sections merge key by key,
//! arrays are replaced whole. No per-key merge code: adding a key is adding a field.

use super::ConfigError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// One drop-in file (or the merge of several).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub data_dir: Option<PathBuf>,
    pub setup_code_file: Option<PathBuf>,
    pub hostname: Option<String>,
    pub status_interval_secs: Option<u64>,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub sessions: SessionsSection,
    #[serde(default)]
    pub system: SystemSection,
    #[serde(default)]
    pub disks: DisksSection,
    #[serde(default)]
    pub apps: AppsSection,
    #[serde(default)]
    pub network: NetworkSection,
    #[serde(default)]
    pub update: UpdateSection,
}

/// `[server]`: the HTTPS listeners.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Option<Vec<SocketAddr>>,
    pub redirect_listen: Option<Vec<SocketAddr>>,
    pub metrics_token: Option<String>,
    /// Connections one client address (an IPv6 /64) may hold open at once (default 256, at
    /// most half the total cap, which follows the descriptor limit).
    pub max_connections_per_client: Option<usize>,
}

/// `[sessions]`: how long a sign-in lasts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsSection {
    pub idle_timeout_secs: Option<u64>,
    pub max_age_secs: Option<u64>,
}

/// `[system]`: systemd over D-Bus and the journal.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemSection {
    pub bus_address: Option<String>,
    pub managed_units: Option<Vec<String>>,
    pub journalctl: Option<PathBuf>,
}

/// `[disks]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisksSection {
    pub include_loop: Option<bool>,
    pub protected_paths: Option<Vec<PathBuf>>,
    pub media_dir: Option<PathBuf>,
}

/// `[apps]` (docs/apps.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppsSection {
    /// Container engine socket (Docker's, or Podman's Docker-compatible one).
    pub container_socket: Option<String>,
    /// Root of every app's data (CasaOS's `/DATA/AppData`).
    pub app_data_dir: Option<PathBuf>,
    /// Root of the user's files (CasaOS's `/DATA`).
    pub user_data_dir: Option<PathBuf>,
    /// App stores loaded at start: local CasaOS-layout folders.
    pub stores: Option<Vec<PathBuf>>,
    /// App stores downloaded as zip files (https only).
    pub store_urls: Option<Vec<String>>,
    /// The store a fresh device starts with: its copy in the image (docs/apps.md).
    pub default_store_dir: Option<PathBuf>,
    /// The default store's published zip (https), downloaded when online.
    pub default_store_url: Option<String>,
    /// How often every store is refreshed (default one day).
    pub store_refresh_secs: Option<u64>,
    /// Extra trust anchors (PEM files) for downloading stores, icons and screenshots.
    pub store_ca_files: Option<Vec<PathBuf>>,
    /// Let icon and screenshot URLs reach loopback and private addresses (default false).
    pub media_allow_private: Option<bool>,
    /// How often installed apps' moving tags are checked (and auto-updates run; default 6 h).
    pub update_check_secs: Option<u64>,
}

/// `[network]` (docs/network.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Seconds before an unconfirmed network change rolls back (default 60).
    pub rollback_secs: Option<u32>,
    /// Open a setup hotspot on an unclaimed device without a network (default on, off in dev).
    pub setup_hotspot: Option<bool>,
    /// Seconds after start before the setup hotspot check (default 30; 0 checks at once).
    pub setup_hotspot_delay_secs: Option<u64>,
}

/// `[update]` (docs/updates.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSection {
    /// Base URL (http or https) of the OTA repository; empty or unset: updates not configured.
    pub repo_url: Option<String>,
    /// Release channel (default "stable"; the policy can change it).
    pub channel: Option<String>,
    /// The OTA root public key (PEM).
    pub root_key: Option<PathBuf>,
    /// What the running image is (`release.json`).
    pub release_file: Option<PathBuf>,
    /// How long the health gate waits for the system to come up after a trial boot.
    pub health_timeout_secs: Option<u64>,
    /// How often the repository is checked (default one day).
    pub check_secs: Option<u64>,
    /// Directory holding the slot partitions/files `root-a`, `root-b`, `boot-a`, …
    pub slot_dir: Option<PathBuf>,
    /// Boot-control backend instead of the one release.json names: systemd-boot, rpi, uboot,
    /// file (the type release.json's `boot` has; an unknown name is an error naming the file).
    pub boot: Option<hearth_ota::release::BootBackend>,
    /// Directory of the boot control: the file backend's state, the Pi `bootconfig` partition.
    pub boot_dir: Option<PathBuf>,
    /// Where the booted slot is read from (default /proc/cmdline).
    pub cmdline_file: Option<PathBuf>,
    /// The EFI system partition (default /efi).
    pub esp: Option<PathBuf>,
    /// Units the health gate requires active.
    pub health_units: Option<Vec<String>>,
    /// Whether the health gate requires NetworkManager to report an address (default true).
    pub health_network: Option<bool>,
    /// Whether the health gate requires the container engine to answer (default true). Docker
    /// starts on demand (socket activation): the gate's ping is what starts it on a trial boot.
    pub health_engine: Option<bool>,
    /// Extra trust anchors (PEM files) for an https repository.
    pub ca_files: Option<Vec<PathBuf>>,
    /// Newest bundle format installed (default 3): its index is read, newer bundles refused.
    pub bundle_format: Option<u16>,
}

/// Flat keys of earlier releases → `(section, key)` today. Also the table in docs/agent.md.
pub const LEGACY_KEYS: [(&str, &str, &str); 38] = [
    ("listen", "server", "listen"),
    ("redirect_listen", "server", "redirect_listen"),
    ("metrics_token", "server", "metrics_token"),
    (
        "http_max_connections_per_client",
        "server",
        "max_connections_per_client",
    ),
    ("session_idle_timeout_secs", "sessions", "idle_timeout_secs"),
    ("session_max_age_secs", "sessions", "max_age_secs"),
    ("system_bus_address", "system", "bus_address"),
    ("managed_units", "system", "managed_units"),
    ("journalctl", "system", "journalctl"),
    ("disks_include_loop", "disks", "include_loop"),
    ("protected_paths", "disks", "protected_paths"),
    ("media_dir", "disks", "media_dir"),
    ("container_socket", "apps", "container_socket"),
    ("app_data_dir", "apps", "app_data_dir"),
    ("user_data_dir", "apps", "user_data_dir"),
    ("app_stores", "apps", "stores"),
    ("app_store_urls", "apps", "store_urls"),
    ("app_store_refresh_secs", "apps", "store_refresh_secs"),
    ("app_store_ca_files", "apps", "store_ca_files"),
    ("app_media_allow_private", "apps", "media_allow_private"),
    ("app_update_check_secs", "apps", "update_check_secs"),
    ("network_rollback_secs", "network", "rollback_secs"),
    ("setup_hotspot", "network", "setup_hotspot"),
    (
        "setup_hotspot_delay_secs",
        "network",
        "setup_hotspot_delay_secs",
    ),
    ("update_repo_url", "update", "repo_url"),
    ("update_channel", "update", "channel"),
    ("update_root_key", "update", "root_key"),
    ("update_release_file", "update", "release_file"),
    (
        "update_health_timeout_secs",
        "update",
        "health_timeout_secs",
    ),
    ("update_check_secs", "update", "check_secs"),
    ("update_slot_dir", "update", "slot_dir"),
    ("update_boot", "update", "boot"),
    ("update_boot_dir", "update", "boot_dir"),
    ("update_cmdline_file", "update", "cmdline_file"),
    ("update_esp", "update", "esp"),
    ("update_health_units", "update", "health_units"),
    ("update_health_network", "update", "health_network"),
    ("update_ca_files", "update", "ca_files"),
];

/// A flat key of an earlier release found in a file (read as its new name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecated {
    pub file: PathBuf,
    pub old: &'static str,
    /// `section.key`.
    pub new: String,
}

/// Reads one drop-in: its table with flat keys of earlier releases moved into their sections,
/// checked on its own (so an unknown key names this file), and the deprecated keys it used.
pub fn read(path: &Path) -> Result<(toml::Table, Vec<Deprecated>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parse_error = |message: String| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| parse_error(e.message().to_string()))?;
    let deprecated = lift_legacy(&mut table, path).map_err(parse_error)?;
    typed(&table).map_err(parse_error)?;
    Ok((table, deprecated))
}

/// Moves every flat key of an earlier release into its section. Both spellings in one file is
/// an error (which one was meant is unclear).
fn lift_legacy(table: &mut toml::Table, path: &Path) -> Result<Vec<Deprecated>, String> {
    let mut found = Vec::new();
    for (old, section, key) in LEGACY_KEYS {
        let Some(value) = table.remove(old) else {
            continue;
        };
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(section_table) = entry else {
            return Err(format!("{section} must be a table ([{section}])"));
        };
        if section_table.contains_key(key) {
            return Err(format!(
                "{old} (deprecated) and {section}.{key} are both set; keep {section}.{key}"
            ));
        }
        section_table.insert(key.to_string(), value);
        found.push(Deprecated {
            file: path.to_path_buf(),
            old,
            new: format!("{section}.{key}"),
        });
    }
    Ok(found)
}

/// The typed keys of `table`; the error names the section and key.
pub fn typed(table: &toml::Table) -> Result<ConfigFile, String> {
    serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
        let at = e.path().to_string();
        let message = e.into_inner().message().to_string();
        if at == "." || at.is_empty() {
            message
        } else {
            format!("{at}: {message}")
        }
    })
}

/// Overlays `later` on `into`: a later key wins, sections (tables) merge key by key.
pub fn merge(into: &mut toml::Table, later: toml::Table) {
    for (key, value) in later {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(mine)), toml::Value::Table(theirs)) => merge(mine, theirs),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}
