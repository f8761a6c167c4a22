//! The confinement suite: hostile paths and actions against a root with planted links, checking
//! that nothing outside the root is ever read or written.

use super::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::path::Path;

const SECRET: &[u8] = b"outside secret";

struct Fixture {
    _tmp: tempfile::TempDir,
    outside: PathBuf,
    root: Root,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tmp");
    let outside = tmp.path().join("outside");
    let inside = tmp.path().join("root");
    std::fs::create_dir_all(outside.join("sub")).expect("mkdir");
    std::fs::write(outside.join("secret.txt"), SECRET).expect("secret");
    std::fs::create_dir_all(inside.join("docs")).expect("mkdir");
    std::fs::create_dir_all(inside.join("dir")).expect("mkdir");
    std::fs::write(inside.join("docs/a.txt"), b"inside").expect("write");
    // Links an app container could plant in a folder it shares with the file manager.
    symlink("/etc", inside.join("abs")).expect("link");
    symlink("../outside", inside.join("up")).expect("link");
    symlink("../outside/secret.txt", inside.join("upfile")).expect("link");
    symlink("/proc/self/root", inside.join("proc")).expect("link");
    symlink("/proc/self/cwd", inside.join("cwd")).expect("link");
    symlink("../../outside", inside.join("dir/inner")).expect("link");
    symlink(outside.join("secret.txt"), inside.join("absfile")).expect("link");
    symlink("docs", inside.join("inside")).expect("link");
    std::fs::hard_link(outside.join("secret.txt"), inside.join("hardlink")).expect("hard link");
    let root = Root::open(&inside, false).expect("root");
    Fixture {
        _tmp: tmp,
        outside,
        root,
    }
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("ls").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.insert(path.clone(), Vec::new());
            out.extend(snapshot(&path));
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
        }
    }
    out
}

fn read_all(root: &Root, rel: &RelPath) -> FsResult<Vec<u8>> {
    let mut buf = Vec::new();
    root.open_read(rel)?
        .read_to_end(&mut buf)
        .map_err(|e| confined::io_error(e, rel))?;
    Ok(buf)
}

/// Paths that lead outside the root, one way or another.
const ESCAPES: [&str; 16] = [
    "abs",
    "abs/passwd",
    "up",
    "up/secret.txt",
    "up/sub",
    "upfile",
    "absfile",
    "proc",
    "proc/etc/passwd",
    "cwd",
    "cwd/Cargo.toml",
    "dir/inner",
    "dir/inner/secret.txt",
    "docs/../../outside/secret.txt",
    "../outside/secret.txt",
    "/../outside",
];

#[test]
fn nothing_outside_the_root_is_read_through_any_escape() {
    let f = fixture();
    let mut cases = 0;
    for raw in ESCAPES {
        let Ok(rel) = RelPath::parse(raw) else {
            cases += 1;
            continue;
        };
        for result in [
            read_all(&f.root, &rel).map(|_| ()),
            f.root.list(&rel).map(|_| ()),
        ] {
            assert!(result.is_err(), "{raw}: read or listed through an escape");
            cases += 1;
        }
    }
    assert_eq!(
        cases, 29,
        "3 refused by the grammar, 13 × (read, list) by the kernel"
    );
    // The symlink itself may be inspected (it is inside the root), never followed.
    assert_eq!(
        f.root
            .stat(&RelPath::parse("upfile").expect("p"))
            .expect("stat")
            .kind,
        EntryKind::Symlink
    );
}

#[test]
fn nothing_outside_the_root_is_written_through_any_escape() {
    let f = fixture();
    let before = snapshot(&f.outside);
    let mut refused = 0;
    for raw in ESCAPES {
        let Ok(rel) = RelPath::parse(raw) else {
            refused += 1;
            continue;
        };
        let new_child = rel.join("planted").expect("join");
        let docs = RelPath::parse("docs/a.txt").expect("p");
        let attempts: [FsResult<()>; 6] = [
            f.root.create_new(&new_child).map(|_| ()),
            f.root.mkdir(&new_child),
            f.root.open_append(&rel).map(|_| ()),
            f.root.rename_to(&docs, &f.root, &new_child),
            f.root
                .copy_to(&docs, &f.root, &new_child, &mut |_| true)
                .map(|_| ()),
            f.root.create_new(&rel).map(|_| ()),
        ];
        for (i, attempt) in attempts.iter().enumerate() {
            assert!(attempt.is_err(), "{raw}: write attempt {i} went through");
            refused += 1;
        }
    }
    // Removing or trashing the planted links removes the links, not their targets.
    for raw in ["abs", "up", "upfile", "proc", "dir", "absfile"] {
        let rel = RelPath::parse(raw).expect("p");
        if raw == "up" {
            trash::trash(&f.root, &rel, "t".into()).expect("trash a link");
        } else {
            f.root.remove_all(&rel).expect("remove a link");
        }
    }
    assert_eq!(
        refused,
        3 + 13 * 6,
        "every write through an escape is refused"
    );
    assert_eq!(snapshot(&f.outside), before, "the outside is untouched");
    assert_eq!(
        std::fs::read(f.outside.join("secret.txt")).expect("secret"),
        SECRET
    );
}

#[test]
fn planted_hard_links_are_never_written_through() {
    let f = fixture();
    let rel = RelPath::parse("hardlink").expect("p");
    assert!(
        f.root.create_new(&rel).is_err(),
        "an existing name is never replaced"
    );
    // Appending would change the outside file: refused for files with several links.
    assert!(f.root.open_append(&rel).is_err());
    f.root
        .remove_all(&rel)
        .expect("unlinking the planted name is fine");
    assert_eq!(
        std::fs::read(f.outside.join("secret.txt")).expect("secret"),
        SECRET
    );
}

#[test]
fn special_files_are_refused_without_blocking() {
    let f = fixture();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        f.root.path().join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
    let rel = RelPath::parse("pipe").expect("p");
    assert!(matches!(
        f.root.open_read(&rel),
        Err(FsError::NotRegular(_))
    ));
    // Opening a FIFO for writing without blocking fails (ENXIO) before the type check.
    assert!(f.root.open_append(&rel).is_err());
}

#[test]
fn links_that_stay_inside_work_and_reserved_names_are_hidden() {
    let f = fixture();
    let via_link =
        read_all(&f.root, &RelPath::parse("inside/a.txt").expect("p")).expect("inside link");
    assert_eq!(via_link, b"inside");
    trash::trash(
        &f.root,
        &RelPath::parse("docs/a.txt").expect("p"),
        "t".into(),
    )
    .expect("trash");
    let names: Vec<String> = f
        .root
        .list(&RelPath::root())
        .expect("ls")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".hearth-")),
        "{names:?}"
    );
    let reserved = RelPath::parse(".hearth-trash/items").expect("p");
    assert!(matches!(
        f.root.check_user_path(&reserved),
        Err(FsError::Reserved(_))
    ));
}

#[test]
fn a_symlink_swapped_in_during_operations_is_never_followed() {
    let f = fixture();
    let race = f.root.path().join("race");
    let before = snapshot(&f.outside);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (race, outside, stop) = (race.clone(), f.outside.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::create_dir(&race);
                let _ = std::fs::remove_dir(&race);
                let _ = symlink(&outside, &race);
                let _ = std::fs::remove_file(&race);
            }
        })
    };
    for i in 0..2000 {
        let rel = RelPath::parse(&format!("race/f{i}")).expect("p");
        if let Ok(mut file) = f.root.create_new(&rel) {
            let _ = file.write_all(b"x");
        }
        let _ = f
            .root
            .mkdir(&RelPath::parse(&format!("race/d{i}")).expect("p"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().expect("swapper");
    assert_eq!(
        snapshot(&f.outside),
        before,
        "nothing landed outside during the race"
    );
}

fn share(name: &str, grants: &[(&str, crate::store::Access)]) -> ShareRecord {
    ShareRecord {
        name: name.into(),
        folder: FileRoots::new_share_folder(name),
        grants: grants.iter().map(|(u, a)| (u.to_string(), *a)).collect(),
    }
}

#[test]
fn a_member_cannot_reach_another_users_home_app_data_or_an_ungranted_share() {
    use crate::store::Access;
    let tmp = tempfile::tempdir().expect("tmp");
    let roots = FileRoots::new(
        tmp.path(),
        &tmp.path().join("app-data"),
        &tmp.path().join("media"),
    );
    let shares = [
        share("Family", &[("alice", Access::Read)]),
        share("Bobs", &[("bob", Access::Write)]),
    ];
    let open = |name: &str, user: &str, role: Role| {
        roots
            .open(name, user, role, &shares)
            .expect("open")
            .map(|o| (o.root, o.writable))
    };
    let (bob, _) = open("home", "bob", Role::Member).expect("home");
    let mut file = bob
        .create_new(&RelPath::parse("diary.txt").expect("p"))
        .expect("create");
    file.write_all(b"bob's").expect("write");
    let (alice, _) = open("home", "alice", Role::Member).expect("home");
    for raw in ["../bob/diary.txt", "..", "/../../home/bob"] {
        if let Ok(rel) = RelPath::parse(raw) {
            assert!(read_all(&alice, &rel).is_err(), "{raw}");
        }
    }
    assert!(open("appdata", "alice", Role::Member).is_none());
    assert!(open("appdata", "root", Role::Admin).is_some());
    assert!(
        open("Bobs", "alice", Role::Member).is_none(),
        "an ungranted share looks like no share at all"
    );
    assert!(open("disk-usb", "alice", Role::Member).is_none());
    assert_eq!(
        open("Family", "alice", Role::Member).map(|o| o.1),
        Some(false)
    );
    assert_eq!(open("Bobs", "bob", Role::Member).map(|o| o.1), Some(true));
    assert_eq!(open("Bobs", "admin", Role::Admin).map(|o| o.1), Some(true));
    let names = |user, role| -> Vec<String> {
        roots
            .available(user, role, &shares)
            .into_iter()
            .map(|r| r.name)
            .collect()
    };
    assert_eq!(names("alice", Role::Member), ["home", "Family"]);
    assert_eq!(names("carol", Role::Member), ["home"]);
    assert_eq!(
        names("admin", Role::Admin),
        ["home", "Family", "Bobs", "appdata"]
    );
    assert!(
        roots.open("home", "../etc", Role::Admin, &shares).is_err(),
        "user names are checked"
    );
    assert!(open("elsewhere", "alice", Role::Admin).is_none());
    let forged = ShareRecord {
        folder: "shares/../../etc".into(),
        ..share("forged", &[])
    };
    assert!(
        roots
            .open("forged", "admin", Role::Admin, &[forged])
            .is_err(),
        "a recorded folder is checked too"
    );
}

#[test]
fn trash_restores_items_and_refuses_to_overwrite() {
    let f = fixture();
    let a = RelPath::parse("docs/a.txt").expect("p");
    let item = trash::trash(&f.root, &a, "2026-01-01T00:00:00Z".into()).expect("trash");
    assert!(f.root.stat(&a).is_err());
    assert_eq!(trash::list(&f.root).expect("list"), vec![item.clone()]);
    std::fs::write(f.root.path().join("docs/a.txt"), b"new").expect("write");
    assert!(matches!(
        trash::restore(&f.root, &item.id),
        Err(FsError::Exists(_))
    ));
    f.root.remove_all(&a).expect("rm");
    trash::restore(&f.root, &item.id).expect("restore");
    assert_eq!(read_all(&f.root, &a).expect("read"), b"inside");
    assert!(trash::list(&f.root).expect("list").is_empty());
    assert!(trash::restore(&f.root, "../../x").is_err());
    trash::trash(&f.root, &a, "t".into()).expect("trash");
    assert_eq!(trash::empty(&f.root).expect("empty"), 1);
    assert!(trash::list(&f.root).expect("list").is_empty());
}

#[test]
fn copy_and_move_within_a_root() {
    let f = fixture();
    let docs = RelPath::parse("docs").expect("p");
    let copy = RelPath::parse("docs-copy").expect("p");
    let bytes = f
        .root
        .copy_to(&docs, &f.root, &copy, &mut |_| true)
        .expect("copy");
    assert_eq!(bytes, 6);
    assert!(matches!(
        f.root.copy_to(&docs, &f.root, &copy, &mut |_| true),
        Err(FsError::Exists(_))
    ));
    let moved = RelPath::parse("docs-copy/moved").expect("p");
    assert!(matches!(
        f.root.rename_to(&copy, &f.root, &moved),
        Err(FsError::IntoItself(_))
    ));
    let target = RelPath::parse("archive").expect("p");
    f.root.rename_to(&copy, &f.root, &target).expect("move");
    assert_eq!(
        read_all(&f.root, &RelPath::parse("archive/a.txt").expect("p")).expect("read"),
        b"inside"
    );
    let cancelled = f.root.copy_to(
        &docs,
        &f.root,
        &RelPath::parse("c2").expect("p"),
        &mut |_| false,
    );
    assert!(cancelled.is_err(), "a copy can be cancelled");
}

#[test]
fn a_symlink_swapped_in_during_a_zip_is_never_followed() {
    let f = fixture();
    let race = f.root.path().join("docs/race");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (race, outside, stop) = (race.clone(), f.outside.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::create_dir(&race);
                let _ = std::fs::write(race.join("own.txt"), b"own");
                let _ = std::fs::remove_file(race.join("own.txt"));
                let _ = std::fs::remove_dir(&race);
                let _ = symlink(&outside, &race);
                let _ = std::fs::remove_file(&race);
            }
        })
    };
    let docs = RelPath::parse("docs").expect("p");
    for _ in 0..300 {
        if let Ok(zip) = archive::write_zip(&f.root, &docs, "docs", Vec::new()) {
            let text = String::from_utf8_lossy(&zip);
            assert!(!text.contains("outside secret"), "a zip followed the link");
            assert!(
                !text.contains("secret.txt"),
                "a zip listed the outside folder"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().expect("swapper");
}
