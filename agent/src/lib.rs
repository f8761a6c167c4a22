//! hearth-agent: the on-device daemon. It serves the dashboard and the HTTPS API, and owns the
//! device's accounts, status and (in later parts) apps, disks, files and updates.
//!
//! The binary is a thin shell over [`cli::main`]; everything else is this library, so tests
//! drive the same code the device runs.

pub mod accounts;
pub mod adapters;
pub mod api;
pub mod apps;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod disks;
pub mod error;
pub mod events;
pub mod files;
pub mod fsutil;
pub mod jobs;
pub mod memory;
pub mod metrics;
pub mod network;
pub mod notify;
pub mod server;
pub mod state;
pub mod status;
pub mod store;
pub mod system;
pub mod tls;
pub mod update;
pub mod validate;

/// What the fuzz harnesses (`fuzz/`, `ci/fuzz`) call that is not public otherwise: the file
/// API's header parsers live in the private `api` handlers. Not an API for anything else.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::api::{content_disposition, parse_content_range, parse_range};
}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
