//! The agent's integration tests, one module per area, linked into one test binary (each
//! separate binary linked the whole agent again; on two cores that was the largest avoidable
//! cost of `cargo test`).
//!
//! Run one area with a filter on the module path:
//! `cargo test -p hearth-agent --test integration -- files_api::` (or a single test by its
//! full name). The ignored benchmarks: `-- apps_bench:: --ignored --nocapture`.
//!
//! `common` (the spawned agent over HTTPS, the in-process harness, D-Bus and NetworkManager
//! mocks) and `apps_common` (the real Docker engine, the test registry, a local HTTP store
//! server) are the shared fixtures. To add an area, add a file here and a `mod` line below.
//!
//! The modules' tests run in parallel threads of this one process, so a test must not change
//! process-wide state: no environment variables, umask, working directory or signal handlers;
//! host ports either come from `common::free_port()` or are unique across all modules (the app
//! tests' published ports, `282xx`-`285xx`); app ids and loop devices are unique per test. The
//! one test that breaks this on purpose, restarting the shared `dockerd` under every other
//! Docker test, stays a binary of its own: `agent/tests/apps_dockerd_restart.rs` (cargo runs
//! test binaries one after another).

mod apps_common;
mod common;

#[path = "../../../ota/tests/common/http_server.rs"]
mod http_server;

mod api_auth;
mod apps_api;
mod apps_bench;
mod apps_convert;
mod apps_docker;
mod apps_hostile;
mod apps_isolation;
mod apps_media;
mod apps_reconcile;
mod apps_store_zip;
mod apps_updates;
mod casaos_store;
mod claim;
mod dbus_system;
mod disks;
mod disks_hotplug;
mod files_api;
mod files_confinement;
mod files_large;
mod http_limits;
mod login_races;
mod module_deps;
mod network;
mod restart;
mod sessions;
mod store_crash;
mod tls_rotation;
mod update;
