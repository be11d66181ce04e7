//! The service the fleet tests and `bin/fleet_server.rs` share.
#![allow(dead_code)] // The tests use the client, the server binary the rest.

use std::sync::{Arc, OnceLock};

/// Which server answered, and a counter that is not safe to repeat.
#[teleport::service]
pub(crate) trait Fleet {
    /// The listening address and process id of the server that answered.
    #[idempotent]
    async fn whoami(&self) -> (String, u32);
    /// Counts one call on the server; returns its address. Running it
    /// twice counts twice: never resent after it may have been sent.
    async fn bump(&self) -> String;
}

/// The server side: answers after a short pause so calls overlap and a
/// server that dies takes some with it.
pub(crate) struct FleetImpl {
    /// The address clients dial (kept across a restart), set once listening.
    pub(crate) addr: Arc<OnceLock<String>>,
}

impl FleetImpl {
    fn addr(&self) -> String {
        self.addr.get().cloned().unwrap_or_default()
    }
}

impl Fleet for FleetImpl {
    async fn whoami(&self) -> (String, u32) {
        // A millisecond of simulated work in the server process, so calls
        // overlap and the balancer sees load (not a wait for state).
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        (self.addr(), std::process::id())
    }

    async fn bump(&self) -> String {
        // A millisecond of simulated work in the server process, so calls
        // overlap and the balancer sees load (not a wait for state).
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        self.addr()
    }
}
