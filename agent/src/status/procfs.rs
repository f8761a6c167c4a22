//! Pure parsers for the kernel's `/proc` text files. They take the text, never a path, so they
//! are tested over captured samples.

/// Cumulative CPU jiffies of one `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

impl CpuTimes {
    /// Percentage of time busy between `earlier` and `self`.
    pub fn usage_since(&self, earlier: &CpuTimes) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        let busy = self.busy.saturating_sub(earlier.busy);
        (busy as f64 / total as f64 * 100.0).clamp(0.0, 100.0)
    }
}

/// The aggregate `cpu` line and one entry per `cpuN` line.
pub fn parse_stat(text: &str) -> (CpuTimes, Vec<CpuTimes>) {
    let mut all = CpuTimes::default();
    let mut cores = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(label) = fields.next() else { continue };
        if !label.starts_with("cpu") {
            continue;
        }
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let values: Vec<u64> = fields.take(8).map(|v| v.parse().unwrap_or(0)).collect();
        let total: u64 = values.iter().sum();
        let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
        let times = CpuTimes {
            busy: total.saturating_sub(idle),
            total,
        };
        if label == "cpu" {
            all = times;
        } else {
            cores.push(times);
        }
    }
    (all, cores)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub total: u64,
    pub available: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

/// `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> MemInfo {
    let mut info = MemInfo::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let bytes = value.parse::<u64>().unwrap_or(0) * 1024;
        match key {
            "MemTotal:" => info.total = bytes,
            "MemAvailable:" => info.available = bytes,
            "SwapTotal:" => info.swap_total = bytes,
            "SwapFree:" => info.swap_free = bytes,
            _ => {}
        }
    }
    info
}

pub fn parse_loadavg(text: &str) -> [f64; 3] {
    let mut out = [0.0; 3];
    for (slot, value) in out.iter_mut().zip(text.split_whitespace()) {
        *slot = value.parse().unwrap_or(0.0);
    }
    out
}

pub fn parse_uptime(text: &str) -> u64 {
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// `/proc/net/dev`: (interface, received bytes, transmitted bytes), loopback excluded.
pub fn parse_net_dev(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let fields: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            Some((name.to_string(), *fields.first()?, *fields.get(8)?))
        })
        .collect()
}

/// A mounted file system worth showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
}

const SHOWN_FS: [&str; 10] = [
    "ext4", "ext3", "ext2", "btrfs", "xfs", "vfat", "exfat", "ntfs3", "f2fs", "zfs",
];

/// `/proc/self/mounts`: block-device file systems, each device once (its first mount point).
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (device, mount_point, fs_type) = (f.next()?, f.next()?, f.next()?);
            let shown = SHOWN_FS.contains(&fs_type) || (fs_type == "overlay" && mount_point == "/");
            if !shown || !seen.insert(device.to_string()) {
                return None;
            }
            Some(Mount {
                device: device.to_string(),
                mount_point: unescape_octal(mount_point),
                fs_type: fs_type.to_string(),
            })
        })
        .collect()
}

/// `/proc/mounts` writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 60 0 20 400 20 0 0 0 0 0\ncpu1 40 0 30 400 30 0 0 0 0 0\nintr 1 2 3\nctxt 99\n";

    #[test]
    fn stat_gives_aggregate_and_per_core_times() {
        let (all, cores) = parse_stat(STAT);
        assert_eq!(
            all,
            CpuTimes {
                busy: 150,
                total: 1000
            }
        );
        assert_eq!(cores.len(), 2);
        assert_eq!(
            cores[1],
            CpuTimes {
                busy: 70,
                total: 500
            }
        );
        let later = CpuTimes {
            busy: 250,
            total: 1200,
        };
        assert!((later.usage_since(&all) - 50.0).abs() < 1e-9);
        assert_eq!(all.usage_since(&all), 0.0);
    }

    #[test]
    fn meminfo_in_bytes() {
        let text = "MemTotal:        8000000 kB\nMemFree:  100 kB\nMemAvailable:    6000000 kB\nSwapTotal: 1024 kB\nSwapFree: 512 kB\n";
        let m = parse_meminfo(text);
        assert_eq!(m.total, 8_000_000 * 1024);
        assert_eq!(m.available, 6_000_000 * 1024);
        assert_eq!((m.swap_total, m.swap_free), (1024 * 1024, 512 * 1024));
    }

    #[test]
    fn loadavg_and_uptime() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/467 12345\n"),
            [0.52, 0.58, 0.59]
        );
        assert_eq!(parse_uptime("35055.62 68807.49\n"), 35055);
    }

    #[test]
    fn net_dev_skips_headers_and_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n  eth0: 123456 100 0 0 0 0 0 0 654321 90 0 0 0 0 0 0\n";
        assert_eq!(
            parse_net_dev(text),
            vec![("eth0".to_string(), 123456, 654321)]
        );
    }

    #[test]
    fn mounts_keep_real_file_systems_once_and_unescape_spaces() {
        let text = "proc /proc proc rw 0 0\n/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /media/My\\040Disk exfat rw 0 0\n/dev/sda1 /var/lib/docker ext4 rw 0 0\ntmpfs /run tmpfs rw 0 0\n";
        let mounts = parse_mounts(text);
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[1].mount_point, "/media/My Disk");
        assert_eq!(mounts[0].fs_type, "ext4");
    }
}
