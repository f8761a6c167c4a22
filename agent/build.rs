//! Embeds the built dashboard (`web/dist`) into the agent binary. Without a built dashboard the
//! agent still builds and serves a page saying how to build it.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, base, out);
        } else if let Ok(rel) = path.strip_prefix(base) {
            out.push((rel.to_string_lossy().replace('\\', "/"), path));
        }
    }
}

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dist = std::env::var_os("HEARTH_WEB_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../web/dist"));
    println!("cargo:rerun-if-env-changed=HEARTH_WEB_DIST");
    // A path that does not exist makes cargo rerun the script (and rebuild the agent) on every
    // build; without a built dashboard, watch the folder it will appear in instead.
    if dist.exists() {
        println!("cargo:rerun-if-changed={}", dist.display());
    } else if let Some(parent) = dist.parent().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", parent.display());
    }
    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    let mut code = String::from("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (name, path) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let abs = path.canonicalize().expect("listed file exists");
        let _ = writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            abs.display().to_string()
        );
    }
    code.push_str("];\n");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("web_assets.rs");
    std::fs::write(out, code).expect("write web_assets.rs");
}
