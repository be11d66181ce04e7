//! tarpc: `#[tarpc::service]` over its bincode serde transport on tokio TCP,
//! served the way its examples do (each request runs as its own task).

use std::net::SocketAddr;

use futures_util::StreamExt;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};
use tarpc::{client, context};
use tokio::net::{TcpListener, TcpStream};

#[tarpc::service]
pub trait Echo {
    /// Returns its argument.
    async fn echo(payload: String) -> String;
}

#[derive(Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: context::Context, payload: String) -> String {
        payload
    }
}

/// Starts the echo server; returns its address.
pub async fn serve() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // tarpc leaves Nagle on; every system here runs with it off.
            let _ = stream.set_nodelay(true);
            let transport = tarpc::serde_transport::new(
                Framed::new(stream, LengthDelimitedCodec::new()),
                Bincode::default(),
            );
            let channel = BaseChannel::with_defaults(transport);
            tokio::spawn(
                channel
                    .execute(EchoServer.serve())
                    .for_each(|call| async move {
                        tokio::spawn(call);
                    }),
            );
        }
    });
    Ok(addr)
}

/// Connects one client (one connection).
pub async fn connect(addr: SocketAddr) -> std::io::Result<EchoClient> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let transport = tarpc::serde_transport::new(
        Framed::new(stream, LengthDelimitedCodec::new()),
        Bincode::default(),
    );
    Ok(EchoClient::new(client::Config::default(), transport).spawn())
}
