//! URI aliases and case-insensitive routing over real loopback TCP.

use std::time::Duration;

use teleport::plugin::alias::{Alias, CaseInsensitive};
use teleport::{Ctx, Peer, PeerConfig, Router, Session, Status};
use tokio::sync::mpsc;

/// A server whose handlers return the URI they were routed by.
async fn serve(config: PeerConfig) -> (Peer, Session, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut router = Router::new();
    router
        .pull("/home/echo", |ctx: Ctx, (): ()| async move {
            Ok::<_, Status>(ctx.uri().to_string())
        })
        .pull("/Admin/Stats", |ctx: Ctx, (): ()| async move {
            Ok::<_, Status>(ctx.uri().to_string())
        })
        .push("/msg/note", move |ctx: Ctx, _: String| {
            let _ = tx.send(ctx.uri().to_string());
            async {}
        });
    let server = Peer::new(config, router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    (server, session, rx)
}

async fn code_of(session: &Session, uri: &str) -> i32 {
    match session.pull::<_, String>(uri, &()).await {
        Ok(_) => 200,
        Err(e) => e.status().map(Status::code).unwrap_or(0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_routes_to_its_target_and_keeps_the_query() {
    let alias = Alias::new()
        .alias("/echo", "/home/echo")
        .alias("/note", "/msg/note");
    let (_server, session, mut pushes) = serve(PeerConfig::default().plugin(alias)).await;
    let uri: String = session.pull("/echo?x=1", &()).await.unwrap();
    assert_eq!(uri, "/home/echo?x=1");
    let uri: String = session.pull("/home/echo", &()).await.unwrap();
    assert_eq!(uri, "/home/echo");
    session.push("/note", &"hi").await.unwrap();
    let pushed = tokio::time::timeout(Duration::from_secs(5), pushes.recv())
        .await
        .unwrap();
    assert_eq!(pushed.as_deref(), Some("/msg/note"));
    assert_eq!(
        code_of(&session, "/ECHO").await,
        404,
        "aliases match exactly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_insensitive_routing_finds_the_registered_route() {
    let (_server, session, mut pushes) =
        serve(PeerConfig::default().plugin(CaseInsensitive::new())).await;
    let uri: String = session.pull("/HOME/Echo?Q=1", &()).await.unwrap();
    assert_eq!(
        uri, "/home/echo?Q=1",
        "the path is rewritten, the query kept"
    );
    let uri: String = session.pull("/admin/stats", &()).await.unwrap();
    assert_eq!(uri, "/Admin/Stats");
    session.push("/Msg/NOTE", &"hi").await.unwrap();
    let pushed = tokio::time::timeout(Duration::from_secs(5), pushes.recv())
        .await
        .unwrap();
    assert_eq!(pushed.as_deref(), Some("/msg/note"));
    assert_eq!(code_of(&session, "/home/missing").await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_plugin_routing_is_case_sensitive() {
    let (_server, session, _pushes) = serve(PeerConfig::default()).await;
    assert_eq!(code_of(&session, "/HOME/Echo").await, 404);
    assert_eq!(code_of(&session, "/home/echo").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_target_can_be_resolved_case_insensitively() {
    let config = PeerConfig::default()
        .plugin(Alias::new().alias("/stats", "/admin/stats"))
        .plugin(CaseInsensitive::new());
    let (_server, session, _pushes) = serve(config).await;
    let uri: String = session.pull("/stats", &()).await.unwrap();
    assert_eq!(uri, "/Admin/Stats");
}
