//! Embeds the built dashboard (`web/dist`) into the agent binary. Without a built dashboard the
//! agent still builds and serves a page saying how to build it.
//!
//! For release builds it also sets the binary's link: symbols stripped, and on x86_64 (linked by
//! LLD) the code the agent runs at start and at idle placed together, in the order of
//! `link-order.txt` (docs/image.md, "The agent's memory").

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

/// Release link arguments of the `hearth-agent` binary.
///
/// The symbols are stripped here, by the linker, and not by the profile's `strip`: the profile is
/// part of every crate's hash, and so of every symbol's name. `ci/agent-link-order` builds with
/// `HEARTH_KEEP_SYMBOLS=1` to read which functions ran; the names it writes match this build's
/// only because nothing but this script's output differs between the two.
fn release_link(manifest: &Path) {
    println!("cargo:rerun-if-env-changed=HEARTH_KEEP_SYMBOLS");
    if std::env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    if std::env::var_os("HEARTH_KEEP_SYMBOLS").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,--strip-all");
    }
    // Only x86_64: the symbol names are those of an x86_64 build (the target is part of every
    // crate's hash), and the arm64 cross-build's names differ.
    let order = manifest.join("link-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return;
    }
    println!("cargo:rerun-if-env-changed=HEARTH_LINK_PROBE");
    let text = if std::env::var_os("HEARTH_LINK_PROBE").is_some() {
        // ci/agent-link-order's device build: every function on pages of its own, so a code
        // page the agent touches names exactly one function.
        PROBE_SCRIPT.to_string()
    } else if let Ok(names) = std::fs::read_to_string(&order) {
        link_script(&names)
    } else {
        return;
    };
    let script =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("link-order.ld");
    std::fs::write(&script, text).expect("write link-order.ld");
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
}

/// Each function's section 4 KiB-aligned (`SUBALIGN`), in an output section before `.text`.
const PROBE_SCRIPT: &str = "SECTIONS {
  .text.hearth_probe : SUBALIGN(4096) { *(.text.*) }
}
INSERT BEFORE .text;
";

/// A linker script that puts the listed functions' sections first, in an output section of
/// their own before `.text`: with `-ffunction-sections` each function is `.text.NAME`, or
/// `.text.unlikely.NAME` when LLVM deems it cold (`#[cold]`: a growing `Vec`'s slow path, a
/// contended lock, a one-time initialisation), which the linker's default layout would otherwise
/// gather at the start of `.text` among thousands that never run. The rest of the layout stays
/// the linker's default (`INSERT`). A script and not an ordering file
/// (`--symbol-ordering-file`), because a script matches patterns: thin LTO renames the local
/// functions it shares between modules `NAME.llvm.HASH`, HASH a digest of the module's code, so
/// any edit of a module renames them; `NAME.llvm.*` still matches.
fn link_script(names: &str) -> String {
    let mut script = String::from("SECTIONS {\n  .text.hearth_hot : {\n");
    for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
        let pattern = match name.find(".llvm.") {
            Some(at) => format!("{}.llvm.*", &name[..at]),
            None => name.to_string(),
        };
        let _ = writeln!(script, "    *(.text.{pattern} .text.unlikely.{pattern})");
    }
    script.push_str("  }\n}\nINSERT BEFORE .text;\n");
    script
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
    release_link(&manifest);
}
