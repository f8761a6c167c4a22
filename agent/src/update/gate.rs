//! `hearth-agent health-gate`: run once per boot by `hearth-health-gate.service`, ordered
//! before `boot-complete.target`. On a trial boot it checks that the booted slot is the one the
//! update went to, that the agent answers its health endpoint, that the required units are
//! active, that the container engine answers (Docker starts on demand, through its socket: the
//! gate's ping is what starts it on a trial boot) and that the network has an address — all
//! within `update_health_timeout_secs` — and then commits the slot. Otherwise it records why
//! (`<data_dir>/update-gate.json`), marks the trial slot unbootable (so the next boot falls back
//! at once) and fails; the unit reboots.
//! Nothing to do (a committed boot, or one where the boot loader already fell back) is success.

use super::device::{backend, boot_control, read_booted, read_release};
use super::{GATE_FILE, GateVerdict, PENDING_FILE, PendingInstall, rfc3339};
use crate::apps::runtime::ContainerRuntime;
use crate::clock::Clock;
use crate::config::Config;
use crate::network::NetworkControl;
use crate::system::SystemControl;
use hearth_ota::boot::{Slot, TrialOutcome, trial_outcome};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateOutcome {
    /// No trial to judge (the message says why).
    NothingToDo(String),
    Committed(Slot),
    /// The trial failed for this reason; the slot is marked unbootable.
    Failed(String),
}

/// One round of the health checks; `Err` names the first that failed.
pub trait HealthChecks {
    fn check(&self) -> futures_util::future::BoxFuture<'_, Result<(), String>>;
}

/// The real checks: the agent over HTTPS on loopback, units through [`SystemControl`], the
/// container engine through [`ContainerRuntime`] and the network through [`NetworkControl`]
/// (D-Bus and Docker adapters in production, fakes in unit tests).
pub struct SystemChecks {
    health_url: String,
    ca_pem: Option<Vec<u8>>,
    system: Arc<dyn SystemControl>,
    network_control: Arc<dyn NetworkControl>,
    units: Vec<String>,
    /// `None` when `update.health_engine` is off; `Err` when no client could be made (an
    /// unusable socket path: the check fails with that reason).
    engine: Option<Result<Arc<dyn ContainerRuntime>, String>>,
    network: bool,
}

impl SystemChecks {
    /// Over the system bus (systemd, NetworkManager).
    pub fn new(config: &Config) -> Self {
        let system = crate::system::dbus::DbusSystem::new(
            config.system_bus_address.clone(),
            crate::system::UnitPolicy::new(config.managed_units.clone()),
        );
        let network = crate::network::nm::NmNetwork::new(
            config.system_bus_address.clone(),
            Duration::from_secs(45),
        );
        // A client that connects on first use: a socket that is missing now fails the engine
        // check (and is retried) instead of the gate's start.
        let engine =
            crate::apps::runtime::docker::DockerRuntime::lazy(&config.apps.container_socket)
                .map(|d| Arc::new(d) as Arc<dyn ContainerRuntime>)
                .map_err(|e| e.to_string());
        Self::with(config, Arc::new(system), Arc::new(network), engine)
    }

    pub fn with(
        config: &Config,
        system: Arc<dyn SystemControl>,
        network_control: Arc<dyn NetworkControl>,
        engine: Result<Arc<dyn ContainerRuntime>, String>,
    ) -> Self {
        let addr = config
            .listen
            .first()
            .copied()
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 443)));
        let ip = match addr.ip() {
            std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            }
            // `[::]:443` accepts IPv4 too; loopback IPv4 is always there.
            std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            }
            other => other,
        };
        SystemChecks {
            health_url: format!(
                "https://{}/api/health",
                std::net::SocketAddr::new(ip, addr.port())
            ),
            ca_pem: std::fs::read(config.data_dir.join("tls/ca.crt")).ok(),
            system,
            network_control,
            units: config.update.health_units.clone(),
            engine: config.update.health_engine.then_some(engine),
            network: config.update.health_network,
        }
    }

    async fn agent(&self) -> Result<(), String> {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .tls_built_in_root_certs(false);
        let pem = self
            .ca_pem
            .as_ref()
            .ok_or("the agent has no TLS identity yet")?;
        let cert = reqwest::Certificate::from_pem(pem).map_err(|e| e.to_string())?;
        b = b.add_root_certificate(cert);
        let client = b.build().map_err(|e| e.to_string())?;
        let resp = client
            .get(&self.health_url)
            .send()
            .await
            .map_err(|e| format!("the agent does not answer {}: {e}", self.health_url))?;
        if !resp.status().is_success() {
            return Err(format!(
                "the agent's health endpoint answered {}",
                resp.status()
            ));
        }
        Ok(())
    }

    /// Every required unit is active.
    pub async fn units(&self) -> Result<(), String> {
        if self.units.is_empty() {
            return Ok(());
        }
        let units = self
            .system
            .units(&self.units)
            .await
            .map_err(|e| e.to_string())?;
        for name in &self.units {
            let state = units
                .iter()
                .find(|u| &u.name == name)
                .filter(|u| u.load_state != "not-found")
                .map(|u| u.active_state.clone())
                .unwrap_or_else(|| "not-found".into());
            if state != "active" {
                return Err(format!("{name} is {state}, not active"));
            }
        }
        Ok(())
    }

    /// The container engine answers its ping. Docker is socket-activated: on a device without
    /// apps nothing else starts it, so this is where a trial boot proves that the new system's
    /// engine starts at all.
    pub async fn engine(&self) -> Result<(), String> {
        let engine = match &self.engine {
            None => return Ok(()),
            Some(Err(e)) => return Err(format!("no client for the container engine: {e}")),
            Some(Ok(engine)) => engine,
        };
        engine
            .ping()
            .await
            .map_err(|e| format!("the container engine does not answer: {e}"))
    }

    /// Some interface has an address. A home network without internet access is a working
    /// network for a home server.
    pub async fn network(&self) -> Result<(), String> {
        if !self.network {
            return Ok(());
        }
        let c = self
            .network_control
            .connectivity()
            .await
            .map_err(|e| e.to_string())?;
        if !c.local {
            return Err("the network is not connected (no interface has an address)".into());
        }
        Ok(())
    }
}

impl HealthChecks for SystemChecks {
    fn check(&self) -> futures_util::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.agent().await?;
            self.units().await?;
            self.engine().await?;
            self.network().await
        })
    }
}

fn write_verdict(
    config: &Config,
    clock: &dyn Clock,
    slot: Slot,
    outcome: &str,
    reason: Option<String>,
) {
    let v = GateVerdict {
        at: rfc3339(clock.now()),
        slot: slot.letter().into(),
        outcome: outcome.into(),
        reason,
    };
    let path = config.data_dir.join(GATE_FILE);
    let bytes = serde_json::to_vec(&v).unwrap_or_default();
    if let Err(e) = hearth_ota::fsutil::write_atomic(&path, &bytes) {
        tracing::warn!(error = %e, path = %path.display(), "cannot record the gate's verdict");
    }
}

/// Runs the gate: judge the boot, commit or fail.
pub async fn run(
    config: &Config,
    checks: &dyn HealthChecks,
    clock: &dyn Clock,
) -> anyhow::Result<GateOutcome> {
    let u = &config.update;
    let release = match read_release(&u.release_file) {
        Ok(r) => r,
        Err(e) => return Ok(GateOutcome::NothingToDo(e.to_string())),
    };
    let opened = backend(u, &release)
        .and_then(|b| boot_control(u, b))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .and_then(|mut boot| {
            let state = boot.state()?;
            Ok((boot, state))
        });
    let (mut boot, state) = match opened {
        Ok(opened) => opened,
        // Without the boot state the gate cannot tell a trial from a committed boot. A failure
        // reboots the device (the unit's FailureAction): right for a trial, which the boot
        // loader then leaves, but on a committed system it would reboot on every boot. So it
        // fails only when an installed update awaits its trial (the agent's pending record).
        Err(e) if !config.data_dir.join(PENDING_FILE).exists() => {
            tracing::warn!(error = %e, "health gate: the boot state cannot be read");
            return Ok(GateOutcome::NothingToDo(format!(
                "the boot state cannot be read ({e}) and no update is pending"
            )));
        }
        Err(e) => return Err(e.context("reading the boot state with an update pending")),
    };
    let Some(booted) = read_booted(u) else {
        if let Some((slot, _)) = state.trial {
            let reason = format!(
                "the booted slot is not on the kernel command line ({})",
                u.cmdline_file.display()
            );
            write_verdict(config, clock, slot, "failed", Some(reason.clone()));
            boot.mark_unbootable(slot)?;
            return Ok(GateOutcome::Failed(reason));
        }
        return Ok(GateOutcome::NothingToDo("no trial pending".into()));
    };
    let slot = match trial_outcome(&state, booted) {
        TrialOutcome::Committed => {
            return Ok(GateOutcome::NothingToDo(format!(
                "slot {} is committed",
                booted.letter()
            )));
        }
        TrialOutcome::FellBack(s) => {
            return Ok(GateOutcome::NothingToDo(format!(
                "the boot loader fell back from slot {} to slot {}",
                s.letter(),
                booted.letter()
            )));
        }
        TrialOutcome::OnTrial(s) => s,
    };
    let intended = std::fs::read(config.data_dir.join(PENDING_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<PendingInstall>(&b).ok());
    let fail = |reason: String, boot: &mut Box<dyn hearth_ota::boot::BootControl + Send>| {
        tracing::error!(%reason, slot = slot.letter(), "health gate failed");
        write_verdict(config, clock, slot, "failed", Some(reason.clone()));
        boot.mark_unbootable(slot)?;
        Ok::<_, anyhow::Error>(GateOutcome::Failed(reason))
    };
    if let Some(p) = &intended
        && p.slot != slot.letter()
    {
        let reason = format!(
            "booted slot {} but the update {} was installed into slot {}",
            slot.letter(),
            p.version,
            p.slot
        );
        return fail(reason, &mut boot);
    }
    let deadline = Instant::now() + u.health_timeout;
    loop {
        match checks.check().await {
            Ok(()) => break,
            Err(reason) => {
                if Instant::now() >= deadline {
                    let reason = format!(
                        "health check failed after {} s: {reason}",
                        u.health_timeout.as_secs()
                    );
                    return fail(reason, &mut boot);
                }
                tracing::info!(%reason, "health gate: not healthy yet");
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(left.min(Duration::from_secs(2))).await;
            }
        }
    }
    boot.commit(slot)?;
    write_verdict(config, clock, slot, "committed", None);
    tracing::info!(slot = slot.letter(), "health gate: trial committed");
    Ok(GateOutcome::Committed(slot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::runtime::fake::FakeRuntime;
    use crate::clock::ManualClock;
    use crate::network::fake::FakeNetwork;
    use crate::system::fake::FakeSystem;
    use hearth_ota::boot::file::FileBoot;
    use hearth_ota::boot::{BootControl, DirFs};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Healthy after `n` failed rounds (never if `None`).
    struct After(Option<u32>, AtomicU32);

    impl HealthChecks for After {
        fn check(&self) -> futures_util::future::BoxFuture<'_, Result<(), String>> {
            let round = self.1.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move {
                match self.0 {
                    Some(n) if round >= n => Ok(()),
                    _ => Err("docker.service is inactive, not active".into()),
                }
            })
        }
    }

    fn device(dir: &std::path::Path, booted: &str) -> Config {
        let mut c = Config::dev(dir);
        c.update.release_file = dir.join("release.json");
        c.update.boot = Some(hearth_ota::release::BootBackend::File);
        c.update.boot_dir = Some(dir.join("boot"));
        c.update.cmdline_file = dir.join("cmdline");
        c.update.health_timeout = Duration::from_secs(1);
        std::fs::write(
            &c.update.release_file,
            r#"{"board":"qemu-x86_64","arch":"amd64","version":"1.0","version_number":1,"boot":"file"}"#,
        )
        .expect("release");
        std::fs::write(&c.update.cmdline_file, format!("hearth.slot={booted}")).expect("cmdline");
        c
    }

    fn clock() -> ManualClock {
        ManualClock::new(time::macros::datetime!(2026-05-06 07:08:09 UTC))
    }

    /// The unit and network checks only (the agent's HTTPS endpoint is not up in a unit test).
    struct Bus(SystemChecks);

    impl HealthChecks for Bus {
        fn check(&self) -> futures_util::future::BoxFuture<'_, Result<(), String>> {
            Box::pin(async move {
                self.0.units().await?;
                self.0.network().await
            })
        }
    }

    fn checks(c: &Config, system: FakeSystem, network: FakeNetwork) -> SystemChecks {
        SystemChecks::with(
            c,
            Arc::new(system),
            Arc::new(network),
            Ok(Arc::new(FakeRuntime::new())),
        )
    }

    /// A boot state that cannot be read (the backend's device hidden or missing) leaves a
    /// committed boot alone: the gate's failure reboots the device, and would on every boot.
    /// With an installed update awaiting its trial, it fails (the boot loader leaves the trial).
    #[tokio::test]
    async fn an_unreadable_boot_state_fails_only_a_pending_trial() {
        let tmp = tempfile::tempdir().expect("tmp");
        let c = device(tmp.path(), "b");
        // No boot state written: the file backend cannot read one.
        let healthy = After(Some(0), AtomicU32::new(0));
        let out = run(&c, &healthy, &clock()).await.expect("no failure");
        assert!(
            matches!(&out, GateOutcome::NothingToDo(why) if why.contains("cannot be read")),
            "{out:?}"
        );
        std::fs::create_dir_all(&c.data_dir).expect("data dir");
        std::fs::write(
            c.data_dir.join(PENDING_FILE),
            r#"{"version":"2.0","from_version":"1.0","slot":"b"}"#,
        )
        .expect("pending");
        let err = run(&c, &healthy, &clock())
            .await
            .expect_err("a pending trial fails");
        assert!(err.to_string().contains("update pending"), "{err:#}");
    }

    /// The engine check pings the engine (what starts a socket-activated Docker), fails with
    /// the engine's reason while it does not answer, and is skipped when turned off.
    #[tokio::test]
    async fn the_engine_must_answer_unless_the_check_is_off() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut c = device(tmp.path(), "b");
        let engine = Arc::new(FakeRuntime::new());
        let with = |c: &Config, e: Result<Arc<dyn ContainerRuntime>, String>| {
            SystemChecks::with(
                c,
                Arc::new(FakeSystem::default()),
                Arc::new(FakeNetwork::new(true)),
                e,
            )
        };
        assert!(c.update.health_engine, "on by default");
        assert_eq!(with(&c, Ok(engine.clone())).engine().await, Ok(()));
        engine.set_down(true);
        let e = with(&c, Ok(engine.clone())).engine().await;
        assert!(
            e.as_ref()
                .is_err_and(|e| e.contains("does not answer") && e.contains("down")),
            "{e:?}"
        );
        let e = with(&c, Err("bad path".into())).engine().await;
        assert!(e.is_err_and(|e| e.contains("bad path")));
        c.update.health_engine = false;
        assert_eq!(with(&c, Ok(engine.clone())).engine().await, Ok(()));
        assert!(
            engine
                .calls()
                .iter()
                .filter(|c| c.starts_with("ping"))
                .count()
                == 2,
            "{:?}",
            engine.calls()
        );
    }

    #[tokio::test]
    async fn units_and_network_are_judged_through_the_traits() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut c = device(tmp.path(), "b");
        c.update.health_units = vec!["docker.service".into(), "hearth-agent.service".into()];
        c.update.health_network = true;
        let healthy = || {
            FakeSystem::with_units(&[
                ("docker.service", "active"),
                ("hearth-agent.service", "active"),
            ])
        };
        let ok = checks(&c, healthy(), FakeNetwork::new(true));
        assert_eq!(ok.units().await, Ok(()));
        assert_eq!(ok.network().await, Ok(()));
        let failed = healthy();
        failed.set_unit("docker.service", "failed");
        let bad = checks(&c, failed, FakeNetwork::new(true));
        assert_eq!(
            bad.units().await,
            Err("docker.service is failed, not active".into())
        );
        let missing = FakeSystem::with_units(&[("docker.service", "active")]);
        let bad = checks(&c, missing, FakeNetwork::new(true));
        assert_eq!(
            bad.units().await,
            Err("hearth-agent.service is not-found, not active".into())
        );
        let offline = checks(&c, healthy(), FakeNetwork::new(false));
        assert!(
            offline
                .network()
                .await
                .expect_err("offline")
                .contains("not connected")
        );
        let down = healthy().with_bus_down();
        let e = checks(&c, down, FakeNetwork::new(true)).units().await;
        assert!(e.expect_err("bus down").contains("system bus"));
        let no_nm = FakeNetwork::unavailable();
        assert!(checks(&c, healthy(), no_nm).network().await.is_err());
        // Nothing asked: nothing checked (an unavailable bus does not matter).
        c.update.health_units = vec![];
        c.update.health_network = false;
        let down = FakeSystem::default().with_bus_down();
        let none = checks(&c, down, FakeNetwork::unavailable());
        assert_eq!((none.units().await, none.network().await), (Ok(()), Ok(())));
    }

    /// A failed unit fails the trial: the verdict (at the clock's time) names it and the slot
    /// is marked unbootable; a healthy system commits it.
    #[tokio::test]
    async fn a_failed_unit_fails_the_trial_and_healthy_units_commit_it() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut c = device(tmp.path(), "b");
        c.update.health_units = vec!["docker.service".into()];
        c.update.health_network = true;
        c.update.health_timeout = Duration::ZERO;
        std::fs::create_dir_all(tmp.path().join("boot")).expect("dir");
        boot(&c).initialize(Slot::A).expect("init");
        boot(&c).set_trial(Slot::B, "2.0").expect("trial");
        let failed = FakeSystem::with_units(&[("docker.service", "failed")]);
        let out = run(
            &c,
            &Bus(checks(&c, failed, FakeNetwork::new(true))),
            &clock(),
        )
        .await
        .expect("run");
        let GateOutcome::Failed(reason) = out else {
            panic!("{out:?}")
        };
        assert!(reason.contains("docker.service is failed"), "{reason}");
        let s = boot(&c).state().expect("state");
        assert!(
            !s.is_bootable(Slot::B) && s.primary == Some(Slot::A),
            "{s:?}"
        );
        let v: GateVerdict =
            serde_json::from_slice(&std::fs::read(tmp.path().join(GATE_FILE)).expect("verdict"))
                .expect("json");
        assert_eq!(
            (v.slot.as_str(), v.outcome.as_str(), v.at.as_str()),
            ("b", "failed", "2026-05-06T07:08:09Z")
        );

        boot(&c).set_trial(Slot::B, "2.1").expect("trial");
        let healthy = FakeSystem::with_units(&[("docker.service", "active")]);
        let out = run(
            &c,
            &Bus(checks(&c, healthy, FakeNetwork::new(true))),
            &clock(),
        )
        .await
        .expect("run");
        assert_eq!(out, GateOutcome::Committed(Slot::B));
        let s = boot(&c).state().expect("state");
        assert_eq!((s.primary, s.trial), (Some(Slot::B), None));
    }

    fn boot(c: &Config) -> FileBoot<DirFs> {
        FileBoot::new(DirFs::new(c.update.boot_dir.as_deref().expect("dir")))
    }

    #[tokio::test]
    async fn commits_a_healthy_trial_and_fails_an_unhealthy_one() {
        let tmp = tempfile::tempdir().expect("tmp");
        let c = device(tmp.path(), "b");
        std::fs::create_dir_all(tmp.path().join("boot")).expect("dir");
        boot(&c).initialize(Slot::A).expect("init");
        // Committed boot: nothing to do, whatever the checks say.
        let c_a = device(tmp.path(), "a");
        let out = run(&c_a, &After(None, AtomicU32::new(0)), &clock())
            .await
            .expect("run");
        assert!(matches!(out, GateOutcome::NothingToDo(_)), "{out:?}");

        let c = device(tmp.path(), "b");
        boot(&c).set_trial(Slot::B, "2.0").expect("trial");
        let out = run(&c, &After(Some(1), AtomicU32::new(0)), &clock())
            .await
            .expect("run");
        assert_eq!(out, GateOutcome::Committed(Slot::B));
        let s = boot(&c).state().expect("state");
        assert_eq!((s.primary, s.trial), (Some(Slot::B), None));

        // Now a trial of a that never gets healthy.
        let c = device(tmp.path(), "a");
        boot(&c).set_trial(Slot::A, "3.0").expect("trial");
        let out = run(&c, &After(None, AtomicU32::new(0)), &clock())
            .await
            .expect("run");
        let GateOutcome::Failed(reason) = out else {
            panic!("{out:?}")
        };
        assert!(reason.contains("docker.service"), "{reason}");
        let s = boot(&c).state().expect("state");
        assert!(
            !s.is_bootable(Slot::A) && s.primary == Some(Slot::B),
            "{s:?}"
        );
        let v: GateVerdict =
            serde_json::from_slice(&std::fs::read(tmp.path().join(GATE_FILE)).expect("verdict"))
                .expect("json");
        assert_eq!((v.slot.as_str(), v.outcome.as_str()), ("a", "failed"));
    }
}
