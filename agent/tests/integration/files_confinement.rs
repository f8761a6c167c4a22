//! The confinement suite at the API: hostile URLs in every encoding (sent raw, through the real
//! router, so no HTTP client normalises them first), hostile action bodies, and links planted by
//! a real app container in app data. None may read or write outside its root.
//!
//! Together with the kernel-level cases in `src/files/tests.rs` (every escape × every operation,
//! hard links, FIFOs, a symlink swapped in during operations and during a zip) this is the
//! suite `docs/files.md` counts.

use crate::common;

use common::inproc::{Browser, Harness, PASSWORD};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SECRET: &str = "outside secret";

fn snapshot(dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.starts_with(skip) {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        if meta.is_dir() {
            out.insert(path.clone(), Vec::new());
            snapshot(&path, skip, out);
        } else if meta.is_symlink() {
            let target = std::fs::read_link(&path).expect("readlink");
            out.insert(path, target.to_string_lossy().as_bytes().to_vec());
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
        }
    }
}

/// Everything in the data folder but the attacker's own home and the agent's own state.
fn outside_of(h: &Harness, home: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    snapshot(&h.dir.path().join("files"), home, &mut out);
    snapshot(&h.dir.path().join("outside"), home, &mut out);
    out
}

/// Paths after `/api/v1/files/`, as they go on the wire. `true`: the path means something
/// outside the attacker's home (or is malformed) and must be refused outright; `false`: it
/// decodes to an odd but legal name, which may only ever touch the attacker's own home.
const HOSTILE: [(&str, bool); 34] = [
    ("home/..", true),
    ("home/../admin/secret.txt", true),
    ("home/./../admin", true),
    ("home/a/../../admin/secret.txt", true),
    ("home/%2e%2e/%2e%2e/outside/secret.txt", true),
    ("home/%2E%2E%2F%2E%2E%2Foutside%2Fsecret.txt", true),
    ("home/..%2f..%2fadmin%2fsecret.txt", true),
    ("home/a/%2e%2e/%2e%2e/%2e%2e/outside/secret.txt", true),
    ("..%2f..%2foutside", true),
    ("%2e%2e/home", true),
    ("disk-..%2f..%2foutside", true),
    ("home/%c0%ae%c0%ae/%c0%ae%c0%ae/outside/secret.txt", true),
    ("home/%c0%af", true),
    ("home/%e0%80%ae%e0%80%ae%c0%afadmin", true),
    ("home/%ff%fe", true),
    ("home/a%00b", true),
    ("home/%00", true),
    ("home/..%00/admin", true),
    ("home/a%0ab", true),
    ("home/a%0db", true),
    ("home/a%09b", true),
    ("home/%1b%5b31mred", true),
    ("home/a%7f", true),
    ("home/%c2%85next-line", true),
    ("home/.hearth-trash/info", true),
    ("home/.hearth-uploads/x", true),
    ("appdata/x", true),
    ("shared/x", true),
    // Decode to legal names inside the home: double encoding, backslashes, look-alikes,
    // absolute-looking paths (leading slashes are ignored: paths are always relative).
    ("home/%252e%252e%252f%252e%252e%252foutside", false),
    ("home/..%5c..%5coutside%5csecret.txt", false),
    ("home/%5c..%5c..%5cadmin", false),
    ("home/%e2%80%a4%e2%80%a4/x", false),
    ("home/%ef%bc%8e%ef%bc%8e%ef%bc%8fadmin", false),
    ("home/%2fetc%2fpasswd", false),
];

fn leaked(reply: &str) -> bool {
    reply.contains(SECRET) || reply.contains("admin only") || reply.contains("root:x:0")
}

async fn member(h: &Harness) -> Browser {
    let mut admin = h.admin().await;
    let r = h
        .call(
            &mut admin,
            "POST",
            "/api/v1/users",
            Some(json!({"username": "bob", "password": PASSWORD, "role": "member"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.raw);
    let r = h
        .call(
            &mut admin,
            "PUT",
            "/api/v1/files/home/secret.txt",
            Some(json!("admin only")),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.raw);
    let mut bob = Browser::default();
    let r = h.login(&mut bob, "bob", PASSWORD).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.raw);
    let r = h
        .call(
            &mut bob,
            "POST",
            "/api/v1/files/home/a",
            Some(json!({"action": "mkdir"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.raw);
    bob
}

#[tokio::test]
async fn hostile_urls_in_every_encoding_never_leave_the_root() {
    let h = Harness::new().await;
    std::fs::create_dir_all(h.dir.path().join("outside")).expect("mkdir");
    std::fs::write(h.dir.path().join("outside/secret.txt"), SECRET).expect("secret");
    let mut bob = member(&h).await;
    let home = h.dir.path().join("files/home/bob");
    let before = outside_of(&h, &home);
    let mut attempts = 0;
    for (path, refused) in HOSTILE {
        let url = format!("/api/v1/files/{path}");
        let actions: [(&str, String, Option<Value>); 5] = [
            ("GET", url.clone(), None),
            ("GET", format!("{url}?format=zip"), None),
            ("PUT", url.clone(), Some(json!("planted"))),
            ("POST", url.clone(), Some(json!({"action": "mkdir"}))),
            ("DELETE", url.clone(), None),
        ];
        for (method, url, body) in actions {
            let r = h.call(&mut bob, method, &url, body).await;
            attempts += 1;
            assert!(!leaked(&r.raw), "{method} {url} leaked: {}", r.raw);
            if refused || method == "GET" {
                assert!(
                    r.status.is_client_error(),
                    "{method} {url}: {} {}",
                    r.status,
                    r.raw
                );
            }
        }
    }
    assert_eq!(attempts, 34 * 5);
    assert_eq!(
        outside_of(&h, &home),
        before,
        "nothing outside bob's home changed"
    );
    assert_eq!(
        std::fs::read(h.dir.path().join("files/home/admin/secret.txt")).expect("secret"),
        b"\"admin only\""
    );
}

#[tokio::test]
async fn hostile_action_bodies_never_leave_the_root() {
    let h = Harness::new().await;
    std::fs::create_dir_all(h.dir.path().join("outside")).expect("mkdir");
    std::fs::write(h.dir.path().join("outside/secret.txt"), SECRET).expect("secret");
    let mut bob = member(&h).await;
    let r = h
        .call(
            &mut bob,
            "PUT",
            "/api/v1/files/home/a/f.txt",
            Some(json!("mine")),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201);
    let home = h.dir.path().join("files/home/bob");
    let before = outside_of(&h, &home);
    let bodies = [
        json!({"action": "rename", "name": "../../../outside/planted"}),
        json!({"action": "rename", "name": ".."}),
        json!({"action": "rename", "name": "a/b"}),
        json!({"action": "rename", "name": "x\u{0}y"}),
        json!({"action": "rename", "name": "x\ny"}),
        json!({"action": "rename", "name": ""}),
        json!({"action": "rename", "name": "x".repeat(256)}),
        json!({"action": "move", "to_root": "home", "to_path": "../admin/f.txt"}),
        json!({"action": "move", "to_root": "appdata", "to_path": "f.txt"}),
        json!({"action": "move", "to_root": "shared", "to_path": "f.txt"}),
        json!({"action": "move", "to_root": "../home/admin", "to_path": "f.txt"}),
        json!({"action": "copy", "to_root": "home", "to_path": "../../../outside/f.txt"}),
        json!({"action": "copy", "to_root": "home", "to_path": ".hearth-trash/f.txt"}),
        json!({"action": "copy", "to_root": "appdata", "to_path": "f.txt"}),
        json!({"action": "mkdir", "extra": "../x"}),
        json!({"action": "chmod", "mode": 4777}),
    ];
    for body in &bodies {
        let r = h
            .call(
                &mut bob,
                "POST",
                "/api/v1/files/home/a/f.txt",
                Some(body.clone()),
            )
            .await;
        assert!(r.status.is_client_error(), "{body}: {} {}", r.status, r.raw);
        assert!(!leaked(&r.raw));
    }
    // A trash id is a name, not a path.
    for id in ["..%2f..%2fadmin", "%2e%2e", "..", "a%00"] {
        let r = h
            .call(&mut bob, "POST", &format!("/api/v1/trash/home/{id}"), None)
            .await;
        assert!(r.status.is_client_error(), "{id}: {}", r.status);
    }
    assert_eq!(
        outside_of(&h, &home),
        before,
        "nothing outside bob's home changed"
    );
    assert_eq!(
        std::fs::read(home.join("a/f.txt")).expect("f"),
        b"\"mine\"",
        "and the source is where it was"
    );
}
