//! The one live event stream: everything the dashboard hears about (status, jobs, app installs,
//! disk hot-plug; updates later) goes through here, fanned out to every listener.

use crate::status::SystemStatus;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// Live event streams one user may hold open at once (a browser tab holds one). Each costs a
/// connection and a subscription; without a cap one account could hold the connection cap.
pub const MAX_STREAMS_PER_USER: usize = 8;

#[derive(Debug, Clone)]
pub enum Event {
    Status(Box<SystemStatus>),
    Job(crate::jobs::JobStatus),
    /// Progress of an app operation (install, update, uninstall), including pull bytes.
    AppProgress(Box<AppProgress>),
    /// An app's state changed (installed, started, stopped, removed, failed).
    AppState(Box<AppStateChange>),
    /// A disk appeared, went away or changed (hot-plug, media change, a new partition table).
    Disk(Box<DiskEvent>),
}

/// `disk_added` / `disk_removed` / `disk_changed`: the disk's kernel name and, unless it went
/// away, its fresh listing (the same shape as in `GET /api/v1/disks`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DiskEvent {
    pub change: crate::disks::hotplug::DiskChange,
    pub disk: String,
    /// The device the kernel reported (the disk, or one of its partitions).
    pub device: String,
    pub info: Option<crate::disks::Disk>,
    /// Mount points the auto-mount policy just mounted.
    pub automounted: Vec<String>,
}

/// One step of an app operation; `layer` fields are set for image pull progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = AppProgressEvent)]
pub struct AppProgress {
    pub app: String,
    pub operation: String,
    pub phase: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub layer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub total: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = AppStateEvent)]
pub struct AppStateChange {
    pub app: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
}

impl Event {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Status(_) => "status",
            Event::Job(_) => "job",
            Event::AppProgress(_) => "app_progress",
            Event::AppState(_) => "app_state",
            Event::Disk(d) => match d.change {
                crate::disks::hotplug::DiskChange::DiskAdded => "disk_added",
                crate::disks::hotplug::DiskChange::DiskRemoved => "disk_removed",
                crate::disks::hotplug::DiskChange::DiskChanged => "disk_changed",
            },
        }
    }

    pub fn data(&self) -> serde_json::Value {
        match self {
            Event::Status(status) => serde_json::to_value(status).unwrap_or_default(),
            Event::Job(job) => serde_json::to_value(job).unwrap_or_default(),
            Event::AppProgress(p) => serde_json::to_value(p).unwrap_or_default(),
            Event::AppState(s) => serde_json::to_value(s).unwrap_or_default(),
            Event::Disk(d) => serde_json::to_value(d).unwrap_or_default(),
        }
    }
}

/// Broadcast bus plus the latest status, so a new listener starts with current data.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    latest_status: watch::Sender<Option<SystemStatus>>,
    streams: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open stream of a user; closing the stream (dropping this) frees its place.
#[derive(Debug)]
pub struct StreamSlot {
    streams: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut map = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(64);
        let (latest_status, _) = watch::channel(None);
        Self {
            tx,
            latest_status,
            streams: Arc::default(),
        }
    }

    /// A place for one more stream of `user`, or `None` at `MAX_STREAMS_PER_USER`.
    pub fn open_stream(&self, user: &str) -> Option<StreamSlot> {
        let mut map = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(user.to_string()).or_insert(0);
        if *n >= MAX_STREAMS_PER_USER {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            streams: self.streams.clone(),
            user: user.to_string(),
        })
    }

    pub fn publish_status(&self, status: SystemStatus) {
        self.latest_status.send_replace(Some(status.clone()));
        let _ = self.tx.send(Event::Status(Box::new(status)));
    }

    pub fn publish_job(&self, job: crate::jobs::JobStatus) {
        let _ = self.tx.send(Event::Job(job));
    }

    /// Publishes any event; nobody listening is fine.
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    pub fn latest_status(&self) -> Option<SystemStatus> {
        self.latest_status.borrow().clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
