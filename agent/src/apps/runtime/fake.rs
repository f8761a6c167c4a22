//! An in-memory container runtime for tests: keeps images, containers, networks and volumes,
//! records every call, and fails on demand (one verb, or everything as if the engine were down).

use super::*;
use crate::apps::labels;
use crate::apps::plan::ContainerSpec;
use futures_util::FutureExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    images: BTreeSet<String>,
    containers: BTreeMap<String, (ContainerSpec, bool)>,
    networks: BTreeMap<String, BTreeMap<String, String>>,
    volumes: BTreeMap<String, BTreeMap<String, String>>,
    calls: Vec<String>,
    fail_on: Option<String>,
    down: bool,
    /// Containers whose start makes them exit at once (a broken image).
    crashing: BTreeSet<String>,
    /// Registry digests that differ from `sha256:0` (a moving tag that moved).
    registry: BTreeMap<String, String>,
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the registry answer `digest` for `image` (a moving tag that moved).
    pub fn set_registry_digest(&self, image: &str, digest: &str) {
        self.lock()
            .registry
            .insert(image.to_string(), digest.to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `image` pullable.
    pub fn add_image(&self, image: &str) {
        self.lock().images.insert(image.to_string());
    }

    /// Containers of this image exit as soon as they start.
    pub fn crash_image(&self, image: &str) {
        self.lock().crashing.insert(image.to_string());
    }

    /// The next call whose record starts with `prefix` (e.g. `"start webapp-web-1"`) fails.
    pub fn fail_on(&self, prefix: &str) {
        self.lock().fail_on = Some(prefix.to_string());
    }

    /// Every call fails as if the engine were unreachable, until `set_down(false)`.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    pub fn container_names(&self) -> Vec<String> {
        self.lock().containers.keys().cloned().collect()
    }

    pub fn network_names(&self) -> Vec<String> {
        self.lock().networks.keys().cloned().collect()
    }

    pub fn volume_names(&self) -> Vec<String> {
        self.lock().volumes.keys().cloned().collect()
    }

    fn call(&self, record: String) -> RtResult<std::sync::MutexGuard<'_, State>> {
        let mut s = self.lock();
        s.calls.push(record.clone());
        if s.down {
            return Err(RuntimeError::Unavailable("the fake engine is down".into()));
        }
        if s.fail_on
            .as_ref()
            .is_some_and(|p| record.starts_with(p.as_str()))
        {
            s.fail_on = None;
            return Err(RuntimeError::Engine(format!("injected failure: {record}")));
        }
        Ok(s)
    }
}

fn in_project(labels_: &BTreeMap<String, String>, project: Option<&str>) -> bool {
    match (labels_.get(labels::PROJECT), project) {
        (Some(p), Some(want)) => p == want,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn status(name: &str, spec: &ContainerSpec, running: bool, crashing: bool) -> ContainerStatus {
    let (state, exit) = match (running, crashing) {
        (true, false) => (ContainerState::Running, None),
        (true, true) => (ContainerState::Exited, Some(1)),
        (false, _) => (ContainerState::Created, None),
    };
    ContainerStatus {
        id: format!("id-{name}"),
        name: name.to_string(),
        state,
        health: if spec.healthcheck.is_some() && state == ContainerState::Running {
            Health::Healthy
        } else {
            Health::None
        },
        exit_code: exit,
        image_id: format!("sha256:{}", spec.image),
        labels: spec.labels.clone(),
    }
}

impl ContainerRuntime for FakeRuntime {
    fn ping(&self) -> BoxFuture<'_, RtResult<()>> {
        let r = self.call("ping".into()).map(drop);
        async move { r }.boxed()
    }

    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        progress: ProgressFn<'a>,
    ) -> BoxFuture<'a, RtResult<()>> {
        let r = self.call(format!("pull {image}")).and_then(|s| {
            if s.images.contains(image) {
                Ok(())
            } else {
                Err(RuntimeError::Pull {
                    image: image.into(),
                    message: "manifest unknown".into(),
                })
            }
        });
        if r.is_ok() {
            progress(PullProgress {
                image: image.into(),
                layer: "l1".into(),
                status: "Downloading".into(),
                current: 5,
                total: 10,
            });
            progress(PullProgress {
                image: image.into(),
                layer: "l1".into(),
                status: "Download complete".into(),
                current: 10,
                total: 10,
            });
        }
        async move { r }.boxed()
    }

    fn image_id<'a>(&'a self, image: &'a str) -> BoxFuture<'a, RtResult<Option<String>>> {
        let r = self
            .call(format!("image {image}"))
            .map(|s| s.images.contains(image).then(|| format!("sha256:{image}")));
        async move { r }.boxed()
    }

    fn image_digest<'a>(&'a self, image: &'a str) -> BoxFuture<'a, RtResult<Option<String>>> {
        // A pulled image has the digest the registry had for it.
        let r = self.call(format!("digest {image}")).map(|s| {
            s.images.contains(image).then(|| {
                let d = s.registry.get(image).map_or("sha256:0", String::as_str);
                format!("{image}@{d}")
            })
        });
        async move { r }.boxed()
    }

    fn registry_digest<'a>(&'a self, image: &'a str) -> BoxFuture<'a, RtResult<String>> {
        let r = self.call(format!("registry-digest {image}")).map(|s| {
            s.registry
                .get(image)
                .cloned()
                .unwrap_or_else(|| "sha256:0".into())
        });
        async move { r }.boxed()
    }

    fn create_network<'a>(&'a self, spec: &'a NetworkSpec) -> BoxFuture<'a, RtResult<()>> {
        let r = self
            .call(format!("create-network {}", spec.name))
            .and_then(|mut s| {
                if s.networks.contains_key(&spec.name) {
                    return Err(RuntimeError::Conflict(spec.name.clone()));
                }
                s.networks.insert(spec.name.clone(), spec.labels.clone());
                Ok(())
            });
        async move { r }.boxed()
    }

    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
        let r = self
            .call(format!("remove-network {name}"))
            .and_then(|mut s| {
                s.networks
                    .remove(name)
                    .map(drop)
                    .ok_or_else(|| RuntimeError::NotFound(name.into()))
            });
        async move { r }.boxed()
    }

    fn network_exists<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<bool>> {
        let r = self
            .call(format!("network {name}"))
            .map(|s| s.networks.contains_key(name));
        async move { r }.boxed()
    }

    fn create_volume<'a>(&'a self, spec: &'a VolumeSpec) -> BoxFuture<'a, RtResult<()>> {
        let r = self
            .call(format!("create-volume {}", spec.name))
            .map(|mut s| {
                s.volumes.insert(spec.name.clone(), spec.labels.clone());
            });
        async move { r }.boxed()
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
        let r = self
            .call(format!("remove-volume {name}"))
            .and_then(|mut s| {
                s.volumes
                    .remove(name)
                    .map(drop)
                    .ok_or_else(|| RuntimeError::NotFound(name.into()))
            });
        async move { r }.boxed()
    }

    fn volume_exists<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<bool>> {
        let r = self
            .call(format!("volume {name}"))
            .map(|s| s.volumes.contains_key(name));
        async move { r }.boxed()
    }

    fn set_restart_policy<'a>(
        &'a self,
        name: &'a str,
        policy: &'a crate::apps::plan::RestartPolicy,
    ) -> BoxFuture<'a, RtResult<()>> {
        let r = self
            .call(format!("restart-policy {name} {policy:?}"))
            .and_then(|mut s| {
                let c = s
                    .containers
                    .get_mut(name)
                    .ok_or_else(|| RuntimeError::NotFound(name.into()))?;
                c.0.restart = policy.clone();
                Ok(())
            });
        async move { r }.boxed()
    }

    fn create_container<'a>(&'a self, spec: &'a ContainerSpec) -> BoxFuture<'a, RtResult<String>> {
        let r = self
            .call(format!("create {}", spec.name))
            .and_then(|mut s| {
                if s.containers.contains_key(&spec.name) {
                    return Err(RuntimeError::Conflict(spec.name.clone()));
                }
                s.containers
                    .insert(spec.name.clone(), (spec.clone(), false));
                Ok(format!("id-{}", spec.name))
            });
        async move { r }.boxed()
    }

    fn start_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
        let r = self.call(format!("start {name}")).and_then(|mut s| {
            let c = s
                .containers
                .get_mut(name)
                .ok_or_else(|| RuntimeError::NotFound(name.into()))?;
            c.1 = true;
            Ok(())
        });
        async move { r }.boxed()
    }

    fn stop_container<'a>(&'a self, name: &'a str, _t: Option<i64>) -> BoxFuture<'a, RtResult<()>> {
        let r = self.call(format!("stop {name}")).and_then(|mut s| {
            let c = s
                .containers
                .get_mut(name)
                .ok_or_else(|| RuntimeError::NotFound(name.into()))?;
            c.1 = false;
            Ok(())
        });
        async move { r }.boxed()
    }

    fn restart_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
        let r = self.call(format!("restart {name}")).and_then(|mut s| {
            let c = s
                .containers
                .get_mut(name)
                .ok_or_else(|| RuntimeError::NotFound(name.into()))?;
            c.1 = true;
            Ok(())
        });
        async move { r }.boxed()
    }

    fn remove_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
        let r = self.call(format!("remove {name}")).and_then(|mut s| {
            s.containers
                .remove(name)
                .map(drop)
                .ok_or_else(|| RuntimeError::NotFound(name.into()))
        });
        async move { r }.boxed()
    }

    fn inspect_container<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, RtResult<Option<ContainerStatus>>> {
        let r = self.call(format!("inspect {name}")).map(|s| {
            s.containers.get(name).map(|(spec, running)| {
                status(name, spec, *running, s.crashing.contains(&spec.image))
            })
        });
        async move { r }.boxed()
    }

    fn project_objects<'a>(
        &'a self,
        project: Option<&'a str>,
    ) -> BoxFuture<'a, RtResult<ProjectObjects>> {
        let r = self
            .call(format!("list {}", project.unwrap_or("*")))
            .map(|s| ProjectObjects {
                containers: s
                    .containers
                    .iter()
                    .filter(|(_, (spec, _))| in_project(&spec.labels, project))
                    .map(|(n, (spec, running))| {
                        status(n, spec, *running, s.crashing.contains(&spec.image))
                    })
                    .collect(),
                networks: s
                    .networks
                    .iter()
                    .filter(|(_, l)| in_project(l, project))
                    .map(|(n, _)| n.clone())
                    .collect(),
                volumes: s
                    .volumes
                    .iter()
                    .filter(|(_, l)| in_project(l, project))
                    .map(|(n, _)| n.clone())
                    .collect(),
            });
        async move { r }.boxed()
    }

    fn logs<'a>(&'a self, name: &'a str, _opts: LogOptions) -> BoxStream<'a, RtResult<LogLine>> {
        let r = self.call(format!("logs {name}")).map(|_| LogLine {
            container: name.to_string(),
            stream: LogStream::Stdout,
            text: format!("{name} says hello"),
        });
        futures_util::StreamExt::boxed(futures_util::stream::iter([r]))
    }

    fn stats<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<Stats>> {
        let r = self.call(format!("stats {name}")).map(|_| Stats {
            memory_bytes: 1 << 20,
            ..Default::default()
        });
        async move { r }.boxed()
    }
}
