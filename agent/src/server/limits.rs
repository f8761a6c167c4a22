//! What one client may hold of the server: connection caps (in total and per client address),
//! and the watchdog that closes connections nobody uses.
//!
//! The caps are taken at `accept`, before a byte is read, so a client that opens connections and
//! sends nothing (or the first byte of a request and nothing more) costs the agent one file
//! descriptor per connection only up to its own share. The total stays below the process's
//! descriptor limit so that the agent can always open its store, its disks and its sockets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Timeouts and caps of the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, all clients together.
    pub max_connections: usize,
    /// Connections open at once from one client (an IPv4 address or an IPv6 /64).
    pub max_per_client: usize,
    /// From accept to a finished TLS handshake (or to the first byte of plain HTTP).
    pub handshake_timeout: Duration,
    /// For a request's header to arrive (HTTP/1), once the connection is open or idle.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no byte moved for this long is closed.
    pub idle_timeout: Duration,
    /// A plain-HTTP connection only ever gets a redirect; it lives this long at most.
    pub redirect_lifetime: Duration,
}

/// Descriptors kept for everything that is not a client connection (store, disks, D-Bus, the
/// container engine, files being served: each connection may also hold one open file).
const RESERVED_FDS: u64 = 128;

impl Limits {
    /// Caps sized to the process's descriptor limit: half of what is left after the reserve
    /// (a download holds a file besides its socket), at most 4,096.
    pub fn for_this_process() -> Self {
        let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        Self::for_descriptor_limit(nofile)
    }

    pub fn for_descriptor_limit(nofile: u64) -> Self {
        let max_connections = (nofile.saturating_sub(RESERVED_FDS) / 2).clamp(16, 4096) as usize;
        Limits {
            max_connections,
            // A browser opens 6 HTTP/1.1 connections per origin (one HTTP/2 connection is the
            // usual case); 256 leaves room for tabs, sync clients and scripts of one household
            // member, and at most half the total means one client never takes it all.
            max_per_client: 256.min(max_connections / 2),
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            redirect_lifetime: Duration::from_secs(15),
        }
    }
}

/// The address a client is counted under: IPv4 addresses as they are, IPv6 addresses by their
/// /64 (one host owns a whole /64 with SLAAC privacy addresses), IPv4-mapped IPv6 as IPv4.
pub fn client_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// Counts open connections; hands out a permit per accepted connection or refuses it.
#[derive(Debug)]
pub struct ConnectionCaps {
    limits: Limits,
    total: Arc<Semaphore>,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
}

/// Held for as long as a connection is open.
#[derive(Debug)]
pub struct ConnectionPermit {
    _total: OwnedSemaphorePermit,
    caps: Arc<ConnectionCaps>,
    client: IpAddr,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut map = self
            .caps
            .per_client
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.client);
            }
        }
    }
}

impl ConnectionCaps {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(ConnectionCaps {
            limits,
            total: Arc::new(Semaphore::new(limits.max_connections)),
            per_client: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A permit for a new connection from `peer`, or `None` when the client or everyone
    /// together is at the cap (the caller closes the connection at once).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<ConnectionPermit> {
        let client = client_group(peer);
        let mut map = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        let count = map.entry(client).or_insert(0);
        if *count >= self.limits.max_per_client {
            drop(map);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let Ok(total) = self.total.clone().try_acquire_owned() else {
            if *count == 0 {
                map.remove(&client);
            }
            drop(map);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        *count += 1;
        Some(ConnectionPermit {
            _total: total,
            caps: self.clone(),
            client,
        })
    }

    /// Connections refused at the caps since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.limits.max_connections - self.total.available_permits()
    }
}

/// When a connection last moved a byte, and how many requests it has in flight.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When the connection counts as idle if nothing happens before.
    pub fn idle_deadline(&self, idle: Duration) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }

    pub fn is_idle(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && Instant::now() >= self.idle_deadline(idle)
    }

    /// Marks a request in flight until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }
}

#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// An I/O stream that records when bytes move.
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_group(a), client_group(b));
        assert_ne!(client_group(a), client_group(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(
            client_group(mapped),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn one_client_cannot_take_every_connection() {
        let mut limits = Limits::for_descriptor_limit(1024);
        limits.max_per_client = 3;
        limits.max_connections = 5;
        let caps = ConnectionCaps::new(limits);
        let greedy: IpAddr = "192.0.2.1".parse().expect("ip");
        let held: Vec<_> = (0..10).filter_map(|_| caps.admit(greedy)).collect();
        assert_eq!(held.len(), 3, "the per-client cap holds");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        let mine: Vec<_> = (0..10).filter_map(|_| caps.admit(other)).collect();
        assert_eq!(mine.len(), 2, "the total cap holds");
        drop(held);
        assert!(
            caps.admit(greedy).is_some(),
            "closed connections are given back"
        );
        assert_eq!(caps.refused(), 15);
    }

    #[test]
    fn caps_leave_descriptors_for_the_agent() {
        let l = Limits::for_descriptor_limit(1024);
        assert_eq!(l.max_connections, 448);
        assert_eq!(l.max_per_client, 224);
        assert!(Limits::for_descriptor_limit(65536).max_connections <= 4096);
    }
}
