//! Giving freed heap back to the system after a burst of load.
//!
//! glibc returns memory to the kernel only from the top of each heap arena. After a burst (500
//! connections for a minute, on many threads, docs/security.md section 8) the release agent kept
//! 23–28 MiB of freed but fragmented heap for good — not a leak (a third round plateaus), but on
//! a 1 GiB board it is memory no app gets back. `malloc_trim(0)` releases every free page of
//! every arena (`MADV_DONTNEED`); measured from a debugger it brought the agent back to 0.3 MiB
//! over its start. Other allocators were measured and kept more (mimalloc 2 and 3).
//!
//! It runs on a timer ([`spawn_trim`]), never per request: a call walks the arenas under their
//! locks, which costs little next to a quarter of a minute but is nothing to do per request.

use std::time::Duration;

/// The mmap threshold the agent runs with (`MALLOC_MMAP_THRESHOLD_` in hearth-agent.service):
/// argon2id's 19 MiB buffers and anything else this large come from `mmap` and go back to the
/// system when freed.
pub const MMAP_THRESHOLD: usize = 1 << 20;

/// The threshold while the state store opens ([`with_mmap_threshold`]).
///
/// sled allocates 41 metrics histograms of 512 KiB at its first open (its metrics are compiled
/// out, so nothing ever writes them) and several MiB of page-table and log buffers. The
/// histograms are zero-filled, which costs nothing on fresh pages but dirties every page the
/// allocator hands back out of the heap: 5.4 MB of resident zeros at idle, measured. From
/// `mmap`, untouched pages stay untouched.
pub const STORE_OPEN_MMAP_THRESHOLD: usize = 128 << 10;

/// Runs `f` with glibc's mmap threshold at `bytes`, then sets it to [`MMAP_THRESHOLD`].
/// The threshold is process-wide: other threads' allocations of that size meanwhile also come
/// from `mmap`, which changes where they live, never what they hold.
#[allow(unsafe_code)]
pub fn with_mmap_threshold<T>(bytes: usize, f: impl FnOnce() -> T) -> T {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let set = |b: usize| {
        let b = libc::c_int::try_from(b).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt takes two plain integers and changes only the allocator's own
        // settings, under its lock (glibc documents it MT-Safe).
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, b) };
    };
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let set = |_: usize| {};
    set(bytes);
    let out = f();
    set(MMAP_THRESHOLD);
    out
}

/// How often the agent hands free heap back.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(15);

/// Returns every free page of the heap to the system. True when memory was released; always
/// false where the C library has no `malloc_trim` (anything but glibc).
#[allow(unsafe_code)]
pub fn release_free_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a plain integer, touches only the allocator's own state
        // under the allocator's locks, and may be called from any thread at any time (glibc
        // documents it MT-Safe).
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// The background task: every [`TRIM_INTERVAL`], [`release_free_heap`] on a blocking thread.
pub fn spawn_trim() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(TRIM_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let started = std::time::Instant::now();
            let released = tokio::task::spawn_blocking(release_free_heap)
                .await
                .unwrap_or(false);
            tracing::trace!(released, took = ?started.elapsed(), "heap trim");
        }
    });
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Resident pages of this process, from /proc/self/statm.
    fn resident_kib() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        statm
            .split_whitespace()
            .nth(1)
            .expect("resident")
            .parse()
            .expect("number")
    }

    /// The case that glibc keeps: many small blocks freed from a thread's arena with live
    /// blocks above them, so nothing sits at the top of the heap to give back by itself.
    #[test]
    fn freed_fragmented_heap_goes_back_to_the_system() {
        let (baseline, before, after) = std::thread::spawn(|| {
            let baseline = resident_kib();
            // 64 MiB in 16 KiB blocks (below the mmap threshold: they come from the arena),
            // written so their pages are resident.
            let mut blocks: Vec<Vec<u8>> = (0..4096).map(|_| vec![0x5a; 16 << 10]).collect();
            // Free all but every 64th block: live blocks up to the top of the heap.
            let mut kept = Vec::new();
            for (i, b) in blocks.drain(..).enumerate() {
                if i % 64 == 63 {
                    kept.push(b);
                }
            }
            let before = resident_kib();
            assert!(release_free_heap(), "malloc_trim released nothing");
            let after = resident_kib();
            drop(kept);
            (baseline, before, after)
        })
        .join()
        .expect("thread");
        // 1 MiB stays live; of what was resident above that, at least half went back (other
        // tests allocate meanwhile, so not all of it).
        let surplus = before.saturating_sub(baseline + 1024);
        assert!(
            before.saturating_sub(after) >= surplus / 2 && after < before,
            "resident {baseline} KiB at the start, {before} KiB before the trim, {after} KiB after"
        );
    }

    /// Whether glibc served the block at `p` from `mmap`: the size word of a chunk's header,
    /// just before the block, carries IS_MMAPPED (0x2). Asked of each buffer, not of the
    /// allocator's totals, so other tests allocating at the same time cannot change the answer.
    #[allow(unsafe_code)]
    fn from_mmap(p: *const u64) -> bool {
        // SAFETY: `p` is a live block from glibc's malloc (a Vec of u64 asks the system
        // allocator, which calls malloc for alignments up to 16); the word before it is its
        // chunk header, always mapped and readable.
        unsafe { p.cast::<usize>().sub(1).read() & 0x2 != 0 }
    }

    /// Set in the child process [`zeroed_buffers_under_the_lowered_threshold_come_from_mmap`]
    /// starts.
    const MMAP_CHILD: &str = "HEARTH_TEST_MMAP_CHILD";

    /// What the store's open relies on: zero-filled buffers of sled's histogram size come from
    /// `mmap` (pages untouched until written) under the lowered threshold, and from the heap at
    /// the agent's one.
    ///
    /// glibc applies the threshold only when no free chunk of the arena can serve a request, so
    /// the answer depends on what else the process freed before: the check runs in a process of
    /// its own (this test binary, asked for this one test), as the agent's store opens early in
    /// a process of its own.
    #[test]
    fn zeroed_buffers_under_the_lowered_threshold_come_from_mmap() {
        const TEST: &str =
            "memory::tests::zeroed_buffers_under_the_lowered_threshold_come_from_mmap";
        if std::env::var_os(MMAP_CHILD).is_none() {
            let exe = std::env::current_exe().expect("test binary");
            let out = std::process::Command::new(exe)
                .args(["--exact", TEST, "--test-threads=1", "--nocapture"])
                .env(MMAP_CHILD, "1")
                .output()
                .expect("child test process");
            let log = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "the check in its own process failed:\n{log}"
            );
            assert!(log.contains("1 passed"), "the child ran no test:\n{log}");
            return;
        }
        const HISTOGRAM: usize = 512 << 10;
        let histograms = || {
            (0..8)
                .map(|_| vec![0u64; HISTOGRAM / 8])
                .collect::<Vec<_>>()
        };
        let mmapped_by = |threshold: usize| {
            let buffers = with_mmap_threshold(threshold, histograms);
            assert!(buffers.iter().all(|b| b.iter().all(|&x| x == 0)));
            buffers.iter().filter(|b| from_mmap(b.as_ptr())).count()
        };
        let lowered = mmapped_by(STORE_OPEN_MMAP_THRESHOLD);
        let at_agents = mmapped_by(MMAP_THRESHOLD);
        assert!(
            lowered == 8 && at_agents == 0,
            "of 8 histograms, {lowered} from mmap at 128 KiB, {at_agents} at 1 MiB"
        );
    }
}
