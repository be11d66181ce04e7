//! A service without methods, and a service named like the server's type
//! parameter, compile without a warning.
#![deny(warnings)]

#[teleport::service]
trait Nothing {}

#[teleport::service]
trait S {
    async fn ping(&self) -> u8;
}

struct Empty;
impl Nothing for Empty {}

struct Pinger;
impl S for Pinger {
    async fn ping(&self) -> u8 {
        1
    }
}

fn main() {
    let mut router = teleport::Router::new();
    NothingServer::new(Empty).register(&mut router);
    SServer::new(Pinger).register(&mut router);
    assert_eq!(router.pull_paths(), ["/s/ping"]);
}
