//! Store zip bytes → the safe unpacker. Besides "no panic", checks what the unpacker promises:
//! nothing is written outside the destination and no symbolic link is created.
#![no_main]

use hearth_agent::apps::store_zip::{self, Limits};
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A private folder per fuzzing process (the unpacker needs a real file system).
fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hearth-fuzz-zip-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the fuzzing folder");
        dir
    })
}

fn check_tree(dir: &Path) {
    for entry in std::fs::read_dir(dir)
        .expect("read an unpacked folder")
        .flatten()
    {
        let kind = entry.file_type().expect("file type");
        assert!(
            !kind.is_symlink(),
            "the unpacker created a symbolic link: {}",
            entry.path().display()
        );
        if kind.is_dir() {
            check_tree(&entry.path());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let base = base();
    let dest = base.join("store");
    // Small limits keep every run fast; the limit checks are the same code as the store's.
    let limits = Limits {
        entries: 64,
        unpacked_bytes: 1 << 20,
    };
    let result = store_zip::extract_with(data, &dest, limits);
    let outside: Vec<_> = std::fs::read_dir(base)
        .expect("read the fuzzing folder")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "store")
        .collect();
    assert!(
        outside.is_empty(),
        "written outside the destination: {outside:?}"
    );
    if dest.exists() {
        check_tree(&dest);
        if result.is_ok() {
            let _ = store_zip::store_root(&dest);
        }
        std::fs::remove_dir_all(&dest).expect("clean the destination");
    }
});
