//! The operating-system boundaries the agent runs on, chosen by the caller: the daemon builds
//! the real adapters ([`Adapters::real`]), the in-process tests swap in fakes field by field
//! ([`Adapters::fakes`] for all of them). Nothing below `build_state` picks an adapter itself.

use crate::apps::runtime::ContainerRuntime;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::disks::BlockDevices;
use crate::network::NetworkControl;
use crate::system::SystemControl;
use std::sync::Arc;
use std::time::Duration;

/// One value per boundary (see ARCHITECTURE.md, "OS boundaries").
#[derive(Debug, Clone)]
pub struct Adapters {
    pub clock: SharedClock,
    /// The container engine (Docker's API, or Podman's compatible one).
    pub containers: Arc<dyn ContainerRuntime>,
    /// systemd, logind, hostnamed, timedated; also starts and stops mount units.
    pub system: Arc<dyn SystemControl>,
    /// NetworkManager.
    pub network: Arc<dyn NetworkControl>,
    /// Block devices: listing (sysfs, blkid, SMART), formatting, eject.
    pub block_devices: Arc<dyn BlockDevices>,
}

impl Adapters {
    /// The real adapters for `config`: nothing is connected yet (D-Bus and the container
    /// socket are opened lazily, on first use).
    pub fn real(config: &Config, clock: SharedClock) -> anyhow::Result<Self> {
        let containers =
            crate::apps::runtime::docker::DockerRuntime::lazy(&config.apps.container_socket)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self {
            clock,
            containers: Arc::new(containers),
            system: Arc::new(crate::system::dbus::DbusSystem::new(
                config.system_bus_address.clone(),
                crate::system::UnitPolicy::new(config.managed_units.clone()),
            )),
            network: Arc::new(crate::network::nm::NmNetwork::new(
                config.system_bus_address.clone(),
                Duration::from_secs(45),
            )),
            block_devices: Arc::new(crate::disks::SysfsDevices::new(
                system_paths(config),
                config.disks_include_loop,
            )),
        })
    }

    /// In-memory fakes for every boundary: the container engine, systemd (mount units change
    /// the fake disks' mount table), NetworkManager and block devices, over `clock`.
    pub fn fakes(clock: SharedClock) -> (Self, Fakes) {
        let block_devices = crate::disks::FakeBlockDevices::default();
        let fakes = Fakes {
            containers: Arc::new(crate::apps::runtime::fake::FakeRuntime::new()),
            system: crate::system::fake::FakeSystem::new(clock.clone())
                .with_block_devices(block_devices.clone()),
            network: Arc::new(crate::network::fake::FakeNetwork::new(true)),
            block_devices,
        };
        let adapters = Self {
            clock,
            containers: fakes.containers.clone(),
            system: Arc::new(fakes.system.clone()),
            network: fakes.network.clone(),
            block_devices: Arc::new(fakes.block_devices.clone()),
        };
        (adapters, fakes)
    }
}

/// Handles on the fakes of [`Adapters::fakes`], to arrange and inspect them.
#[derive(Debug, Clone)]
pub struct Fakes {
    pub containers: Arc<crate::apps::runtime::fake::FakeRuntime>,
    pub system: crate::system::fake::FakeSystem,
    pub network: Arc<crate::network::fake::FakeNetwork>,
    pub block_devices: crate::disks::FakeBlockDevices,
}

/// Paths whose disks count as the system's: the root, `/var`, the boot partitions, the data
/// directory and the configured extra ones.
fn system_paths(config: &Config) -> Vec<std::path::PathBuf> {
    ["/", "/var", "/boot", "/boot/efi", "/efi"]
        .iter()
        .map(std::path::PathBuf::from)
        .chain([config.data_dir.clone()])
        .chain(config.protected_paths.iter().cloned())
        .collect()
}
