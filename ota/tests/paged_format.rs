//! Format 3 (paged manifest): pages are checked against their signed hash before they are
//! parsed, and a page derived from the running slot is used only when its chunk list hashes to
//! the signed value (otherwise it is downloaded like any other).
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use hearth_ota::VerifyError;
use hearth_ota::bundle::{self, VerifiedBundle};
use hearth_ota::delta::{self, ChunkIndex};
use hearth_ota::source::FileSource;
use hearth_ota::storage::FileSlot;

const SIZE: usize = 3 * 1024 * 1024;

/// A format-3 bundle of `image` and the chunk index of `image` as a running slot.
fn setup(dir: &std::path::Path, image: &[u8]) -> (std::path::PathBuf, ChunkIndex) {
    let path = bundle_with(dir, &keys(), &spec_v3(dir, 2, image));
    let slot_path = dir.join("slot-a.img");
    std::fs::write(&slot_path, image).unwrap();
    let mut slot = FileSlot::open_read_only(&slot_path).unwrap();
    let pending =
        bundle::open_signed(&mut FileSource::open(&path).unwrap(), &keys().trust).unwrap();
    let index =
        delta::index_slot(&mut slot, pending.manifest.chunking, image.len() as u64).unwrap();
    (path, index)
}

fn resolve(
    path: &std::path::Path,
    local: Vec<(String, ChunkIndex)>,
) -> Result<VerifiedBundle, VerifyError> {
    let mut src = FileSource::open(path).unwrap();
    bundle::open_signed(&mut src, &keys().trust)?.resolve(&mut src, local)
}

/// (hash, length, offset) of every chunk: what derived and downloaded pages must agree on.
fn chunk_list(b: &VerifiedBundle) -> Vec<([u8; 32], u32, u64)> {
    b.manifest.payloads[0]
        .chunks
        .iter()
        .map(|c| (c.hash, c.len, c.offset))
        .collect()
}

#[test]
fn a_bundle_opened_without_a_running_slot_reads_every_page_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = setup(tmp.path(), &image_bytes(SIZE, 71));
    let b = resolve(&path, Vec::new()).unwrap();
    let p = &b.manifest.payloads[0];
    assert!(p.pages.len() >= 3, "{} pages", p.pages.len());
    assert_eq!(b.pages_fetched, p.pages_size());
    assert_eq!(
        p.chunks.iter().map(|c| u64::from(c.len)).sum::<u64>(),
        SIZE as u64
    );
    bundle::verify_payloads(&mut FileSource::open(&path).unwrap(), &b).unwrap();
}

#[test]
fn a_tampered_page_is_refused_before_it_is_parsed() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, index) = setup(tmp.path(), &image_bytes(SIZE, 72));
    let good = resolve(&path, Vec::new()).unwrap();
    let page = good.manifest.payloads[0].pages[1];
    // Zero the first chunk entry of page 1: length 0 would be refused by the page parser, so
    // a PageHash error shows the hash was checked first.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = (good.payload_start + page.offset) as usize;
    bytes[at..at + 40].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        resolve(&path, Vec::new()).unwrap_err(),
        VerifyError::PageHash {
            payload: "root".into(),
            page: 1
        }
    );
    // A device that derives page 1 from its running slot never reads the tampered bytes.
    let b = resolve(&path, vec![("root".into(), index)]).unwrap();
    assert_eq!(chunk_list(&b), chunk_list(&good));
}

#[test]
fn a_page_derived_locally_that_does_not_match_is_downloaded_instead() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, index) = setup(tmp.path(), &image_bytes(SIZE, 73));
    let full = resolve(&path, Vec::new()).unwrap();
    let pages = full.manifest.payloads[0].pages.clone();
    // The running slot holds exactly this payload: every page is derived.
    let derived = resolve(&path, vec![("root".into(), index.clone())]).unwrap();
    assert_eq!(derived.pages_fetched, 0);
    assert_eq!(chunk_list(&derived), chunk_list(&full));
    // A local chunk list that differs in one hash (a corrupt slot, or a collision attempt)
    // does not hash to the signed list: that page is downloaded and checked instead.
    let mut bad = index.clone();
    let k = pages[0].chunks as usize + 2; // inside page 1
    bad.seq[k].0[0] ^= 1;
    let b = resolve(&path, vec![("root".into(), bad)]).unwrap();
    assert_eq!(b.pages_fetched, u64::from(pages[1].page_len));
    assert_eq!(chunk_list(&b), chunk_list(&full));
    // A wrong length is caught the same way.
    let mut bad_len = index;
    bad_len.seq[1].1 -= 1;
    let b = resolve(&path, vec![("root".into(), bad_len)]).unwrap();
    assert_eq!(b.pages_fetched, u64::from(pages[0].page_len));
}
