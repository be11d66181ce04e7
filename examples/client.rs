//! A teleport client that checks a server speaking the `server` example's
//! routes, Go Teleport v2.0 servers included.
//!
//! It pulls with the JSON body codec and the protobuf header codec, then
//! with gzip level 5 and with the string codec, checks that an unknown URI
//! gets 404, and pushes a note expecting the server to push back. It prints
//! one PASS/FAIL line per check and exits non-zero if any check fails.
//!
//! Run with: `cargo run --example client -- --addr 127.0.0.1:9090`
//! (after `cargo run --example server -- --addr 127.0.0.1:9090`)

use std::process::ExitCode;
use std::time::Duration;

use teleport::{CodecId, Ctx, HeaderCodec, Peer, PeerConfig, Router, Session};
use tokio::sync::mpsc;

fn addr_arg() -> String {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--addr" {
            if let Some(v) = args.next() {
                return v;
            }
        } else if let Some(v) = a.strip_prefix("--addr=") {
            return v.to_owned();
        }
    }
    "127.0.0.1:9090".to_owned()
}

struct Report {
    failed: usize,
}

impl Report {
    fn check(&mut self, name: &str, outcome: Result<String, String>) {
        match outcome {
            Ok(detail) => println!("PASS {name}: {detail}"),
            Err(why) => {
                self.failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
}

fn expect<T: PartialEq + std::fmt::Debug>(
    got: Result<T, teleport::Error>,
    want: T,
) -> Result<String, String> {
    match got {
        Ok(v) if v == want => Ok(format!("{v:?}")),
        Ok(v) => Err(format!("got {v:?}, want {want:?}")),
        Err(e) => Err(e.to_string()),
    }
}

async fn run(session: &Session, back_rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> usize {
    let mut r = Report { failed: 0 };
    let json = |s: &Session| {
        s.config().body_codec == CodecId::JSON && s.config().header_codec == HeaderCodec::Protobuf
    };
    r.check(
        "codecs",
        if json(session) {
            Ok("json body, protobuf header".into())
        } else {
            Err("unexpected defaults".into())
        },
    );

    let echo = session
        .pull::<_, String>("/home/echo", &"hello teleport")
        .await;
    r.check(
        "pull /home/echo (json)",
        expect(echo, "hello teleport".to_owned()),
    );

    let add = session.pull::<_, i64>("/home/add?x=1", &[40i64, 2]).await;
    r.check("pull /home/add (json)", expect(add, 42));

    let text = "gzip me gzip me gzip me gzip me".to_owned();
    let gz = session.pull::<_, String>("/home/echo", &text).gzip(5).await;
    r.check("pull /home/echo (json, gzip 5)", expect(gz, text));

    let plain = session
        .pull::<_, String>("/home/echo", &"plain string")
        .codec(CodecId::STRING)
        .await;
    r.check(
        "pull /home/echo (string)",
        expect(plain, "plain string".to_owned()),
    );

    let missing = session.pull::<_, String>("/nowhere/at/all", &"x").await;
    r.check(
        "pull /nowhere/at/all is 404",
        match missing {
            Err(e) if e.status().is_some_and(|s| s.code() == 404) => Ok(e.to_string()),
            other => Err(format!("want a 404 status, got {other:?}")),
        },
    );

    let pushed = session.push("/msg/note", &"ping").await;
    let back = match pushed {
        Err(e) => Err(e.to_string()),
        Ok(()) => match tokio::time::timeout(Duration::from_secs(5), back_rx.recv()).await {
            Ok(Some((from, text))) if from == "server" && text == "echo:ping" => {
                Ok(format!("pushed back {text:?} from={from}"))
            }
            Ok(Some(other)) => Err(format!("unexpected push back {other:?}")),
            Ok(None) | Err(_) => Err("no push back within 5 s".into()),
        },
    };
    r.check("push /msg/note gets /msg/back", back);
    r.failed
}

#[tokio::main]
async fn main() -> ExitCode {
    let addr = addr_arg();
    let (back_tx, mut back_rx) = mpsc::unbounded_channel();
    let mut router = Router::new();
    router.push("/msg/back", move |ctx: Ctx, text: String| {
        let back_tx = back_tx.clone();
        async move {
            let _ = back_tx.send((ctx.query("from").unwrap_or_default(), text));
        }
    });
    let config = PeerConfig::default()
        .body_codec(CodecId::JSON)
        .header_codec(HeaderCodec::Protobuf)
        .pull_timeout(Some(Duration::from_secs(5)));
    let peer = Peer::new(config, router);
    let session = match peer.dial(&addr).await {
        Ok(s) => s,
        Err(e) => {
            println!("FAIL dial {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let failed = run(&session, &mut back_rx).await;
    session.close().await;
    if failed == 0 {
        println!("all checks passed");
        ExitCode::SUCCESS
    } else {
        println!("{failed} check(s) failed");
        ExitCode::FAILURE
    }
}
