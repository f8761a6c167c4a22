//! The release's Secure Boot key set and the signing of the EFI binaries it covers.
//!
//! A key set is a folder of three RSA-2048 keys with self-signed X.509 certificates, the UEFI
//! hierarchy: `PK` (the platform key: who may change KEK), `KEK` (who may change db) and `db`
//! (what may boot). The builder signs systemd-boot, the UKIs and the slots' command-line
//! addons with `db` (`sbsign`, Debian's sbsigntool); the ESP carries the three certificates as
//! signed EFI variable updates (`PK.auth` self-signed, `KEK.auth` by PK, `db.auth` by KEK,
//! efitools' `cert-to-efi-sig-list` and `sign-efi-sig-list`) in `loader/keys/hearth/`, where
//! systemd-boot offers to enroll them on firmware in setup mode. `hearth-image run
//! --secure-boot` enrolls the certificates into OVMF's variables with `virt-fw-vars`.
//!
//! Made with the `openssl` command rather than a crate: RSA key generation and X.509 writing
//! are what it is for, and the keys go to the same command-line tools (sbsign, efitools) that
//! read them. Private keys are written 0600 and never leave the folder.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::Runner;

/// The hierarchy, from the top: file stem and what the certificate's name says.
const KEYS: [(&str, &str); 3] = [
    ("PK", "Platform Key"),
    ("KEK", "Key Exchange Key"),
    ("db", "Signature Database"),
];

/// What the ESP carries for enrolment: `(file name, path)` in `loader/keys/hearth/`.
pub const ENROL_DIR: &str = "loader/keys/hearth";

/// A Secure Boot key set on disk.
#[derive(Debug, Clone)]
pub struct SecureBootKeys {
    pub dir: PathBuf,
}

impl SecureBootKeys {
    /// The key set in `dir`, every file checked present.
    pub fn load(dir: &Path) -> Result<SecureBootKeys> {
        let keys = SecureBootKeys {
            dir: dir.to_path_buf(),
        };
        let mut missing = Vec::new();
        for (stem, _) in KEYS {
            for ext in ["key", "crt", "auth"] {
                let p = dir.join(format!("{stem}.{ext}"));
                if !p.is_file() {
                    missing.push(p.display().to_string());
                }
            }
        }
        if !dir.join("owner.guid").is_file() {
            missing.push(dir.join("owner.guid").display().to_string());
        }
        if !missing.is_empty() {
            bail!(
                "the Secure Boot key set {} is incomplete (missing {}); make one with `hearth-image keygen`",
                dir.display(),
                missing.join(", ")
            );
        }
        Ok(keys)
    }

    /// Makes a new key set in `dir` (which must not hold one), named `name` in its
    /// certificates.
    pub fn generate(dir: &Path, name: &str, runner: &Runner) -> Result<SecureBootKeys> {
        if dir.join("PK.key").exists() {
            bail!("{} already holds a Secure Boot key set", dir.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
        let guid = random_guid()?;
        std::fs::write(dir.join("owner.guid"), format!("{guid}\n"))?;
        for (stem, what) in KEYS {
            let key = dir.join(format!("{stem}.key"));
            runner.run(
                Command::new("openssl")
                    .args(["req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes"])
                    .args(["-sha256", "-days", "7300", "-subj"])
                    .arg(format!("/CN={name} {what}/"))
                    .arg("-keyout")
                    .arg(&key)
                    .arg("-out")
                    .arg(dir.join(format!("{stem}.crt"))),
                false,
            )?;
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .with_context(|| format!("{}", key.display()))?;
            runner.run(
                Command::new("cert-to-efi-sig-list")
                    .args(["-g", &guid])
                    .arg(dir.join(format!("{stem}.crt")))
                    .arg(dir.join(format!("{stem}.esl"))),
                false,
            )?;
        }
        // Each list signed by the key above it (PK by itself), as the firmware checks them.
        for (stem, signer) in [("PK", "PK"), ("KEK", "PK"), ("db", "KEK")] {
            runner.run(
                Command::new("sign-efi-sig-list")
                    .args(["-g", &guid, "-k"])
                    .arg(dir.join(format!("{signer}.key")))
                    .arg("-c")
                    .arg(dir.join(format!("{signer}.crt")))
                    .arg(stem)
                    .arg(dir.join(format!("{stem}.esl")))
                    .arg(dir.join(format!("{stem}.auth"))),
                false,
            )?;
        }
        SecureBootKeys::load(dir)
    }

    pub fn cert(&self, stem: &str) -> PathBuf {
        self.dir.join(format!("{stem}.crt"))
    }

    /// The owner GUID the signature lists carry.
    pub fn owner(&self) -> Result<String> {
        let p = self.dir.join("owner.guid");
        Ok(std::fs::read_to_string(&p)
            .with_context(|| format!("{}", p.display()))?
            .trim()
            .to_string())
    }

    /// The enrolment files for the ESP: `(PK.auth, path)`, `(KEK.auth, …)`, `(db.auth, …)`.
    pub fn enrolment_files(&self) -> Vec<(String, PathBuf)> {
        KEYS.iter()
            .map(|(stem, _)| {
                let name = format!("{stem}.auth");
                let path = self.dir.join(&name);
                (name, path)
            })
            .collect()
    }

    /// Signs the PE file `input` with db into `output` (which may be `input`).
    pub fn sign(&self, input: &Path, output: &Path, runner: &Runner) -> Result<()> {
        let tmp = output.with_extension("signing");
        runner.run(
            Command::new("sbsign")
                .arg("--key")
                .arg(self.dir.join("db.key"))
                .arg("--cert")
                .arg(self.cert("db"))
                .arg("--output")
                .arg(&tmp)
                .arg(input),
            false,
        )?;
        std::fs::rename(&tmp, output).with_context(|| format!("{}", output.display()))?;
        Ok(())
    }
}

/// Whether `file` carries a signature by `cert`'s key (`sbverify`).
pub fn verify_signature(file: &Path, cert: &Path, runner: &Runner) -> Result<()> {
    runner
        .run(
            Command::new("sbverify").arg("--cert").arg(cert).arg(file),
            false,
        )
        .with_context(|| {
            format!(
                "{} is not signed by the Secure Boot db key {}",
                file.display(),
                cert.display()
            )
        })
}

/// Folder of the development Secure Boot keys in the builder's cache.
pub fn dev_dir(cache: &Path) -> PathBuf {
    cache.join("secureboot-dev-keys")
}

/// The given key set, or without one the development key set of the cache, made once.
pub fn load_or_dev(dir: Option<&Path>, cache: &Path, runner: &Runner) -> Result<SecureBootKeys> {
    match dir {
        Some(d) => SecureBootKeys::load(d),
        None => {
            let d = dev_dir(cache);
            let keys = if d.join("PK.key").exists() {
                SecureBootKeys::load(&d)?
            } else {
                SecureBootKeys::generate(&d, "Hearth development", runner)?
            };
            eprintln!(
                "      no --secure-boot-keys: signing the EFI binaries with the development Secure Boot keys in {}",
                d.display()
            );
            Ok(keys)
        }
    }
}

/// A random (version 4) GUID in its text form.
fn random_guid() -> Result<String> {
    let mut b = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut b)
        .context("no random bytes")?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real tools: a key set, a PE signed with db verifies under db's certificate and not
    /// under another set's, and an unsigned one verifies under none.
    #[test]
    fn a_signed_binary_verifies_under_its_db_only() {
        let tmp = tempfile::tempdir().expect("tmp");
        let runner = Runner::new(None, false).expect("runner");
        let ours =
            SecureBootKeys::generate(&tmp.path().join("ours"), "Test", &runner).expect("key set");
        let other =
            SecureBootKeys::generate(&tmp.path().join("other"), "Other", &runner).expect("key set");
        for (name, path) in ours.enrolment_files() {
            let len = std::fs::metadata(&path).expect(&name).len();
            assert!(
                len > 800,
                "{name} holds a signed certificate list ({len} B)"
            );
        }
        let mode = std::fs::metadata(ours.dir.join("db.key"))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .expect("db.key");
        assert_eq!(mode, 0o600);
        assert!(SecureBootKeys::generate(&ours.dir, "Again", &runner).is_err());

        let pe = tmp.path().join("stub.efi");
        std::fs::write(&pe, crate::uki::tests::fake_stub(2)).expect("pe");
        let signed = tmp.path().join("signed.efi");
        ours.sign(&pe, &signed, &runner).expect("sign");
        verify_signature(&signed, &ours.cert("db"), &runner).expect("ours verifies");
        assert!(verify_signature(&signed, &other.cert("db"), &runner).is_err());
        assert!(verify_signature(&pe, &ours.cert("db"), &runner).is_err());
        // One flipped byte in the signed image's first section breaks its signature.
        let mut bytes = std::fs::read(&signed).expect("read");
        bytes[0x410] ^= 0x01;
        std::fs::write(&signed, bytes).expect("write");
        assert!(verify_signature(&signed, &ours.cert("db"), &runner).is_err());
    }

    #[test]
    fn an_incomplete_key_set_is_named() {
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::write(tmp.path().join("PK.key"), "x").expect("write");
        let err = SecureBootKeys::load(tmp.path()).expect_err("incomplete");
        assert!(format!("{err}").contains("db.crt"), "{err}");
    }
}
