//! The program the flush test (`lifecycle_flush.rs`) runs: it pushes `N`
//! times to the address given, then returns from `main` at once, the way a
//! command-line tool does. Usage: `push-client ADDR N close|flushed`.
//!
//! - `close`: awaits `Session::close()` before returning, which flushes.
//! - `flushed`: awaits the last push with `.flushed()`, then drops every
//!   handle and returns without closing (the documented flush rule).

use teleport::{Peer, PeerConfig, Router};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().expect("ADDR");
    let n: u64 = args.next().expect("N").parse().expect("N is a number");
    let mode = args.next().expect("close or flushed");
    let peer = Peer::new(PeerConfig::default(), Router::new());
    let session = peer.dial(addr.as_str()).await.expect("dial");
    for i in 0..n {
        let push = session.push("/count", &i);
        if i + 1 == n && mode == "flushed" {
            push.flushed().await.expect("the last push is written");
        } else {
            push.await.expect("push queued");
        }
    }
    match mode.as_str() {
        "close" => session.close().await,
        "flushed" => {}
        other => panic!("unknown mode {other}"),
    }
}
