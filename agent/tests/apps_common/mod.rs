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
