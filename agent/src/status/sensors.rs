//! Temperature sensors from sysfs: thermal zones and hwmon chips. Machines without sensors
//! (most VMs) simply report none.

use super::Temperature;
use std::path::Path;

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn millidegrees(path: &Path) -> Option<f64> {
    read_trim(path)?
        .parse::<i64>()
        .ok()
        .map(|m| m as f64 / 1000.0)
}

fn sorted_entries(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    paths.sort();
    paths
}

/// `class_dir` is `/sys/class` on a real system.
pub fn temperatures(class_dir: &Path) -> Vec<Temperature> {
    let mut out = Vec::new();
    for zone in sorted_entries(&class_dir.join("thermal"), "thermal_zone") {
        if let Some(celsius) = millidegrees(&zone.join("temp")) {
            let kind = read_trim(&zone.join("type")).unwrap_or_else(|| "thermal".into());
            out.push(Temperature {
                sensor: kind.clone(),
                label: kind,
                celsius,
            });
        }
    }
    for chip in sorted_entries(&class_dir.join("hwmon"), "hwmon") {
        let name = read_trim(&chip.join("name")).unwrap_or_else(|| "hwmon".into());
        for input in sorted_entries(&chip, "temp") {
            let file = input
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(index) = file.strip_suffix("_input") else {
                continue;
            };
            let Some(celsius) = millidegrees(&input) else {
                continue;
            };
            let label = read_trim(&chip.join(format!("{index}_label")))
                .unwrap_or_else(|| index.to_string());
            out.push(Temperature {
                sensor: name.clone(),
                label,
                celsius,
            });
        }
    }
    out
}
