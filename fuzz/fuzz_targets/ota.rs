//! OTA containers: the header parser on raw bytes, and the key-list, manifest and index
//! parsers behind their signatures (the harness signs what the fuzzer writes with the
//! fixture's keys, so mutations reach the decoders; see `hearth_fuzz` for the input layout).
#![no_main]

use hearth_fuzz::{Fixture, INDEX, KEYLIST, MANIFEST, RAW};
use hearth_ota::bundle;
use hearth_ota::format::{self, Kind};
use hearth_ota::index::{self, MemorySource};
use hearth_ota::manifest::Manifest;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::new)
}

/// Opens `file` as a bundle; when it verifies, streams its payloads through the chunk checks.
fn open_bundle(file: &[u8]) {
    let f = fixture();
    if let Ok(b) = bundle::open(&mut MemorySource(file), &f.trust) {
        assert!(b.payload_start >= b.opened.prefix_len && b.size == file.len() as u64);
        let _ = bundle::verify_payloads(&mut MemorySource(file), &b);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    match mode % 4 {
        RAW => {
            open_bundle(rest);
            let _ = index::decode(rest, &f.trust);
            let _ = format::peek(&mut MemorySource(rest), Kind::Bundle);
            let _ = format::peek(&mut MemorySource(rest), Kind::Index);
            // Format 3's page parser (it runs only on bytes that matched a signed page hash)
            // and page-list decoder, on raw bytes.
            let count = (rest.len() / hearth_ota::pages::ENTRY_RAW as usize) as u32;
            let _ = hearth_ota::pages::parse(rest, count, 1 << 20);
            let _ = Manifest::decode(format::FORMAT_VERSION_PAGED, rest);
        }
        KEYLIST => {
            let manifest = hearth_fuzz::manifest_json();
            let prefix = f.container(Kind::Bundle, rest, manifest.as_bytes());
            open_bundle(&hearth_fuzz::bundle(prefix, &hearth_fuzz::payload()));
        }
        MANIFEST => {
            let prefix = f.container(Kind::Bundle, &f.keylist.body, rest);
            // Give the bundle as many payload bytes as the manifest claims (when that is small),
            // so the size check passes and the chunk checks run.
            let size = Manifest::decode(format::FORMAT_VERSION, rest)
                .ok()
                .and_then(|m| m.total_payload_size().ok())
                .filter(|&n| n <= 1 << 20)
                .unwrap_or(0);
            let payload: Vec<u8> = hearth_fuzz::payload()
                .into_iter()
                .cycle()
                .take(size as usize)
                .collect();
            open_bundle(&hearth_fuzz::bundle(prefix, &payload));
        }
        INDEX => {
            let file = f.container(Kind::Index, &f.keylist.body, rest);
            let _ = index::decode(&file, &f.trust);
        }
        _ => unreachable!("mode % 4"),
    }
});
