//! Helpers for the tests that drive the app lifecycle against the real Docker Engine and the
//! local registry that `ci/apps-deps` sets up (busybox-static test images on 127.0.0.1:5000).
//!
//! Set HEARTH_SKIP_DOCKER_TESTS=1 to skip them on a machine without Docker; otherwise a missing
//! engine is a failure, not a silent pass.
#![allow(dead_code)]

pub mod serve;

use hearth_agent::apps::lifecycle::{Apps, InstallRequest};
use hearth_agent::apps::plan::{AppSettings, DeviceSettings};
use hearth_agent::apps::record::AppSource;
use hearth_agent::apps::runtime::ContainerRuntime;
use hearth_agent::apps::runtime::docker::DockerRuntime;
use hearth_agent::events::Events;
use hearth_agent::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The engine socket: Docker's, or another Docker-compatible one (Podman's) through
/// HEARTH_TEST_CONTAINER_SOCKET.
fn socket() -> String {
    std::env::var("HEARTH_TEST_CONTAINER_SOCKET").unwrap_or_else(|_| "/var/run/docker.sock".into())
}

pub struct Env {
    pub apps: Apps,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub events: Events,
    pub device: DeviceSettings,
    /// The agent's store (tests that play an older agent's records edit it directly).
    pub store: Store,
    _dir: tempfile::TempDir,
}

pub async fn env() -> Option<Env> {
    if std::env::var_os("HEARTH_SKIP_DOCKER_TESTS").is_some() {
        eprintln!("HEARTH_SKIP_DOCKER_TESTS is set: skipping");
        return None;
    }
    let runtime: Arc<dyn ContainerRuntime> =
        Arc::new(DockerRuntime::connect(&socket()).await.unwrap_or_else(|e| {
            panic!("no container engine at {}: {e}; run ci/apps-deps", socket())
        }));
    runtime.ping().await.expect("Docker ping: run ci/apps-deps");
    let dir = tempfile::tempdir().expect("tempdir");
    let device = DeviceSettings::under(dir.path());
    let store = Store::open(&dir.path().join("store")).expect("store");
    let events = Events::new();
    let apps = Apps::new(
        runtime.clone(),
        store.clone(),
        device.clone(),
        events.clone(),
    )
    .with_health_timeout(Duration::from_secs(30));
    Some(Env {
        apps,
        runtime,
        events,
        device,
        store,
        _dir: dir,
    })
}

pub fn test_store() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-store")
}

/// The test store's WebApp compose file with its image tag and host port replaced.
pub fn webapp(tag: &str, port: u16) -> String {
    std::fs::read_to_string(test_store().join("Apps/WebApp/docker-compose.yml"))
        .expect("fixture")
        .replace("hearth-test/webapp:1", &format!("hearth-test/webapp:{tag}"))
        .replace("28080", &port.to_string())
}

pub fn request(id: &str, compose: String) -> InstallRequest {
    InstallRequest {
        app_id: Some(id.to_string()),
        compose,
        side_files: BTreeMap::new(),
        source: AppSource::Store {
            store: "test".into(),
            app: "WebApp".into(),
        },
        settings: AppSettings::default(),
        consent: BTreeSet::new(),
        by: "admin".into(),
        exact_ports: true,
    }
}

pub fn unique(name: &str) -> String {
    format!("t{}-{name}", std::process::id())
}

/// A GET that waits (polled, 10 s) for the app's server to come up inside its container.
pub async fn get(port: u16, path: &str) -> String {
    let url = format!("http://127.0.0.1:{port}{path}");
    for _ in 0..40 {
        if let Ok(r) = reqwest::get(&url).await
            && r.status().is_success()
        {
            return r.text().await.expect("body");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{url} did not answer");
}

/// Asserts the runtime has nothing labelled with project `id`.
pub async fn assert_nothing_left(e: &Env, id: &str) {
    let o = e.runtime.project_objects(Some(id)).await.expect("list");
    assert!(
        o.containers.is_empty() && o.networks.is_empty(),
        "{id} left behind: {o:?}"
    );
    assert!(e.apps.get(id).is_err(), "{id} left a record");
    assert!(
        !e.device.app_data_root.join(id).exists(),
        "{id} left its app-data folder"
    );
}

// --- Swap attempts: a container that tries to turn its bind sources into the host's root. ---

pub const SWAP_IMAGE: &str = "127.0.0.1:5000/hearth-test/webapp:1";

/// A marker file only the host can see.
pub fn marker(e: &Env) -> PathBuf {
    let root = e.device.app_data_root.parent().expect("temp root");
    let m = root.join(format!("marker-{}", std::process::id()));
    std::fs::write(&m, "host").expect("marker");
    m
}

/// A service running `script` with `sh -c` (Compose's `$` doubled).
pub fn service(name: &str, script: &str, volumes: &[&str], marker: &std::path::Path) -> String {
    let vols: Vec<String> = volumes.iter().map(|v| format!("\"{v}\"")).collect();
    format!(
        "  {name}:\n    image: {SWAP_IMAGE}\n    restart: always\n    healthcheck: {{disable: true}}\n    \
         stop_grace_period: 1s\n    environment: {{MARKER: \"{}\"}}\n    \
         command: [\"/bin/sh\", \"-c\", {script:?}]\n    volumes: [{}]\n",
        marker.display(),
        vols.join(", ")
    )
    .replace('$', "$$")
}

/// Waits (polled, 30 s) for a container to write `p` in a bind-mounted folder: nothing else
/// tells the host that a script inside a container got that far.
pub async fn wait_file(p: &std::path::Path, what: &str) -> String {
    for _ in 0..120 {
        if let Ok(s) = std::fs::read_to_string(p)
            && !s.trim().is_empty()
        {
            return s.trim().to_string();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what}: {} never appeared", p.display());
}

/// The swapper of the app (`./:/app`, `./data:/data`, `./state:/state`, a shared user
/// folder at `/share`): its first run tries every way to turn `data` into the host's root from
/// inside (through `/app/data` and `/data` itself) and plants links to `/` in the shared folder
/// and its state, writes `state/attempted`, then exits after 8 s (`exit_after`) or sleeps on;
/// any later run writes what `/data` shows to `state/result` (`HOSTROOT` or `SAFE`).
pub fn swapper_script(exit_after: bool) -> String {
    let end = if exit_after {
        "sleep 8; exit 1"
    } else {
        "exec sleep 3600"
    };
    format!(
        "n=$(cat /state/runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/runs; \
        if [ $n -eq 1 ]; then \
          rm -rf /app/data /data 2>>/state/err; mv /app/data /app/data.old 2>>/state/err; \
          mv /data /data.old 2>>/state/err; ln -sfn / /app/data 2>>/state/err; \
          ln -s / /share/escape; ln -s / /state/escape; echo done > /state/attempted; {end}; \
        fi; \
        if [ -e \"/data$MARKER\" ]; then echo HOSTROOT; else echo SAFE; fi > /state/result; \
        exec sleep 3600"
    )
}
