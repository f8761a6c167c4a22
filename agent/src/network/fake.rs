//! An in-memory [`NetworkControl`] for tests: connectivity is a value the test sets; the
//! interface, Wi-Fi and hotspot verbs answer `Unavailable` (as the real adapter does without
//! NetworkManager). The health gate's tests and the in-process harness (`Adapters::fakes`)
//! use it.

use super::{
    Connectivity, HotspotHandle, Interface, IpChange, NetworkControl, NetworkError, WifiList,
};
use futures_util::future::{BoxFuture, FutureExt};
use std::sync::Mutex;

/// A network whose connectivity is set by the test (`None`: NetworkManager is not available).
#[derive(Debug)]
pub struct FakeNetwork(Mutex<Option<Connectivity>>);

impl FakeNetwork {
    /// A wired network, connected (`local`) or not.
    pub fn new(local: bool) -> Self {
        FakeNetwork(Mutex::new(Some(Connectivity {
            has_wifi: false,
            online: local,
            local,
        })))
    }

    /// NetworkManager is not there: every call fails as `Unavailable`.
    pub fn unavailable() -> Self {
        FakeNetwork(Mutex::new(None))
    }

    pub fn set_connectivity(&self, connectivity: Option<Connectivity>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = connectivity;
    }
}

fn no_network<T: Send + 'static>() -> BoxFuture<'static, Result<T, NetworkError>> {
    async { Err(NetworkError::Unavailable("not part of this fake".into())) }.boxed()
}

impl NetworkControl for FakeNetwork {
    fn interfaces(&self) -> BoxFuture<'_, Result<Vec<Interface>, NetworkError>> {
        no_network()
    }

    fn apply_ip<'a>(
        &'a self,
        _name: &'a str,
        _change: &'a IpChange,
        _rollback_secs: u32,
    ) -> BoxFuture<'a, Result<String, NetworkError>> {
        no_network()
    }

    fn confirm<'a>(&'a self, _checkpoint: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        no_network()
    }

    fn rollback<'a>(&'a self, _checkpoint: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        no_network()
    }

    fn wifi(&self) -> BoxFuture<'_, Result<WifiList, NetworkError>> {
        no_network()
    }

    fn scan(&self) -> BoxFuture<'_, Result<(), NetworkError>> {
        no_network()
    }

    fn connect<'a>(
        &'a self,
        _ssid: &'a str,
        _password: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Interface, NetworkError>> {
        no_network()
    }

    fn forget<'a>(&'a self, _ssid: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        no_network()
    }

    fn connectivity(&self) -> BoxFuture<'_, Result<Connectivity, NetworkError>> {
        let c = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        async move { c.ok_or_else(|| NetworkError::Unavailable("fake network down".into())) }
            .boxed()
    }

    fn start_hotspot<'a>(
        &'a self,
        _ssid: &'a str,
        _password: &'a str,
    ) -> BoxFuture<'a, Result<HotspotHandle, NetworkError>> {
        no_network()
    }

    fn stop_hotspot<'a>(
        &'a self,
        _handle: &'a HotspotHandle,
    ) -> BoxFuture<'a, Result<(), NetworkError>> {
        no_network()
    }
}
