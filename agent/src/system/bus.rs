//! One lazily opened D-Bus connection: the system bus, or a given address (tests run a
//! private bus). Shared by the adapters that talk to systemd and NetworkManager, so each opens
//! its connection on first use and reuses it after.
use tokio::sync::OnceCell;

#[derive(Debug)]
pub struct LazyBus {
    /// `None`: the system bus; otherwise a bus address.
    address: Option<String>,
    connection: OnceCell<zbus::Connection>,
}

impl LazyBus {
    pub fn new(address: Option<String>) -> Self {
        Self {
            address,
            connection: OnceCell::new(),
        }
    }

    /// The connection, opened on the first call. A failed attempt is not cached: the next
    /// call tries again (the bus may come up after the agent).
    pub async fn get(&self) -> zbus::Result<&zbus::Connection> {
        self.connection
            .get_or_try_init(|| async {
                match &self.address {
                    Some(address) => {
                        zbus::connection::Builder::address(address.as_str())?
                            .build()
                            .await
                    }
                    None => zbus::Connection::system().await,
                }
            })
            .await
    }
}
