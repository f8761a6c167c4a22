//! The streaming installer: writes a verified bundle into the inactive slot.
//!
//! Order (a two-phase commit): plan (read only: which chunks are already in the target, which
//! the running slot has) → mark the target unbootable → write every chunk, each verified
//! against its signed hash before it is written (from the target itself when already in place,
//! zeros, the active slot, or the bundle) → sync → read everything back and verify → make the
//! target the next trial boot. A failure at any point leaves the target unbootable and the
//! active slot untouched; a retry resumes (chunks already in place are not fetched again).
//! Threads (targets that offer [`SlotStorage::handle`]: files and block devices): this one
//! fetches, unpacks and checks; a writer writes; a third reads each written 8 MiB window back
//! while the next ones are written, so the read-back no longer waits for the last write.
//! Memory: two chunk buffers (stored and unpacked), up to 32 chunks (4 MiB) queued for
//! the writer, the network's pieces, the manifest's chunk list and about 40 bytes per chunk of
//! the active slot's index.
//! Never writes to the active slot; never marks anything bootable before the read-back.
use std::borrow::Cow;
use std::ops::{ControlFlow, Range};
use std::sync::mpsc;

use crate::boot::{BootControl, BootError, RebootRequest, Slot};
use crate::bundle::{Pending, Unpacker, VerifiedBundle};
use crate::delta::{self, ChunkFrom, ChunkIndex, LocalChunks, Plan};
use crate::format::VerifyError;
use crate::fs_extent;
use crate::manifest::{Chunk, Chunking, Payload};
use crate::source::{BundleSource, SourceError};
use crate::storage::SlotStorage;

/// Longest single download request, in stored bytes.
pub const MAX_RUN_BYTES: u64 = 8 * 1024 * 1024;
/// The device's write-back is started every this many payload bytes written
/// ([`SlotStorage::start_writeback`]), so the disk writes while the next chunks are checked
/// and unpacked instead of all at the final sync (measured in docs/ota.md).
pub const WRITEBACK_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    MarkUnbootable,
    Index,
    Write,
    Sync,
    Verify,
    Activate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    pub phase: Phase,
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the bundle has payload {0}, but no target was given for it")]
    MissingTarget(String),
    #[error("payload {name} is {size} bytes, larger than its target {target} ({capacity} bytes)")]
    TooSmall {
        name: String,
        size: u64,
        target: String,
        capacity: u64,
    },
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("downloading the bundle failed: {0}")]
    Source(#[from] SourceError),
    #[error("{op} {target} failed: {source}")]
    Storage {
        op: &'static str,
        target: String,
        source: std::io::Error,
    },
    #[error(
        "read-back of payload {payload} chunk {chunk} does not match: the slot is left unbootable"
    )]
    ReadBack { payload: String, chunk: u64 },
    #[error("boot control: {0}")]
    Boot(#[from] BootError),
    #[error("slot {0:?} is the committed slot (the fallback); updates go to the other one")]
    TargetIsPrimary(Slot),
}

/// One payload's destination in the target slot, and its counterpart in the active slot (the
/// delta source), if any.
pub struct Target<'a> {
    pub payload: String,
    pub target: &'a mut dyn SlotStorage,
    pub active: Option<&'a mut dyn SlotStorage>,
}

impl<'a> Target<'a> {
    /// The targets over opened slots: each is (payload name, the target slot's storage, the
    /// active slot's copy if there is one). The agent and the `hearth-ota install` command
    /// both open their slots this way.
    pub fn from_slots<S: SlotStorage + 'a>(slots: &'a mut [(String, S, Option<S>)]) -> Vec<Self> {
        slots
            .iter_mut()
            .map(|(name, target, active)| Target {
                payload: name.clone(),
                target,
                active: active.as_mut().map(|a| a as &mut dyn SlotStorage),
            })
            .collect()
    }
}

pub struct InstallRequest<'a, 'b> {
    pub bundle: &'a VerifiedBundle,
    pub source: &'a mut dyn BundleSource,
    pub targets: Vec<Target<'b>>,
    pub boot: &'a mut dyn BootControl,
    pub slot: Slot,
    pub progress: &'a mut dyn FnMut(Progress),
}

#[derive(Debug, Clone)]
pub struct InstallReport {
    pub reboot: RebootRequest,
    pub plan: Plan,
    /// Bytes the source delivered (network bytes for HTTP).
    pub fetched: u64,
}

/// The error for a failed `op` on `target` (described only when it happens: this runs for
/// every chunk).
fn storage<'t>(
    op: &'static str,
    target: &'t dyn SlotStorage,
) -> impl Fn(std::io::Error) -> InstallError + 't {
    move |source| InstallError::Storage {
        op,
        target: target.describe(),
        source,
    }
}

/// Completes a bundle for installing into `targets`: a format-3 bundle's pages are derived from
/// each payload's running slot where they can be, the others downloaded
/// (`bundle::Pending::resolve`); the installer then plans with the same slot indexes, so the
/// running slot is read once. Formats 1 and 2 are complete already.
pub fn resolve(
    pending: Pending,
    source: &mut dyn BundleSource,
    targets: &mut [Target<'_>],
) -> Result<VerifiedBundle, InstallError> {
    resolve_reporting(pending, source, targets, &mut |_| {})
}

/// Bytes of the running slot read between two [`Phase::Index`] reports of [`resolve_reporting`].
pub const INDEX_REPORT_BYTES: u64 = 8 * 1024 * 1024;

/// [`resolve`], reporting the read of the running slots (format 3 only; the longest part of it,
/// about a minute for a root on an SD card) as [`Phase::Index`]: `done` of `total` bytes, once
/// before the first read, every [`INDEX_REPORT_BYTES`] and at the end. `total` also counts the
/// targets, which [`install`] reads next in the same phase (chunks an interrupted attempt left
/// in place), so the phase's progress runs once from 0 to `total` over both calls.
pub fn resolve_reporting(
    pending: Pending,
    source: &mut dyn BundleSource,
    targets: &mut [Target<'_>],
    progress: &mut dyn FnMut(Progress),
) -> Result<VerifiedBundle, InstallError> {
    let chunking = pending.manifest.chunking;
    let mut local = Vec::new();
    if matches!(chunking, Chunking::Paged { .. }) {
        let mut actives = Vec::new();
        for p in &pending.manifest.payloads {
            let Some(a) = targets
                .iter_mut()
                .find(|t| t.payload == p.name)
                .and_then(|t| t.active.as_deref_mut())
            else {
                continue;
            };
            let len = fs_extent::index_len(a).map_err(storage("read", &*a))?;
            actives.push((p.name.clone(), len));
        }
        let running: u64 = actives.iter().map(|(_, len)| len).sum();
        let mut count = IndexCount {
            done: 0,
            total: running + target_check_bytes(&pending.manifest.payloads, targets),
            next: 0,
            progress,
        };
        count.report();
        for (name, len) in actives {
            let Some(a) = targets
                .iter_mut()
                .find(|t| t.payload == name)
                .and_then(|t| t.active.as_deref_mut())
            else {
                continue;
            };
            let mut read = Reporting {
                inner: a,
                count: &mut count,
            };
            let index = delta::index_slot(&mut read, chunking, len);
            local.push((name, index.map_err(storage("read", &*read.inner))?));
        }
        // The phase goes on in `install`, which checks the targets (`plan_all`).
        count.done = running;
        count.report();
    }
    pending.resolve(source, local).map_err(|e| match e {
        // A page that could not be downloaded is a download failure, not a bad bundle.
        VerifyError::Source(s) => InstallError::Source(SourceError::Http(s)),
        other => other.into(),
    })
}

/// Bytes of the targets `plan_all` reads to find chunks already in place: every payload that
/// has a target.
fn target_check_bytes(payloads: &[Payload], targets: &[Target<'_>]) -> u64 {
    payloads
        .iter()
        .filter(|p| targets.iter().any(|t| t.payload == p.name))
        .map(|p| p.size)
        .sum()
}

/// Bytes of the running slots read so far, for [`Phase::Index`] reports.
struct IndexCount<'p> {
    done: u64,
    total: u64,
    next: u64,
    progress: &'p mut dyn FnMut(Progress),
}

impl IndexCount<'_> {
    fn report(&mut self) {
        (self.progress)(Progress {
            phase: Phase::Index,
            done: self.done.min(self.total),
            total: self.total,
        });
        self.next = self.done + INDEX_REPORT_BYTES;
    }
}

/// A running slot being indexed, its reads counted.
struct Reporting<'a, 'p> {
    inner: &'a mut dyn SlotStorage,
    count: &'a mut IndexCount<'p>,
}

impl SlotStorage for Reporting<'_, '_> {
    fn capacity(&mut self) -> std::io::Result<u64> {
        self.inner.capacity()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_at(offset, buf)?;
        let c = &mut *self.count;
        c.done += buf.len() as u64;
        if c.done >= c.next && c.done < c.total {
            c.report();
        }
        Ok(())
    }

    fn write_at(&mut self, _offset: u64, _buf: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("the running slot is never written"))
    }

    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Installs `req.bundle` into `req.slot`. The bundle must come from `bundle::open` and be
/// allowed by `decide::check_manifest`.
pub fn install(mut req: InstallRequest<'_, '_>) -> Result<InstallReport, InstallError> {
    let m = &req.bundle.manifest;
    for p in &m.payloads {
        let t = req
            .targets
            .iter_mut()
            .find(|t| t.payload == p.name)
            .ok_or_else(|| InstallError::MissingTarget(p.name.clone()))?;
        let capacity = t
            .target
            .capacity()
            .map_err(storage("size of", &*t.target))?;
        if capacity < p.size {
            return Err(InstallError::TooSmall {
                name: p.name.clone(),
                size: p.size,
                target: t.target.describe(),
                capacity,
            });
        }
    }
    if req.boot.state()?.primary == Some(req.slot) {
        return Err(InstallError::TargetIsPrimary(req.slot));
    }
    // Planning only reads (the running slot, and the target for chunks already in place), so
    // it comes first and the index phase is one stretch with `resolve_reporting`'s.
    let plan = plan_all(&mut req)?;
    (req.progress)(Progress {
        phase: Phase::MarkUnbootable,
        done: 0,
        total: 1,
    });
    req.boot.mark_unbootable(req.slot)?;
    // Writes and the read-back run on threads of their own when every target offers handles
    // for them (files and block devices do).
    let handles = |req: &mut InstallRequest<'_, '_>| -> Option<Vec<_>> {
        m.payloads
            .iter()
            .map(|p| target_for(&mut req.targets, &p.name).target.handle())
            .collect()
    };
    match handles(&mut req).zip(handles(&mut req)) {
        Some((writers, readers)) => write_and_read_back(&mut req, &plan, writers, readers)?,
        None => {
            write_all(&mut req, &plan, &Sink::Direct)?;
            sync_all(&mut req)?;
            let total = plan.total_bytes;
            let mut done = 0;
            for p in &m.payloads {
                let t = target_for(&mut req.targets, &p.name);
                read_back(&mut *t.target, p, 0..p.chunks.len(), &mut |n| {
                    done += n;
                    (req.progress)(Progress {
                        phase: Phase::Verify,
                        done,
                        total,
                    });
                })?;
            }
        }
    }
    (req.progress)(Progress {
        phase: Phase::Activate,
        done: 0,
        total: 1,
    });
    let reboot = req.boot.set_trial(req.slot, &m.version)?;
    Ok(InstallReport {
        reboot,
        plan,
        fetched: req.source.bytes_fetched(),
    })
}

/// Ends growable targets at their payload's size and makes every write durable.
fn sync_all(req: &mut InstallRequest<'_, '_>) -> Result<(), InstallError> {
    (req.progress)(Progress {
        phase: Phase::Sync,
        done: 0,
        total: 1,
    });
    for p in &req.bundle.manifest.payloads {
        let t = target_for(&mut req.targets, &p.name);
        t.target
            .truncate(p.size)
            .map_err(storage("truncate", &*t.target))?;
        t.target.sync().map_err(storage("sync", &*t.target))?;
    }
    Ok(())
}

/// Writes every payload through a writer thread while a third thread reads each written
/// window back and checks its chunks against the manifest; this thread fetches, unpacks and
/// checks the chunks. Then syncs and waits for the last windows. `writers` and `readers` are
/// second handles on the targets (one each per payload, in manifest order). The read-back sees
/// what the kernel returns for the target after the write, as a read-back after the sync does
/// (page cache or disk); it only no longer waits for the last write.
fn write_and_read_back(
    req: &mut InstallRequest<'_, '_>,
    plan: &Plan,
    writers: Vec<Box<dyn SlotStorage + Send>>,
    readers: Vec<Box<dyn SlotStorage + Send>>,
) -> Result<(), InstallError> {
    let payloads: &[Payload] = &req.bundle.manifest.payloads;
    let total = plan.total_bytes;
    std::thread::scope(|scope| {
        let (windows, to_check) = mpsc::channel::<(usize, Range<usize>)>();
        let (checked, checked_rx) = mpsc::channel::<u64>();
        let checker = scope.spawn(move || {
            let mut readers = readers;
            for (payload, range) in to_check {
                let p = &payloads[payload];
                let mut bytes = 0;
                read_back(&mut *readers[payload], p, range, &mut |n| bytes += n)?;
                // The installer may have stopped waiting (it failed): nothing to report to.
                let _ = checked.send(bytes);
            }
            Ok::<(), InstallError>(())
        });
        let (queue, from_queue) = mpsc::sync_channel::<ToWriter>(QUEUE_CHUNKS);
        let writer = scope.spawn(move || write_queue(writers, from_queue, windows));
        let written = write_all(req, plan, &Sink::Queue(&queue));
        drop(queue);
        let wrote = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // The writer's own error explains a queue that stopped taking chunks.
        let synced = wrote.and(written).and_then(|()| sync_all(req));
        let mut done = 0;
        if synced.is_ok() {
            for n in checked_rx {
                done += n;
                (req.progress)(Progress {
                    phase: Phase::Verify,
                    done,
                    total,
                });
            }
        }
        let checked = checker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // A read-back mismatch explains a stopped writer; otherwise the write's own error.
        checked.and(synced)
    })
}

/// Chunks the writer thread may hold queued (at most [`Manifest::max_chunk`] bytes each:
/// 4 MiB at 128 KiB, inside the installer's 16 MiB budget).
const QUEUE_CHUNKS: usize = 32;

/// Work for the writer thread, in order.
enum ToWriter {
    /// Verified content for `payload`'s target at `offset`.
    Chunk {
        payload: usize,
        offset: u64,
        bytes: Vec<u8>,
    },
    /// Chunks `range` of `payload` are all in the target: read them back.
    Window(usize, Range<usize>),
    /// Answer once everything before is written.
    Flush(mpsc::SyncSender<()>),
}

/// The writer thread: writes each chunk at its place (starting the write-back every
/// [`WRITEBACK_BYTES`]) and hands each finished window to the read-back. Stops when the queue
/// closes or the read-back has stopped (it failed, and says why).
fn write_queue(
    mut targets: Vec<Box<dyn SlotStorage + Send>>,
    queue: mpsc::Receiver<ToWriter>,
    windows: mpsc::Sender<(usize, Range<usize>)>,
) -> Result<(), InstallError> {
    let mut writeback_from = vec![0; targets.len()];
    for work in queue {
        match work {
            ToWriter::Chunk {
                payload,
                offset,
                bytes,
            } => write_chunk(
                &mut *targets[payload],
                offset,
                &bytes,
                &mut writeback_from[payload],
            )?,
            ToWriter::Window(payload, range) => {
                if windows.send((payload, range)).is_err() {
                    return Ok(());
                }
            }
            ToWriter::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
    Ok(())
}

/// Writes verified bytes at `offset` and starts the write-back every [`WRITEBACK_BYTES`]
/// (`writeback_from`: where it was last started in this target).
fn write_chunk(
    target: &mut dyn SlotStorage,
    offset: u64,
    bytes: &[u8],
    writeback_from: &mut u64,
) -> Result<(), InstallError> {
    target
        .write_at(offset, bytes)
        .map_err(storage("write", target))?;
    let end = offset + bytes.len() as u64;
    let from = *writeback_from;
    if end >= from + WRITEBACK_BYTES {
        target.start_writeback(from, end - from);
        *writeback_from = end;
    }
    Ok(())
}

/// The writer thread stopped taking work: its own result says why.
fn writer_stopped() -> InstallError {
    InstallError::Storage {
        op: "write",
        target: "the target (writer thread)".into(),
        source: std::io::Error::other("the writer thread stopped"),
    }
}

/// Where [`write_all`] puts verified chunks.
enum Sink<'q> {
    /// Into `req.targets`, on this thread.
    Direct,
    /// To the writer thread.
    Queue(&'q mpsc::SyncSender<ToWriter>),
}

fn target_for<'t, 'b>(targets: &'t mut [Target<'b>], name: &str) -> &'t mut Target<'b> {
    let i = targets.iter().position(|t| t.payload == name).unwrap_or(0);
    &mut targets[i]
}

/// Plans every chunk, reporting [`Phase::Index`] over the bytes it reads: each target (chunks an
/// interrupted attempt left in place) and, formats 1 and 2, each running slot. A format-3
/// running slot was read by [`resolve_reporting`]: its bytes count as done, so the phase goes
/// on from where that call left it.
fn plan_all(req: &mut InstallRequest<'_, '_>) -> Result<Plan, InstallError> {
    let bundle = req.bundle;
    let m = &bundle.manifest;
    let mut indexes: Vec<(String, Option<Cow<'_, ChunkIndex>>, Vec<bool>)> = Vec::new();
    let mut lens = Vec::new();
    let (mut done, mut total) = (0, target_check_bytes(&m.payloads, &req.targets));
    for p in &m.payloads {
        let t = target_for(&mut req.targets, &p.name);
        let len = match (t.active.as_deref_mut(), bundle.local_index(&p.name)) {
            (Some(_), Some(local)) => {
                done += local.bytes();
                total += local.bytes();
                None
            }
            (Some(a), None) => {
                let len = fs_extent::index_len(a).map_err(storage("read", &*a))?;
                total += len;
                Some(len)
            }
            (None, _) => None,
        };
        lens.push(len);
    }
    let mut count = IndexCount {
        done,
        total,
        next: 0,
        progress: &mut *req.progress,
    };
    count.report();
    for (p, len) in m.payloads.iter().zip(lens) {
        let t = target_for(&mut req.targets, &p.name);
        let in_place = delta::in_place(
            &mut Reporting {
                inner: &mut *t.target,
                count: &mut count,
            },
            &p.chunks,
        );
        let active = match (t.active.as_deref_mut(), len) {
            // Format 3: the index its pages were derived from (already read; every chunk of a
            // derived page is in it, so none of those is planned for download).
            (Some(_), None) => bundle.local_index(&p.name).map(Cow::Borrowed),
            (Some(a), Some(len)) => {
                let mut read = Reporting {
                    inner: a,
                    count: &mut count,
                };
                Some(Cow::Owned(
                    delta::index_slot(&mut read, m.chunking, len)
                        .map_err(storage("read", &*read.inner))?,
                ))
            }
            (None, _) => None,
        };
        indexes.push((p.name.clone(), active, in_place));
    }
    count.done = count.total;
    count.report();
    Ok(delta::plan(req.bundle, &|name| {
        indexes
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, a, t)| LocalChunks {
                active: a.as_deref(),
                in_place: Some(t),
            })
            .unwrap_or_default()
    }))
}

/// Writes every chunk the plan does not find in place, checked, into `sink`. A queue is also
/// given every window of at least [`WRITEBACK_BYTES`] (and each payload's last one) after its
/// chunks, to read back; writing stops early when the queue stops taking work (the writer or
/// the read-back failed, and says why).
fn write_all(
    req: &mut InstallRequest<'_, '_>,
    plan: &Plan,
    sink: &Sink<'_>,
) -> Result<(), InstallError> {
    let written = |payload: usize, range: Range<usize>| match sink {
        Sink::Direct => true,
        Sink::Queue(q) => q.send(ToWriter::Window(payload, range)).is_ok(),
    };
    let m = &req.bundle.manifest;
    let total = plan.total_bytes;
    let mut done = 0u64;
    let mut unpack = Unpacker::new(m.max_chunk());
    let mut buf = vec![0u8; m.max_chunk()];
    for (n, (p, pp)) in m.payloads.iter().zip(&plan.payloads).enumerate() {
        let runs = delta::download_runs(pp, &p.chunks, MAX_RUN_BYTES);
        let mut writeback_from = 0;
        let mut next_run = 0;
        let mut i = 0usize;
        let mut window = 0usize;
        while i < pp.chunks.len() {
            if i > window && p.chunks[i].offset - p.chunks[window].offset >= WRITEBACK_BYTES {
                if !written(n, window..i) {
                    return Ok(());
                }
                window = i;
            }
            let c = &p.chunks[i];
            let len = c.len as usize;
            if let ChunkFrom::Written { payload, offset } = pp.chunks[i] {
                if let Sink::Queue(q) = sink {
                    // The source chunk must be written before it is read.
                    let (done, wait) = mpsc::sync_channel(1);
                    q.send(ToWriter::Flush(done))
                        .map_err(|_| writer_stopped())?;
                    wait.recv().map_err(|_| writer_stopped())?;
                }
                // Read before `out` borrows the targets: the source may be another payload's.
                let src = target_for(&mut req.targets, &m.payloads[payload].name);
                src.target
                    .read_at(offset, &mut buf[..len])
                    .map_err(storage("read", &*src.target))?;
            }
            let t = target_for(&mut req.targets, &p.name);
            let mut out = match sink {
                Sink::Direct => SlotWriter::Direct {
                    target: &mut *t.target,
                    writeback_from: &mut writeback_from,
                },
                Sink::Queue(q) => SlotWriter::Queue {
                    queue: q,
                    payload: n,
                },
            };
            match pp.chunks[i] {
                ChunkFrom::InPlace => {}
                ChunkFrom::Zero => {
                    buf[..len].fill(0);
                    out.put(p, i, &buf[..len])?;
                }
                ChunkFrom::Active(offset) => {
                    let a = t
                        .active
                        .as_deref_mut()
                        .ok_or_else(|| InstallError::MissingTarget(p.name.clone()))?;
                    a.read_at(offset, &mut buf[..len])
                        .map_err(storage("read", &*a))?;
                    out.put(p, i, &buf[..len])?;
                }
                ChunkFrom::Written { .. } => out.put(p, i, &buf[..len])?,
                ChunkFrom::Download => {
                    let (first, count) = runs[next_run];
                    next_run += 1;
                    let bytes = fetch_run(
                        req.source,
                        req.bundle,
                        &mut out,
                        &mut unpack,
                        p,
                        first as usize,
                        count as usize,
                    )?;
                    done += bytes;
                    (req.progress)(Progress {
                        phase: Phase::Write,
                        done,
                        total,
                    });
                    i = (first + count) as usize;
                    continue;
                }
            }
            done += len as u64;
            (req.progress)(Progress {
                phase: Phase::Write,
                done,
                total,
            });
            i += 1;
        }
        if window < p.chunks.len() && !written(n, window..p.chunks.len()) {
            return Ok(());
        }
    }
    Ok(())
}

/// Writes one payload's chunks into its target (directly or through the writer thread), front
/// to back.
enum SlotWriter<'t> {
    Direct {
        target: &'t mut dyn SlotStorage,
        /// Where the write-back was last started (kept by the caller across chunks).
        writeback_from: &'t mut u64,
    },
    Queue {
        queue: &'t mpsc::SyncSender<ToWriter>,
        payload: usize,
    },
}

impl SlotWriter<'_> {
    /// Verifies chunk `i` of `p` and writes it at its place.
    fn put(&mut self, p: &Payload, i: usize, bytes: &[u8]) -> Result<(), InstallError> {
        let c = &p.chunks[i];
        if bytes.len() != c.len as usize || *blake3::hash(bytes).as_bytes() != c.hash {
            return Err(VerifyError::ChunkHash {
                payload: p.name.clone(),
                chunk: i as u64,
            }
            .into());
        }
        self.write_verified(c, bytes)
    }

    /// Writes a chunk whose content was just checked against `c.hash` (by [`Self::put`], or
    /// by [`Unpacker::unpack`], which returns only content it checked: hashing it again would
    /// only cost time).
    fn write_verified(&mut self, c: &Chunk, bytes: &[u8]) -> Result<(), InstallError> {
        match self {
            SlotWriter::Direct {
                target,
                writeback_from,
            } => write_chunk(&mut **target, c.offset, bytes, writeback_from),
            SlotWriter::Queue { queue, payload } => queue
                .send(ToWriter::Chunk {
                    payload: *payload,
                    offset: c.offset,
                    bytes: bytes.to_vec(),
                })
                .map_err(|_| writer_stopped()),
        }
    }
}

/// Streams the stored bytes of chunks `first .. first+count` (back to back in the bundle) into
/// the target: each chunk's stored bytes are collected (one chunk at most), checked, unpacked,
/// checked again and only then written. Returns the payload bytes written.
fn fetch_run(
    source: &mut dyn BundleSource,
    bundle: &VerifiedBundle,
    out: &mut SlotWriter<'_>,
    unpack: &mut Unpacker,
    p: &Payload,
    first: usize,
    count: usize,
) -> Result<u64, InstallError> {
    let chunks: &[Chunk] = &p.chunks[first..first + count];
    if chunks.iter().any(|c| c.stored == 0) {
        // Only a chunk of a page derived from the running slot has no stored size, and the
        // plan takes those from the running slot: never reached, but never guessed either.
        return Err(VerifyError::BodyMalformed(format!(
            "payload {}: a chunk of a locally derived page was planned for download",
            p.name
        ))
        .into());
    }
    let start = bundle.chunk_offset(&chunks[0]);
    let stored: u64 = chunks.iter().map(|c| u64::from(c.stored)).sum();
    let mut pending: Vec<u8> = Vec::with_capacity(chunks[0].stored as usize);
    let mut i = 0usize;
    let mut written = 0u64;
    let mut failed = None;
    let mut feed = |mut piece: &[u8]| -> Result<(), InstallError> {
        while !piece.is_empty() && i < count {
            let want = chunks[i].stored as usize;
            if pending.is_empty() && piece.len() >= want {
                // The whole chunk is in this piece: unpacked from there, not copied first.
                let content = unpack.unpack(p, first + i, &piece[..want])?;
                out.write_verified(&chunks[i], content)?;
                written += u64::from(chunks[i].len);
                piece = &piece[want..];
                i += 1;
                continue;
            }
            let take = (want - pending.len()).min(piece.len());
            pending.extend_from_slice(&piece[..take]);
            piece = &piece[take..];
            if pending.len() == want {
                let content = unpack.unpack(p, first + i, &pending)?;
                out.write_verified(&chunks[i], content)?;
                written += u64::from(chunks[i].len);
                pending.clear();
                i += 1;
            }
        }
        Ok(())
    };
    source.read_at(start, stored, &mut |piece| match feed(piece) {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            failed = Some(e);
            ControlFlow::Break(())
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if i != count {
        return Err(SourceError::Truncated {
            needed: start + stored,
            have: start + stored - (count - i) as u64,
        }
        .into());
    }
    Ok(written)
}

/// Reads chunks `range` of a payload back from its target and checks each.
fn read_back(
    target: &mut dyn SlotStorage,
    p: &Payload,
    range: Range<usize>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), InstallError> {
    let chunks = &p.chunks[range.clone()];
    let max = chunks.iter().map(|c| c.len as usize).max().unwrap_or(0);
    let mut buf = vec![0u8; max];
    for (i, c) in range.zip(chunks) {
        let len = c.len as usize;
        target
            .read_at(c.offset, &mut buf[..len])
            .map_err(storage("read back", target))?;
        if *blake3::hash(&buf[..len]).as_bytes() != c.hash {
            return Err(InstallError::ReadBack {
                payload: p.name.clone(),
                chunk: i as u64,
            });
        }
        progress(len as u64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot in memory.
    struct Mem(Vec<u8>);

    impl SlotStorage for Mem {
        fn capacity(&mut self) -> std::io::Result<u64> {
            Ok(self.0.len() as u64)
        }
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
            let at = offset as usize;
            buf.copy_from_slice(&self.0[at..at + buf.len()]);
            Ok(())
        }
        fn write_at(&mut self, _offset: u64, _buf: &[u8]) -> std::io::Result<()> {
            unreachable!("indexing never writes")
        }
        fn sync(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn describe(&self) -> String {
            "memory".into()
        }
    }

    #[test]
    fn indexing_a_running_slot_reports_its_bytes_every_8_mib() {
        const MIB: u64 = 1024 * 1024;
        let mut slot = Mem(vec![1u8; 20 * MIB as usize]);
        let mut seen = Vec::new();
        let mut progress = |p: Progress| seen.push(p);
        let mut count = IndexCount {
            done: 0,
            total: 20 * MIB,
            next: 0,
            progress: &mut progress,
        };
        count.report();
        let mut read = Reporting {
            inner: &mut slot,
            count: &mut count,
        };
        let index =
            delta::index_slot(&mut read, Chunking::Fixed { size: MIB }, 20 * MIB).expect("index");
        assert_eq!(index.offsets.len(), 1, "twenty equal chunks");
        assert!(
            read.write_at(0, b"x").is_err(),
            "the running slot is never written"
        );
        count.done = count.total;
        count.report();
        let done: Vec<u64> = seen.iter().map(|p| p.done / MIB).collect();
        assert_eq!(done, [0, 8, 16, 20]);
        assert!(
            seen.iter()
                .all(|p| p.phase == Phase::Index && p.total == 20 * MIB)
        );
    }
}
