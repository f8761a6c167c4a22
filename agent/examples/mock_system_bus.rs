//! A private `dbus-daemon` with the mock systemd1, login1, hostname1, timedate1 and
//! NetworkManager services the Rust tests use, for the dashboard's browser tests (a `--dev`
//! agent has no system bus). NetworkManager starts as `MockNetworkConfig::home()`; with
//! `--without-network-manager` the bus has none (the agent then answers 503
//! `network_unavailable`).
//!
//! Prints the bus address as the first line of stdout, then one `call <what>` line for each
//! recorded systemd/logind call (a reboot, a restart) and one `call nm <what>` line for each
//! NetworkManager call (checkpoint, add-activate, rollback, …), and runs until SIGTERM or
//! SIGINT.

#[path = "../tests/integration/common/dbus_mock.rs"]
mod dbus_mock;
#[path = "../tests/integration/common/nm_mock.rs"]
mod nm_mock;

use std::io::Write;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bus = dbus_mock::private_bus().await;
    let nm = if std::env::args().any(|a| a == "--without-network-manager") {
        None
    } else {
        Some(nm_mock::serve_network_manager(&bus.address, nm_mock::MockNetworkConfig::home()).await)
    };
    let mut out = std::io::stdout();
    writeln!(out, "{}", bus.address)?;
    out.flush()?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut printed = 0;
    let mut printed_nm = 0;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {
                let calls = bus.calls.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
                for call in &calls[printed..] {
                    writeln!(out, "call {call}")?;
                }
                printed = calls.len();
                let nm_calls = nm.as_ref().map(|nm| nm.calls()).unwrap_or_default();
                for call in &nm_calls[printed_nm..] {
                    writeln!(out, "call nm {call}")?;
                }
                printed_nm = nm_calls.len();
                out.flush()?;
            }
        }
    }
    drop(nm);
    drop(bus); // stops the dbus-daemon
    Ok(())
}
