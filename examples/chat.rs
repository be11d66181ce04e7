//! A chat room with services on both ends of each connection.
//!
//! The server serves the `Chat` service (`join`, `say`); every client
//! serves the `Inbox` service (`message`, a push). When a client says
//! something, the server pushes it to every member's inbox through an
//! `InboxClient` over that member's session: the listening peer calls a
//! service its dialing peers implement, on the connections they opened.
//! When a member's connection ends, the others are told it left.
//!
//! Three members join, talk, and one leaves; each prints what its inbox
//! received. Everything runs in this one process and exits by itself.
//!
//! Run with: `cargo run --example chat`

// An example talks to its user on stdout; the library never does.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use teleport::{Ctx, Peer, PeerConfig, Router, Session, Status};
use tokio::sync::mpsc;

/// The room, served by the server.
#[teleport::service]
trait Chat {
    /// Joins the room under `name`; replies who was already there.
    async fn join(&self, ctx: Ctx, name: String) -> Result<Vec<String>, Status>;

    /// Says `text` to everyone in the room (the speaker included); replies
    /// how many inboxes it was pushed to.
    async fn say(&self, ctx: Ctx, text: String) -> Result<usize, Status>;
}

/// A member's inbox, served by each client.
#[teleport::service]
trait Inbox {
    /// Something was said in the room (`from` is `*` for the room itself).
    #[push]
    async fn message(&self, from: String, text: String);
}

/// The members, by session id, shared by every session of the server.
#[derive(Default)]
struct Room {
    members: Arc<Mutex<BTreeMap<u64, (String, Session)>>>,
}

impl Room {
    /// Pushes a message to every member's inbox, returns how many it reached.
    async fn broadcast(
        members: &Mutex<BTreeMap<u64, (String, Session)>>,
        from: &str,
        text: &str,
    ) -> usize {
        let sessions: Vec<Session> = members
            .lock()
            .unwrap()
            .values()
            .map(|(_, s)| s.clone())
            .collect();
        let mut reached = 0;
        for session in sessions {
            let inbox = InboxClient::new(session);
            match inbox.message(from.to_string(), text.to_string()).await {
                Ok(()) => reached += 1,
                Err(e) => tracing::warn!(error = %e, "a member could not be reached"),
            }
        }
        reached
    }
}

impl Chat for Room {
    async fn join(&self, ctx: Ctx, name: String) -> Result<Vec<String>, Status> {
        let session = ctx.session().clone();
        let already: Vec<String> = {
            let mut members = self.members.lock().unwrap();
            if members.values().any(|(n, _)| *n == name) {
                return Err(Status::new(409, format!("the name {name:?} is taken")));
            }
            let already = members.values().map(|(n, _)| n.clone()).collect();
            members.insert(session.id(), (name.clone(), session.clone()));
            already
        };
        // When the member's connection ends, it leaves the room.
        let members = Arc::clone(&self.members);
        tokio::spawn(async move {
            session.closed().await;
            members.lock().unwrap().remove(&session.id());
            Room::broadcast(&members, "*", &format!("{name} left")).await;
        });
        Ok(already)
    }

    async fn say(&self, ctx: Ctx, text: String) -> Result<usize, Status> {
        let from = self
            .members
            .lock()
            .unwrap()
            .get(&ctx.session().id())
            .map(|(name, _)| name.clone())
            .ok_or_else(|| Status::new(403, "join the room first"))?;
        Ok(Room::broadcast(&self.members, &from, &text).await)
    }
}

/// A client's inbox: forwards each message to the client's task.
struct Mailbox(mpsc::UnboundedSender<String>);

impl Inbox for Mailbox {
    async fn message(&self, from: String, text: String) {
        let _ = self.0.send(format!("{from}: {text}"));
    }
}

/// A member: its peer (serving its inbox), its chat client, and what its inbox received.
struct Member {
    name: &'static str,
    peer: Peer,
    chat: ChatClient,
    inbox: mpsc::UnboundedReceiver<String>,
}

async fn connect(
    name: &'static str,
    addr: std::net::SocketAddr,
) -> Result<Member, Box<dyn std::error::Error>> {
    let (tx, inbox) = mpsc::unbounded_channel();
    let mut router = Router::new();
    InboxServer::new(Mailbox(tx)).register(&mut router);
    let peer = Peer::new(PeerConfig::default(), router);
    let chat = ChatClient::new(peer.dial(addr).await?);
    let already = chat.join(name.to_string()).await?;
    println!("{name} joined; already there: {already:?}");
    Ok(Member {
        name,
        peer,
        chat,
        inbox,
    })
}

/// Waits for the next `n` messages of a member's inbox.
async fn receive(member: &mut Member, n: usize) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut got = Vec::new();
    for _ in 0..n {
        let message = tokio::time::timeout(Duration::from_secs(5), member.inbox.recv())
            .await
            .map_err(|_| format!("{} waited 5 s for a message", member.name))?
            .ok_or("the inbox closed")?;
        got.push(message);
    }
    Ok(got)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    let mut router = Router::new();
    ChatServer::new(Room::default()).register(&mut router);
    let server = Peer::new(PeerConfig::default(), router);
    let addr = server.listen("127.0.0.1:0").await?;

    let mut members = Vec::new();
    for name in ["alice", "bob", "carol"] {
        members.push(connect(name, addr).await?);
    }
    let taken = members[0].chat.session().peer().dial(addr).await?;
    if let Err(e) = ChatClient::new(taken).join("bob".into()).await {
        println!("a second bob cannot join: {e}");
    }

    // Each member speaks in turn and waits until every inbox has the line,
    // so all of them print the conversation in the same order.
    for i in 0..members.len() {
        let text = format!("hello from {}", members[i].name);
        let reached = members[i].chat.say(text).await?;
        println!("{} spoke to {reached} inboxes", members[i].name);
        for member in &mut members {
            for line in receive(member, 1).await? {
                println!("  {} got {line}", member.name);
            }
        }
    }

    // carol leaves; the others are told.
    let carol = members.pop().expect("three members");
    carol.peer.close(Duration::from_secs(1)).await;
    for member in &mut members {
        for line in receive(member, 1).await? {
            println!("  {} got {line}", member.name);
        }
    }

    for member in members {
        member.peer.close(Duration::from_secs(1)).await;
    }
    server.close(Duration::from_secs(1)).await;
    println!("the room is closed");
    Ok(())
}
