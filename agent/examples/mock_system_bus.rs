//! A private `dbus-daemon` with the mock systemd1, login1, hostname1 and timedate1 services the
//! Rust tests use, for the dashboard's browser tests (a `--dev` agent has no system bus).
//!
//! Prints the bus address as the first line of stdout, then one `call <what>` line for each
//! recorded call (a reboot, a restart), and runs until SIGTERM or SIGINT.

#[path = "../tests/common/dbus_mock.rs"]
mod dbus_mock;

use std::io::Write;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bus = dbus_mock::private_bus().await;
    let mut out = std::io::stdout();
    writeln!(out, "{}", bus.address)?;
    out.flush()?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut printed = 0;
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
                out.flush()?;
                printed = calls.len();
            }
        }
    }
    drop(bus); // stops the dbus-daemon
    Ok(())
}
