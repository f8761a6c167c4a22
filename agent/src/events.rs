//! The one live event stream: everything the dashboard hears about (status now; app installs,
//! disk hot-plug and updates later) goes through here, fanned out to every listener.

use crate::status::SystemStatus;
use tokio::sync::{broadcast, watch};

#[derive(Debug, Clone)]
pub enum Event {
    Status(Box<SystemStatus>),
}

impl Event {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Status(_) => "status",
        }
    }

    pub fn data(&self) -> serde_json::Value {
        match self {
            Event::Status(status) => serde_json::to_value(status).unwrap_or_default(),
        }
    }
}

/// Broadcast bus plus the latest status, so a new listener starts with current data.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    latest_status: watch::Sender<Option<SystemStatus>>,
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
        Self { tx, latest_status }
    }

    pub fn publish_status(&self, status: SystemStatus) {
        self.latest_status.send_replace(Some(status.clone()));
        let _ = self.tx.send(Event::Status(Box::new(status)));
    }

    pub fn latest_status(&self) -> Option<SystemStatus> {
        self.latest_status.borrow().clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
