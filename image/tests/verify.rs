//! `hearth-image verify` on a small image made with the builder's own parts and the real tools
//! (sfdisk, mkfs.vfat + mcopy, veritysetup, xz: `ci/image-deps`): a GPT disk with an ESP holding
//! slot a's initrd (with its verity layer), slot a's root (data + hash tree), an empty slot b,
//! the manifest and the signed SHA256SUMS. The untouched image passes (raw and .xz); a flipped
//! byte in the root, a root hash that is not the manifest's, and a list signed by another key
//! each make the command exit non-zero and name what failed. The Raspberry Pi layout (no ESP:
//! slot a's initrd is the `initrd.img` of its boot partition `boot-a`) is checked the same way.
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ed25519_dalek::SigningKey;
use hearth_image::artifacts::{FileEntry, sign_checksums};
use hearth_image::board::Role;
use hearth_image::cmd::Runner;
use hearth_image::partition::{Placed, Plan, gpt_type};
use hearth_image::{disk, verity};

const MIB: u64 = 1 << 20;
const ROOT_A: u64 = 17 * MIB;
const PI_BOOT_A: u64 = MIB;
const PI_ROOT_A: u64 = 33 * MIB;
const PREFIX: &str = "hearth-1.0.0-tiny";

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hearth-image"))
}

fn placed(name: &str, role: Role, type_guid: &'static str, offset: u64, size: u64) -> Placed {
    Placed {
        name: name.into(),
        role,
        type_guid,
        uuid: format!("12345678-1234-4234-8234-{:012x}", offset),
        offset,
        size,
    }
}

struct Tiny {
    _tmp: tempfile::TempDir,
    out: PathBuf,
    image: PathBuf,
    public: PathBuf,
    key: SigningKey,
    info: verity::VerityInfo,
}

impl Tiny {
    /// Signs SHA256SUMS over `files` (names in `out`) with `key`.
    fn sign(&self, files: &[&str], key: &SigningKey) {
        let entries: Vec<FileEntry> = files
            .iter()
            .map(|f| FileEntry::of(&self.out.join(f)).expect("entry"))
            .collect();
        sign_checksums(&self.out, PREFIX, &entries, key).expect("sign");
    }

    /// Signs SHA256SUMS over the raw image and the manifest with `key` (what a key holder
    /// does after changing the image).
    fn sign_image(&self, key: &SigningKey) {
        self.sign(
            &[&format!("{PREFIX}.img"), &format!("{PREFIX}.manifest.json")],
            key,
        );
    }

    fn verify(&self, image: &Path) -> (Output, String) {
        let out = Command::new(bin())
            .arg("verify")
            .arg(image)
            .arg("--key")
            .arg(&self.public)
            .output()
            .expect("run hearth-image verify");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out, text)
    }

    fn flip(&self, at: u64) {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.image)
            .expect("open image");
        let mut b = [0u8; 1];
        f.seek(SeekFrom::Start(at)).expect("seek");
        std::io::Read::read_exact(&mut f, &mut b).expect("read");
        f.seek(SeekFrom::Start(at)).expect("seek");
        f.write_all(&[b[0] ^ 0xff]).expect("write");
    }
}

/// Where the tiny image keeps slot a's initrd.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// An ESP with `hearth/a/initrd.img` (EFI boards).
    Esp,
    /// `boot-a` with `initrd.img`, `boot-b` marked empty (Raspberry Pi).
    Pi,
}

/// The GPT plan and the FAT partitions of `layout`, with slot a's initrd `initrd` staged.
fn boot_parts(
    layout: Layout,
    work: &Path,
    stage_initrd: impl Fn(&Path),
    runner: &Runner,
) -> (Plan, Vec<(&'static str, PathBuf)>) {
    let fat = |name: &str, tree: &Path, label: &str, id: &str| {
        let img = work.join(format!("{name}.vfat"));
        disk::make_fat(&img, 16 * MIB, label, id, tree, 0, runner).expect("fat");
        img
    };
    let root =
        |name: &str, offset: u64| placed(name, Role::Root, gpt_type::ROOT_X86_64, offset, 4 * MIB);
    match layout {
        Layout::Esp => {
            let tree = work.join("esp");
            std::fs::create_dir_all(tree.join("hearth/a")).expect("esp tree");
            stage_initrd(&tree.join("hearth/a/initrd.img"));
            let esp = fat("esp", &tree, "ESP", "1234ABCD");
            let plan = Plan {
                label_id: "12345678-1234-4234-8234-000000000001".into(),
                partitions: vec![
                    placed("esp", Role::Esp, gpt_type::ESP, MIB, 16 * MIB),
                    root("root-a", ROOT_A),
                    root("root-b", 21 * MIB),
                ],
                disk_size: 26 * MIB,
            };
            (plan, vec![("esp", esp)])
        }
        Layout::Pi => {
            let (a, b) = (work.join("boot-a"), work.join("boot-b"));
            std::fs::create_dir_all(&a).expect("boot-a");
            std::fs::create_dir_all(&b).expect("boot-b");
            stage_initrd(&a.join("initrd.img"));
            std::fs::write(b.join("HEARTH-EMPTY-SLOT.txt"), b"empty\n").expect("marker");
            let boot_a = fat("boot-a", &a, "HEARTH_BOOT", "1234ABCE");
            let boot_b = fat("boot-b", &b, "BOOT_B", "1234ABCF");
            let boot = |name: &str, offset: u64| {
                placed(name, Role::Boot, gpt_type::BASIC_DATA, offset, 16 * MIB)
            };
            let plan = Plan {
                label_id: "12345678-1234-4234-8234-000000000002".into(),
                partitions: vec![
                    boot("boot-a", PI_BOOT_A),
                    boot("boot-b", 17 * MIB),
                    root("root-a", PI_ROOT_A),
                    root("root-b", 37 * MIB),
                ],
                disk_size: 42 * MIB,
            };
            (plan, vec![("boot-a", boot_a), ("boot-b", boot_b)])
        }
    }
}

fn tiny_image(root_hash_override: Option<&str>) -> Tiny {
    tiny_image_with(Layout::Esp, root_hash_override)
}

fn tiny_image_with(layout: Layout, root_hash_override: Option<&str>) -> Tiny {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&work).expect("work");
    std::fs::create_dir_all(&out).expect("out");
    let runner = Runner::new(None, false).expect("runner");

    // Slot a's root: 1 MB of data, then its hash tree.
    let root = work.join("root.img");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(&root, data).expect("root");
    let info = verity::format(
        &root,
        "tiny 1.0.0",
        "12345678-1234-4234-8234-123456789abc",
        &runner,
    )
    .expect("veritysetup format");

    // Slot a's initrd (a stand-in root initramfs + the verity layer), on the ESP or boot-a.
    let root_initrd = work.join("initrd.img-6.12");
    std::fs::write(&root_initrd, b"zstd!").expect("initrd");
    let mut in_initrd = info.clone();
    if let Some(h) = root_hash_override {
        in_initrd.root_hash = h.to_string();
    }
    let stage_initrd = |to: &Path| {
        verity::boot_initrd(&root_initrd, &in_initrd, "1.0.0", 0, to).expect("boot initrd")
    };
    let (plan, mut files) = boot_parts(layout, &work, stage_initrd, &runner);
    files.push(("root-a", root.clone()));
    let image = out.join(format!("{PREFIX}.img"));
    let refs: Vec<(&str, &Path)> = files.iter().map(|(n, p)| (*n, p.as_path())).collect();
    disk::assemble(&plan, &refs, &image, &runner).expect("assemble");
    let manifest = serde_json::json!({
        "board": "tiny",
        "verity": info,
        "slots_filled": ["a"],
        "partitions": plan.partitions.iter().map(|p| serde_json::json!({
            "name": p.name, "offset": p.offset, "size": p.size,
            "type_guid": p.type_guid, "uuid": p.uuid,
        })).collect::<Vec<_>>(),
    });
    std::fs::write(
        out.join(format!("{PREFIX}.manifest.json")),
        serde_json::to_vec_pretty(&manifest).expect("json"),
    )
    .expect("manifest");
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let public = work.join("signing.pem.pub");
    std::fs::write(&public, hearth_ota::keys::public_pem(&key.verifying_key()))
        .expect("public key");
    let tiny = Tiny {
        _tmp: tmp,
        out,
        image,
        public,
        key,
        info,
    };
    tiny.sign(
        &[&format!("{PREFIX}.img"), &format!("{PREFIX}.manifest.json")],
        &tiny.key,
    );
    tiny
}

#[test]
fn an_untouched_image_verifies_raw_and_compressed() {
    let t = tiny_image(None);
    let (out, text) = t.verify(&t.image);
    assert!(out.status.success(), "{text}");
    for want in [
        &format!("ok   {PREFIX}.SHA256SUMS is signed by the image key"),
        &format!("ok   sha256 of {PREFIX}.img"),
        &format!("ok   sha256 of {PREFIX}.manifest.json"),
        &format!(
            "ok   slot a's initrd carries the signed manifest's root hash: {}",
            t.info.root_hash
        ),
        "ok   slot a's root (root-a) verifies against the initrd's root hash",
        "skip slot b: empty",
        "0 failed",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }

    // The same image compressed, listed and signed as the builder publishes it.
    let xz = t.out.join(format!("{PREFIX}.img.xz"));
    let status = Command::new("xz")
        .args(["-k", "-0", "-T1"])
        .arg(&t.image)
        .status()
        .expect("xz");
    assert!(status.success());
    std::fs::remove_file(&t.image).expect("rm raw");
    t.sign(
        &[
            &format!("{PREFIX}.img.xz"),
            &format!("{PREFIX}.manifest.json"),
        ],
        &t.key,
    );
    let (out, text) = t.verify(&xz);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("ok   slot a's root (root-a) verifies"),
        "{text}"
    );
}

#[test]
fn a_flipped_byte_in_a_root_fails_even_when_the_list_is_signed_again() {
    let t = tiny_image(None);
    t.flip(ROOT_A + 500_000);
    let (out, text) = t.verify(&t.image);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("FAIL sha256 of {PREFIX}.img: is ")),
        "{text}"
    );
    assert!(
        text.contains("FAIL slot a's root (root-a) verifies against the initrd's root hash: dm-verity mismatch"),
        "{text}"
    );
    // Signed again (a key holder, or an image rebuilt from a corrupt root): the checksums match,
    // the root still does not.
    t.sign_image(&t.key);
    let (out, text) = t.verify(&t.image);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("ok   sha256 of {PREFIX}.img")),
        "{text}"
    );
    assert!(text.contains("FAIL slot a's root (root-a)"), "{text}");
    assert!(text.contains("1 failed"), "{text}");
}

#[test]
fn a_foreign_signature_or_root_hash_fails() {
    let t = tiny_image(None);
    let other = SigningKey::from_bytes(&[3u8; 32]);
    t.sign_image(&other);
    let (out, text) = t.verify(&t.image);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("SHA256SUMS is signed by the image key") && text.contains("FAIL"),
        "{text}"
    );
    assert!(text.contains("the signature does not verify"), "{text}");

    // An initrd whose root hash is not the manifest's (and so not the root's).
    let t = tiny_image(Some(&"ee".repeat(32)));
    let (out, text) = t.verify(&t.image);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "FAIL slot a's initrd carries the signed manifest's root hash: it carries {}",
            "ee".repeat(32)
        )),
        "{text}"
    );
    assert!(text.contains("FAIL slot a's root (root-a)"), "{text}");

    // No checksum list at all: a clear error, non-zero.
    std::fs::remove_file(t.out.join(format!("{PREFIX}.SHA256SUMS"))).expect("rm");
    let (out, text) = t.verify(&t.image);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("the signed checksum list published with the image"),
        "{text}"
    );
}

/// Issue 13 item 4: a Raspberry Pi image (slot a's initrd on `boot-a`, slot b empty) passes, and
/// a byte flipped in root-a fails even with the checksum list signed again.
#[test]
fn a_pi_image_verifies_and_a_flipped_byte_in_root_a_fails() {
    let t = tiny_image_with(Layout::Pi, None);
    let (out, text) = t.verify(&t.image);
    assert!(out.status.success(), "{text}");
    for want in [
        &format!(
            "ok   slot a's initrd carries the signed manifest's root hash: {}",
            t.info.root_hash
        ),
        "ok   slot a's root (root-a) verifies against the initrd's root hash",
        "skip slot b: empty (no initrd on boot-b)",
        "0 failed",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    t.flip(PI_ROOT_A + 300_000);
    t.sign_image(&t.key);
    let (out, text) = t.verify(&t.image);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL slot a's root (root-a) verifies against the initrd's root hash: dm-verity mismatch"),
        "{text}"
    );

    // An initrd on boot-a whose root hash is not the manifest's.
    let t = tiny_image_with(Layout::Pi, Some(&"ee".repeat(32)));
    let (out, text) = t.verify(&t.image);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL slot a's initrd carries the signed manifest's root hash"),
        "{text}"
    );
}
