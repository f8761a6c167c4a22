//! The outputs of a build: compressed image, root image, build manifest, checksums and an
//! ed25519 signature over the checksums. Everything is written into a private folder first
//! and renamed into the output folder only when complete, so a failed build leaves nothing
//! under a final name.
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ed25519_dalek::{Signer, SigningKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("xz failed compressing {0}")]
    Xz(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError {
    let path = path.to_path_buf();
    move |source| ArtifactError::Io { path, source }
}

pub fn sha256_file(path: &Path) -> Result<String, ArtifactError> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::hex(&h.finalize()))
}

/// `xz` with both cores; the input is mostly compressed squashfs and sparse zeros, so a low
/// preset costs little size and saves much time.
pub fn compress_xz(input: &Path, output: &Path) -> Result<(), ArtifactError> {
    let out = File::create(output).map_err(io(output))?;
    let status = Command::new("xz")
        .args(["-3", "-T2", "-c", "--"])
        .arg(input)
        .stdin(Stdio::null())
        .stdout(out)
        .status()
        .map_err(io(input))?;
    if status.success() {
        Ok(())
    } else {
        Err(ArtifactError::Xz(input.to_path_buf()))
    }
}

/// What the manifest says about one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileEntry {
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

impl FileEntry {
    pub fn of(path: &Path) -> Result<FileEntry, ArtifactError> {
        Ok(FileEntry {
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size: std::fs::metadata(path).map_err(io(path))?.len(),
            sha256: sha256_file(path)?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Bytes of this package's regular files in the sealed root (uncompressed; files listed
    /// in `seal::NOT_SHIPPED` and files another package already counted are not counted).
    /// `None` for what is not in the root (the Pi's boot firmware).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipped_bytes: Option<u64>,
}

/// Fills each package's `shipped_bytes` from dpkg's file lists (`NAME.list` or
/// `NAME:ARCH.list` in `info`, the prepared root's `…/var/lib/dpkg/info`, which the builder
/// moves under `/usr/share/factory`). A file reached by two paths (the merged /usr's `/bin`
/// aliases, hard links) counts once, for the first package that lists it.
pub fn measure_packages(
    root: &Path,
    info: &Path,
    packages: &mut [Package],
) -> Result<(), ArtifactError> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    for p in packages.iter_mut() {
        let list = [
            info.join(format!("{}.list", p.name)),
            info.join(format!("{}:{}.list", p.name, p.arch)),
        ]
        .into_iter()
        .find(|l| l.is_file());
        let Some(list) = list else {
            p.shipped_bytes = Some(0);
            continue;
        };
        let text = std::fs::read_to_string(&list).map_err(io(&list))?;
        let mut total = 0;
        for line in text.lines() {
            let rel = line.trim_start_matches('/');
            if rel.is_empty() || crate::seal::not_shipped(rel) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(root.join(rel)) else {
                continue; // dpkg path-exclude'd (docs, man pages) or removed by an overlay
            };
            if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
        p.shipped_bytes = Some(total);
    }
    Ok(())
}

/// Parses `name<TAB>version<TAB>arch` lines.
pub fn parse_packages(tsv: &str) -> Vec<Package> {
    tsv.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(Package {
                name: f.next()?.to_string(),
                version: f.next()?.to_string(),
                arch: f.next()?.to_string(),
                shipped_bytes: None,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionEntry {
    pub name: String,
    pub offset: u64,
    pub size: u64,
    pub type_guid: String,
    pub uuid: String,
}

/// A bridge bundle of the build manifest: its format and its file.
#[derive(Debug, Clone, Serialize)]
pub struct BridgeBundle {
    pub format: u16,
    #[serde(flatten)]
    pub bundle: FileEntry,
}

#[derive(Debug, Clone, Serialize)]
pub struct BundlePayload {
    pub name: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepTime {
    pub step: String,
    pub seconds: f64,
    pub note: String,
}

/// The build manifest (`*.manifest.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub board: String,
    pub arch: String,
    pub version: String,
    pub build_id: String,
    pub base_key: String,
    pub source_date_epoch: u64,
    pub rootfs_kind: String,
    pub rootfs: FileEntry,
    /// EFI boards: the dm-verity tree appended to the root file and its root hash (the hash
    /// the slot's ESP initrd carries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verity: Option<crate::verity::VerityInfo>,
    /// `None` for `--bundle-only` builds.
    pub image: Option<FileEntry>,
    pub image_raw_size: u64,
    pub version_number: u64,
    pub min_version_number: u64,
    /// The OTA update bundle (`hearth-V-BOARD.bundle`) and its payloads.
    pub bundle: FileEntry,
    /// The bundle's format (3 since the switch to the paged manifest).
    pub bundle_format: u16,
    /// The same release in an older format (`--bridge-bundle N`), for devices on a release
    /// that reads only that format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_bundle: Option<BridgeBundle>,
    pub bundle_payloads: Vec<BundlePayload>,
    /// Key id (hex) of the OTA root key the image trusts.
    pub ota_root_key_id: String,
    pub slots_filled: Vec<String>,
    pub agent_sha256: String,
    pub partitions: Vec<PartitionEntry>,
    pub packages: Vec<Package>,
    pub steps: Vec<StepTime>,
}

/// `SHA256SUMS` text for `files` (sha256sum's format).
pub fn checksums(entries: &[FileEntry]) -> String {
    entries
        .iter()
        .map(|e| format!("{}  {}\n", e.sha256, e.file))
        .collect()
}

/// Writes `SHA256SUMS` and its raw 64-byte signature into `dir` under `prefix`.
pub fn sign_checksums(
    dir: &Path,
    prefix: &str,
    entries: &[FileEntry],
    key: &SigningKey,
) -> Result<(PathBuf, PathBuf), ArtifactError> {
    let sums = checksums(entries);
    let sums_path = dir.join(format!("{prefix}.SHA256SUMS"));
    std::fs::write(&sums_path, &sums).map_err(io(&sums_path))?;
    let sig_path = dir.join(format!("{prefix}.SHA256SUMS.sig"));
    std::fs::write(&sig_path, key.sign(sums.as_bytes()).to_bytes()).map_err(io(&sig_path))?;
    Ok((sums_path, sig_path))
}

/// Moves every file of `staging` into `out` (same file system), then removes `staging`.
pub fn publish(staging: &Path, out: &Path) -> Result<Vec<PathBuf>, ArtifactError> {
    let mut moved = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(staging)
        .map_err(io(staging))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    names.sort();
    for from in names {
        let Some(name) = from.file_name() else {
            continue;
        };
        let to = out.join(name);
        std::fs::rename(&from, &to).map_err(io(&to))?;
        moved.push(to);
    }
    std::fs::remove_dir(staging).map_err(io(staging))?;
    File::open(out)
        .and_then(|d| d.sync_all())
        .map_err(io(out))?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checksums_verify_with_the_public_key() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("a.img.xz");
        std::fs::write(&file, b"image").expect("write");
        let entry = FileEntry::of(&file).expect("entry");
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let (sums, sig) = sign_checksums(tmp.path(), "x", &[entry], &key).expect("sign");
        let text = std::fs::read(&sums).expect("sums");
        let signature = std::fs::read(&sig).expect("sig");
        use ed25519_dalek::Verifier;
        let sig = ed25519_dalek::Signature::from_slice(&signature).expect("64 bytes");
        key.verifying_key().verify(&text, &sig).expect("verifies");
        assert!(String::from_utf8_lossy(&text).ends_with("  a.img.xz\n"));
    }

    #[test]
    fn packages_are_measured_from_dpkg_lists_once_per_file_without_the_unshipped() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path();
        let put = |rel: &str, bytes: usize| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, vec![b'x'; bytes]).expect("write");
        };
        put("usr/bin/dockerd", 1000);
        put("usr/bin/ctr", 500);
        put("usr/lib/x/libz.so", 70);
        put("boot/vmlinuz-6.12", 9000);
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).expect("symlink");
        std::fs::create_dir_all(root.join("var/lib/dpkg/info")).expect("mkdir");
        std::fs::write(
            root.join("var/lib/dpkg/info/docker.io.list"),
            "/.\n/usr\n/usr/bin\n/usr/bin/dockerd\n/usr/bin/ctr\n/usr/share/doc/docker.io/README\n",
        )
        .expect("list");
        std::fs::write(
            root.join("var/lib/dpkg/info/zlib1g:amd64.list"),
            "/usr/lib/x/libz.so\n/bin/dockerd\n",
        )
        .expect("list");
        std::fs::write(
            root.join("var/lib/dpkg/info/linux-image.list"),
            "/boot/vmlinuz-6.12\n",
        )
        .expect("list");
        let mut p = parse_packages(
            "docker.io\t1\tamd64\nzlib1g\t1\tamd64\nlinux-image\t1\tamd64\nghost\t1\tall\n",
        );
        measure_packages(root, &root.join("var/lib/dpkg/info"), &mut p).expect("measure");
        let sizes: Vec<_> = p.iter().map(|p| p.shipped_bytes).collect();
        // docker.io: dockerd only (ctr is not shipped, the README was path-excluded);
        // zlib1g: its library, not dockerd again through the /bin alias; the kernel: nothing.
        assert_eq!(sizes, [Some(1000), Some(70), Some(0), Some(0)]);
    }

    #[test]
    fn package_lines_parse() {
        let p = parse_packages("docker.io\t26.1.5+dfsg1-9+b9\tamd64\nbad line\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].version, "26.1.5+dfsg1-9+b9");
    }
}
