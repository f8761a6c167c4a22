//! Long-running work (large copies now; more later) as jobs with progress and cancel. Progress
//! goes out on the event stream as `job` events; a finished job stays listed for an hour.

use crate::events::Events;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub id: String,
    pub kind: String,
    pub owner: String,
    pub description: String,
    pub state: JobState,
    pub bytes_done: u64,
    pub error: Option<String>,
    /// Machine-readable code of a failure, where the job has one (`update_bundle_invalid`, …).
    pub error_code: Option<String>,
}

#[derive(Debug)]
pub struct Job {
    id: String,
    kind: String,
    owner: String,
    description: String,
    bytes_done: AtomicU64,
    cancel: AtomicBool,
    outcome: Mutex<(JobState, Option<String>, Option<Instant>)>,
    error_code: Mutex<Option<String>>,
    events: Events,
}

impl Job {
    pub fn status(&self) -> JobStatus {
        let outcome = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        JobStatus {
            id: self.id.clone(),
            kind: self.kind.clone(),
            owner: self.owner.clone(),
            description: self.description.clone(),
            state: outcome.0,
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            error: outcome.1.clone(),
            error_code: self
                .error_code
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Records progress; returns false once the job should stop.
    pub fn progress(&self, bytes_done: u64) -> bool {
        let before = self.bytes_done.swap(bytes_done, Ordering::Relaxed);
        // Tell listeners every 8 MiB, not every buffer.
        if before >> 23 != bytes_done >> 23 {
            self.events.publish_job(self.status());
        }
        !self.cancel.load(Ordering::Relaxed)
    }

    pub fn finish(&self, result: Result<(), String>) {
        {
            let mut outcome = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
            *outcome = match result {
                Ok(()) => (JobState::Done, None, Some(Instant::now())),
                Err(_) if self.cancel.load(Ordering::Relaxed) => {
                    (JobState::Cancelled, None, Some(Instant::now()))
                }
                Err(e) => (JobState::Failed, Some(e), Some(Instant::now())),
            };
        }
        self.events.publish_job(self.status());
    }

    /// Like `finish`, with a machine-readable code for a failure: `Err((code, message))`.
    pub fn finish_with_code(&self, result: Result<(), (String, String)>) {
        let result = match result {
            Ok(()) => Ok(()),
            Err((code, message)) => {
                *self.error_code.lock().unwrap_or_else(|e| e.into_inner()) = Some(code);
                Err(message)
            }
        };
        self.finish(result);
    }

    fn finished_at(&self) -> Option<Instant> {
        self.outcome.lock().unwrap_or_else(|e| e.into_inner()).2
    }
}

#[derive(Debug, Default)]
pub struct Jobs {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

const KEEP_FINISHED: Duration = Duration::from_secs(3600);

impl Jobs {
    pub fn start(&self, kind: &str, owner: &str, description: String, events: Events) -> Arc<Job> {
        let job = Arc::new(Job {
            id: crate::auth::tokens::new_id(),
            kind: kind.into(),
            owner: owner.into(),
            description,
            bytes_done: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
            outcome: Mutex::new((JobState::Running, None, None)),
            error_code: Mutex::new(None),
            events,
        });
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.retain(|_, j| j.finished_at().is_none_or(|t| t.elapsed() < KEEP_FINISHED));
        jobs.insert(job.id.clone(), job.clone());
        job
    }

    /// Jobs visible to `owner` (all jobs when `all`).
    pub fn list(&self, owner: &str, all: bool) -> Vec<JobStatus> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.values()
            .filter(|j| all || j.owner == owner)
            .map(|j| j.status())
            .collect()
    }

    pub fn get(&self, id: &str, owner: &str, all: bool) -> Option<Arc<Job>> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(id).filter(|j| all || j.owner == owner).cloned()
    }

    pub fn cancel(&self, id: &str, owner: &str, all: bool) -> bool {
        match self.get(id, owner, all) {
            Some(job) => {
                job.cancel.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}
