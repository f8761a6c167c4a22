//! Starting and running the agent: open the store, make sure the TLS identity and setup code
//! exist, start the background tasks and listeners, tell systemd, and wait for a signal.

use crate::accounts::{Accounts, SessionPolicy};
use crate::adapters::Adapters;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::events::Events;
use crate::metrics::Metrics;
use crate::server::Server;
use crate::state::{AppState, Inner};
use crate::status::{Identity, Sampler};
use crate::store::Store;
use crate::tls::{self, CertResolver, DeviceTls};
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Builds the application state for `config` over the operating-system `adapters` the caller
/// picked (real ones in the daemon, fakes in in-process tests), with the device's TLS identity
/// (also reachable as `state.tls`).
pub fn build_state(
    config: Config,
    adapters: Adapters,
) -> anyhow::Result<(AppState, Arc<DeviceTls>)> {
    let clock = adapters.clock.clone();
    crate::fsutil::ensure_dir(&config.data_dir, 0o700)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let store = Store::open(&config.data_dir.join("store"))
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    let tls = Arc::new(DeviceTls::open(&config.data_dir.join("tls"), clock.now())?);
    let accounts = Accounts::new(
        store.clone(),
        clock.clone(),
        SessionPolicy {
            idle_timeout: config.session_idle_timeout,
            max_age: config.session_max_age,
        },
        config.setup_code_file.clone(),
    )
    .with_update_channel(config.update.channel.clone());
    let events = Events::new();
    let (apps, catalog) = build_apps(&config, &store, &events, &adapters)?;
    let jobs = Arc::new(crate::jobs::Jobs::default());
    let system = adapters.system.clone();
    let state = AppState::new(Inner {
        apps,
        catalog,
        tls: tls.clone(),
        files: crate::files::FileRoots::new(
            &config.data_dir,
            &config.apps.app_data_dir,
            &config.media_dir,
        ),
        jobs: jobs.clone(),
        system: system.clone(),
        network: adapters.network,
        unit_policy: crate::system::UnitPolicy::new(config.managed_units.clone()),
        journal: crate::system::journal::Journal::new(config.journalctl.clone()),
        disks: crate::disks::Service::new(
            adapters.block_devices,
            adapters.system,
            store.clone(),
            events.clone(),
            config.media_dir.clone(),
            config.disks_include_loop,
        ),
        updates: crate::update::Service::new(
            config.update.clone(),
            &config.data_dir,
            crate::update::Parts {
                store: store.clone(),
                events: events.clone(),
                jobs,
                system,
                clock: clock.clone(),
            },
        ),
        config,
        store,
        accounts,
        clock,
        events,
        metrics: Metrics::default(),
        started: Instant::now(),
    });
    Ok((state, tls))
}

/// The apps service (over the configured container socket) and the app-store catalog.
fn build_apps(
    config: &Config,
    store: &Store,
    events: &Events,
    adapters: &Adapters,
) -> anyhow::Result<(crate::apps::lifecycle::Apps, crate::apps::catalog::Catalog)> {
    use crate::apps::plan::{DeviceSettings, host_architecture};
    let c = &config.apps;
    let tz = store
        .device_settings()
        .map(|s| s.timezone)
        .unwrap_or_else(|_| "Etc/UTC".into());
    let device = DeviceSettings {
        app_data_root: c.app_data_dir.clone(),
        user_data_root: c.user_data_dir.clone(),
        projects_dir: c.projects_dir.clone(),
        puid: 1000,
        pgid: 1000,
        tz,
        architecture: host_architecture().into(),
    };
    let apps = crate::apps::lifecycle::Apps::new(
        adapters.containers.clone(),
        store.clone(),
        device,
        events.clone(),
    )
    .with_clock(adapters.clock.clone())
    .with_engine_containers_dir(std::path::PathBuf::from(ENGINE_CONTAINERS_DIR));
    let fetcher = crate::apps::fetch::Fetcher::new(&c.ca_files, true, true)
        .map_err(|e| anyhow::anyhow!("app stores: {e}"))?;
    let catalog =
        crate::apps::catalog::Catalog::open_in_background(crate::apps::catalog::CatalogOptions {
            dirs: c.stores.clone(),
            urls: c.store_urls.clone(),
            saved: config.data_dir.join("app-stores.json"),
            default_store: c.default_store.clone(),
            cache_dir: config.data_dir.join("app-stores"),
            arch: host_architecture().into(),
            fetcher: Some(fetcher),
            media: Some(crate::apps::media::MediaCache::new(
                config.data_dir.join("app-media"),
                crate::apps::fetch::Fetcher::new(&c.ca_files, c.media_allow_private, false)
                    .map_err(|e| anyhow::anyhow!("app images: {e}"))?,
            )),
            clock: adapters.clock.clone(),
        });
    Ok((apps, catalog))
}

/// Docker's container folder under the `data-root` of the image's
/// `overlays/base/etc/docker/daemon.json`: containers there make the agent start the engine at
/// boot even with no app installed (see `Apps::reconcile_at_start`).
const ENGINE_CONTAINERS_DIR: &str = "/var/lib/docker/containers";

/// Checks installed apps for updates on the configured schedule (first one minute after start,
/// or one period if that is shorter) and updates those with `auto_update` on.
pub fn spawn_update_check(state: AppState) {
    tokio::spawn(async move {
        let every = state.config.apps.update_check;
        tokio::time::sleep(every.min(Duration::from_secs(60))).await;
        loop {
            crate::apps::lifecycle::auto_update(&state.apps, &state.catalog).await;
            tokio::time::sleep(every).await;
        }
    });
}

/// Downloads zip stores that have no copy yet, then refreshes every store on the configured
/// schedule.
pub fn spawn_store_refresh(state: AppState) {
    tokio::spawn(async move {
        state.catalog.refresh_missing().await;
        let every = state.config.apps.store_refresh;
        loop {
            tokio::time::sleep(every).await;
            state.catalog.refresh().await;
        }
    });
}

/// Reconciles the apps with the container engine once it answers (retrying while it is down);
/// with no app installed the engine is left alone until the first install (Docker starts on
/// demand).
pub fn spawn_apps_reconcile(state: AppState) {
    tokio::spawn(async move {
        let mut delay = Duration::from_secs(1);
        loop {
            match state.apps.reconcile_at_start().await {
                Ok(Some(_)) => return,
                Ok(None) => {
                    tracing::info!(
                        "no app installed: the container engine is left alone until an install"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reconcile apps yet; retrying");
                    tokio::time::sleep(delay).await;
                    // Docker usually answers seconds after the agent's start (the agent
                    // does not wait for it): retry soon, never more than 10 s apart.
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    });
}

fn identity(state: &AppState) -> Identity {
    Identity {
        hostname: state.hostname(),
        timezone: state.timezone(),
        time: crate::clock::rfc3339(state.clock.now()),
    }
}

/// Samples the system every interval and publishes it.
pub fn spawn_status_task(state: AppState) {
    let mut sampler = Sampler::new("/");
    state
        .events
        .publish_status(sampler.sample(identity(&state)));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.status_interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            state
                .events
                .publish_status(sampler.sample(identity(&state)));
        }
    });
}

/// Keeps the server certificate valid and naming the device's addresses. The agent starts
/// before the network is configured (it does not wait for DHCP), and addresses come and go
/// later (a new network, Docker's bridge): the names are compared every 30 s and the
/// certificate re-issued when one is missing; expiry is re-checked hourly.
fn spawn_cert_renewal(state: AppState) {
    tokio::spawn(async move {
        const STEP: Duration = Duration::from_secs(30);
        const FULL: Duration = Duration::from_secs(3600);
        let mut last = tls::wanted_names(&state.hostname());
        let mut since_full = Duration::ZERO;
        loop {
            tokio::time::sleep(STEP).await;
            since_full += STEP;
            let wanted = tls::wanted_names(&state.hostname());
            if wanted == last && since_full < FULL {
                continue;
            }
            since_full = Duration::ZERO;
            match state.tls.refresh(&wanted, state.clock.now()) {
                Ok(()) => last = wanted,
                Err(e) => tracing::warn!(error = %e, "certificate renewal failed"),
            }
        }
    });
}

fn spawn_watchdog() {
    if let Some(interval) = crate::notify::watchdog_interval() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                crate::notify::notify("WATCHDOG=1");
            }
        });
    }
}

fn announce_setup_code(state: &AppState) -> anyhow::Result<()> {
    if let Some(code) = state.accounts.ensure_setup_code()? {
        let host = state.hostname();
        let port = state.config.listen.first().map_or(443, |a| a.port());
        let url = if port == 443 {
            format!("https://{host}.local/")
        } else {
            format!("https://{host}.local:{port}/")
        };
        tracing::info!(setup_code = %code, file = %state.config.setup_code_file.display(), "device is not claimed yet");
        println!("Hearth setup code: {code}  (open {url} to claim this device)");
    }
    Ok(())
}

/// Runs the agent until SIGTERM or SIGINT, serving the router `app` builds over the state.
///
/// The caller (the command line) passes the HTTP front end in, so the daemon knows the server
/// and the services but never the handlers (`tests/integration/module_deps.rs` enforces it).
pub async fn run(config: Config, app: impl FnOnce(AppState) -> axum::Router) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock);
    let adapters = Adapters::real(&config, clock)?;
    let (state, tls) = build_state(config, adapters)?;
    announce_setup_code(&state)?;
    let resolver = Arc::new(CertResolver::new(
        tls.server_key(&tls::wanted_names(&state.hostname()), state.clock.now())?,
    ));
    tls.attach(resolver.clone());
    let mut limits = crate::server::Limits::for_this_process();
    if let Some(n) = state.config.http_max_connections_per_client {
        limits.max_per_client = n.clamp(1, limits.max_connections);
    }
    let server = Server::with_limits(
        app(state.clone()),
        crate::server::tls_config(resolver.clone()),
        &format!("{}.local", state.hostname()),
        limits,
    );
    spawn_status_task(state.clone());
    {
        let disks = state.disks.clone();
        tokio::spawn(async move { disks.remount_persisted().await });
    }
    tokio::spawn(state.disks.clone().follow_hotplug());
    spawn_apps_reconcile(state.clone());
    crate::network::hotspot::spawn(state.clone());
    spawn_store_refresh(state.clone());
    spawn_update_check(state.clone());
    state.updates.reconcile_at_start();
    state.updates.spawn_schedule();
    spawn_cert_renewal(state.clone());
    crate::memory::spawn_trim();
    let https_port = state.config.listen[0].port();
    for addr in &state.config.listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(%addr, "serving HTTPS");
        tokio::spawn(server.clone().serve_https(listener));
    }
    for addr in &state.config.redirect_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(%addr, "redirecting HTTP to HTTPS");
        tokio::spawn(server.clone().serve_redirects(listener, https_port));
    }
    crate::notify::notify("READY=1");
    spawn_watchdog();
    wait_for_signal().await;
    crate::notify::notify("STOPPING=1");
    tracing::info!("stopping");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
