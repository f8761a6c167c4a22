//! The client side end to end over a real local HTTP server: fetch and accept the index, open
//! the bundle remotely, plan the delta against the active slot, and install with Range requests
//! (resuming dropped connections and interrupted installs).
#![allow(clippy::unwrap_used)]
mod common;

use common::http_server;
use common::*;
use hearth_ota::boot::file::FileBoot;
use hearth_ota::boot::{BootControl, DirFs, Slot};
use hearth_ota::decide::{self, Decision, Device};
use hearth_ota::http::{HttpSource, bundle_url, fetch_index, index_url, index_url_for};
use hearth_ota::install::{InstallError, InstallRequest, Target, install};
use hearth_ota::manifest::Chunking;
use hearth_ota::storage::FileSlot;

const SIZE: usize = 4 * 1024 * 1024;

struct Rig {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    keys: Keys,
    v1: Vec<u8>,
    v2: Vec<u8>,
    rt: tokio::runtime::Runtime,
    server: http_server::Server,
    /// Bundle format published (1, 2 or 3).
    format: u16,
    /// Format 3: page bytes the last update downloaded.
    pages_fetched: std::cell::Cell<u64>,
}

/// v1 is installed in slot a; v2 (one changed 100 KiB region) is published as a format-1
/// bundle.
fn rig() -> Rig {
    let v1 = image_bytes(SIZE, 11);
    let mut v2 = v1.clone();
    v2[1_000_000..1_100_000].copy_from_slice(&image_bytes(100_000, 12));
    rig_with(v1, v2, 1)
}

/// The same as a format-2 bundle (content-defined chunks).
fn rig_cdc() -> Rig {
    let v1 = image_bytes(SIZE, 11);
    let mut v2 = v1.clone();
    v2[1_000_000..1_100_000].copy_from_slice(&image_bytes(100_000, 12));
    rig_with(v1, v2, 2)
}

fn rig_with(v1: Vec<u8>, v2: Vec<u8>, format: u16) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let keys = keys();
    let b2 = match format {
        1 => bundle(&dir, &keys, 2, &v2),
        2 => bundle_with(&dir, &keys, &spec_v2(&dir, 2, &v2)),
        _ => bundle_with(&dir, &keys, &spec_v3(&dir, 2, &v2)),
    };
    let repo = dir.join("repo");
    hearth_ota::repo::publish(&hearth_ota::repo::PublishRequest {
        repo: &repo,
        channel: "stable",
        bundle: &b2,
        release_notes: "small fix".into(),
        valid_for: time::Duration::days(30),
        now: CREATED,
        key: &keys.release,
        keylist: &keys.keylist,
        trust: &keys.trust,
    })
    .unwrap();
    std::fs::write(dir.join("slot-a.img"), &v1).unwrap();
    // An older, longer content: the install must not leave its tail behind.
    std::fs::write(dir.join("slot-b.img"), vec![9u8; SIZE + 100_000]).unwrap();
    std::fs::create_dir_all(dir.join("boot")).unwrap();
    FileBoot::new(DirFs::new(&dir.join("boot")))
        .initialize(Slot::A)
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(http_server::start(repo));
    Rig {
        _dir: tmp,
        dir,
        keys,
        v1,
        v2,
        rt,
        server,
        format,
        pages_fetched: std::cell::Cell::new(0),
    }
}

/// The index naming bundles of `format`; format-1 bundles are named by the format-1 index
/// (what devices on 0.1 read), format 3 by the one this build's devices read.
fn index_for(base: &str, format: u16) -> String {
    match format {
        3 => index_url(base, "stable", "qemu-x86_64"),
        f => index_url_for(base, "stable", "qemu-x86_64", f),
    }
}

fn device() -> Device {
    Device {
        board: "qemu-x86_64".into(),
        arch: "x86_64".into(),
        version_number: 1,
    }
}

/// Check, decide, open remotely and install into slot b; returns (report or error, source bytes).
fn update(rig: &Rig) -> Result<hearth_ota::install::InstallReport, InstallError> {
    let client = reqwest::Client::new();
    let bytes = rig
        .rt
        .block_on(fetch_index(
            &client,
            &index_for(&rig.server.base, rig.format),
        ))
        .unwrap();
    let accepted =
        hearth_ota::index::accept(&bytes, &rig.keys.trust, "stable", "qemu-x86_64", NOW, None)
            .unwrap();
    assert_eq!(
        decide::decide(&device(), &accepted.index).unwrap(),
        Decision::Update
    );
    let url = bundle_url(&rig.server.base, &accepted.index.latest.bundle).unwrap();
    let mut src = HttpSource::new(client, url, rig.rt.handle().clone())
        .with_idle_timeout(std::time::Duration::from_millis(500));
    // As the agent does: open the signed prefix, check it, then read (format 3: derive) pages.
    let pending = hearth_ota::bundle::open_signed(&mut src, &rig.keys.trust)?;
    accepted.index.latest.matches_pending(&pending)?;
    decide::check_manifest(&device(), &pending.manifest)?;
    let mut target = FileSlot::open(&rig.dir.join("slot-b.img")).unwrap();
    let mut active = FileSlot::open_read_only(&rig.dir.join("slot-a.img")).unwrap();
    let mut boot = FileBoot::new(DirFs::new(&rig.dir.join("boot")));
    let mut phases = Vec::new();
    let mut targets = vec![Target {
        payload: "root".into(),
        target: &mut target,
        active: Some(&mut active),
    }];
    // Format 3 reads the running slot here: reported as the index phase, in bytes.
    let mut indexed = Vec::new();
    let bundle =
        hearth_ota::install::resolve_reporting(pending, &mut src, &mut targets, &mut |p| {
            indexed.push(p)
        })?;
    rig.pages_fetched.set(bundle.pages_fetched);
    // The phase also counts the target, which install() reads next (chunks already in place).
    let target_len: u64 = bundle.manifest.payloads.iter().map(|p| p.size).sum();
    let slot_len = std::fs::metadata(rig.dir.join("slot-a.img")).unwrap().len();
    if rig.format == 3 {
        assert!(indexed.len() >= 2, "{indexed:?}");
        assert!(
            indexed
                .iter()
                .all(|p| p.phase == hearth_ota::install::Phase::Index
                    && p.total == slot_len + target_len)
        );
        assert!(
            indexed.windows(2).all(|w| w[0].done <= w[1].done),
            "{indexed:?}"
        );
        assert_eq!(
            (indexed[0].done, indexed.last().map(|p| p.done)),
            (0, Some(slot_len))
        );
    } else {
        assert!(
            indexed.is_empty(),
            "formats 1 and 2 index in install(): {indexed:?}"
        );
    }
    let mut planned = Vec::new();
    let result = install(InstallRequest {
        bundle: &bundle,
        source: &mut src,
        targets,
        boot: &mut boot,
        slot: Slot::B,
        progress: &mut |p| {
            if p.phase == hearth_ota::install::Phase::Index {
                planned.push(p);
            }
            if phases.last() != Some(&p.phase) {
                phases.push(p.phase);
            }
        },
    });
    if result.is_ok() {
        use hearth_ota::install::Phase::*;
        // Planning only reads, so the index phase is one stretch before the slot is marked.
        assert_eq!(
            phases,
            vec![Index, MarkUnbootable, Write, Sync, Verify, Activate]
        );
        // install() goes on from where resolve_reporting stopped (format 3: the running slot's
        // bytes; formats 1 and 2: 0) to the end, never back.
        let total = planned[0].total;
        let start = if rig.format == 3 { slot_len } else { 0 };
        assert!(total >= target_len, "{planned:?}");
        assert_eq!(
            (planned[0].done, planned.last().map(|p| p.done)),
            (start, Some(total)),
            "{planned:?}"
        );
        assert!(
            planned
                .windows(2)
                .all(|w| w[0].done <= w[1].done && w[1].total == total),
            "{planned:?}"
        );
        assert!(indexed.iter().all(|p| p.total == total), "{indexed:?}");
    }
    result
}

fn boot_state(rig: &Rig) -> hearth_ota::boot::BootState {
    FileBoot::new(DirFs::new(&rig.dir.join("boot")))
        .state()
        .unwrap()
}

#[test]
fn a_small_change_downloads_only_the_changed_chunks() {
    let rig = rig();
    let report = update(&rig).unwrap();
    assert_eq!(std::fs::read(rig.dir.join("slot-b.img")).unwrap(), rig.v2);
    assert_eq!(std::fs::read(rig.dir.join("slot-a.img")).unwrap(), rig.v1);
    // 100 KB at offset 1,000,000 touches chunks 15..=16 (64 KiB each).
    assert_eq!(report.plan.download_bytes, 2 * 65536);
    let served = rig.server.knobs.lock().unwrap().served_bytes;
    // Header + manifest reads plus the two chunks; far below the 4 MiB payload.
    assert!(served < 2 * 65536 + 64 * 1024, "served {served}");
    assert_eq!(boot_state(&rig).trial, Some((Slot::B, 3)));
}

#[test]
fn a_dropped_connection_resumes_where_it_stopped() {
    let rig = rig();
    std::fs::write(rig.dir.join("slot-a.img"), b"").unwrap(); // no delta: download everything
    rig.server.knobs.lock().unwrap().drop_once_after = Some(10);
    let before = rig.server.knobs.lock().unwrap().served_bytes;
    let report = update(&rig).unwrap();
    assert_eq!(std::fs::read(rig.dir.join("slot-b.img")).unwrap(), rig.v2);
    let served = rig.server.knobs.lock().unwrap().served_bytes - before;
    // Everything once, plus the 10 bytes of the dropped attempt; nothing fetched twice.
    assert_eq!(report.plan.download_bytes, SIZE as u64);
    assert!(served < SIZE as u64 + 16 * 1024, "served {served}");
}

#[test]
fn an_interrupted_install_leaves_the_slot_unbootable_and_a_retry_fetches_only_the_rest() {
    let rig = rig();
    std::fs::write(rig.dir.join("slot-a.img"), b"").unwrap();
    // The connection is cut for good after 1.5 MiB of Range bodies.
    rig.server.knobs.lock().unwrap().budget = Some(1_500_000);
    let err = update(&rig).unwrap_err();
    assert!(matches!(err, InstallError::Source(_)), "{err}");
    let state = boot_state(&rig);
    assert!(
        !state.is_bootable(Slot::B) && state.trial.is_none(),
        "{state:?}"
    );
    let first = rig.server.knobs.lock().unwrap().served_bytes;
    {
        let mut k = rig.server.knobs.lock().unwrap();
        k.budget = None;
    }
    let report = update(&rig).unwrap();
    assert_eq!(std::fs::read(rig.dir.join("slot-b.img")).unwrap(), rig.v2);
    assert!(
        report.plan.download_bytes < SIZE as u64,
        "nothing was reused: {:?}",
        report.plan.download_bytes
    );
    let total = rig.server.knobs.lock().unwrap().served_bytes;
    assert!(
        // At most the chunk cut in half is fetched twice (plus the signed prefix again).
        total < SIZE as u64 + 2 * 65536,
        "downloaded {total} in all for a {SIZE}-byte payload (first try {first})"
    );
    assert_eq!(boot_state(&rig).trial, Some((Slot::B, 3)));
}

#[test]
fn a_downgrade_offered_by_the_index_is_refused() {
    let rig = rig();
    let client = reqwest::Client::new();
    let bytes = rig
        .rt
        .block_on(fetch_index(
            &client,
            &index_for(&rig.server.base, rig.format),
        ))
        .unwrap();
    let accepted =
        hearth_ota::index::accept(&bytes, &rig.keys.trust, "stable", "qemu-x86_64", NOW, None)
            .unwrap();
    let newer = Device {
        version_number: 3,
        ..device()
    };
    assert!(matches!(
        decide::decide(&newer, &accepted.index),
        Err(hearth_ota::VerifyError::Downgrade { .. })
    ));
    let same = Device {
        version_number: 2,
        ..device()
    };
    assert_eq!(
        decide::decide(&same, &accepted.index).unwrap(),
        Decision::UpToDate
    );
}

#[test]
fn a_stalled_connection_is_abandoned_and_resumed() {
    let rig = rig();
    std::fs::write(rig.dir.join("slot-a.img"), b"").unwrap();
    rig.server.knobs.lock().unwrap().stall_once_after = Some(5);
    update(&rig).unwrap();
    assert_eq!(std::fs::read(rig.dir.join("slot-b.img")).unwrap(), rig.v2);
}

/// Bundle bytes of the published format-2 bundle: (signed prefix and padding, payload data).
fn stored_total(rig: &Rig) -> (u64, u64) {
    let path = std::fs::read_dir(rig.dir.join("repo/bundles"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let b = hearth_ota::bundle::open(
        &mut hearth_ota::source::FileSource::open(&path).unwrap(),
        &rig.keys.trust,
    )
    .unwrap();
    assert!(matches!(
        b.manifest.chunking,
        Chunking::Cdc(_) | Chunking::Paged { .. }
    ));
    (b.payload_start, b.manifest.total_payload_size().unwrap())
}

#[test]
fn cdc_a_small_change_downloads_only_the_chunks_around_it() {
    let rig = rig_cdc();
    let report = update(&rig).unwrap();
    assert_eq!(std::fs::read(rig.dir.join("slot-b.img")).unwrap(), rig.v2);
    // The 100 KB change (random, so stored raw) plus at most one chunk on either side.
    let max = u64::from(TEST_CDC.max);
    let d = report.plan.download_bytes;
    assert!((100_000..100_000 + 2 * max).contains(&d), "downloaded {d}");
    assert_eq!(boot_state(&rig).trial, Some((Slot::B, 3)));
}

#[test]
fn cdc_an_insertion_early_in_the_image_does_not_shift_what_follows() {
    let v1 = image_bytes(SIZE, 11);
    let mut v2 = v1.clone();
    v2.splice(5_000..5_000, image_bytes(3_000, 13));
    let rig = rig_with(v1.clone(), v2.clone(), 2);
    let report = update(&rig).unwrap();
    assert_eq!(std::fs::read(rig.dir.join("slot-b.img")).unwrap(), v2);
    let d = report.plan.download_bytes;
    assert!(d < 3_000 + 2 * u64::from(TEST_CDC.max), "downloaded {d}");
    // Fixed chunks (format 1) lose everything after the insertion.
    let fixed = rig_with(v1, v2, 1);
    let report = update(&fixed).unwrap();
    assert!(
        report.plan.download_bytes > SIZE as u64 * 9 / 10,
        "{}",
        report.plan.download_bytes
    );
}

#[test]
fn cdc_a_dropped_connection_resumes_where_it_stopped() {
    let rig = rig_cdc();
    std::fs::write(rig.dir.join("slot-a.img"), b"").unwrap(); // no delta: download everything
    rig.server.knobs.lock().unwrap().drop_once_after = Some(10);
    let before = rig.server.knobs.lock().unwrap().served_bytes;
    let report = update(&rig).unwrap();
    assert_eq!(std::fs::read(rig.dir.join("slot-b.img")).unwrap(), rig.v2);
    let served = rig.server.knobs.lock().unwrap().served_bytes - before;
    let (prefix, stored) = stored_total(&rig);
    assert_eq!(report.plan.download_bytes, stored);
    // Everything once (the prefix is read to open the bundle), plus the dropped attempt.
    assert!(served < prefix + stored + 1024, "served {served}");
}

#[test]
fn cdc_an_interrupted_install_is_retried_and_fetches_only_the_rest() {
    let rig = rig_cdc();
    std::fs::write(rig.dir.join("slot-a.img"), b"").unwrap();
    rig.server.knobs.lock().unwrap().budget = Some(1_500_000);
    let err = update(&rig).unwrap_err();
    assert!(matches!(err, InstallError::Source(_)), "{err}");
    let state = boot_state(&rig);
    assert!(
        !state.is_bootable(Slot::B) && state.trial.is_none(),
        "{state:?}"
    );
    rig.server.knobs.lock().unwrap().budget = None;
    let report = update(&rig).unwrap();
    assert_eq!(std::fs::read(rig.dir.join("slot-b.img")).unwrap(), rig.v2);
    let (prefix, stored) = stored_total(&rig);
    assert!(report.plan.download_bytes < stored);
    let total = rig.server.knobs.lock().unwrap().served_bytes;
    assert!(
        // At most the chunk cut in half is fetched twice (plus the signed prefix again).
        total < stored + 2 * prefix + u64::from(TEST_CDC.max),
        "downloaded {total} in all"
    );
    assert_eq!(boot_state(&rig).trial, Some((Slot::B, 3)));
}

/// Format 3: the same insertion downloads the pages around it (not the whole chunk list) and
/// the same chunks as format 2; in all, fewer bytes than format 2 with its whole chunk list in
/// the signed prefix.
#[test]
fn paged_an_insertion_early_downloads_only_the_pages_and_chunks_around_it() {
    let v1 = image_bytes(SIZE, 11);
    let mut v2 = v1.clone();
    v2.splice(5_000..5_000, image_bytes(3_000, 13));
    let served = |rig: &Rig| rig.server.knobs.lock().unwrap().served_bytes;
    let cdc = rig_with(v1.clone(), v2.clone(), 2);
    let report2 = update(&cdc).unwrap();
    let paged = rig_with(v1, v2.clone(), 3);
    let report3 = update(&paged).unwrap();
    assert_eq!(std::fs::read(paged.dir.join("slot-b.img")).unwrap(), v2);
    assert_eq!(report3.plan.download_bytes, report2.plan.download_bytes);
    let (prefix, stored) = stored_total(&paged);
    let pages_total = pages_size(&paged);
    let fetched = paged.pages_fetched.get();
    // The page with the insertion and the last one (it ends where the payload does, which
    // the running slot's cut does not know): a small part of all pages.
    assert!(
        fetched > 0 && fetched * 2 < pages_total,
        "{fetched} of {pages_total}"
    );
    assert!(
        served(&paged) < served(&cdc),
        "{} {}",
        served(&paged),
        served(&cdc)
    );
    assert!(served(&paged) < prefix + fetched + report3.plan.download_bytes + 64 * 1024);
    assert!(report3.plan.download_bytes < stored / 10);
}

/// Bytes of the pages of the published (format-3) bundle.
fn pages_size(rig: &Rig) -> u64 {
    let path = std::fs::read_dir(rig.dir.join("repo/bundles"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let b = hearth_ota::bundle::open(
        &mut hearth_ota::source::FileSource::open(&path).unwrap(),
        &rig.keys.trust,
    )
    .unwrap();
    assert_eq!(b.manifest.format, 3);
    b.manifest.payloads.iter().map(|p| p.pages_size()).sum()
}

#[test]
fn paged_without_a_running_slot_downloads_every_page_and_chunk_once() {
    let rig = rig_with(image_bytes(SIZE, 11), image_bytes(SIZE, 12), 3);
    std::fs::write(rig.dir.join("slot-a.img"), b"").unwrap();
    let report = update(&rig).unwrap();
    assert_eq!(std::fs::read(rig.dir.join("slot-b.img")).unwrap(), rig.v2);
    let pages = pages_size(&rig);
    assert_eq!(rig.pages_fetched.get(), pages);
    let (prefix, stored) = stored_total(&rig);
    // `stored_total` counts the pages with the chunks.
    assert_eq!(report.plan.download_bytes + pages, stored);
    let served = rig.server.knobs.lock().unwrap().served_bytes;
    assert!(served < prefix + stored + 8 * 1024, "served {served}");
}

#[test]
fn paged_a_dropped_connection_and_an_interrupted_install_resume() {
    let v1 = image_bytes(SIZE, 11);
    let mut v2 = v1.clone();
    v2[1_000_000..1_100_000].copy_from_slice(&image_bytes(100_000, 12));
    let rig = rig_with(v1, v2, 3);
    std::fs::write(rig.dir.join("slot-a.img"), b"").unwrap(); // no delta: every page and chunk
    rig.server.knobs.lock().unwrap().drop_once_after = Some(10);
    rig.server.knobs.lock().unwrap().budget = Some(1_500_000);
    let err = update(&rig).unwrap_err();
    assert!(matches!(err, InstallError::Source(_)), "{err}");
    assert!(!boot_state(&rig).is_bootable(Slot::B));
    rig.server.knobs.lock().unwrap().budget = None;
    let report = update(&rig).unwrap();
    assert_eq!(std::fs::read(rig.dir.join("slot-b.img")).unwrap(), rig.v2);
    let (prefix, stored) = stored_total(&rig);
    // The pages again (they are not kept), the chunks not yet in place.
    assert!(report.plan.download_bytes + rig.pages_fetched.get() < stored);
    let total = rig.server.knobs.lock().unwrap().served_bytes;
    assert!(
        total < stored + 2 * (prefix + pages_size(&rig)) + u64::from(TEST_CDC.max),
        "downloaded {total} in all"
    );
    assert_eq!(boot_state(&rig).trial, Some((Slot::B, 3)));
}
