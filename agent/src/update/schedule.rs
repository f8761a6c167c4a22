//! When the device updates itself: a repository check every `update.check_secs` (the first
//! two minutes after start), and once a minute the maintenance window's work: reboot into an
//! installed update (reboot policy `maintenance_window`) and, with `auto_install`, install an
//! available one. Also what follows an install (reboot now or wait) and the reboot itself,
//! through `SystemControl` with the boot backend's typed [`RebootRequest`].

use super::records::*;
use super::{Service, UpdateError, UpdateState, auto_install_allowed, minutes};
use crate::error::ServiceError;
use hearth_ota::boot::RebootRequest;
use std::time::Duration;

/// What the maintenance window asks for at one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowAction {
    Nothing,
    /// Reboot into the installed update (reboot policy `maintenance_window`).
    Reboot,
    /// Install the available update (`auto_install`).
    Install,
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

/// The window's decision (pure): `pending_reboot` is whether an installed update waits for
/// its reboot; `status` the current state (for an automatic install).
pub fn window_action(
    policy: &UpdatePolicy,
    now_minutes: u32,
    pending_reboot: bool,
    status: Option<&super::UpdateStatus>,
) -> WindowAction {
    let wants_window = policy.reboot == RebootPolicy::MaintenanceWindow || policy.auto_install;
    if !wants_window || !in_window(policy, now_minutes) {
        return WindowAction::Nothing;
    }
    if policy.reboot == RebootPolicy::MaintenanceWindow && pending_reboot {
        return WindowAction::Reboot;
    }
    if policy.auto_install
        && let Some(status) = status
        && let Some(available) = &status.available
        && auto_install_allowed(available, &status.history)
        && status.pending_reboot.is_none()
        && status.state == UpdateState::Idle
    {
        return WindowAction::Install;
    }
    WindowAction::Nothing
}

impl Service {
    /// How to reboot into the installed update: the boot backend decides.
    pub fn reboot_request(&self) -> Result<RebootRequest, UpdateError> {
        let device = self.device()?;
        super::device::reboot_request(&self.config, device.backend)
    }

    /// Reboots into the installed update (`POST /api/v1/update/reboot`, the window):
    /// `update_no_pending_reboot` when none waits.
    pub async fn reboot_into_update(&self) -> Result<(), ServiceError> {
        if self.pending_reboot()?.is_none() {
            return Err(UpdateError::NoPendingReboot.into());
        }
        let request = self.reboot_request()?;
        self.reboot_now(&request).await
    }

    /// Reboots through `SystemControl` as the backend asked (the Pi's `0 tryboot` is passed
    /// to logind first).
    pub async fn reboot_now(&self, request: &RebootRequest) -> Result<(), ServiceError> {
        tracing::warn!(?request, "rebooting into the installed update");
        let result = self.system.reboot(request).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "reboot into the update failed");
        }
        Ok(result?)
    }

    /// After an install: reboot now (policy `immediately`), or leave it to the window or the
    /// admin. After an automatic install, `manual` still waits for the admin; the window
    /// policy reboots at the next tick, inside the window.
    pub(super) fn after_install(&self, policy: RebootPolicy, request: RebootRequest) {
        if policy == RebootPolicy::Immediately {
            let this = self.clone();
            tokio::spawn(async move { this.reboot_now(&request).await });
        }
    }

    /// Starts the schedule (nothing when updates are not configured).
    pub fn spawn_schedule(&self) {
        if self.device().is_err() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let every = this.config.check_every;
            let mut next_check = tokio::time::Instant::now() + every.min(Duration::from_secs(120));
            loop {
                tokio::time::sleep(Duration::from_secs(60).min(every)).await;
                if tokio::time::Instant::now() >= next_check {
                    next_check = tokio::time::Instant::now() + every;
                    if let Err(e) = this.check().await {
                        tracing::warn!(error = %e, "scheduled update check failed");
                    }
                }
                this.maintenance_window().await;
            }
        });
    }

    async fn maintenance_window(&self) {
        let Ok(policy) = self.policy() else {
            return;
        };
        if policy.paused_at(self.clock.now()) {
            return;
        }
        let now = self.local_minutes();
        let pending = matches!(self.pending_reboot(), Ok(Some(_)));
        let status = if policy.auto_install {
            self.status().ok()
        } else {
            None
        };
        match window_action(&policy, now, pending, status.as_ref()) {
            WindowAction::Nothing => {}
            WindowAction::Reboot => {
                if let Ok(request) = self.reboot_request() {
                    let _ = self.reboot_now(&request).await;
                }
            }
            WindowAction::Install => match self.start_install("auto-update") {
                Ok(_) => tracing::info!("automatic system update started"),
                Err(e) => tracing::warn!(error = %e, "automatic system update not started"),
            },
        }
    }

    /// Local time of day in minutes, in the device's configured time zone (the injected clock
    /// read through the system's time-zone database; UTC when the zone is unknown).
    fn local_minutes(&self) -> u32 {
        let zone = self
            .store
            .device_settings()
            .map(|s| s.timezone)
            .unwrap_or_else(|_| "Etc/UTC".into());
        let now = self.clock.local_now(&zone);
        u32::from(now.hour()) * 60 + u32::from(now.minute())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backend decides how to reboot into a trial; `SystemControl` gets its request.
    #[tokio::test]
    async fn the_reboot_into_an_update_is_the_backends_request() {
        use crate::system::fake::FakeSystem;
        use hearth_ota::boot::RebootRequest;
        use std::sync::Arc;
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path();
        let system = Arc::new(FakeSystem::default());
        let clock = crate::clock::ManualClock::new(time::OffsetDateTime::UNIX_EPOCH);
        let mut u = crate::update::tests::service_with(dir, clock, system.clone());
        u.config.repo_url = Some("http://127.0.0.1:9/".into());
        u.config.release_file = dir.join("release.json");
        u.config.root_key = dir.join("root.pub");
        u.config.cmdline_file = dir.join("cmdline");
        u.config.boot_dir = Some(dir.join("boot"));
        std::fs::write(
            &u.config.release_file,
            r#"{"board":"rpi4","arch":"arm64","version":"1.0","version_number":1,"boot":"rpi"}"#,
        )
        .expect("release");
        let key = hearth_ota::keys::random_key().expect("key");
        std::fs::write(
            &u.config.root_key,
            hearth_ota::keys::public_pem(&key.verifying_key()),
        )
        .expect("key");
        std::fs::write(&u.config.cmdline_file, "hearth.slot=a").expect("cmdline");
        std::fs::create_dir_all(dir.join("boot")).expect("boot");
        let Err(ServiceError::Update(UpdateError::NoPendingReboot)) = u.reboot_into_update().await
        else {
            panic!("rebooted without an installed update")
        };
        assert!(system.reboots().is_empty());
        u.store
            .put_update_install(&InstallRecord {
                version: "2.0".into(),
                version_number: 2,
                from_version: "1.0".into(),
                slot: "b".into(),
                started: "1970-01-01T00:00:00Z".into(),
                phase: InstallPhase::Installed,
                downloaded_bytes: 0,
                reused_bytes: 0,
            })
            .expect("record");
        u.reboot_into_update().await.expect("reboot");
        assert_eq!(system.reboots(), vec![RebootRequest::tryboot()]);
        u.config.boot = Some(hearth_ota::release::BootBackend::File);
        u.reboot_into_update().await.expect("reboot");
        assert_eq!(system.reboots().last(), Some(&RebootRequest::Plain));
    }

    #[test]
    fn windows() {
        let mut p = UpdatePolicy::default_for("stable");
        assert!(in_window(&p, 3 * 60));
        assert!(!in_window(&p, 5 * 60));
        p.maintenance_window = MaintenanceWindow {
            start: "23:00".into(),
            end: "01:00".into(),
        };
        assert!(in_window(&p, 23 * 60 + 30) && in_window(&p, 10));
        assert!(!in_window(&p, 12 * 60));
    }

    fn status(
        state: UpdateState,
        available: bool,
        history: Vec<HistoryEntry>,
    ) -> super::super::UpdateStatus {
        let mut s = super::super::status::not_configured(
            String::new(),
            UpdatePolicy::default_for("stable"),
            history,
        );
        s.state = state;
        s.available = available.then(|| AvailableUpdate {
            version: "3.0.0".into(),
            version_number: 3_000_000,
            size: 1,
            notes: String::new(),
            published: String::new(),
        });
        s
    }

    #[test]
    fn the_window_reboots_or_installs_per_policy() {
        let mut p = UpdatePolicy::default_for("stable");
        let idle = status(UpdateState::Idle, true, vec![]);
        let inside = 4 * 60;
        // Manual reboot, no auto-install: the window does nothing.
        assert_eq!(
            window_action(&p, inside, true, Some(&idle)),
            WindowAction::Nothing
        );
        p.reboot = RebootPolicy::MaintenanceWindow;
        assert_eq!(
            window_action(&p, inside, true, Some(&idle)),
            WindowAction::Reboot
        );
        assert_eq!(
            window_action(&p, 12 * 60, true, Some(&idle)),
            WindowAction::Nothing
        );
        assert_eq!(
            window_action(&p, inside, false, Some(&idle)),
            WindowAction::Nothing
        );
        p.auto_install = true;
        assert_eq!(
            window_action(&p, inside, false, Some(&idle)),
            WindowAction::Install
        );
        // Not while something runs, nothing is available, or it was rolled back here.
        for busy in [
            UpdateState::Downloading,
            UpdateState::Trial,
            UpdateState::Checking,
        ] {
            let s = status(busy, true, vec![]);
            assert_eq!(
                window_action(&p, inside, false, Some(&s)),
                WindowAction::Nothing
            );
        }
        let none = status(UpdateState::Idle, false, vec![]);
        assert_eq!(
            window_action(&p, inside, false, Some(&none)),
            WindowAction::Nothing
        );
        let rolled_back = status(
            UpdateState::Idle,
            true,
            vec![HistoryEntry {
                id: 1,
                at: String::new(),
                kind: HistoryKind::RolledBack,
                from_version: "2.0.0".into(),
                to_version: "3.0.0".into(),
                reason: None,
                code: None,
                downloaded_bytes: 0,
                reused_bytes: 0,
            }],
        );
        assert_eq!(
            window_action(&p, inside, false, Some(&rolled_back)),
            WindowAction::Nothing
        );
    }
}
