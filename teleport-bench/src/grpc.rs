//! tonic unary gRPC with prost messages, without protoc: the message is a
//! prost derive and the service is written out the way tonic's codegen
//! would write it (a `tower::Service` that hands the request to
//! `tonic::server::Grpc::unary` with tonic-prost's codec).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use tonic::codegen::{BoxFuture, Service, http};
use tonic::transport::{Channel, Endpoint, Server};
use tonic_prost::ProstCodec;

/// The one message, both ways.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoMsg {
    #[prost(string, tag = "1")]
    pub payload: String,
}

const PATH: &str = "/bench.Echo/Echo";

#[derive(Clone)]
struct EchoService;

impl tonic::server::NamedService for EchoService {
    const NAME: &'static str = "bench.Echo";
}

struct EchoUnary;

impl tonic::server::UnaryService<EchoMsg> for EchoUnary {
    type Response = EchoMsg;
    type Future = std::future::Ready<Result<tonic::Response<EchoMsg>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<EchoMsg>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(request.into_inner())))
    }
}

impl Service<http::Request<tonic::body::Body>> for EchoService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        if req.uri().path() == PATH {
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::<EchoMsg, EchoMsg>::default());
                Ok(grpc.unary(EchoUnary, req).await)
            })
        } else {
            Box::pin(async move { Ok(tonic::Status::unimplemented("no such method").into_http()) })
        }
    }
}

/// Starts the gRPC server; returns its address.
pub async fn serve() -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(
        Server::builder()
            .add_service(EchoService)
            .serve_with_incoming(incoming),
    );
    Ok(addr)
}

/// A client over one HTTP/2 connection.
#[derive(Clone)]
pub struct Client {
    grpc: tonic::client::Grpc<Channel>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Result<Client, String> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Client {
            grpc: tonic::client::Grpc::new(channel),
        })
    }

    pub async fn call(&mut self, payload: String) -> Result<String, String> {
        self.grpc.ready().await.map_err(|e| e.to_string())?;
        let reply = self
            .grpc
            .unary(
                tonic::Request::new(EchoMsg { payload }),
                http::uri::PathAndQuery::from_static(PATH),
                ProstCodec::<EchoMsg, EchoMsg>::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(reply.into_inner().payload)
    }
}
