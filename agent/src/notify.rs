//! systemd's notification protocol (`sd_notify`): readiness and watchdog pings over the
//! datagram socket named by `$NOTIFY_SOCKET`. A no-op when not started by systemd.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

fn socket_addr() -> Option<SocketAddr> {
    let path = std::env::var_os("NOTIFY_SOCKET")?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(abstract_name).ok()
    } else {
        SocketAddr::from_pathname(std::path::Path::new(&path)).ok()
    }
}

/// Sends `state` (e.g. `READY=1`); false if there is no systemd to tell.
pub fn notify(state: &str) -> bool {
    let Some(addr) = socket_addr() else {
        return false;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return false;
    };
    socket.send_to_addr(state.as_bytes(), &addr).is_ok()
}

/// Half the watchdog interval systemd asked for, if it asked.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        && pid != std::process::id()
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    #[test]
    fn notify_reaches_a_listening_socket() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("notify");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        // SAFETY-free: tests in this module are the only ones touching NOTIFY_SOCKET.
        temp_env(&path, || assert!(super::notify("READY=1")));
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");
    }

    fn temp_env(path: &std::path::Path, f: impl FnOnce()) {
        // Setting the environment is unsafe in edition 2024; the unit-test binary runs this
        // test's body while no other test reads NOTIFY_SOCKET.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("NOTIFY_SOCKET", path);
        }
        f();
        #[allow(unsafe_code)]
        unsafe {
            std::env::remove_var("NOTIFY_SOCKET");
        }
    }
}
