//! The over-the-air side of a build: the version number, the OTA keys (release key, root-signed
//! key list, root public key), what the root learns about its own release
//! (`/usr/lib/hearth/release.json`, `/usr/lib/hearth/ota-root.pub`, the update repository URL)
//! and the update bundle made beside the disk image with `hearth_ota::bundle::build`.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ed25519_dalek::{SigningKey, VerifyingKey};
use hearth_ota::bundle::{self, BundleSpec};
use hearth_ota::keylist::{KeyList, ReleaseKey, SignedKeyList};
use hearth_ota::keys;
use time::{Duration, OffsetDateTime};

use crate::board::{Board, BootMethod};

/// Where the root public key sits in every image (the agent's `update_root_key` default).
pub const ROOT_PUB_PATH: &str = "usr/lib/hearth/ota-root.pub";
/// Where the image describes itself (the agent's `update_release_file` default).
pub const RELEASE_PATH: &str = "usr/lib/hearth/release.json";
/// The agent's device configuration, which `--update-url` extends.
pub const DEVICE_CONFIG_PATH: &str = "usr/lib/hearth/agent.d/10-device.toml";

/// The monotonic version number of a version string `MAJOR.MINOR.PATCH` (digits only):
/// `MAJOR × 1 000 000 + MINOR × 1 000 + PATCH`, with MINOR and PATCH below 1000 (so `1.2.0`
/// is 1002000 and every later release compares higher). Anything else needs an explicit
/// `--version-number`.
pub fn version_number(version: &str) -> Result<u64> {
    let parts: Vec<&str> = version.split('.').collect();
    let digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(|p| digits(p)) {
        bail!(
            "cannot derive a version number from version {version:?}: it is not MAJOR.MINOR.PATCH \
             (digits only); pass --version-number N"
        );
    }
    let n: Vec<u64> = parts.iter().map(|p| p.parse().unwrap_or(0)).collect();
    if n[1] >= 1000 || n[2] >= 1000 {
        bail!(
            "cannot derive a version number from version {version:?}: minor and patch must be \
             below 1000; pass --version-number N"
        );
    }
    Ok(n[0] * 1_000_000 + n[1] * 1_000 + n[2])
}

/// Key files given on the command line (all three or none).
#[derive(Debug, Clone)]
pub struct OtaKeyFiles {
    /// Release private key (PKCS#8 PEM).
    pub release_key: PathBuf,
    /// Root-signed key list delegating to the release key (`hearth-ota delegate`).
    pub keylist: PathBuf,
    /// Root public key (SPKI PEM), baked into the image.
    pub root_pub: PathBuf,
}

/// The keys a build signs its bundle with and bakes into the root.
#[derive(Debug, Clone)]
pub struct OtaKeys {
    pub release: SigningKey,
    pub keylist: SignedKeyList,
    pub root_pub: VerifyingKey,
    /// Where the keys came from (for messages and the manifest).
    pub dir: Option<PathBuf>,
}

impl OtaKeys {
    pub fn root_pub_pem(&self) -> String {
        keys::public_pem(&self.root_pub)
    }
}

/// Folder of the development OTA keys in the builder's cache.
pub fn dev_key_dir(cache: &Path) -> PathBuf {
    cache.join("ota-dev-keys")
}

/// The given key files, checked (the key list must verify under the root and name the release
/// key); or without them the development keys of the cache, made once.
pub fn load_keys(files: Option<&OtaKeyFiles>, cache: &Path) -> Result<OtaKeys> {
    let keys = match files {
        Some(f) => {
            let release = keys::load_signing(&f.release_key)?;
            let keylist = SignedKeyList::load(&f.keylist)
                .with_context(|| format!("cannot read the key list {}", f.keylist.display()))?;
            let root_pub = keys::load_verifying(&f.root_pub)?;
            OtaKeys {
                release,
                keylist,
                root_pub,
                dir: None,
            }
        }
        None => {
            let dir = dev_key_dir(cache);
            if !dir.join("keys.json").is_file() {
                make_dev_keys(&dir)?;
            }
            eprintln!(
                "      no --ota-release-key: signing the update bundle with the development OTA keys in {} (images trust their root key)",
                dir.display()
            );
            OtaKeys {
                release: keys::load_signing(&dir.join("release.pem"))?,
                keylist: SignedKeyList::load(&dir.join("keys.json"))?,
                root_pub: keys::load_verifying(&dir.join("root.pem.pub"))?,
                dir: Some(dir),
            }
        }
    };
    check_delegation(&keys)?;
    Ok(keys)
}

/// The key list must be signed by the root and delegate to the release key now.
pub fn check_delegation(k: &OtaKeys) -> Result<()> {
    let list = k
        .keylist
        .verify(&k.root_pub, 0)
        .context("the OTA key list is not signed by the given root key")?;
    let id = keys::key_id(&k.release.verifying_key());
    let (_, entry) = list
        .release_key(&id)
        .context("the OTA key list does not delegate to the given release key")?;
    hearth_ota::format::check_key_window(entry, OffsetDateTime::now_utc())
        .context("the release key is outside its validity window in the key list")?;
    Ok(())
}

/// A development root key, a release key and a root-signed key list (serial 1, valid ten
/// years) in `dir`; written into a temporary folder and renamed, so a crash leaves none or all.
pub fn make_dev_keys(dir: &Path) -> Result<()> {
    let parent = dir.parent().context("key folder has no parent")?;
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(".ota-dev-keys-{}", std::process::id()));
    crate::fsutil::remove_all(&tmp)?;
    std::fs::create_dir_all(&tmp)?;
    keys::generate(&tmp.join("root.pem"))?;
    let release = keys::generate(&tmp.join("release.pem"))?;
    let root_key = keys::load_signing(&tmp.join("root.pem"))?;
    let now = OffsetDateTime::now_utc();
    let list = KeyList {
        serial: 1,
        issued: now,
        keys: vec![ReleaseKey::new(
            &release,
            now - Duration::days(1),
            now + Duration::days(3650),
        )],
        revoked: Vec::new(),
    };
    let signed = SignedKeyList::sign(&list, &root_key);
    hearth_ota::fsutil::write_atomic(&tmp.join("keys.json"), &signed.to_file_bytes())?;
    std::fs::rename(&tmp, dir)
        .with_context(|| format!("cannot move the development keys to {}", dir.display()))?;
    hearth_ota::fsutil::sync_dir(parent)?;
    Ok(())
}

/// `/usr/lib/hearth/release.json` (the type the agent reads, shared through hearth-ota).
pub use hearth_ota::release::{BootBackend, Release};

/// The release document of a board's build.
pub fn release(board: &Board, version: &str, version_number: u64, build_id: &str) -> Release {
    Release {
        board: board.name.clone(),
        arch: board.arch.debian().to_string(),
        version: version.to_string(),
        version_number,
        boot: boot_backend(board.boot),
        build_id: build_id.to_string(),
    }
}

/// The boot-control backend the agent drives on a board booted this way.
pub fn boot_backend(boot: BootMethod) -> BootBackend {
    match boot {
        BootMethod::SystemdBoot => BootBackend::SystemdBoot,
        BootMethod::RpiTryboot => BootBackend::Rpi,
        BootMethod::UBoot => BootBackend::UBoot,
    }
}

/// An update repository URL: http or https, no whitespace, quotes or control characters.
pub fn check_update_url(url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => {}
        _ => bail!("--update-url {url:?} is not an http:// or https:// URL with a host"),
    }
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
    {
        bail!("--update-url {url:?} contains whitespace, quotes or control characters");
    }
    Ok(())
}

/// Writes `release.json`, the root public key and (when given) the update repository URL into
/// a prepared root.
pub fn write_into_root(
    root: &Path,
    release: &Release,
    root_pub_pem: &str,
    update_url: Option<&str>,
) -> Result<()> {
    let hearth = root.join("usr/lib/hearth");
    std::fs::create_dir_all(&hearth)?;
    std::fs::write(root.join(RELEASE_PATH), release.to_file_bytes())?;
    std::fs::write(root.join(ROOT_PUB_PATH), root_pub_pem)?;
    if let Some(url) = update_url {
        check_update_url(url)?;
        let path = root.join(DEVICE_CONFIG_PATH);
        let mut text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        // A table of its own at the end, so it cannot fall into the file's last section.
        text.push_str("\n# Written by hearth-image build --update-url.\n[update]\n");
        text.push_str(&format!(
            "repo_url = {}\n",
            toml::Value::String(url.to_string())
        ));
        toml::from_str::<toml::Table>(&text).with_context(|| {
            format!("{} is not valid TOML after the update URL", path.display())
        })?;
        std::fs::write(&path, text)?;
    }
    Ok(())
}

/// Payloads of a board's bundle, in bundle order: `root` (the sealed root) on every board; on
/// EFI boards `kernel` and `initrd` (the files a slot's loader entry boots), or `uki` (the
/// unified kernel image, the same for both slots) on `uki = true` boards; on Raspberry Pi
/// `boot` (the slot's FAT partition image, the same for both slots).
pub fn payloads(
    board: &Board,
    root_img: &Path,
    efi_boot: Option<&crate::efi::SlotBoot>,
    boot_fat: Option<&Path>,
) -> Result<Vec<(String, PathBuf)>> {
    let mut out = vec![("root".to_string(), root_img.to_path_buf())];
    match board.boot {
        BootMethod::SystemdBoot | BootMethod::UBoot => {
            let boot = efi_boot.context("kernel and initrd for the bundle")?;
            match (&boot.uki, board.uki) {
                (Some(uki), true) => out.push(("uki".into(), uki.uki.clone())),
                (None, false) => {
                    out.push(("kernel".into(), boot.kernel.clone()));
                    out.push(("initrd".into(), boot.initrd.clone()));
                    // A U-Boot board booting the kernel's own device tree: it changes with
                    // the kernel, so the slot's copy is updated with it.
                    if let Some(fdt) = &boot.fdt {
                        out.push(("dtb".into(), fdt.clone()));
                    }
                }
                _ => bail!(
                    "board {}: uki = {} but the build made no UKI",
                    board.name,
                    board.uki
                ),
            }
        }
        BootMethod::RpiTryboot => {
            out.push((
                "boot".into(),
                boot_fat
                    .context("boot partition image for the bundle")?
                    .to_path_buf(),
            ));
        }
    }
    Ok(out)
}

/// Builds the signed bundle `out`; returns its manifest.
pub fn build_bundle(
    board: &Board,
    release: &Release,
    min_version_number: u64,
    payloads: Vec<(String, PathBuf)>,
    keys: &OtaKeys,
    chunking: hearth_ota::manifest::Chunking,
    out: &Path,
) -> Result<hearth_ota::manifest::Manifest> {
    if min_version_number > release.version_number {
        bail!(
            "--min-version-number {min_version_number} is above the version number {}",
            release.version_number
        );
    }
    let spec = BundleSpec {
        board: board.name.clone(),
        arch: release.arch.clone(),
        version: release.version.clone(),
        version_number: release.version_number,
        min_version_number,
        created: OffsetDateTime::now_utc(),
        chunking,
        payloads,
    };
    Ok(bundle::build(
        &spec,
        &keys.keylist,
        &keys.release,
        Some(&keys.root_pub),
        out,
    )?)
}

/// The squashfs sort file (`mksquashfs -sort`): files that change with every release go last,
/// so that the blocks of everything else keep their offsets from one release to the next and
/// a device's delta download finds them in its active slot. Lower priority = later in the
/// image. Lists only paths that exist in `root`.
pub fn sort_file(root: &Path) -> String {
    let mut lines = Vec::new();
    // Most likely to change last of all: the agent (which embeds the dashboard's assets).
    for (rel, prio) in CHANGES_EVERY_RELEASE {
        if root.join(rel).exists() {
            lines.push(format!("{rel} {prio}"));
        }
    }
    lines.join("\n") + "\n"
}

/// Paths (relative to the root) that differ in every release, with their sort priority.
pub const CHANGES_EVERY_RELEASE: [(&str, i32); 6] = [
    ("usr/share/hearth/web", -32000),
    ("usr/lib/hearth/release.json", -32700),
    ("usr/lib/hearth/build-id", -32700),
    ("usr/lib/os-release", -32700),
    ("usr/bin/hearth-agent", -32768),
    ("boot", -32600),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers_follow_semver_order() {
        assert_eq!(version_number("1.2.0").expect("v"), 1_002_000);
        assert_eq!(version_number("0.1.0").expect("v"), 1_000);
        assert_eq!(version_number("2.0.999").expect("v"), 2_000_999);
        assert!(version_number("1.2.3").expect("a") < version_number("1.3.0").expect("b"));
        assert!(version_number("1.999.999").expect("a") < version_number("2.0.0").expect("b"));
        for bad in [
            "1.2",
            "1.2.3.4",
            "1.2.x",
            "v1.2.3",
            "1.2.3-rc1",
            "1.1000.0",
            "",
            "1..2",
        ] {
            assert!(version_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn update_urls_are_checked() {
        for ok in [
            "http://10.0.2.2:8000/",
            "https://updates.example.org/hearth",
        ] {
            check_update_url(ok).expect(ok);
        }
        for bad in [
            "ftp://x/",
            "http://",
            "https:///x",
            "http://a b/",
            "http://x/\"",
            "x",
        ] {
            assert!(check_update_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dev_keys_are_made_once_and_delegate_to_the_release_key() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let first = load_keys(None, tmp.path()).expect("dev keys");
        let again = load_keys(None, tmp.path()).expect("dev keys again");
        assert_eq!(first.root_pub, again.root_pub);
        assert_eq!(first.release.verifying_key(), again.release.verifying_key());
        let dir = dev_key_dir(tmp.path());
        // The same keys given as files are accepted too.
        let files = OtaKeyFiles {
            release_key: dir.join("release.pem"),
            keylist: dir.join("keys.json"),
            root_pub: dir.join("root.pem.pub"),
        };
        load_keys(Some(&files), tmp.path()).expect("explicit keys");
        // A root key that did not sign the list is refused.
        keys::generate(&tmp.path().join("other.pem")).expect("keygen");
        let wrong = OtaKeyFiles {
            root_pub: tmp.path().join("other.pem.pub"),
            ..files.clone()
        };
        let err = load_keys(Some(&wrong), tmp.path()).expect_err("wrong root");
        assert!(format!("{err:#}").contains("not signed"), "{err:#}");
        // A release key the list does not name is refused.
        let stranger = OtaKeyFiles {
            release_key: tmp.path().join("other.pem"),
            ..files
        };
        let err = load_keys(Some(&stranger), tmp.path()).expect_err("unknown release key");
        assert!(format!("{err:#}").contains("delegate"), "{err:#}");
    }

    fn board(name: &str) -> Board {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../board-configs")
            .join(format!("{name}.toml"));
        crate::board::load_board_file(&path).expect("board")
    }

    #[test]
    fn release_json_and_keys_land_in_the_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join("usr/lib/hearth/agent.d")).expect("mkdir");
        // Ends inside a section: the update URL must not land in it.
        std::fs::write(
            root.join(DEVICE_CONFIG_PATH),
            "data_dir = \"/var/lib/hearth\"\n[server]\nlisten = \"[::]:443\"",
        )
        .expect("write");
        let b = board("qemu-x86_64");
        let release = release(&b, "1.2.0", 1_002_000, "00112233aabbccdd");
        write_into_root(root, &release, "PEM\n", Some("http://10.0.2.2:8000/")).expect("write");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join(RELEASE_PATH)).expect("read"))
                .expect("json");
        assert_eq!(
            json,
            serde_json::json!({"board":"qemu-x86_64","arch":"amd64","version":"1.2.0",
                "version_number":1_002_000,"boot":"systemd-boot","build_id":"00112233aabbccdd"})
        );
        assert_eq!(
            std::fs::read_to_string(root.join(ROOT_PUB_PATH)).expect("pub"),
            "PEM\n"
        );
        let config: toml::Table =
            toml::from_str(&std::fs::read_to_string(root.join(DEVICE_CONFIG_PATH)).expect("cfg"))
                .expect("toml");
        assert_eq!(
            config["update"]["repo_url"].as_str(),
            Some("http://10.0.2.2:8000/")
        );
        assert_eq!(config["server"]["listen"].as_str(), Some("[::]:443"));
        assert_eq!(config["server"].as_table().map(|t| t.len()), Some(1));
        assert_eq!(
            super::release(&board("rpi4"), "1.0.0", 1, "x").boot,
            BootBackend::Rpi
        );
        assert!(write_into_root(root, &release, "PEM\n", Some("ftp://x/")).is_err());
    }

    #[test]
    fn bundles_carry_the_boards_payloads_and_verify_under_the_root_key() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let keys = load_keys(None, tmp.path()).expect("keys");
        // First as a board that boots kernel and initrd files (as arm64-efi does).
        let mut b = board("qemu-x86_64");
        b.uki = false;
        let (root_img, kernel, initrd) = (
            tmp.path().join("root.img"),
            tmp.path().join("vmlinuz"),
            tmp.path().join("initrd.img"),
        );
        std::fs::write(&root_img, vec![7u8; 200_000]).expect("write");
        std::fs::write(&kernel, b"kernel").expect("write");
        std::fs::write(&initrd, b"initrd").expect("write");
        let release = release(&b, "1.2.0", 1_002_000, "id");
        let slot_boot = crate::efi::SlotBoot {
            kernel: kernel.clone(),
            initrd: initrd.clone(),
            uki: None,
            fdt: None,
        };
        let list = payloads(&b, &root_img, Some(&slot_boot), None).expect("payloads");
        let out = tmp.path().join("x.bundle");
        let m = build_bundle(&b, &release, 1_000, list, &keys, CDC, &out).expect("bundle");
        let names: Vec<&str> = m.payloads.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["root", "kernel", "initrd"]);
        let mut src = hearth_ota::source::FileSource::open(&out).expect("open");
        let opened = bundle::open(&mut src, &hearth_ota::format::Trust::new(keys.root_pub))
            .expect("verifies");
        bundle::verify_payloads(&mut src, &opened).expect("payloads verify");
        assert_eq!(opened.manifest.version_number, 1_002_000);
        assert_eq!(opened.manifest.min_version_number, 1_000);
        assert_eq!(opened.manifest.arch, "amd64");
        let too_high = payloads_for_pi(tmp.path());
        assert!(
            build_bundle(&b, &release, 2_000_000, too_high, &keys, CDC, &out).is_err(),
            "min above the version is refused"
        );
        let pi = board("rpi4");
        let p = payloads(&pi, &root_img, None, Some(&kernel)).expect("pi payloads");
        assert_eq!(p[1].0, "boot");
        // A UKI board bundles the UKI instead of the kernel and initrd.
        let mut uki_board = b.clone();
        uki_board.uki = true;
        let with_uki = crate::efi::SlotBoot {
            uki: Some(crate::efi::UkiBoot {
                uki: tmp.path().join("hearth.efi"),
                addons: [tmp.path().join("a"), tmp.path().join("b")],
                loader: tmp.path().join("systemd-bootx64.efi"),
                enrol: Vec::new(),
            }),
            ..slot_boot
        };
        let p = payloads(&uki_board, &root_img, Some(&with_uki), None).expect("uki payloads");
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["root", "uki"]);
        assert!(
            payloads(&uki_board, &root_img, Some(&with_uki_none(&with_uki)), None).is_err(),
            "a UKI board whose build made no UKI is an error"
        );
    }

    fn with_uki_none(b: &crate::efi::SlotBoot) -> crate::efi::SlotBoot {
        crate::efi::SlotBoot {
            uki: None,
            ..b.clone()
        }
    }

    const CDC: hearth_ota::manifest::Chunking =
        hearth_ota::manifest::Chunking::Cdc(hearth_ota::manifest::CdcParams::DEFAULT);

    fn payloads_for_pi(dir: &Path) -> Vec<(String, PathBuf)> {
        vec![("root".into(), dir.join("root.img"))]
    }

    #[test]
    fn the_sort_file_puts_the_agent_last() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("usr/bin")).expect("mkdir");
        std::fs::write(tmp.path().join("usr/bin/hearth-agent"), "x").expect("write");
        let text = sort_file(tmp.path());
        assert_eq!(text, "usr/bin/hearth-agent -32768\n");
    }
}
