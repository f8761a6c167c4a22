//! System status: CPU, memory, load, disks, temperatures, uptime and network throughput.
//!
//! A [`Sampler`] reads the kernel's files under a root it is given (the real `/` on a device, a
//! captured tree in tests) and turns two successive readings into rates. It never writes.

pub mod procfs;
mod sensors;

use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct CoreUsage {
    pub usage_percent: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct CpuStatus {
    pub usage_percent: f64,
    pub cores: Vec<CoreUsage>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Default)]
pub struct MemoryStatus {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub used_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct DiskStatus {
    pub mount_point: String,
    pub device: String,
    pub fs_type: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Temperature {
    pub sensor: String,
    pub label: String,
    pub celsius: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct InterfaceStatus {
    pub interface: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_bytes_per_sec: f64,
    pub tx_bytes_per_sec: f64,
}

/// Everything the dashboard's home screen shows.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct SystemStatus {
    pub version: String,
    pub hostname: String,
    pub timezone: String,
    /// RFC 3339.
    pub time: String,
    pub uptime_secs: u64,
    pub load: [f64; 3],
    pub cpu: CpuStatus,
    pub memory: MemoryStatus,
    pub disks: Vec<DiskStatus>,
    pub temperatures: Vec<Temperature>,
    pub network: Vec<InterfaceStatus>,
}

struct Previous {
    at: Instant,
    cpu: procfs::CpuTimes,
    cores: Vec<procfs::CpuTimes>,
    net: HashMap<String, (u64, u64)>,
}

/// Reads the system's state; rates come from the difference to the previous reading.
pub struct Sampler {
    root: PathBuf,
    previous: Option<Previous>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// The parts of the status that are not read from the kernel.
#[derive(Debug, Clone)]
pub struct Identity {
    pub hostname: String,
    pub timezone: String,
    pub time: String,
}

impl Sampler {
    /// `root` is `/` on a real system.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            previous: None,
        }
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap_or_default()
    }

    pub fn sample(&mut self, identity: Identity) -> SystemStatus {
        let now = Instant::now();
        let (cpu, cores) = procfs::parse_stat(&self.read("proc/stat"));
        let net_now: Vec<(String, u64, u64)> = procfs::parse_net_dev(&self.read("proc/net/dev"));
        let previous = self.previous.as_ref();
        let elapsed = previous.map_or(0.0, |p| now.duration_since(p.at).as_secs_f64());
        let rate = |now: u64, before: Option<u64>| match before {
            Some(b) if elapsed > 0.0 => now.saturating_sub(b) as f64 / elapsed,
            _ => 0.0,
        };
        let network = net_now
            .iter()
            .map(|(name, rx, tx)| {
                let before = previous.and_then(|p| p.net.get(name));
                InterfaceStatus {
                    interface: name.clone(),
                    rx_bytes: *rx,
                    tx_bytes: *tx,
                    rx_bytes_per_sec: rate(*rx, before.map(|b| b.0)),
                    tx_bytes_per_sec: rate(*tx, before.map(|b| b.1)),
                }
            })
            .collect();
        let cpu_status = CpuStatus {
            usage_percent: previous.map_or(0.0, |p| cpu.usage_since(&p.cpu)),
            cores: cores
                .iter()
                .enumerate()
                .map(|(i, c)| CoreUsage {
                    usage_percent: previous
                        .and_then(|p| p.cores.get(i))
                        .map_or(0.0, |b| c.usage_since(b)),
                })
                .collect(),
        };
        let mem = procfs::parse_meminfo(&self.read("proc/meminfo"));
        let status = SystemStatus {
            version: crate::VERSION.to_string(),
            hostname: identity.hostname,
            timezone: identity.timezone,
            time: identity.time,
            uptime_secs: procfs::parse_uptime(&self.read("proc/uptime")),
            load: procfs::parse_loadavg(&self.read("proc/loadavg")),
            cpu: cpu_status,
            memory: MemoryStatus {
                total_bytes: mem.total,
                available_bytes: mem.available,
                used_bytes: mem.total.saturating_sub(mem.available),
                swap_total_bytes: mem.swap_total,
                swap_used_bytes: mem.swap_total.saturating_sub(mem.swap_free),
            },
            disks: self.disks(),
            temperatures: sensors::temperatures(&self.root.join("sys/class")),
            network,
        };
        self.previous = Some(Previous {
            at: now,
            cpu,
            cores,
            net: net_now
                .into_iter()
                .map(|(n, rx, tx)| (n, (rx, tx)))
                .collect(),
        });
        status
    }

    fn disks(&self) -> Vec<DiskStatus> {
        procfs::parse_mounts(&self.read("proc/self/mounts"))
            .into_iter()
            .filter_map(|m| {
                let path = self.root.join(m.mount_point.trim_start_matches('/'));
                let usage = usage(&path)?;
                Some(DiskStatus {
                    mount_point: m.mount_point,
                    device: m.device,
                    fs_type: m.fs_type,
                    total_bytes: usage.0,
                    used_bytes: usage.0.saturating_sub(usage.2),
                    available_bytes: usage.1,
                })
            })
            .collect()
    }
}

/// (total, available to unprivileged users, free) bytes of the file system holding `path`.
fn usage(path: &Path) -> Option<(u64, u64, u64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    let frag = st.f_frsize;
    Some((st.f_blocks * frag, st.f_bavail * frag, st.f_bfree * frag))
}

#[cfg(test)]
mod tests;
