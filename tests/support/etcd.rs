//! The etcd the etcd tests use: the one `.ci/run` starts, named by
//! `TELEPORT_ETCD_ENDPOINTS`.

use teleport::discovery::EtcdClient;
use teleport::discovery::etcd::ENDPOINTS_ENV;

/// The etcd to test against. Without one: in CI (`CI` set) the test fails,
/// since `.ci/run` must have started etcd; on a developer machine it says
/// plainly that it did not run, and why.
pub(crate) fn etcd_or_skip(test: &str) -> Option<EtcdClient> {
    if let Some(client) = EtcdClient::from_env() {
        return Some(client);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: {ENDPOINTS_ENV} is not set but CI is: .ci/run must start etcd and export its endpoint (README, \"etcd tests\")"
        );
    }
    eprintln!(
        "NOT RUN {test}: {ENDPOINTS_ENV} is not set, so there is no etcd to test against. Start etcd and set it to run this test (README, \"etcd tests\")."
    );
    None
}

/// A key prefix no other test or run uses.
pub(crate) fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("/teleport-test/{test}/{}-{nanos}/", std::process::id())
}
