//! Writes the OTA target's seed corpus (`fuzz/corpus/ota/`): the fixture's valid bundle and
//! index as raw containers, and its valid key list, manifest and index bodies. Run after a
//! change to the fixture or the container format:
//! `cargo run --manifest-path fuzz/Cargo.toml --bin ota-seeds -- fuzz/corpus/ota`.
use hearth_fuzz::{Fixture, INDEX, KEYLIST, MANIFEST, RAW};
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or("fuzz/corpus/ota".into()));
    std::fs::create_dir_all(&dir)?;
    let f = Fixture::new();
    let bundle = f.valid_bundle();
    let seeds: [(&str, u8, Vec<u8>); 5] = [
        ("raw-bundle", RAW, bundle.clone()),
        ("raw-index", RAW, f.valid_index()),
        ("keylist", KEYLIST, f.keylist.body.clone()),
        (
            "manifest",
            MANIFEST,
            hearth_fuzz::manifest_json().into_bytes(),
        ),
        (
            "index",
            INDEX,
            hearth_fuzz::index_json(&bundle).into_bytes(),
        ),
    ];
    for (name, mode, body) in seeds {
        std::fs::write(dir.join(name), [&[mode][..], &body].concat())?;
    }
    Ok(())
}
