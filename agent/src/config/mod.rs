//! Agent configuration: built-in defaults, then TOML drop-ins, then command-line flags.
//!
//! Drop-ins are read from `/usr/lib/hearth/agent.d/` and then `/etc/hearth/agent.d/`; a file in
//! a later directory replaces a file of the same name in an earlier one (systemd's rule), and
//! the surviving files apply in file-name order, later keys overriding earlier ones (section by
//! section, see [`file`]). Every file is checked on its own, so an unknown key is reported with
//! the file that holds it. Flat keys of earlier releases are still read, with a warning in the
//! log naming the file and the key's new place (the mapping is `file::LEGACY_KEYS`).

pub mod file;

use file::ConfigFile;
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
    pub boot: Option<hearth_ota::release::BootBackend>,
    pub boot_dir: Option<PathBuf>,
    pub cmdline_file: PathBuf,
    pub esp: PathBuf,
    pub health_units: Vec<String>,
    pub health_network: bool,
    /// The gate pings the container engine (`apps.container_socket`); its socket activation
    /// starts Docker on a trial boot, so an update whose engine cannot start is rolled back.
    pub health_engine: bool,
    pub ca_files: Vec<PathBuf>,
    /// The newest OTA bundle format this device installs (1–3, default 3): the check reads the
    /// index naming bundles of that format, the install refuses a newer one. Below 3 only to
    /// stand in for a device on an older release (ci/e2e-ota, docs/testing.md).
    pub bundle_format: u16,
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
    /// `apps.default_store_dir` and `apps.default_store_url`.
    pub default_store: Option<crate::apps::catalog::DefaultStore>,
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
        let mut merged = toml::Table::new();
        for path in dropin_files(&dirs)? {
            let (table, deprecated) = file::read(&path)?;
            for d in deprecated {
                tracing::warn!(
                    file = %d.file.display(),
                    "configuration key {} is deprecated; write it as {} (docs/agent.md)",
                    d.old,
                    d.new
                );
            }
            file::merge(&mut merged, table);
        }
        let merged = file::typed(&merged).map_err(ConfigError::Invalid)?;
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
        let server = resolve_server(file.server, flags)?;
        let sessions = &file.sessions;
        let system = file.system;
        let setup_code_file = match (flags.dev, file.setup_code_file) {
            (false, Some(path)) => path,
            _ => data_dir.join("setup-code"),
        };
        let network = file.network;
        let network_rollback_secs = network.rollback_secs.unwrap_or(60);
        if !(1..=3600).contains(&network_rollback_secs) {
            return Err(ConfigError::Invalid(
                "network.rollback_secs must be 1–3600".into(),
            ));
        }
        Ok(Config {
            update: resolve_update(file.update)?,
            apps: resolve_apps(file.apps, &data_dir, flags.dev)?,
            dev: flags.dev,
            listen: server.listen,
            redirect_listen: server.redirect_listen,
            metrics_token: server.metrics_token,
            http_max_connections_per_client: server.max_connections_per_client,
            setup_code_file,
            hostname: file.hostname,
            status_interval: secs(file.status_interval_secs, 2, "status_interval_secs")?,
            session_idle_timeout: secs(
                sessions.idle_timeout_secs,
                7 * 24 * 3600,
                "sessions.idle_timeout_secs",
            )?,
            session_max_age: secs(
                sessions.max_age_secs,
                30 * 24 * 3600,
                "sessions.max_age_secs",
            )?,
            system_bus_address: system.bus_address,
            managed_units: system.managed_units.unwrap_or_else(|| {
                crate::system::DEFAULT_MANAGED_UNITS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            }),
            journalctl: system
                .journalctl
                .unwrap_or_else(|| PathBuf::from("journalctl")),
            disks_include_loop: file.disks.include_loop.unwrap_or(false),
            protected_paths: file.disks.protected_paths.unwrap_or_default(),
            media_dir: file
                .disks
                .media_dir
                .unwrap_or_else(|| data_dir.join("media")),
            network_rollback_secs,
            setup_hotspot: network.setup_hotspot.unwrap_or(!flags.dev),
            setup_hotspot_delay: Duration::from_secs(
                network.setup_hotspot_delay_secs.unwrap_or(30),
            ),
            data_dir,
        })
    }
}

/// A positive number of seconds, `default` when unset.
fn secs(v: Option<u64>, default: u64, name: &str) -> Result<Duration, ConfigError> {
    match v.unwrap_or(default) {
        0 => Err(ConfigError::Invalid(format!("{name} must be positive"))),
        s => Ok(Duration::from_secs(s)),
    }
}

/// `[server]` with the flags applied.
struct Server {
    listen: Vec<SocketAddr>,
    redirect_listen: Vec<SocketAddr>,
    metrics_token: Option<String>,
    max_connections_per_client: Option<usize>,
}

fn resolve_server(s: file::ServerSection, flags: &Overrides) -> Result<Server, ConfigError> {
    let default_listen: SocketAddr = if flags.dev {
        SocketAddr::from(([127, 0, 0, 1], 8443))
    } else {
        SocketAddr::from(([0u16; 8], 443))
    };
    let listen = if flags.listen.is_empty() {
        s.listen.unwrap_or_else(|| vec![default_listen])
    } else {
        flags.listen.clone()
    };
    if listen.is_empty() {
        return Err(ConfigError::Invalid(
            "server.listen must name at least one address".into(),
        ));
    }
    let redirect_listen = if flags.dev {
        Vec::new()
    } else {
        s.redirect_listen
            .unwrap_or_else(|| vec![SocketAddr::from(([0u16; 8], 80))])
    };
    if let Some(token) = &s.metrics_token
        && token.len() < 16
    {
        return Err(ConfigError::Invalid(
            "server.metrics_token must be at least 16 characters".into(),
        ));
    }
    Ok(Server {
        listen,
        redirect_listen,
        metrics_token: s.metrics_token,
        max_connections_per_client: s.max_connections_per_client,
    })
}

fn resolve_apps(
    a: file::AppsSection,
    data_dir: &Path,
    dev: bool,
) -> Result<AppsConfig, ConfigError> {
    let apps = AppsConfig {
        container_socket: a
            .container_socket
            .unwrap_or_else(|| "/var/run/docker.sock".into()),
        app_data_dir: a.app_data_dir.unwrap_or_else(|| data_dir.join("app-data")),
        user_data_dir: a.user_data_dir.unwrap_or_else(|| {
            if dev {
                data_dir.join("user-data")
            } else {
                PathBuf::from("/srv/hearth")
            }
        }),
        projects_dir: data_dir.join("apps"),
        stores: a.stores.unwrap_or_default(),
        store_urls: a.store_urls.unwrap_or_default(),
        default_store: a
            .default_store_dir
            .map(|dir| crate::apps::catalog::DefaultStore {
                dir,
                url: a.default_store_url.clone().filter(|u| !u.is_empty()),
            }),
        store_refresh: secs(a.store_refresh_secs, 24 * 3600, "apps.store_refresh_secs")?,
        ca_files: a.store_ca_files.unwrap_or_default(),
        media_allow_private: a.media_allow_private.unwrap_or(false),
        update_check: secs(a.update_check_secs, 6 * 3600, "apps.update_check_secs")?,
    };
    for url in apps
        .store_urls
        .iter()
        .chain(apps.default_store.iter().filter_map(|d| d.url.as_ref()))
    {
        crate::apps::catalog::check_store_url(url).map_err(ConfigError::Invalid)?;
    }
    if a.default_store_url.is_some_and(|u| !u.is_empty()) && apps.default_store.is_none() {
        return Err(ConfigError::Invalid(
            "apps.default_store_url needs apps.default_store_dir (the copy served until it is downloaded)".into(),
        ));
    }
    for p in [&apps.app_data_dir, &apps.user_data_dir] {
        if !p.is_absolute() && !dev {
            return Err(ConfigError::Invalid(format!(
                "apps.app_data_dir and apps.user_data_dir must be absolute, got {}",
                p.display()
            )));
        }
    }
    Ok(apps)
}

fn resolve_update(u: file::UpdateSection) -> Result<UpdateConfig, ConfigError> {
    let update = UpdateConfig {
        repo_url: u.repo_url.filter(|u| !u.trim().is_empty()),
        channel: u.channel.unwrap_or_else(|| "stable".into()),
        root_key: u
            .root_key
            .unwrap_or_else(|| PathBuf::from("/usr/lib/hearth/ota-root.pub")),
        release_file: u
            .release_file
            .unwrap_or_else(|| PathBuf::from("/usr/lib/hearth/release.json")),
        health_timeout: secs(u.health_timeout_secs, 300, "update.health_timeout_secs")?,
        check_every: secs(u.check_secs, 24 * 3600, "update.check_secs")?,
        slot_dir: u
            .slot_dir
            .unwrap_or_else(|| PathBuf::from("/dev/disk/by-partlabel")),
        boot: u.boot,
        boot_dir: u.boot_dir,
        cmdline_file: u
            .cmdline_file
            .unwrap_or_else(|| PathBuf::from("/proc/cmdline")),
        esp: u.esp.unwrap_or_else(|| PathBuf::from("/efi")),
        health_units: u
            .health_units
            .unwrap_or_else(|| vec!["docker.socket".into(), "NetworkManager.service".into()]),
        health_network: u.health_network.unwrap_or(true),
        health_engine: u.health_engine.unwrap_or(true),
        ca_files: u.ca_files.unwrap_or_default(),
        bundle_format: u
            .bundle_format
            .unwrap_or(hearth_ota::format::FORMAT_VERSION_PAGED),
    };
    if !(hearth_ota::format::FORMAT_VERSION..=hearth_ota::format::FORMAT_VERSION_PAGED)
        .contains(&update.bundle_format)
    {
        return Err(ConfigError::Invalid(format!(
            "update.bundle_format must be 1, 2 or 3, got {}",
            update.bundle_format
        )));
    }
    if let Some(url) = &update.repo_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ConfigError::Invalid(format!(
            "update.repo_url must be an http or https URL, got {url:?}"
        )));
    }
    if !crate::update::channel_ok(&update.channel) {
        return Err(ConfigError::Invalid(format!(
            "update.channel {:?} is not a valid channel name",
            update.channel
        )));
    }
    Ok(update)
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

    /// `[update] boot` is release.json's type: every name hearth-ota has loads as that
    /// backend; an unknown one is an error naming the file and the key.
    #[test]
    fn update_boot_is_a_backend_hearth_ota_has() {
        use hearth_ota::release::BootBackend;
        let tmp = tempfile::tempdir().expect("tmp");
        let overrides = Overrides {
            config_dirs: vec![tmp.path().to_path_buf()],
            ..Overrides::default()
        };
        for b in BootBackend::ALL {
            write(
                tmp.path(),
                "10.toml",
                &format!("[update]\nboot = \"{b}\"\n"),
            );
            assert_eq!(Config::load(&overrides).expect("load").update.boot, Some(b));
        }
        write(tmp.path(), "10.toml", "[update]\nboot = \"u-boot\"\n");
        assert_eq!(
            Config::load(&overrides).expect("alias").update.boot,
            Some(BootBackend::UBoot)
        );
        write(tmp.path(), "10.toml", "[update]\nboot = \"grub\"\n");
        let text = Config::load(&overrides).expect_err("grub").to_string();
        assert!(
            text.contains("10.toml") && text.contains("grub") && text.contains("uboot"),
            "{text}"
        );
    }

    /// The image's own drop-in loads, and names the bundled store as the default store.
    #[test]
    fn the_images_drop_in_names_the_bundled_default_store() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../overlays/base/usr/lib/hearth/agent.d");
        let cfg = Config::load(&Overrides {
            config_dirs: vec![dir],
            ..Overrides::default()
        })
        .expect("the image's drop-in loads");
        let d = cfg.apps.default_store.expect("a default store");
        assert_eq!(d.dir, PathBuf::from("/usr/share/hearth/stores/casaos"));
        assert!(d.url.is_some_and(|u| u.starts_with("https://")));
        let bad = tempfile::tempdir().expect("tmp");
        write(
            bad.path(),
            "10-device.toml",
            "[apps]\ndefault_store_url = \"https://store.example/main.zip\"\n",
        );
        let err = Config::load(&Overrides {
            config_dirs: vec![bad.path().to_path_buf()],
            ..Overrides::default()
        })
        .expect_err("a URL without the image's copy");
        assert!(err.to_string().contains("default_store_dir"), "{err}");
    }

    #[test]
    fn sections_merge_key_by_key_across_files() {
        let tmp = tempfile::tempdir().expect("tmp");
        write(
            tmp.path(),
            "10-device.toml",
            "data_dir = \"/var/lib/a\"\n[server]\nlisten = [\"[::]:443\"]\n\
             [update]\nrepo_url = \"https://updates.example/\"\nchannel = \"beta\"\n",
        );
        write(
            tmp.path(),
            "50-owner.toml",
            "[update]\nchannel = \"stable\"\n[apps]\nstores = [\"/srv/store\"]\n\
             [network]\nrollback_secs = 90\n[disks]\ninclude_loop = true\n",
        );
        let cfg = Config::load(&Overrides {
            config_dirs: vec![tmp.path().to_path_buf()],
            ..Overrides::default()
        })
        .expect("load");
        assert_eq!(
            cfg.listen,
            vec!["[::]:443".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(
            cfg.update.repo_url.as_deref(),
            Some("https://updates.example/"),
            "kept from the earlier file's section"
        );
        assert_eq!(cfg.update.channel, "stable", "the later file wins");
        assert_eq!(cfg.apps.stores, vec![PathBuf::from("/srv/store")]);
        assert_eq!(cfg.network_rollback_secs, 90);
        assert!(cfg.disks_include_loop);
    }

    #[test]
    fn bundle_format_defaults_to_3_and_only_known_formats_are_accepted() {
        let tmp = tempfile::tempdir().expect("tmp");
        let overrides = Overrides {
            config_dirs: vec![tmp.path().to_path_buf()],
            ..Overrides::default()
        };
        write(
            tmp.path(),
            "10-device.toml",
            "[update]\nchannel = \"beta\"\n",
        );
        assert_eq!(
            Config::load(&overrides).expect("load").update.bundle_format,
            3
        );
        write(tmp.path(), "90-older.toml", "[update]\nbundle_format = 2\n");
        assert_eq!(
            Config::load(&overrides).expect("load").update.bundle_format,
            2
        );
        for bad in [0, 4] {
            write(
                tmp.path(),
                "90-older.toml",
                &format!("[update]\nbundle_format = {bad}\n"),
            );
            let err = Config::load(&overrides)
                .expect_err("unknown format")
                .to_string();
            assert!(
                err.contains("update.bundle_format must be 1, 2 or 3"),
                "{err}"
            );
        }
    }

    #[test]
    fn every_legacy_key_lands_on_a_key_of_its_section() {
        for (old, section, key) in file::LEGACY_KEYS {
            let mut table: toml::Table = toml::from_str(&format!("[{section}]\n")).expect("toml");
            let (_, sample) = sample_value(old);
            table
                .get_mut(section)
                .and_then(toml::Value::as_table_mut)
                .expect("section")
                .insert(key.to_string(), sample);
            file::typed(&table).unwrap_or_else(|e| panic!("{old} → {section}.{key}: {e}"));
        }
    }

    /// A value of the right type for each legacy key, by its name.
    fn sample_value(key: &str) -> (&str, toml::Value) {
        let v = match key {
            k if k.ends_with("listen") => toml::Value::Array(vec!["127.0.0.1:1".into()]),
            k if k.ends_with("_secs") || k.ends_with("_per_client") => toml::Value::Integer(5),
            "disks_include_loop"
            | "setup_hotspot"
            | "app_media_allow_private"
            | "update_health_network" => toml::Value::Boolean(true),
            "managed_units"
            | "protected_paths"
            | "app_stores"
            | "app_store_urls"
            | "app_store_ca_files"
            | "update_health_units"
            | "update_ca_files" => toml::Value::Array(Vec::new()),
            "update_boot" => toml::Value::String("uboot".into()),
            _ => toml::Value::String("x".into()),
        };
        (key, v)
    }

    #[test]
    fn flat_keys_of_earlier_releases_are_read_with_a_warning_in_the_log() {
        let tmp = tempfile::tempdir().expect("tmp");
        write(
            tmp.path(),
            "10-old.toml",
            "update_repo_url = \"https://u.example/\"\nnetwork_rollback_secs = 30\n\
             listen = [\"127.0.0.1:9443\"]\n",
        );
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let writer = {
            let log = log.clone();
            move || LogWriter(log.clone())
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        let cfg = tracing::subscriber::with_default(subscriber, || {
            Config::load(&Overrides {
                config_dirs: vec![tmp.path().to_path_buf()],
                ..Overrides::default()
            })
        })
        .expect("old keys still load");
        assert_eq!(cfg.update.repo_url.as_deref(), Some("https://u.example/"));
        assert_eq!(cfg.network_rollback_secs, 30);
        assert_eq!(
            cfg.listen,
            vec!["127.0.0.1:9443".parse::<SocketAddr>().expect("addr")]
        );
        let text = String::from_utf8(log.lock().expect("log").clone()).expect("utf-8");
        for (old, new) in [
            ("update_repo_url", "update.repo_url"),
            ("network_rollback_secs", "network.rollback_secs"),
            ("listen", "server.listen"),
        ] {
            assert!(
                text.lines().any(|l| l.contains("WARN")
                    && l.contains(&format!("{old} is deprecated; write it as {new}"))
                    && l.contains("10-old.toml")),
                "no warning for {old}: {text}"
            );
        }
    }

    struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for LogWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn unknown_keys_in_sections_and_both_spellings_are_refused_naming_the_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        let overrides = Overrides {
            config_dirs: vec![tmp.path().to_path_buf()],
            ..Overrides::default()
        };
        for (text, expected) in [
            ("[update]\nchanel = \"beta\"\n", "chanel"),
            ("[updates]\nchannel = \"beta\"\n", "updates"),
            (
                "update_channel = \"beta\"\n[update]\nchannel = \"stable\"\n",
                "update_channel (deprecated) and update.channel are both set",
            ),
            (
                "update = 3\nupdate_channel = \"beta\"\n",
                "update must be a table",
            ),
            (
                "[network]\nrollback_secs = \"soon\"\n",
                "network.rollback_secs",
            ),
        ] {
            write(tmp.path(), "60-bad.toml", text);
            let err = Config::load(&overrides).expect_err(text).to_string();
            assert!(
                err.contains("60-bad.toml") && err.contains(expected),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn shipped_drop_ins_load_in_sections_without_deprecated_keys() {
        let overlays = Path::new(env!("CARGO_MANIFEST_DIR")).join("../overlays");
        let dirs: Vec<PathBuf> = ["base", "rpi"]
            .iter()
            .map(|o| overlays.join(o).join("usr/lib/hearth/agent.d"))
            .collect();
        let files = dropin_files(&dirs).expect("list");
        assert_eq!(files.len(), 2, "{files:?}");
        for path in &files {
            let (_, deprecated) = file::read(path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(deprecated, Vec::new(), "{}", path.display());
        }
        let cfg = Config::load(&Overrides {
            config_dirs: dirs,
            ..Overrides::default()
        })
        .expect("the image's configuration loads");
        assert_eq!(
            cfg.listen,
            vec!["[::]:443".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(
            cfg.redirect_listen,
            vec!["[::]:80".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(
            cfg.setup_code_file,
            PathBuf::from("/boot/config/hearth-setup.txt")
        );
        // The Pi's tryboot control and the initramfs' refusal records are on bootconfig, where
        // boot-config.mount mounts it (the backend's default /boot/bootconfig is not mounted).
        assert_eq!(cfg.update.boot_dir, Some(PathBuf::from("/boot/config")));
        assert_eq!(cfg.update.esp, PathBuf::from("/boot/config"));
    }
}
