//! The shared state every request handler sees.

use crate::accounts::Accounts;
use crate::apps::catalog::Catalog;
use crate::apps::lifecycle::Apps;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::events::Events;
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub config: Config,
    pub store: Store,
    pub accounts: Accounts,
    pub apps: Apps,
    pub catalog: Catalog,
    pub clock: SharedClock,
    pub events: Events,
    pub metrics: Metrics,
    pub tls: Arc<crate::tls::DeviceTls>,
    pub files: crate::files::FileRoots,
    pub jobs: Arc<crate::jobs::Jobs>,
    pub system: Arc<dyn crate::system::SystemControl>,
    pub unit_policy: crate::system::UnitPolicy,
    pub journal: crate::system::journal::Journal,
    pub disks: crate::disks::Service,
    pub network: Arc<dyn crate::network::NetworkControl>,
    pub updates: crate::update::Service,
    pub started: Instant,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// The device's name: the one set at claim, else the configured one, else the system's.
    pub fn hostname(&self) -> String {
        let stored = self.store.device_settings().ok().and_then(|s| s.hostname);
        stored
            .or_else(|| self.config.hostname.clone())
            .unwrap_or_else(system_hostname)
    }

    /// The shared folders (records and folders kept together).
    pub fn shares(&self) -> crate::files::share_admin::Shares<'_> {
        crate::files::share_admin::Shares {
            store: &self.store,
            roots: &self.files,
            accounts: &self.accounts,
        }
    }

    /// The device's name, time zone and NTP setting (the system and the store kept together).
    pub fn device_settings(&self) -> crate::system::settings::Settings<'_> {
        crate::system::settings::Settings {
            system: self.system.as_ref(),
            store: &self.store,
        }
    }

    pub fn timezone(&self) -> String {
        self.store
            .device_settings()
            .map(|s| s.timezone)
            .unwrap_or_else(|_| "Etc/UTC".into())
    }
}

/// The kernel's host name reduced to a valid device name (first label, lower case).
pub fn system_hostname() -> String {
    let raw = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let label = raw
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if crate::validate::hostname(&label).is_ok() {
        label
    } else {
        "hearth".to_string()
    }
}
