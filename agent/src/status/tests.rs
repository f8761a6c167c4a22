use super::*;

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn identity() -> Identity {
    Identity {
        hostname: "hearth".into(),
        timezone: "Etc/UTC".into(),
        time: "2026-01-01T00:00:00Z".into(),
    }
}

fn fake_system(root: &Path, busy: u64, total: u64, rx: u64) {
    let idle = total - busy;
    write(
        root,
        "proc/stat",
        &format!("cpu  {busy} 0 0 {idle} 0 0 0 0\ncpu0 {busy} 0 0 {idle} 0 0 0 0\n"),
    );
    write(
        root,
        "proc/net/dev",
        &format!("h1\nh2\n  eth0: {rx} 1 0 0 0 0 0 0 500 1 0 0 0 0 0 0\n"),
    );
    write(
        root,
        "proc/meminfo",
        "MemTotal: 1000 kB\nMemAvailable: 250 kB\n",
    );
    write(root, "proc/loadavg", "1.00 0.50 0.25 1/1 1\n");
    write(root, "proc/uptime", "42.5 10.0\n");
    write(root, "proc/self/mounts", "/dev/vda1 / ext4 rw 0 0\n");
    write(root, "sys/class/thermal/thermal_zone0/temp", "45500\n");
    write(
        root,
        "sys/class/thermal/thermal_zone0/type",
        "cpu-thermal\n",
    );
    write(root, "sys/class/hwmon/hwmon0/name", "nvme\n");
    write(root, "sys/class/hwmon/hwmon0/temp1_input", "38000\n");
    write(root, "sys/class/hwmon/hwmon0/temp1_label", "Composite\n");
}

#[test]
fn second_sample_reports_cpu_usage_and_network_rates() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    fake_system(root, 100, 1000, 10_000);
    let mut sampler = Sampler::new(root);
    let first = sampler.sample(identity());
    assert_eq!(
        first.cpu.usage_percent, 0.0,
        "no rate without a previous reading"
    );
    assert_eq!(first.network[0].rx_bytes_per_sec, 0.0);
    std::thread::sleep(std::time::Duration::from_millis(50));
    fake_system(root, 300, 1400, 20_000);
    let second = sampler.sample(identity());
    assert!((second.cpu.usage_percent - 50.0).abs() < 1e-9);
    assert_eq!(second.cpu.cores.len(), 1);
    assert!(second.network[0].rx_bytes_per_sec > 0.0);
    assert_eq!(second.network[0].tx_bytes_per_sec, 0.0);
    assert_eq!(second.memory.used_bytes, 750 * 1024);
    assert_eq!(second.uptime_secs, 42);
    assert_eq!(second.load, [1.0, 0.5, 0.25]);
    let temps: Vec<(String, f64)> = second
        .temperatures
        .iter()
        .map(|t| (t.label.clone(), t.celsius))
        .collect();
    assert_eq!(
        temps,
        vec![("cpu-thermal".into(), 45.5), ("Composite".into(), 38.0)]
    );
    assert_eq!(
        second.disks.len(),
        1,
        "the root mount is measured with statvfs"
    );
    assert!(second.disks[0].total_bytes > 0);
}

#[test]
fn the_real_system_can_be_sampled() {
    let mut sampler = Sampler::new("/");
    let status = sampler.sample(identity());
    assert!(status.memory.total_bytes > 0);
    assert!(!status.cpu.cores.is_empty());
    assert!(status.uptime_secs > 0);
}
