//! User names that generated code might collide with: types named like the
//! server's type parameter, `Arc`, `Result`, `Option`; methods named like
//! the server's own; arguments named like generated locals.

#![deny(warnings)]

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct S(u8);

#[derive(Serialize, Deserialize)]
struct Arc;

#[derive(Serialize, Deserialize)]
struct Option;

type Result<T> = std::result::Result<T, teleport::Status>;

#[teleport::service]
trait Home {
    async fn register(&self, service: S, arg: Arc, ctx: Option) -> Result<u8>;
    async fn service(&self, group: u8, arg0: u8) -> u8;
    async fn r#match(&self, r#type: u8) -> u8;
    fn in_place(&self, service: S, arg: u8, ctx: Option) -> Result<u8>;
}

struct Impl;

impl Home for Impl {
    async fn register(&self, service: S, _arg: Arc, _ctx: Option) -> Result<u8> {
        Ok(service.0)
    }
    async fn service(&self, group: u8, arg0: u8) -> u8 {
        group + arg0
    }
    async fn r#match(&self, r#type: u8) -> u8 {
        r#type
    }
    fn in_place(&self, service: S, arg: u8, _ctx: Option) -> Result<u8> {
        Ok(service.0 + arg)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut router = teleport::Router::new();
    HomeServer::new(Impl).register(&mut router);
    assert_eq!(
        router.pull_paths(),
        [
            "/home/in_place",
            "/home/match",
            "/home/register",
            "/home/service"
        ]
    );
    let server = teleport::Peer::new(teleport::PeerConfig::default(), router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let peer = teleport::Peer::new(teleport::PeerConfig::default(), teleport::Router::new());
    let client = HomeClient::new(peer.dial(addr).await.unwrap());
    assert_eq!(client.register(S(4), Arc, Option).await.unwrap(), 4);
    assert_eq!(client.service(1, 2).await.unwrap(), 3);
    assert_eq!(client.r#match(9).await.unwrap(), 9);
    assert_eq!(client.in_place(S(4), 3, Option).await.unwrap(), 7);
}
