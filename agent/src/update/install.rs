//! The install job: download (or reuse from the running slot) and write the available update
//! into the inactive slot, verify it, set it up as the next trial boot, then reboot per policy.

use super::device::{DeviceInfo, boot_control, target_path};
use super::error::{boot_err, from_install, from_open};
use super::machine::{AgentState, Event};
use super::records::*;
use super::status::UpdateProgress;
use super::{PENDING_FILE, Service, UpdateError};
use crate::jobs::Job;
use hearth_ota::boot::{BootControl, RebootRequest, Slot};
use hearth_ota::format::VerifyError;
use hearth_ota::install::Phase;
use std::path::Path;
use std::sync::Arc;

fn phase_name(p: hearth_ota::install::Phase) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Service {
    /// Starts installing the available update as a detached job; returns the job.
    pub fn start_install(&self, owner: &str) -> Result<Arc<Job>, UpdateError> {
        let device = self.device()?;
        let policy = self.policy()?;
        let mut boot = boot_control(&self.config, device.backend)?;
        let state = boot.state().map_err(boot_err)?;
        self.reconcile(&device, &state)?;
        let booted = device.booted.ok_or_else(|| {
            UpdateError::NotConfigured(format!(
                "the booted slot is not on the kernel command line ({})",
                self.config.cmdline_file.display()
            ))
        })?;
        let record = self.store.update_install()?;
        if record.as_ref().is_some_and(|r| {
            r.phase == InstallPhase::Installed && Slot::parse(&r.slot) == Some(booted)
        }) || matches!(state.trial, Some((s, n)) if s == booted && n > 0)
        {
            return Err(UpdateError::TrialPending);
        }
        let check = self
            .store
            .update_check()?
            .filter(|c| c.channel == policy.channel);
        let Some(latest) = check
            .and_then(|c| c.latest)
            .filter(|l| l.version_number > device.release.version_number)
        else {
            return Err(UpdateError::NotAvailable);
        };
        if record.as_ref().is_some_and(|r| {
            r.phase == InstallPhase::Installed && r.version_number == latest.version_number
        }) {
            return Err(UpdateError::NotAvailable);
        }
        let job = {
            let mut live = self.live();
            if !live.state.is_idle() {
                return Err(UpdateError::Busy);
            }
            let job = self.jobs.start(
                "update",
                owner,
                format!("Install Hearth {}", latest.version),
                self.events.clone(),
            );
            let _ = live.state.apply(Event::InstallStarted);
            live.progress = None;
            job
        };
        let slot = booted.other();
        let record = InstallRecord {
            version: latest.version.clone(),
            version_number: latest.version_number,
            from_version: device.release.version.clone(),
            slot: slot.letter().into(),
            started: self.now(),
            phase: InstallPhase::Writing,
            downloaded_bytes: 0,
            reused_bytes: 0,
        };
        if let Err(e) = self.store.put_update_install(&record) {
            self.end_install();
            job.finish(Err(e.to_string()));
            return Err(e.into());
        }
        let _ = std::fs::remove_file(self.data_dir.join(PENDING_FILE));
        let this = self.clone();
        let job2 = job.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::spawn(async move {
            let this2 = this.clone();
            let job3 = job2.clone();
            let run = tokio::task::spawn_blocking(move || {
                this2.install_blocking(&device, boot, slot, &latest, &job3, handle)
            })
            .await
            .unwrap_or_else(|e| Err(UpdateError::Internal(format!("install task: {e}"))));
            this.install_done(record, run, &job2, policy.reboot);
        });
        Ok(job)
    }

    fn install_blocking(
        &self,
        device: &DeviceInfo,
        mut boot: Box<dyn BootControl + Send>,
        slot: Slot,
        latest: &hearth_ota::index::Latest,
        job: &Arc<Job>,
        handle: tokio::runtime::Handle,
    ) -> Result<(u64, u64, RebootRequest), UpdateError> {
        use hearth_ota::storage::FileSlot;
        let base = self.config.repo_url.clone().unwrap_or_default();
        let url = hearth_ota::http::bundle_url(&base, &latest.bundle)
            .map_err(|e| UpdateError::BundleInvalid(VerifyError::from(e)))?;
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        self.live().downloaded = Some(counter.clone());
        let mut src = Counting {
            inner: hearth_ota::http::HttpSource::new(self.client()?, url, handle),
            counter: counter.clone(),
        };
        let trust = self.trust(device)?;
        // Format 3's pages are read after the slots are open (derived from the running slot).
        let bundle = hearth_ota::bundle::open_signed(&mut src, &trust).map_err(from_open)?;
        // A device configured for an older format (update.bundle_format) installs none newer.
        if bundle.manifest.format > self.config.bundle_format {
            return Err(UpdateError::BundleInvalid(VerifyError::BundleNotInIndex(
                format!(
                    "a format-{} bundle, and this device installs format {} at most \
                     (update.bundle_format)",
                    bundle.manifest.format, self.config.bundle_format
                ),
            )));
        }
        latest
            .matches_pending(&bundle)
            .map_err(UpdateError::BundleInvalid)?;
        let dev = hearth_ota::decide::Device {
            board: device.release.board.clone(),
            arch: device.release.arch.clone(),
            version_number: device.release.version_number,
        };
        hearth_ota::decide::check_manifest(&dev, &bundle.manifest)
            .map_err(UpdateError::BundleInvalid)?;
        super::device::check_boot_payloads(
            &self.config,
            bundle.manifest.payloads.iter().map(|p| p.name.as_str()),
            slot,
        )?;
        let storage =
            |e: std::io::Error, p: &Path| UpdateError::Storage(format!("{}: {e}", p.display()));
        let mut slots: Vec<(String, FileSlot, Option<FileSlot>)> = Vec::new();
        for p in &bundle.manifest.payloads {
            let path = target_path(&self.config, &p.name, slot)?;
            if matches!(p.name.as_str(), "kernel" | "initrd" | "uki") && !path.exists() {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| storage(e, dir))?;
                }
                std::fs::File::create(&path).map_err(|e| storage(e, &path))?;
            }
            let target = FileSlot::open(&path).map_err(|e| storage(e, &path))?;
            // The running slot's copy of the same payload is the delta source: the root, the
            // Pi boot partition, and on EFI the kernel (usually unchanged) and the initrd (the
            // same Debian initramfs with Hearth's small layer appended).
            let active_path = target_path(&self.config, &p.name, slot.other())?;
            let active = FileSlot::open_read_only(&active_path).ok();
            slots.push((p.name.clone(), target, active));
        }
        let mut targets = hearth_ota::install::Target::from_slots(&mut slots);
        let live = self.live.clone();
        let mut last_phase = None;
        let mut progress = |p: hearth_ota::install::Progress| {
            let downloaded = counter.load(std::sync::atomic::Ordering::Relaxed);
            {
                let mut l = live.lock().unwrap_or_else(|e| e.into_inner());
                let reused = match (p.phase, l.state) {
                    (Phase::Write, _) => p.done.saturating_sub(downloaded),
                    // Keep the write phase's byte counts through sync, verify and activate.
                    (
                        _,
                        AgentState::Downloading(Some(Phase::Write)) | AgentState::Installing(_),
                    ) => l.progress.as_ref().map_or(0, |o| o.reused_bytes),
                    _ => 0,
                };
                let _ = l.state.apply(Event::Phase(p.phase));
                l.progress = Some(UpdateProgress {
                    phase: phase_name(p.phase),
                    done: p.done,
                    total: p.total,
                    downloaded_bytes: downloaded,
                    reused_bytes: reused,
                });
            }
            // A job event at every phase change, and every 8 MiB within a phase.
            if last_phase != Some(p.phase) {
                last_phase = Some(p.phase);
                self.events.publish_job(job.status());
            }
            job.progress(p.done);
        };
        // Format 3 reads the running slot here (its index phase), before install() starts.
        let bundle =
            hearth_ota::install::resolve_reporting(bundle, &mut src, &mut targets, &mut progress)
                .map_err(from_install)?;
        let report = hearth_ota::install::install(hearth_ota::install::InstallRequest {
            bundle: &bundle,
            source: &mut src,
            targets,
            boot: &mut *boot,
            slot,
            progress: &mut progress,
        })
        .map_err(from_install)?;
        Ok((
            report.plan.download_bytes,
            report.plan.local_bytes,
            report.reboot,
        ))
    }

    fn install_done(
        &self,
        mut record: InstallRecord,
        result: Result<(u64, u64, RebootRequest), UpdateError>,
        job: &Arc<Job>,
        reboot: RebootPolicy,
    ) {
        let outcome = match result {
            Ok((downloaded, reused, request)) => {
                record.phase = InstallPhase::Installed;
                record.downloaded_bytes = downloaded;
                record.reused_bytes = reused;
                let saved = self
                    .store
                    .put_update_install(&record)
                    .and_then(|_| {
                        self.store.push_update_history(HistoryEntry {
                            id: 0,
                            at: self.now(),
                            kind: HistoryKind::Installed,
                            from_version: record.from_version.clone(),
                            to_version: record.version.clone(),
                            reason: None,
                            code: None,
                            downloaded_bytes: downloaded,
                            reused_bytes: reused,
                        })
                    })
                    .map_err(UpdateError::from);
                self.write_pending(&record);
                saved.map(|_| request)
            }
            Err(e) => Err(e),
        };
        let fetched = self.end_install();
        match outcome {
            Ok(request) => {
                tracing::info!(version = %record.version, slot = %record.slot, "update installed");
                job.finish_with_code(Ok(()));
                self.after_install(reboot, request);
            }
            Err(e) => {
                tracing::warn!(version = %record.version, error = %e, "update install failed");
                // The target slot is unbootable (the installer marks it first); say why.
                record.downloaded_bytes = fetched;
                let _ = self.history(
                    HistoryKind::Failed,
                    &record,
                    Some(e.to_string()),
                    Some(e.code().into()),
                );
                let _ = self.finish_install_record();
                job.finish_with_code(Err((e.code().to_string(), e.info().message)));
            }
        }
    }

    /// The install waiting for a reboot, if any.
    pub fn pending_reboot(&self) -> Result<Option<InstallRecord>, UpdateError> {
        let device = self.device()?;
        Ok(self.store.update_install()?.filter(|r| {
            r.phase == InstallPhase::Installed && Slot::parse(&r.slot) != device.booted
        }))
    }

    /// The install job ended: back to idle; the bytes it fetched.
    fn end_install(&self) -> u64 {
        let mut live = self.live();
        let _ = live.state.apply(Event::InstallFinished);
        live.downloaded
            .take()
            .map_or(0, |d| d.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Whether the automatic install may take `available`: not a version whose trial already
/// failed on this device (rolled back by the gate or the boot loader). An admin can still
/// install it by hand; automatically it would fail again in every window.
pub fn auto_install_allowed(available: &AvailableUpdate, history: &[HistoryEntry]) -> bool {
    !history
        .iter()
        .any(|h| h.kind == HistoryKind::RolledBack && h.to_version == available.version)
}

/// Counts the bytes a source delivers (the live "downloaded" figure).
struct Counting<S> {
    inner: S,
    counter: Arc<std::sync::atomic::AtomicU64>,
}

impl<S: hearth_ota::source::BundleSource> hearth_ota::source::BundleSource for Counting<S> {
    fn size(&mut self) -> Result<u64, hearth_ota::source::SourceError> {
        self.inner.size()
    }

    fn read_at(
        &mut self,
        offset: u64,
        len: u64,
        sink: &mut hearth_ota::source::Sink<'_>,
    ) -> Result<(), hearth_ota::source::SourceError> {
        let counter = self.counter.clone();
        self.inner.read_at(offset, len, &mut |piece| {
            counter.fetch_add(piece.len() as u64, std::sync::atomic::Ordering::Relaxed);
            sink(piece)
        })
    }

    fn bytes_fetched(&self) -> u64 {
        self.inner.bytes_fetched()
    }
}
