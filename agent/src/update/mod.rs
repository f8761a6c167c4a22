//! Over-the-air updates on the device: check the repository (on demand and on schedule),
//! accept its signed index, install a bundle into the inactive slot as a detached job, reboot
//! per policy, and after the reboot find out what became of it (committed by the health gate,
//! rolled back by the boot loader, interrupted by a power cut). The update engine itself is
//! the `hearth-ota` library; this module is the device's policy and bookkeeping around it.
//! See docs/updates.md.

pub mod gate;
pub mod records;

use crate::config::UpdateConfig;
use crate::events::Events;
use crate::jobs::Job;
use crate::store::{Store, StoreError};
use hearth_ota::boot::file::FileBoot;
use hearth_ota::boot::rpi::{PiPartitions, PiTryboot};
use hearth_ota::boot::systemd_boot::SystemdBoot;
use hearth_ota::boot::{BootControl, BootState, DirFs, Slot};
use hearth_ota::format::{Trust, VerifyError};
use records::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Boot-control backends the agent drives (`update_boot`, or release.json's `boot`).
pub const BOOT_BACKENDS: [&str; 4] = ["systemd-boot", "rpi", "rpi-tryboot", "file"];

/// Where the gate leaves its verdict for the agent (in the data directory).
pub const GATE_FILE: &str = "update-gate.json";
/// What the agent tells the gate about the install waiting for its trial boot.
pub const PENDING_FILE: &str = "update-pending.json";

/// Channel names: like board names in the repository (`[a-z0-9][a-z0-9_-]*`, at most 64).
pub fn channel_ok(s: &str) -> bool {
    hearth_ota::manifest::board_name_ok(s)
        && s.bytes().all(|b| !b.is_ascii_uppercase())
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// `/usr/lib/hearth/release.json`, written by the image builder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub board: String,
    pub arch: String,
    pub version: String,
    pub version_number: u64,
    pub boot: String,
    #[serde(default)]
    pub build_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("updates are not configured on this device: {0}")]
    NotConfigured(String),
    #[error("the update repository cannot be reached: {0}")]
    RepoUnreachable(String),
    #[error("the update index was refused: {0}")]
    IndexInvalid(VerifyError),
    #[error("an update check or install is already running")]
    Busy,
    #[error("no update is available; check for updates first")]
    NotAvailable,
    #[error("the installed update is on trial and not committed yet; wait for the health gate")]
    TrialPending,
    #[error("no installed update is waiting for a reboot")]
    NoPendingReboot,
    #[error("the update bundle was refused: {0}")]
    BundleInvalid(VerifyError),
    #[error("downloading the update failed: {0}")]
    Download(String),
    #[error("writing the update failed: {0}")]
    Storage(String),
    #[error("boot control: {0}")]
    Boot(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl UpdateError {
    /// The machine-readable code (API errors, failed jobs, history).
    pub fn code(&self) -> &'static str {
        use UpdateError as U;
        match self {
            U::NotConfigured(_) => "update_not_configured",
            U::RepoUnreachable(_) => "update_repo_unreachable",
            U::IndexInvalid(_) => "update_index_invalid",
            U::Busy => "update_busy",
            U::NotAvailable => "update_not_available",
            U::TrialPending => "update_trial_pending",
            U::NoPendingReboot => "update_no_pending_reboot",
            U::BundleInvalid(_) => "update_bundle_invalid",
            U::Download(_) => "update_download_failed",
            U::Storage(_) => "update_storage_failed",
            U::Boot(_) => "update_boot_failed",
            U::Store(_) | U::Internal(_) => "internal",
        }
    }

    pub fn info(&self) -> UpdateErrorInfo {
        let mut message = self.to_string();
        if let Some(first) = message.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        UpdateErrorInfo {
            code: self.code().into(),
            message,
        }
    }
}

fn from_install(e: hearth_ota::install::InstallError) -> UpdateError {
    use hearth_ota::install::InstallError as I;
    match e {
        I::Verify(v) => UpdateError::BundleInvalid(v),
        I::ReadBack { .. } | I::Storage { .. } | I::TooSmall { .. } | I::MissingTarget(_) => {
            UpdateError::Storage(e.to_string())
        }
        I::Source(s) => match s {
            hearth_ota::source::SourceError::Truncated { needed, have } => {
                UpdateError::BundleInvalid(VerifyError::Truncated { needed, have })
            }
            other => UpdateError::Download(other.to_string()),
        },
        I::Boot(b) => UpdateError::Boot(b.to_string()),
        I::TargetIsPrimary(_) => UpdateError::Boot(e.to_string()),
    }
}

fn from_open(e: VerifyError) -> UpdateError {
    match e {
        VerifyError::Source(s) => UpdateError::Download(s),
        other => UpdateError::BundleInvalid(other),
    }
}

/// `GET /api/v1/update`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UpdateStatus {
    pub configured: bool,
    /// Why updates are not configured (when `configured` is false).
    pub not_configured_reason: Option<String>,
    pub current: Option<CurrentRelease>,
    pub boot: Option<BootInfo>,
    pub policy: UpdatePolicy,
    pub state: UpdateState,
    pub last_check: Option<LastCheck>,
    pub available: Option<AvailableUpdate>,
    pub progress: Option<UpdateProgress>,
    pub pending_reboot: Option<PendingReboot>,
    /// Newest first.
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CurrentRelease {
    pub version: String,
    pub version_number: u64,
    pub board: String,
    pub arch: String,
    /// The booted slot (`a` or `b`), from the kernel command line.
    pub slot: Option<String>,
    pub build_id: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BootInfo {
    pub primary: Option<String>,
    pub trial: Option<TrialInfo>,
    pub bootable: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrialInfo {
    pub slot: String,
    pub tries_left: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Idle,
    Checking,
    Downloading,
    Installing,
    RebootRequired,
    Trial,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UpdateProgress {
    /// `mark_unbootable`, `index`, `write`, `sync`, `verify`, `activate`.
    pub phase: String,
    pub done: u64,
    pub total: u64,
    pub downloaded_bytes: u64,
    pub reused_bytes: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PendingReboot {
    pub version: String,
    pub slot: String,
}

/// What the gate writes for the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateVerdict {
    pub at: String,
    pub slot: String,
    /// `committed` or `failed`.
    pub outcome: String,
    pub reason: Option<String>,
}

/// The install the gate is asked to judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInstall {
    pub version: String,
    pub from_version: String,
    pub slot: String,
}

#[derive(Debug, Default)]
struct Live {
    checking: bool,
    /// The install job running now.
    installing: Option<Arc<Job>>,
    progress: Option<UpdateProgress>,
    /// Bundle bytes received by the running install (live, between progress callbacks).
    downloaded: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// The update service (one per agent).
#[derive(Debug, Clone)]
pub struct Updates {
    pub config: UpdateConfig,
    data_dir: PathBuf,
    store: Store,
    events: Events,
    live: Arc<Mutex<Live>>,
}

/// Everything about this device an update decision needs.
pub struct DeviceInfo {
    pub release: Release,
    pub root: ed25519_dalek::VerifyingKey,
    pub booted: Option<Slot>,
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn read_release(path: &Path) -> Result<Release, UpdateError> {
    let bytes = std::fs::read(path)
        .map_err(|e| UpdateError::NotConfigured(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| UpdateError::NotConfigured(format!("{}: {e}", path.display())))
}

/// The booted slot: `hearth.slot=a|b`, else `root=PARTLABEL=root-X`.
pub fn booted_slot(cmdline: &str) -> Option<Slot> {
    cmdline
        .split_whitespace()
        .find_map(|a| a.strip_prefix("hearth.slot=").and_then(Slot::parse))
        .or_else(|| Slot::from_cmdline(cmdline))
}

pub fn read_booted(config: &UpdateConfig) -> Option<Slot> {
    std::fs::read_to_string(&config.cmdline_file)
        .ok()
        .and_then(|c| booted_slot(&c))
}

/// The boot-control backend for this device.
pub fn boot_control(
    config: &UpdateConfig,
    release: &Release,
) -> Result<Box<dyn BootControl + Send>, UpdateError> {
    let backend = config.boot.as_deref().unwrap_or(&release.boot);
    let dir = |default: &Path| DirFs::new(config.boot_dir.as_deref().unwrap_or(default));
    match backend {
        "file" => Ok(Box::new(FileBoot::new(dir(&config.esp)))),
        "systemd-boot" => Ok(Box::new(SystemdBoot::new(dir(&config.esp)))),
        // The board configs put bootconfig, boot-a and boot-b at partitions 1, 2 and 3.
        "rpi" | "rpi-tryboot" => Ok(Box::new(PiTryboot::new(
            dir(Path::new("/boot/bootconfig")),
            PiPartitions { a: 2, b: 3 },
        ))),
        other => Err(UpdateError::NotConfigured(format!(
            "boot backend {other:?} is not supported by the agent"
        ))),
    }
}

fn boot_err(e: hearth_ota::boot::BootError) -> UpdateError {
    UpdateError::Boot(e.to_string())
}

/// Where a payload of `slot` is written.
pub fn target_path(
    config: &UpdateConfig,
    payload: &str,
    slot: Slot,
) -> Result<PathBuf, UpdateError> {
    let l = slot.letter();
    match payload {
        "root" | "boot" => Ok(config.slot_dir.join(format!("{payload}-{l}"))),
        "kernel" => Ok(config.esp.join("hearth").join(l).join("vmlinuz")),
        "initrd" => Ok(config.esp.join("hearth").join(l).join("initrd.img")),
        other => Err(UpdateError::BundleInvalid(VerifyError::BodyMalformed(
            format!("payload {other:?} has no target on this device"),
        ))),
    }
}

fn phase_name(p: hearth_ota::install::Phase) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Updates {
    pub fn new(config: UpdateConfig, data_dir: &Path, store: Store, events: Events) -> Self {
        Updates {
            config,
            data_dir: data_dir.to_path_buf(),
            store,
            events,
            live: Arc::default(),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device as the update engine sees it; `NotConfigured` says what is missing.
    pub fn device(&self) -> Result<DeviceInfo, UpdateError> {
        if self.config.repo_url.is_none() {
            return Err(UpdateError::NotConfigured(
                "no update repository (update_repo_url) is set".into(),
            ));
        }
        let release = read_release(&self.config.release_file)?;
        let root = hearth_ota::keys::load_verifying(&self.config.root_key).map_err(|e| {
            UpdateError::NotConfigured(format!("{}: {e}", self.config.root_key.display()))
        })?;
        Ok(DeviceInfo {
            release,
            root,
            booted: read_booted(&self.config),
        })
    }

    pub fn policy(&self) -> Result<UpdatePolicy, UpdateError> {
        Ok(self
            .store
            .update_policy()?
            .unwrap_or_else(|| UpdatePolicy::default_for(&self.config.channel)))
    }

    /// Applies a partial policy after checking every field; nothing changes on an error.
    pub fn patch_policy(
        &self,
        patch: PolicyPatch,
    ) -> Result<UpdatePolicy, crate::error::ServiceError> {
        use crate::error::ServiceError;
        let mut p = self.policy()?;
        if let Some(c) = patch.channel {
            if !channel_ok(&c) {
                return Err(ServiceError::invalid(
                    "channel",
                    "A channel name is 1–64 lower-case letters, digits, '-' or '_'.",
                ));
            }
            p.channel = c;
        }
        if let Some(w) = patch.maintenance_window {
            let (Some(s), Some(e)) = (minutes(&w.start), minutes(&w.end)) else {
                return Err(ServiceError::invalid(
                    "maintenance_window",
                    "Give start and end as HH:MM (00:00–23:59).",
                ));
            };
            if s == e {
                return Err(ServiceError::invalid(
                    "maintenance_window",
                    "The window's start and end must differ.",
                ));
            }
            p.maintenance_window = w;
        }
        if let Some(a) = patch.auto_install {
            p.auto_install = a;
        }
        if let Some(r) = patch.reboot {
            p.reboot = r;
        }
        self.store.put_update_policy(&p)?;
        Ok(p)
    }

    fn trust(&self, device: &DeviceInfo) -> Result<Trust, UpdateError> {
        let mut t = Trust::new(device.root);
        t.keylist_floor = self.store.update_trust()?.keylist_floor;
        Ok(t)
    }

    fn client(&self) -> Result<reqwest::Client, UpdateError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::limited(5));
        for path in &self.config.ca_files {
            let pem = std::fs::read(path)
                .map_err(|e| UpdateError::NotConfigured(format!("{}: {e}", path.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| UpdateError::NotConfigured(format!("{}: {e}", path.display())))?;
            b = b.add_root_certificate(cert);
        }
        b.build().map_err(|e| UpdateError::Internal(e.to_string()))
    }

    /// The whole state for the API; reconciles with the boot state first.
    pub fn status(&self) -> Result<UpdateStatus, UpdateError> {
        let policy = self.policy()?;
        let device = match self.device() {
            Ok(d) => d,
            Err(UpdateError::NotConfigured(reason)) => {
                return Ok(UpdateStatus {
                    configured: false,
                    not_configured_reason: Some(reason),
                    current: None,
                    boot: None,
                    policy,
                    state: UpdateState::Idle,
                    last_check: None,
                    available: None,
                    progress: None,
                    pending_reboot: None,
                    history: self.store.update_history()?,
                });
            }
            Err(e) => return Err(e),
        };
        let boot_state = boot_control(&self.config, &device.release)
            .and_then(|mut b| b.state().map_err(boot_err));
        if let Ok(bs) = &boot_state {
            self.reconcile(&device, bs, false)?;
        }
        let record = self.store.update_install()?;
        let check = self.store.update_check()?;
        let (running, progress, checking) = {
            let live = self.live();
            let mut progress = live.progress.clone();
            if let (Some(p), Some(d)) = (progress.as_mut(), &live.downloaded) {
                p.downloaded_bytes = d.load(std::sync::atomic::Ordering::Relaxed);
            }
            (live.installing.is_some(), progress, live.checking)
        };
        let pending_reboot = record
            .as_ref()
            .filter(|r| r.phase == InstallPhase::Installed)
            .filter(|r| Slot::parse(&r.slot) != device.booted)
            .map(|r| PendingReboot {
                version: r.version.clone(),
                slot: r.slot.clone(),
            });
        let on_trial = record.as_ref().is_some_and(|r| {
            r.phase == InstallPhase::Installed && Slot::parse(&r.slot) == device.booted
        });
        let state = if running {
            match progress.as_ref().map(|p| p.phase.as_str()) {
                Some("sync" | "verify" | "activate") => UpdateState::Installing,
                _ => UpdateState::Downloading,
            }
        } else if checking {
            UpdateState::Checking
        } else if on_trial {
            UpdateState::Trial
        } else if pending_reboot.is_some() {
            UpdateState::RebootRequired
        } else {
            UpdateState::Idle
        };
        let available = check
            .as_ref()
            .filter(|c| c.channel == policy.channel)
            .and_then(|c| c.available.clone())
            .filter(|a| a.version_number > device.release.version_number);
        Ok(UpdateStatus {
            configured: true,
            not_configured_reason: None,
            current: Some(CurrentRelease {
                version: device.release.version.clone(),
                version_number: device.release.version_number,
                board: device.release.board.clone(),
                arch: device.release.arch.clone(),
                slot: device.booted.map(|s| s.letter().to_string()),
                build_id: device.release.build_id.clone(),
            }),
            boot: boot_state.ok().map(|s| BootInfo {
                primary: s.primary.map(|p| p.letter().to_string()),
                trial: s.trial.map(|(slot, tries_left)| TrialInfo {
                    slot: slot.letter().into(),
                    tries_left,
                }),
                bootable: s.bootable.iter().map(|b| b.letter().to_string()).collect(),
            }),
            policy,
            state,
            last_check: check.map(|c| c.last),
            available,
            progress: if running { progress } else { None },
            pending_reboot,
            history: self.store.update_history()?,
        })
    }

    fn history(
        &self,
        kind: HistoryKind,
        r: &InstallRecord,
        reason: Option<String>,
        code: Option<String>,
    ) -> Result<(), UpdateError> {
        self.store.push_update_history(HistoryEntry {
            id: 0,
            at: rfc3339(OffsetDateTime::now_utc()),
            kind,
            from_version: r.from_version.clone(),
            to_version: r.version.clone(),
            reason,
            code,
            downloaded_bytes: r.downloaded_bytes,
            reused_bytes: r.reused_bytes,
        })?;
        Ok(())
    }

    fn gate_verdict(&self) -> Option<GateVerdict> {
        let bytes = std::fs::read(self.data_dir.join(GATE_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn finish_install_record(&self) -> Result<(), UpdateError> {
        self.store.clear_update_install()?;
        let _ = std::fs::remove_file(self.data_dir.join(PENDING_FILE));
        Ok(())
    }

    /// Turns what the boot state says about the last install into history: committed, rolled
    /// back, or (at start only) interrupted.
    pub fn reconcile(
        &self,
        device: &DeviceInfo,
        boot: &BootState,
        _at_start: bool,
    ) -> Result<(), UpdateError> {
        if self.live().installing.is_some() {
            return Ok(());
        }
        let Some(mut r) = self.store.update_install()? else {
            return Ok(());
        };
        let Some(slot) = Slot::parse(&r.slot) else {
            return self.finish_install_record();
        };
        if r.phase == InstallPhase::Writing {
            // Interrupted after the trial was set up: the install is complete.
            // Or the system runs from that slot already (the power went after `activate`,
            // the trial booted and the gate committed it before this reconcile).
            let set_up =
                matches!(boot.trial, Some((s, n)) if s == slot && n > 0) && boot.is_bootable(slot);
            let running_it = device.booted == Some(slot) && boot.is_bootable(slot);
            if set_up || running_it {
                r.phase = InstallPhase::Installed;
                self.store.put_update_install(&r)?;
                self.write_pending(&r);
            } else {
                self.history(
                    HistoryKind::Interrupted,
                    &r,
                    Some(format!(
                        "the install into slot {} stopped before it finished (agent stopped or power lost); slot {} was left unbootable, install again to resume",
                        r.slot, r.slot
                    )),
                    Some("update_interrupted".into()),
                )?;
                return self.finish_install_record();
            }
        }
        let trial_pending =
            matches!(boot.trial, Some((s, n)) if s == slot && n > 0) && boot.is_bootable(slot);
        if device.booted == Some(slot) {
            if boot.trial.is_none() && boot.primary == Some(slot) {
                self.history(HistoryKind::Committed, &r, None, None)?;
                let _ = std::fs::remove_file(self.data_dir.join(GATE_FILE));
                return self.finish_install_record();
            }
            return Ok(()); // on trial
        }
        if device.booted.is_none() || trial_pending {
            return Ok(()); // waiting for the reboot
        }
        let gate = self
            .gate_verdict()
            .filter(|g| g.slot == r.slot && g.outcome == "failed" && g.at >= r.started);
        let reason = match gate.and_then(|g| g.reason) {
            Some(reason) => reason,
            None => format!(
                "slot {} did not come up: the boot loader returned to slot {}",
                r.slot,
                slot.other().letter()
            ),
        };
        self.history(
            HistoryKind::RolledBack,
            &r,
            Some(reason),
            Some("update_rolled_back".into()),
        )?;
        let _ = std::fs::remove_file(self.data_dir.join(GATE_FILE));
        self.finish_install_record()
    }

    fn write_pending(&self, r: &InstallRecord) {
        let p = PendingInstall {
            version: r.version.clone(),
            from_version: r.from_version.clone(),
            slot: r.slot.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&p)
            && let Err(e) =
                hearth_ota::fsutil::write_atomic(&self.data_dir.join(PENDING_FILE), &bytes)
        {
            tracing::warn!(error = %e, "cannot write {PENDING_FILE}");
        }
    }

    /// At agent start: record what happened to an install of an earlier boot.
    pub fn reconcile_at_start(&self) {
        let Ok(device) = self.device() else {
            return;
        };
        let result = boot_control(&self.config, &device.release)
            .and_then(|mut b| b.state().map_err(boot_err))
            .and_then(|state| self.reconcile(&device, &state, true));
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot reconcile the last update");
        }
    }

    /// Checks the repository: fetch and accept the index, decide. A refused index is recorded
    /// as the last check's error and returned.
    pub async fn check(&self) -> Result<(), UpdateError> {
        let device = self.device()?;
        {
            let mut live = self.live();
            if live.checking || live.installing.is_some() {
                return Err(UpdateError::Busy);
            }
            live.checking = true;
        }
        let result = self.check_inner(&device).await;
        self.live().checking = false;
        let policy = self.policy()?;
        let now = OffsetDateTime::now_utc();
        let record = match &result {
            Ok((available, latest)) => CheckRecord {
                last: LastCheck {
                    at: rfc3339(now),
                    result: if available.is_some() {
                        CheckResult::Available
                    } else {
                        CheckResult::UpToDate
                    },
                    error: None,
                },
                channel: policy.channel.clone(),
                available: available.clone(),
                latest: latest.clone(),
            },
            Err(e) => {
                // A failed check keeps what an earlier one found (an offline device can still
                // install what it already knows about).
                let old = self
                    .store
                    .update_check()?
                    .filter(|c| c.channel == policy.channel);
                CheckRecord {
                    last: LastCheck {
                        at: rfc3339(now),
                        result: CheckResult::Error,
                        error: Some(e.info()),
                    },
                    channel: policy.channel.clone(),
                    available: old.as_ref().and_then(|o| o.available.clone()),
                    latest: old.and_then(|o| o.latest),
                }
            }
        };
        self.store.put_update_check(&record)?;
        result.map(|_| ())
    }

    async fn check_inner(
        &self,
        device: &DeviceInfo,
    ) -> Result<(Option<AvailableUpdate>, Option<hearth_ota::index::Latest>), UpdateError> {
        let base = self.config.repo_url.clone().unwrap_or_default();
        let policy = self.policy()?;
        let client = self.client()?;
        let url = hearth_ota::http::index_url(&base, &policy.channel, &device.release.board);
        let bytes = hearth_ota::http::fetch_index(&client, &url)
            .await
            .map_err(|e| UpdateError::RepoUnreachable(e.to_string()))?;
        let mut trust_rec = self.store.update_trust()?;
        let trust = self.trust(device)?;
        let accepted = hearth_ota::index::accept(
            &bytes,
            &trust,
            &policy.channel,
            &device.release.board,
            OffsetDateTime::now_utc(),
            trust_rec.seen.get(&policy.channel),
        )
        .map_err(UpdateError::IndexInvalid)?;
        let dev = hearth_ota::decide::Device {
            board: device.release.board.clone(),
            arch: device.release.arch.clone(),
            version_number: device.release.version_number,
        };
        let decision =
            hearth_ota::decide::decide(&dev, &accepted.index).map_err(UpdateError::IndexInvalid)?;
        trust_rec
            .seen
            .insert(policy.channel.clone(), accepted.seen.clone());
        trust_rec.keylist_floor = trust_rec.keylist_floor.max(accepted.keylist_serial);
        self.store.put_update_trust(&trust_rec)?;
        let l = &accepted.index.latest;
        Ok(match decision {
            hearth_ota::decide::Decision::UpToDate => (None, None),
            hearth_ota::decide::Decision::Update => (
                Some(AvailableUpdate {
                    version: l.version.clone(),
                    version_number: l.version_number,
                    size: l.size,
                    notes: l.release_notes.clone(),
                    published: rfc3339(accepted.index.created),
                }),
                Some(l.clone()),
            ),
        })
    }

    /// Starts installing the available update as a detached job; returns the job.
    pub fn start_install(
        &self,
        jobs: &crate::jobs::Jobs,
        owner: &str,
        after: Arc<dyn Fn(RebootPolicy, Vec<String>) + Send + Sync>,
    ) -> Result<Arc<Job>, UpdateError> {
        let device = self.device()?;
        let policy = self.policy()?;
        let mut boot = boot_control(&self.config, &device.release)?;
        let state = boot.state().map_err(boot_err)?;
        self.reconcile(&device, &state, false)?;
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
            if live.checking || live.installing.is_some() {
                return Err(UpdateError::Busy);
            }
            let job = jobs.start(
                "update",
                owner,
                format!("Install Hearth {}", latest.version),
                self.events.clone(),
            );
            live.installing = Some(job.clone());
            live.progress = None;
            job
        };
        let slot = booted.other();
        let record = InstallRecord {
            version: latest.version.clone(),
            version_number: latest.version_number,
            from_version: device.release.version.clone(),
            slot: slot.letter().into(),
            started: rfc3339(OffsetDateTime::now_utc()),
            phase: InstallPhase::Writing,
            downloaded_bytes: 0,
            reused_bytes: 0,
        };
        if let Err(e) = self.store.put_update_install(&record) {
            self.live().installing = None;
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
            this.install_done(record, run, &job2, policy.reboot, after);
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
    ) -> Result<(u64, u64, Vec<String>), UpdateError> {
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
        let bundle = hearth_ota::bundle::open(&mut src, &trust).map_err(from_open)?;
        latest
            .matches(&bundle)
            .map_err(UpdateError::BundleInvalid)?;
        let dev = hearth_ota::decide::Device {
            board: device.release.board.clone(),
            arch: device.release.arch.clone(),
            version_number: device.release.version_number,
        };
        hearth_ota::decide::check_manifest(&dev, &bundle.manifest)
            .map_err(UpdateError::BundleInvalid)?;
        let storage =
            |e: std::io::Error, p: &Path| UpdateError::Storage(format!("{}: {e}", p.display()));
        let mut slots: Vec<(String, FileSlot, Option<FileSlot>)> = Vec::new();
        for p in &bundle.manifest.payloads {
            let path = target_path(&self.config, &p.name, slot)?;
            if matches!(p.name.as_str(), "kernel" | "initrd") && !path.exists() {
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
        let targets = slots
            .iter_mut()
            .map(|(name, t, a)| hearth_ota::install::Target {
                payload: name.clone(),
                target: t,
                active: a
                    .as_mut()
                    .map(|a| a as &mut dyn hearth_ota::storage::SlotStorage),
            })
            .collect();
        let live = self.live.clone();
        let mut last_phase = None;
        let mut progress = |p: hearth_ota::install::Progress| {
            let downloaded = counter.load(std::sync::atomic::Ordering::Relaxed);
            let phase = phase_name(p.phase);
            let reused = if p.phase == hearth_ota::install::Phase::Write {
                p.done.saturating_sub(downloaded)
            } else {
                0
            };
            let progress = UpdateProgress {
                phase: phase.clone(),
                done: p.done,
                total: p.total,
                downloaded_bytes: downloaded,
                reused_bytes: reused,
            };
            {
                let mut l = live.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(old) = &l.progress
                    && old.phase == "write"
                    && phase != "write"
                {
                    // Keep the write phase's byte counts through sync, verify and activate.
                    let mut p = progress.clone();
                    p.reused_bytes = old.reused_bytes;
                    l.progress = Some(p);
                } else {
                    l.progress = Some(progress);
                }
            }
            // A job event at every phase change, and every 8 MiB within a phase.
            if last_phase != Some(p.phase) {
                last_phase = Some(p.phase);
                self.events.publish_job(job.status());
            }
            job.progress(p.done);
        };
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
            report.reboot.argv,
        ))
    }

    fn install_done(
        &self,
        mut record: InstallRecord,
        result: Result<(u64, u64, Vec<String>), UpdateError>,
        job: &Arc<Job>,
        reboot: RebootPolicy,
        after: Arc<dyn Fn(RebootPolicy, Vec<String>) + Send + Sync>,
    ) {
        let outcome = match result {
            Ok((downloaded, reused, argv)) => {
                record.phase = InstallPhase::Installed;
                record.downloaded_bytes = downloaded;
                record.reused_bytes = reused;
                let saved = self
                    .store
                    .put_update_install(&record)
                    .and_then(|_| {
                        self.store.push_update_history(HistoryEntry {
                            id: 0,
                            at: rfc3339(OffsetDateTime::now_utc()),
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
                saved.map(|_| argv)
            }
            Err(e) => Err(e),
        };
        let fetched = {
            let mut live = self.live();
            live.installing = None;
            live.downloaded
                .take()
                .map_or(0, |d| d.load(std::sync::atomic::Ordering::Relaxed))
        };
        match outcome {
            Ok(argv) => {
                tracing::info!(version = %record.version, slot = %record.slot, "update installed");
                job.finish_with_code(Ok(()));
                after(reboot, argv);
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

    /// The reboot command the boot backend needs (argv), for `POST /update/reboot`.
    pub fn reboot_argv(&self) -> Result<Vec<String>, UpdateError> {
        let device = self.device()?;
        let backend = self.config.boot.as_deref().unwrap_or(&device.release.boot);
        Ok(if backend.starts_with("rpi") {
            vec!["systemctl".into(), "reboot".into(), "0 tryboot".into()]
        } else {
            vec!["systemctl".into(), "reboot".into()]
        })
    }

    /// Whether `now` (local minutes since midnight) is inside the policy's window.
    pub fn in_window(policy: &UpdatePolicy, now_minutes: u32) -> bool {
        let (Some(s), Some(e)) = (
            minutes(&policy.maintenance_window.start),
            minutes(&policy.maintenance_window.end),
        ) else {
            return false;
        };
        if s < e {
            (s..e).contains(&now_minutes)
        } else {
            now_minutes >= s || now_minutes < e
        }
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

/// `HH:MM` → minutes since midnight.
pub fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(phase: InstallPhase) -> InstallRecord {
        InstallRecord {
            version: "2.0".into(),
            version_number: 2,
            from_version: "1.0".into(),
            slot: "b".into(),
            started: "2026-01-01T00:00:00Z".into(),
            phase,
            downloaded_bytes: 10,
            reused_bytes: 20,
        }
    }

    fn boot(primary: Slot, trial: Option<(Slot, u32)>, bootable: &[Slot]) -> BootState {
        BootState {
            primary: Some(primary),
            trial,
            bootable: bootable.to_vec(),
        }
    }

    /// Each row of the table in docs/updates.md: (install record, booted slot, boot state) →
    /// (history kind written, install record kept).
    #[test]
    fn reconcile_turns_boot_states_into_history() {
        use HistoryKind as K;
        use InstallPhase::{Installed, Writing};
        use Slot::{A, B};
        let rows: Vec<(InstallPhase, Slot, BootState, Option<K>, bool)> = vec![
            (Writing, A, boot(A, None, &[A]), Some(K::Interrupted), false),
            (Writing, A, boot(A, Some((B, 3)), &[A, B]), None, true),
            (
                Writing,
                B,
                boot(B, None, &[A, B]),
                Some(K::Committed),
                false,
            ),
            (Installed, A, boot(A, Some((B, 3)), &[A, B]), None, true),
            (Installed, B, boot(A, Some((B, 2)), &[A, B]), None, true),
            (
                Installed,
                B,
                boot(B, None, &[A, B]),
                Some(K::Committed),
                false,
            ),
            (
                Installed,
                A,
                boot(A, None, &[A]),
                Some(K::RolledBack),
                false,
            ),
            (
                Installed,
                A,
                boot(A, Some((B, 0)), &[A, B]),
                Some(K::RolledBack),
                false,
            ),
        ];
        for (i, (phase, booted, state, kind, kept)) in rows.into_iter().enumerate() {
            let tmp = tempfile::tempdir().expect("tmp");
            let store = Store::open(&tmp.path().join("store")).expect("store");
            let config = crate::config::Config::dev(tmp.path()).update;
            let u = Updates::new(config, tmp.path(), store.clone(), Events::new());
            store.put_update_install(&record(phase)).expect("put");
            let device = DeviceInfo {
                release: Release {
                    board: "x".into(),
                    arch: "amd64".into(),
                    version: "1.0".into(),
                    version_number: 1,
                    boot: "file".into(),
                    build_id: String::new(),
                },
                root: ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key(),
                booted: Some(booted),
            };
            u.reconcile(&device, &state, true).expect("reconcile");
            let history = store.update_history().expect("history");
            assert_eq!(history.first().map(|h| h.kind), kind, "row {i}");
            assert_eq!(
                store.update_install().expect("get").is_some(),
                kept,
                "row {i}"
            );
            if let Some(h) = history.first() {
                assert_eq!(
                    (h.to_version.as_str(), h.reused_bytes),
                    ("2.0", 20),
                    "row {i}"
                );
            }
        }
    }

    #[test]
    fn windows_and_names() {
        let mut p = UpdatePolicy::default_for("stable");
        assert!(Updates::in_window(&p, 3 * 60));
        assert!(!Updates::in_window(&p, 5 * 60));
        p.maintenance_window = MaintenanceWindow {
            start: "23:00".into(),
            end: "01:00".into(),
        };
        assert!(Updates::in_window(&p, 23 * 60 + 30) && Updates::in_window(&p, 10));
        assert!(!Updates::in_window(&p, 12 * 60));
        for bad in ["24:00", "3:00", "03:60", "0300", ""] {
            assert_eq!(minutes(bad), None, "{bad}");
        }
        assert!(channel_ok("stable") && channel_ok("beta-2"));
        for bad in ["", "Stable", "-x", "a/b", "a b"] {
            assert!(!channel_ok(bad), "{bad}");
        }
        assert_eq!(booted_slot("quiet hearth.slot=b"), Some(Slot::B));
        assert_eq!(booted_slot("root=PARTLABEL=root-a"), Some(Slot::A));
        assert_eq!(booted_slot("quiet"), None);
    }

    #[test]
    fn a_version_rolled_back_here_is_not_installed_automatically_again() {
        let available = AvailableUpdate {
            version: "3.0.0".into(),
            version_number: 3_000_000,
            size: 1,
            notes: String::new(),
            published: String::new(),
        };
        let entry = |kind, to: &str| HistoryEntry {
            id: 1,
            at: String::new(),
            kind,
            from_version: "2.0.0".into(),
            to_version: to.into(),
            reason: None,
            code: None,
            downloaded_bytes: 0,
            reused_bytes: 0,
        };
        assert!(auto_install_allowed(&available, &[]));
        assert!(auto_install_allowed(
            &available,
            &[
                entry(HistoryKind::Interrupted, "3.0.0"),
                entry(HistoryKind::RolledBack, "2.1.0")
            ]
        ));
        assert!(!auto_install_allowed(
            &available,
            &[entry(HistoryKind::RolledBack, "3.0.0")]
        ));
    }
}
