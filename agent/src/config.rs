//! Agent configuration: built-in defaults, then TOML drop-ins, then command-line flags.
//!
//! Drop-ins are read from `/usr/lib/hearth/agent.d/` and then `/etc/hearth/agent.d/`; a file in
//! a later directory replaces a file of the same name in an earlier one (systemd's rule), and
//! the surviving files apply in file-name order, later keys overriding earlier ones. Every file
//! is checked on its own, so an unknown key is reported with the file that holds it.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_DROPIN_DIRS: [&str; 2] = ["/usr/lib/hearth/agent.d", "/etc/hearth/agent.d"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// One drop-in file; every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<Vec<SocketAddr>>,
    pub redirect_listen: Option<Vec<SocketAddr>>,
    pub setup_code_file: Option<PathBuf>,
    pub hostname: Option<String>,
    pub status_interval_secs: Option<u64>,
    pub metrics_token: Option<String>,
    /// Connections one client address (an IPv6 /64) may hold open at once (default 256, at
    /// most half the total cap, which follows the descriptor limit).
    pub http_max_connections_per_client: Option<usize>,
    pub session_idle_timeout_secs: Option<u64>,
    pub session_max_age_secs: Option<u64>,
    pub system_bus_address: Option<String>,
    pub managed_units: Option<Vec<String>>,
    pub journalctl: Option<PathBuf>,
    pub disks_include_loop: Option<bool>,
    pub protected_paths: Option<Vec<PathBuf>>,
    pub media_dir: Option<PathBuf>,
    /// Container engine socket (Docker's, or Podman's Docker-compatible one).
    pub container_socket: Option<String>,
    /// Root of every app's data (CasaOS's `/DATA/AppData`).
    pub app_data_dir: Option<PathBuf>,
    /// Root of the user's files (CasaOS's `/DATA`).
    pub user_data_dir: Option<PathBuf>,
    /// App stores loaded at start: local CasaOS-layout folders.
    pub app_stores: Option<Vec<PathBuf>>,
    /// Seconds before an unconfirmed network change rolls back (default 60).
    pub network_rollback_secs: Option<u32>,
    /// Open a setup hotspot on an unclaimed device without a network (default on, off in dev).
    pub setup_hotspot: Option<bool>,
    /// Seconds after start before the setup hotspot check (default 30; 0 checks at once).
    pub setup_hotspot_delay_secs: Option<u64>,
    /// App stores downloaded as zip files (https only).
    pub app_store_urls: Option<Vec<String>>,
    /// How often every store is refreshed (default one day).
    pub app_store_refresh_secs: Option<u64>,
    /// Extra trust anchors (PEM files) for downloading stores, icons and screenshots.
    pub app_store_ca_files: Option<Vec<PathBuf>>,
    /// Let icon and screenshot URLs reach loopback and private addresses (default false).
    pub app_media_allow_private: Option<bool>,
    /// How often installed apps' moving tags are checked (and auto-updates run; default 6 h).
    pub app_update_check_secs: Option<u64>,
    /// Base URL (http or https) of the OTA repository; empty or unset: updates not configured.
    pub update_repo_url: Option<String>,
    /// Release channel (default "stable"; the policy can change it).
    pub update_channel: Option<String>,
    /// The OTA root public key (PEM).
    pub update_root_key: Option<PathBuf>,
    /// What the running image is (`release.json`).
    pub update_release_file: Option<PathBuf>,
    /// How long the health gate waits for the system to come up after a trial boot.
    pub update_health_timeout_secs: Option<u64>,
    /// How often the repository is checked (default one day).
    pub update_check_secs: Option<u64>,
    /// Directory holding the slot partitions/files `root-a`, `root-b`, `boot-a`, …
    pub update_slot_dir: Option<PathBuf>,
    /// Boot-control backend instead of the one release.json names: systemd-boot, rpi, file.
    pub update_boot: Option<String>,
    /// Directory of the boot control: the file backend's state, the Pi `bootconfig` partition.
    pub update_boot_dir: Option<PathBuf>,
    /// Where the booted slot is read from (default /proc/cmdline).
    pub update_cmdline_file: Option<PathBuf>,
    /// The EFI system partition (default /efi).
    pub update_esp: Option<PathBuf>,
    /// Units the health gate requires active.
    pub update_health_units: Option<Vec<String>>,
    /// Whether the health gate requires NetworkManager to report an address (default true).
    pub update_health_network: Option<bool>,
    /// Extra trust anchors (PEM files) for an https repository.
    pub update_ca_files: Option<Vec<PathBuf>>,
}

impl ConfigFile {
    /// Overlays `later` on `self`: every key `later` sets wins.
    fn overlay(&mut self, later: ConfigFile) {
        macro_rules! take {
            ($($field:ident),*) => { $( if later.$field.is_some() { self.$field = later.$field; } )* };
        }
        take!(
            data_dir,
            listen,
            redirect_listen,
            setup_code_file,
            hostname,
            status_interval_secs,
            metrics_token,
            http_max_connections_per_client,
            session_idle_timeout_secs,
            session_max_age_secs,
            system_bus_address,
            managed_units,
            journalctl,
            disks_include_loop,
            protected_paths,
            media_dir,
            container_socket,
            app_data_dir,
            user_data_dir,
            app_stores,
            network_rollback_secs,
            setup_hotspot,
            setup_hotspot_delay_secs,
            app_store_urls,
            app_store_refresh_secs,
            app_store_ca_files,
            app_media_allow_private,
            app_update_check_secs,
            update_repo_url,
            update_channel,
            update_root_key,
            update_release_file,
            update_health_timeout_secs,
            update_check_secs,
            update_slot_dir,
            update_boot,
            update_boot_dir,
            update_cmdline_file,
            update_esp,
            update_health_units,
            update_health_network,
            update_ca_files
        );
    }
}

/// Command-line overrides (already parsed by clap).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub dev: bool,
    pub data_dir: Option<PathBuf>,
    pub listen: Vec<SocketAddr>,
    pub config_dirs: Vec<PathBuf>,
}

/// The validated configuration the agent runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub dev: bool,
    pub data_dir: PathBuf,
    pub listen: Vec<SocketAddr>,
    pub redirect_listen: Vec<SocketAddr>,
    pub setup_code_file: PathBuf,
    /// Host name override; `None` means "ask the system".
    pub hostname: Option<String>,
    pub status_interval: Duration,
    pub metrics_token: Option<String>,
    /// Overrides the per-client connection cap (`server::Limits`).
    pub http_max_connections_per_client: Option<usize>,
    pub session_idle_timeout: Duration,
    pub session_max_age: Duration,
    /// D-Bus address of the system bus; `None` means the default system bus.
    pub system_bus_address: Option<String>,
    /// Units the dashboard may show and act on.
    pub managed_units: Vec<String>,
    pub journalctl: PathBuf,
    /// List loop devices as disks (tests use them).
    pub disks_include_loop: bool,
    /// Paths whose disks are the system's and are never formatted (besides the built-in ones:
    /// `/`, `/var`, `/boot`, `/boot/efi`, `/efi` and the data directory).
    pub protected_paths: Vec<PathBuf>,
    /// Where disks are mounted (`<media_dir>/<partition>`).
    pub media_dir: PathBuf,
    pub apps: AppsConfig,
    /// Seconds before an unconfirmed network change is rolled back by NetworkManager.
    pub network_rollback_secs: u32,
    /// Whether an unclaimed device without a network opens a setup hotspot.
    pub setup_hotspot: bool,
    pub setup_hotspot_delay: Duration,
    pub update: UpdateConfig,
}

/// Over-the-air updates (docs/updates.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateConfig {
    /// `None`: updates are not configured (the API answers 409 `update_not_configured`).
    pub repo_url: Option<String>,
    pub channel: String,
    pub root_key: PathBuf,
    pub release_file: PathBuf,
    pub health_timeout: Duration,
    pub check_every: Duration,
    pub slot_dir: PathBuf,
    /// `None`: the backend release.json names.
    pub boot: Option<String>,
    pub boot_dir: Option<PathBuf>,
    pub cmdline_file: PathBuf,
    pub esp: PathBuf,
    pub health_units: Vec<String>,
    pub health_network: bool,
    pub ca_files: Vec<PathBuf>,
}

/// Where apps live and what they run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppsConfig {
    pub container_socket: String,
    pub app_data_dir: PathBuf,
    pub user_data_dir: PathBuf,
    /// Hearth's own per-app project folders (`<data_dir>/apps`).
    pub projects_dir: PathBuf,
    pub stores: Vec<PathBuf>,
    pub store_urls: Vec<String>,
    pub store_refresh: Duration,
    pub ca_files: Vec<PathBuf>,
    pub media_allow_private: bool,
    pub update_check: Duration,
}

impl Config {
    /// Defaults for tests and for `--dev`: everything under `data_dir`.
    pub fn dev(data_dir: &Path) -> Self {
        Self::resolve(
            ConfigFile::default(),
            &Overrides {
                dev: true,
                data_dir: Some(data_dir.to_path_buf()),
                ..Overrides::default()
            },
        )
        .expect("defaults are valid")
    }

    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let dirs: Vec<PathBuf> = if overrides.config_dirs.is_empty() {
            DEFAULT_DROPIN_DIRS.iter().map(PathBuf::from).collect()
        } else {
            overrides.config_dirs.clone()
        };
        let mut merged = ConfigFile::default();
        for path in dropin_files(&dirs)? {
            merged.overlay(parse_file(&path)?);
        }
        Self::resolve(merged, overrides)
    }

    fn resolve(file: ConfigFile, flags: &Overrides) -> Result<Self, ConfigError> {
        let data_dir = flags
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("/var/lib/hearth"));
        if !data_dir.is_absolute() && !flags.dev {
            return Err(ConfigError::Invalid(format!(
                "data_dir must be absolute, got {}",
                data_dir.display()
            )));
        }
        let default_listen: SocketAddr = if flags.dev {
            SocketAddr::from(([127, 0, 0, 1], 8443))
        } else {
            SocketAddr::from(([0u16; 8], 443))
        };
        let listen = if flags.listen.is_empty() {
            file.listen.unwrap_or_else(|| vec![default_listen])
        } else {
            flags.listen.clone()
        };
        if listen.is_empty() {
            return Err(ConfigError::Invalid(
                "listen must name at least one address".into(),
            ));
        }
        let redirect_listen = if flags.dev {
            Vec::new()
        } else {
            file.redirect_listen
                .unwrap_or_else(|| vec![SocketAddr::from(([0u16; 8], 80))])
        };
        let setup_code_file = match (flags.dev, file.setup_code_file) {
            (false, Some(path)) => path,
            _ => data_dir.join("setup-code"),
        };
        let secs = |v: Option<u64>, default: u64, name: &str| -> Result<Duration, ConfigError> {
            match v.unwrap_or(default) {
                0 => Err(ConfigError::Invalid(format!("{name} must be positive"))),
                s => Ok(Duration::from_secs(s)),
            }
        };
        if let Some(token) = &file.metrics_token
            && token.len() < 16
        {
            return Err(ConfigError::Invalid(
                "metrics_token must be at least 16 characters".into(),
            ));
        }
        let media_dir = file.media_dir.unwrap_or_else(|| data_dir.join("media"));
        let network_rollback_secs = file.network_rollback_secs.unwrap_or(60);
        if !(1..=3600).contains(&network_rollback_secs) {
            return Err(ConfigError::Invalid(
                "network_rollback_secs must be 1–3600".into(),
            ));
        }
        let apps = AppsConfig {
            container_socket: file
                .container_socket
                .unwrap_or_else(|| "/var/run/docker.sock".into()),
            app_data_dir: file
                .app_data_dir
                .unwrap_or_else(|| data_dir.join("app-data")),
            user_data_dir: file.user_data_dir.unwrap_or_else(|| {
                if flags.dev {
                    data_dir.join("user-data")
                } else {
                    PathBuf::from("/srv/hearth")
                }
            }),
            projects_dir: data_dir.join("apps"),
            stores: file.app_stores.unwrap_or_default(),
            store_urls: file.app_store_urls.unwrap_or_default(),
            store_refresh: secs(
                file.app_store_refresh_secs,
                24 * 3600,
                "app_store_refresh_secs",
            )?,
            ca_files: file.app_store_ca_files.unwrap_or_default(),
            media_allow_private: file.app_media_allow_private.unwrap_or(false),
            update_check: secs(
                file.app_update_check_secs,
                6 * 3600,
                "app_update_check_secs",
            )?,
        };
        for url in &apps.store_urls {
            crate::apps::catalog::check_store_url(url).map_err(ConfigError::Invalid)?;
        }
        for p in [&apps.app_data_dir, &apps.user_data_dir] {
            if !p.is_absolute() && !flags.dev {
                return Err(ConfigError::Invalid(format!(
                    "app_data_dir and user_data_dir must be absolute, got {}",
                    p.display()
                )));
            }
        }
        let update = UpdateConfig {
            repo_url: file.update_repo_url.filter(|u| !u.trim().is_empty()),
            channel: file.update_channel.unwrap_or_else(|| "stable".into()),
            root_key: file
                .update_root_key
                .unwrap_or_else(|| PathBuf::from("/usr/lib/hearth/ota-root.pub")),
            release_file: file
                .update_release_file
                .unwrap_or_else(|| PathBuf::from("/usr/lib/hearth/release.json")),
            health_timeout: secs(
                file.update_health_timeout_secs,
                300,
                "update_health_timeout_secs",
            )?,
            check_every: secs(file.update_check_secs, 24 * 3600, "update_check_secs")?,
            slot_dir: file
                .update_slot_dir
                .unwrap_or_else(|| PathBuf::from("/dev/disk/by-partlabel")),
            boot: file.update_boot,
            boot_dir: file.update_boot_dir,
            cmdline_file: file
                .update_cmdline_file
                .unwrap_or_else(|| PathBuf::from("/proc/cmdline")),
            esp: file.update_esp.unwrap_or_else(|| PathBuf::from("/efi")),
            health_units: file
                .update_health_units
                .unwrap_or_else(|| vec!["docker.service".into(), "NetworkManager.service".into()]),
            health_network: file.update_health_network.unwrap_or(true),
            ca_files: file.update_ca_files.unwrap_or_default(),
        };
        if let Some(url) = &update.repo_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(format!(
                "update_repo_url must be an http or https URL, got {url:?}"
            )));
        }
        if !crate::update::channel_ok(&update.channel) {
            return Err(ConfigError::Invalid(format!(
                "update_channel {:?} is not a valid channel name",
                update.channel
            )));
        }
        if let Some(b) = &update.boot
            && !crate::update::BOOT_BACKENDS.contains(&b.as_str())
        {
            return Err(ConfigError::Invalid(format!(
                "update_boot must be one of {}, got {b:?}",
                crate::update::BOOT_BACKENDS.join(", ")
            )));
        }
        Ok(Config {
            update,
            apps,
            dev: flags.dev,
            data_dir,
            listen,
            redirect_listen,
            setup_code_file,
            hostname: file.hostname,
            status_interval: secs(file.status_interval_secs, 2, "status_interval_secs")?,
            metrics_token: file.metrics_token,
            http_max_connections_per_client: file.http_max_connections_per_client,
            session_idle_timeout: secs(
                file.session_idle_timeout_secs,
                7 * 24 * 3600,
                "session_idle_timeout_secs",
            )?,
            session_max_age: secs(
                file.session_max_age_secs,
                30 * 24 * 3600,
                "session_max_age_secs",
            )?,
            system_bus_address: file.system_bus_address,
            managed_units: file.managed_units.unwrap_or_else(|| {
                crate::system::DEFAULT_MANAGED_UNITS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            }),
            journalctl: file
                .journalctl
                .unwrap_or_else(|| PathBuf::from("journalctl")),
            disks_include_loop: file.disks_include_loop.unwrap_or(false),
            protected_paths: file.protected_paths.unwrap_or_default(),
            media_dir,
            network_rollback_secs,
            setup_hotspot: file.setup_hotspot.unwrap_or(!flags.dev),
            setup_hotspot_delay: Duration::from_secs(file.setup_hotspot_delay_secs.unwrap_or(30)),
        })
    }
}

/// The drop-in files that apply, in the order they apply.
fn dropin_files(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
    let mut by_name: BTreeMap<std::ffi::OsString, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(ConfigError::Read {
                    path: dir.clone(),
                    source,
                });
            }
        };
        for entry in entries {
            let entry = entry.map_err(|source| ConfigError::Read {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                by_name.insert(entry.file_name(), path);
            }
        }
    }
    Ok(by_name.into_values().collect())
}

fn parse_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join(name), text).expect("write");
    }

    #[test]
    fn later_directory_replaces_same_named_file_and_order_is_by_name() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (usr, etc) = (tmp.path().join("usr"), tmp.path().join("etc"));
        write(
            &usr,
            "10-device.toml",
            "data_dir = \"/var/lib/a\"\nstatus_interval_secs = 5\n",
        );
        write(
            &usr,
            "20-extra.toml",
            "metrics_token = \"0123456789abcdef\"\n",
        );
        write(&etc, "10-device.toml", "data_dir = \"/var/lib/b\"\n");
        let cfg = Config::load(&Overrides {
            config_dirs: vec![usr, etc],
            ..Overrides::default()
        })
        .expect("load");
        assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/b"));
        // The /usr/lib file of the same name was replaced whole, so its interval is gone.
        assert_eq!(cfg.status_interval, Duration::from_secs(2));
        assert_eq!(cfg.metrics_token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(cfg.setup_code_file, PathBuf::from("/var/lib/b/setup-code"));
    }

    #[test]
    fn unknown_key_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        write(tmp.path(), "50-typo.toml", "listn = [\"127.0.0.1:1\"]\n");
        let err = Config::load(&Overrides {
            config_dirs: vec![tmp.path().to_path_buf()],
            ..Overrides::default()
        })
        .expect_err("unknown key must fail");
        let text = err.to_string();
        assert!(
            text.contains("50-typo.toml") && text.contains("listn"),
            "{text}"
        );
    }

    #[test]
    fn flags_override_files() {
        let tmp = tempfile::tempdir().expect("tmp");
        write(tmp.path(), "10.toml", "listen = [\"0.0.0.0:443\"]\n");
        let cfg = Config::load(&Overrides {
            dev: true,
            data_dir: Some(PathBuf::from("/tmp/x")),
            listen: vec!["127.0.0.1:9000".parse().expect("addr")],
            config_dirs: vec![tmp.path().to_path_buf()],
        })
        .expect("load");
        assert_eq!(
            cfg.listen,
            vec!["127.0.0.1:9000".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(cfg.setup_code_file, PathBuf::from("/tmp/x/setup-code"));
        assert!(cfg.redirect_listen.is_empty());
    }

    #[test]
    fn zero_durations_and_short_tokens_are_rejected() {
        let tmp = tempfile::tempdir().expect("tmp");
        write(tmp.path(), "10.toml", "status_interval_secs = 0\n");
        let overrides = Overrides {
            config_dirs: vec![tmp.path().to_path_buf()],
            ..Overrides::default()
        };
        assert!(Config::load(&overrides).is_err());
        write(tmp.path(), "10.toml", "metrics_token = \"short\"\n");
        assert!(Config::load(&overrides).is_err());
        write(tmp.path(), "10.toml", "network_rollback_secs = 0\n");
        assert!(Config::load(&overrides).is_err());
        write(
            tmp.path(),
            "10.toml",
            "network_rollback_secs = 5\nsetup_hotspot_delay_secs = 0\n",
        );
        let cfg = Config::load(&overrides).expect("valid");
        assert_eq!(cfg.network_rollback_secs, 5);
        assert_eq!(cfg.setup_hotspot_delay, Duration::ZERO);
        assert!(cfg.setup_hotspot, "on outside --dev");
    }
}
