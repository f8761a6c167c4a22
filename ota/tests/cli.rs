//! The command line end to end: keygen → delegate → sign → verify/inspect → publish, and the
//! repository index a device accepts.
#![allow(clippy::unwrap_used)]
use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth-ota"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(args: &[&str]) -> String {
    let (success, text) = run(args);
    assert!(success, "{args:?}: {text}");
    text
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `verify` accepts the bundle under the root key only and checks a device's fit; `inspect`
/// shows the manifest, verified or not.
fn verify_and_inspect(b2: &Path, root_pub: &Path, release_pub: &Path) {
    let text = ok(&["verify", p(b2), "--key", p(root_pub)]);
    assert!(text.contains("OK"), "{text}");
    let (verified, text) = run(&["verify", p(b2), "--key", p(release_pub)]);
    assert!(!verified && text.contains("root key"), "{text}");
    let (fits, text) = run(&[
        "verify",
        p(b2),
        "--key",
        p(root_pub),
        "--board",
        "rpi4",
        "--arch",
        "x86_64",
        "--current-version-number",
        "1",
    ]);
    assert!(!fits && text.contains("board"), "{text}");
    let text = ok(&["inspect", p(b2), "--key", p(root_pub)]);
    assert!(
        text.contains("\"version_number\": 2")
            && text.contains("\"format\": 3")
            && text.contains("\"chunks\": "),
        "{text}"
    );
    let text = ok(&["inspect", p(b2)]);
    // The format-3 manifest is shown, its lists summarized.
    assert!(
        text.contains("verified: NO")
            && text.contains("\"chunking\"")
            && text.contains("\"pages\": \"<1 pages>\""),
        "{text}"
    );
}

#[test]
fn keygen_delegate_sign_verify_publish() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (root, rel, rel2) = (
        d.join("root.key"),
        d.join("release.key"),
        d.join("release2.key"),
    );
    ok(&["keygen", "--out", p(&root)]);
    ok(&["keygen", "--out", p(&rel)]);
    ok(&["keygen", "--out", p(&rel2)]);
    let (again, text) = run(&["keygen", "--out", p(&root)]);
    assert!(!again && text.contains("refusing to overwrite"), "{text}");
    let keys = d.join("keys.json");
    let root_pub = d.join("root.key.pub");
    ok(&[
        "delegate",
        "--root",
        p(&root),
        "--release",
        p(&d.join("release.key.pub")),
        "--serial",
        "1",
        "--out",
        p(&keys),
    ]);
    let img = d.join("root.img");
    std::fs::write(&img, vec![7u8; 200_000]).unwrap();
    let b2 = d.join("v2.hota");
    let sign = |key: &Path, n: &str, out: &Path| {
        run(&[
            "sign",
            "--key",
            p(key),
            "--keys",
            p(&keys),
            "--root",
            p(&root_pub),
            "--board",
            "qemu-x86_64",
            "--arch",
            "x86_64",
            "--version",
            &format!("1.{n}"),
            "--version-number",
            n,
            "--min-version-number",
            "1",
            "--payload",
            &format!("root={}", p(&img)),
            "--out",
            p(out),
        ])
    };
    assert!(sign(&rel, "2", &b2).0);
    // A key the root never delegated to cannot sign.
    let (signed, text) = sign(&rel2, "2", &d.join("rogue.hota"));
    assert!(!signed && text.contains("key list"), "{text}");
    verify_and_inspect(&b2, &root_pub, &d.join("release.key.pub"));

    let repo = d.join("repo");
    let publish = |b: &Path| {
        run(&[
            "publish",
            "--repo",
            p(&repo),
            "--channel",
            "stable",
            p(b),
            "--key",
            p(&rel),
            "--keys",
            p(&keys),
            "--root",
            p(&root_pub),
            "--notes",
            "faster",
            "--expires-days",
            "7",
        ])
    };
    let (published, text) = publish(&b2);
    assert!(published, "{text}");
    let (again, text) = publish(&b2);
    assert!(!again && text.contains("not newer"), "{text}");
    let index_file = repo.join("stable/qemu-x86_64/index-v3.hidx");
    let bytes = std::fs::read(&index_file).unwrap();
    let trust =
        hearth_ota::format::Trust::new(hearth_ota::keys::load_verifying(&root_pub).unwrap());
    let now = time::OffsetDateTime::now_utc();
    let accepted =
        hearth_ota::index::accept(&bytes, &trust, "stable", "qemu-x86_64", now, None).unwrap();
    let latest = &accepted.index.latest;
    assert_eq!(
        (latest.version_number, latest.release_notes.as_str()),
        (2, "faster")
    );
    assert!(repo.join(&latest.bundle).is_file());
    let b3 = d.join("v3.hota");
    assert!(sign(&rel, "3", &b3).0);
    // A device holding the same image downloads only the signed prefix; an empty one, all.
    let delta = |from: &Path| -> serde_json::Value {
        let text = ok(&[
            "delta-size",
            p(&b3),
            "--key",
            p(&root_pub),
            "--from",
            p(from),
        ]);
        serde_json::from_str(&text).unwrap()
    };
    let same = delta(&img);
    assert_eq!(same["chunk_bytes"], 0, "{same}");
    assert_eq!(same["download_bytes"], same["prefix_bytes"], "{same}");
    let empty = d.join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    let all = delta(&empty);
    assert_eq!(
        all["download_bytes"].as_u64().unwrap(),
        std::fs::metadata(&b3).unwrap().len(),
        "{all}"
    );
    assert!(publish(&b3).0);
    let newer = std::fs::read(&index_file).unwrap();
    newer_index_replay_expiry_and_channel(&bytes, &newer, &trust, &accepted.seen, now);
}

/// The second index is accepted after the first; the first replayed, the second too late or
/// for another channel, are refused.
fn newer_index_replay_expiry_and_channel(
    bytes: &[u8],
    newer: &[u8],
    trust: &hearth_ota::format::Trust,
    seen: &hearth_ota::index::SeenIndex,
    now: time::OffsetDateTime,
) {
    let second =
        hearth_ota::index::accept(newer, trust, "stable", "qemu-x86_64", now, Some(seen)).unwrap();
    assert_eq!(second.index.serial, 2);
    // The first index replayed after the second was seen.
    let replay = hearth_ota::index::accept(
        bytes,
        trust,
        "stable",
        "qemu-x86_64",
        now,
        Some(&second.seen),
    );
    assert!(matches!(
        replay,
        Err(hearth_ota::VerifyError::IndexReplay { serial: 1, seen: 2 })
    ));
    let late = now + time::Duration::days(8);
    let expired = hearth_ota::index::accept(newer, trust, "stable", "qemu-x86_64", late, None);
    assert!(matches!(
        expired,
        Err(hearth_ota::VerifyError::IndexExpired(_))
    ));
    let other = hearth_ota::index::accept(newer, trust, "beta", "qemu-x86_64", now, None);
    assert!(matches!(
        other,
        Err(hearth_ota::VerifyError::IndexMismatch { .. })
    ));
}
