//! `/usr/lib/hearth/release.json`: what the image builder writes into every root and the agent
//! reads to compare update indexes against, and the boot-control backend it names. One type
//! for the writer (`hearth-image`) and the reader (`hearth-agent`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::boot::file::FileBoot;
use crate::boot::rpi::{PiPartitions, PiTryboot};
use crate::boot::systemd_boot::SystemdBoot;
use crate::boot::uboot::{FileEnvStore, UBootEnv};
use crate::boot::{BootControl, BootError, DirFs};

/// Where the release document lives in a root.
pub const RELEASE_PATH: &str = "/usr/lib/hearth/release.json";

/// The release document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub board: String,
    /// Debian architecture name (`amd64`, `arm64`), as in OTA manifests.
    pub arch: String,
    pub version: String,
    pub version_number: u64,
    pub boot: BootBackend,
    /// Older builders did not write it.
    #[serde(default)]
    pub build_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Malformed { path: String, reason: String },
}

impl Release {
    /// Reads and parses a release document; an unknown boot backend is a `Malformed` error
    /// naming the backends this build knows.
    pub fn read(path: &Path) -> Result<Release, ReleaseError> {
        let bytes = std::fs::read(path).map_err(|source| ReleaseError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Release::parse(&bytes).map_err(|reason| ReleaseError::Malformed {
            path: path.display().to_string(),
            reason,
        })
    }

    pub fn parse(bytes: &[u8]) -> Result<Release, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The document as the builder writes it (pretty JSON, a final newline).
    pub fn to_file_bytes(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).unwrap_or_default();
        json.push(b'\n');
        json
    }
}

/// The boot-control backends hearth-ota has (`boot` in release.json, `update_boot` in the
/// agent's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BootBackend {
    /// systemd-boot with boot counting (EFI boards).
    #[serde(rename = "systemd-boot")]
    SystemdBoot,
    /// Raspberry Pi `tryboot` (`rpi-tryboot` is the board configs' name for it).
    #[serde(rename = "rpi", alias = "rpi-tryboot")]
    Rpi,
    /// U-Boot environment with redundant copies, located by `fw_env.config`.
    #[serde(rename = "uboot", alias = "u-boot")]
    UBoot,
    /// A state file (tests, boards without a supported boot loader).
    #[serde(rename = "file")]
    File,
}

impl BootBackend {
    pub const ALL: [BootBackend; 4] = [
        BootBackend::SystemdBoot,
        BootBackend::Rpi,
        BootBackend::UBoot,
        BootBackend::File,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BootBackend::SystemdBoot => "systemd-boot",
            BootBackend::Rpi => "rpi",
            BootBackend::UBoot => "uboot",
            BootBackend::File => "file",
        }
    }

    /// Opens the backend on this device. `esp` is the EFI system partition; `dir` replaces
    /// the backend's default directory (the file backend's state and the systemd-boot ESP,
    /// the Pi `bootconfig` partition, the directory of U-Boot's `fw_env.config`).
    pub fn open(
        self,
        esp: &Path,
        dir: Option<&Path>,
    ) -> Result<Box<dyn BootControl + Send>, BootError> {
        let dir_or = |default: &Path| DirFs::new(dir.unwrap_or(default));
        Ok(match self {
            BootBackend::File => Box::new(FileBoot::new(dir_or(esp))),
            BootBackend::SystemdBoot => Box::new(SystemdBoot::new(dir_or(esp))),
            // The board configs put bootconfig, boot-a and boot-b at partitions 1, 2 and 3.
            BootBackend::Rpi => Box::new(PiTryboot::new(
                dir_or(Path::new("/boot/bootconfig")),
                PiPartitions { a: 2, b: 3 },
            )),
            BootBackend::UBoot => {
                let config = dir.unwrap_or(Path::new("/etc")).join("fw_env.config");
                Box::new(UBootEnv::new(fw_env_config(&config)?))
            }
        })
    }
}

impl std::fmt::Display for BootBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BootBackend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
            let names: Vec<&str> = BootBackend::ALL.iter().map(|b| b.name()).collect();
            format!(
                "boot backend {s:?} is not one hearth-ota has ({})",
                names.join(", ")
            )
        })
    }
}

/// U-Boot's `fw_env.config`: two lines `device offset size` (the redundant copies; numbers
/// decimal or `0x` hex; `#` comments). A relative device path is relative to the file's
/// directory.
pub fn fw_env_config(path: &Path) -> Result<FileEnvStore, BootError> {
    let malformed = |reason: String| BootError::Malformed {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| BootError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("/"));
    let number = |s: &str| match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    };
    let mut copies: Vec<(PathBuf, u64, u64)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(dev), Some(offset), Some(size)) = (
            f.first(),
            f.get(1).and_then(|s| number(s)),
            f.get(2).and_then(|s| number(s)),
        ) else {
            return Err(malformed(format!("{line:?} is not \"device offset size\"")));
        };
        copies.push((base.join(dev), offset, size));
    }
    match copies.as_slice() {
        [a, b] if a.2 == b.2 && a.2 > 5 && a.2 <= 1 << 24 => Ok(FileEnvStore {
            copies: [(a.0.clone(), a.1), (b.0.clone(), b.1)],
            size: a.2 as usize,
        }),
        [_, _] => Err(malformed(
            "the two copies must have the same size (6 bytes to 16 MiB)".into(),
        )),
        _ => Err(malformed(format!(
            "{} environment copies; Hearth needs two (redundant)",
            copies.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// release.json exactly as `hearth-image` wrote it before the type was shared.
    const WRITTEN_BY_THE_BUILDER: &str = r#"{
  "board": "qemu-x86_64",
  "arch": "amd64",
  "version": "1.2.0",
  "version_number": 1002000,
  "boot": "systemd-boot",
  "build_id": "00112233aabbccdd"
}
"#;

    #[test]
    fn reads_what_the_builder_writes_and_writes_the_same() {
        let r = Release::parse(WRITTEN_BY_THE_BUILDER.as_bytes()).expect("parse");
        assert_eq!(r.boot, BootBackend::SystemdBoot);
        assert_eq!(
            (r.version_number, r.build_id.as_str()),
            (1_002_000, "00112233aabbccdd")
        );
        assert_eq!(
            String::from_utf8(r.to_file_bytes()).expect("utf-8"),
            WRITTEN_BY_THE_BUILDER
        );
        // Older documents: no build id; the Pi as the board configs name it.
        let old = r#"{"board":"rpi4","arch":"arm64","version":"1.0","version_number":1,"boot":"rpi-tryboot"}"#;
        let r = Release::parse(old.as_bytes()).expect("parse");
        assert_eq!((r.boot, r.build_id.as_str()), (BootBackend::Rpi, ""));
        assert_eq!(
            serde_json::to_value(r.boot).expect("json"),
            serde_json::json!("rpi")
        );
    }

    #[test]
    fn an_unknown_backend_is_a_clear_error() {
        let doc = WRITTEN_BY_THE_BUILDER.replace("systemd-boot", "grub");
        let e = Release::parse(doc.as_bytes()).expect_err("grub");
        assert!(e.contains("grub") && e.contains("systemd-boot"), "{e}");
        let e = "grub".parse::<BootBackend>().expect_err("grub");
        assert!(e.contains("grub") && e.contains("uboot"), "{e}");
        for b in BootBackend::ALL {
            assert_eq!(b.name().parse::<BootBackend>(), Ok(b));
        }
        assert_eq!("u-boot".parse::<BootBackend>(), Ok(BootBackend::UBoot));
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("release.json");
        std::fs::write(&path, doc).expect("write");
        assert!(matches!(
            Release::read(&path),
            Err(ReleaseError::Malformed { .. })
        ));
    }

    #[test]
    fn every_backend_opens_including_u_boot() {
        use crate::boot::Slot;
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path();
        std::fs::write(
            dir.join("fw_env.config"),
            "# device offset size\nenv.img 0x0 0x4000\nenv.img 0x4000 0x4000\n",
        )
        .expect("config");
        let env = crate::boot::uboot::Env::from([("BOOT_ORDER".to_string(), "A".to_string())]);
        let mut image = crate::boot::uboot::encode(&env, 0x4000, 1).expect("encode");
        image.resize(0x8000, 0);
        std::fs::write(dir.join("env.img"), image).expect("env");
        let mut uboot = BootBackend::UBoot.open(dir, Some(dir)).expect("uboot");
        assert_eq!(uboot.state().expect("state").primary, Some(Slot::A));
        // A trial on U-Boot is a plain reboot: the environment picks the slot.
        uboot.mark_unbootable(Slot::B).expect("mark");
        assert_eq!(
            uboot.set_trial(Slot::B, "2.0").expect("trial"),
            crate::boot::RebootRequest::Plain
        );
        assert_eq!(uboot.state().expect("state").trial, Some((Slot::B, 3)));
        assert_eq!(
            BootBackend::Rpi
                .open(dir, Some(dir))
                .expect("rpi")
                .reboot_request(),
            crate::boot::RebootRequest::tryboot()
        );
        std::fs::write(dir.join("fw_env.config"), "env.img 0 0x4000\n").expect("config");
        let Err(e) = BootBackend::UBoot.open(dir, Some(dir)) else {
            panic!("one copy accepted")
        };
        assert!(e.to_string().contains("two"), "{e}");
    }
}
