//! End to end: the built `tp` binary against peers started in the test,
//! over real loopback sockets. Each test runs `tp` as a child process and
//! checks what a user sees: stdout, stderr and the exit code.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use teleport::plugin::PluginFuture;
use teleport::plugin::auth::AuthServer;
use teleport::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use teleport::tls::rustls::{self, ServerConfig};
use teleport::{Ctx, HeaderCodec, Peer, PeerConfig, Plugin, RawReply, Router, Session, Status};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A bound on every child process and wait, so a broken build fails
/// instead of hanging CI. Not a timing assertion.
const BOUND: Duration = Duration::from_secs(60);

fn tp() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tp"));
    cmd.env_remove("RUST_LOG")
        .env_remove("TP_TOKEN")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `tp args...` to the end.
async fn run(args: &[&str]) -> Output {
    run_cmd(tp().args(args)).await
}

async fn run_cmd(cmd: &mut Command) -> Output {
    tokio::time::timeout(BOUND, cmd.output())
        .await
        .expect("tp did not finish")
        .expect("tp could not be started")
}

/// Runs `tp args...` with `input` on stdin.
async fn run_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = tp()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    tokio::time::timeout(BOUND, child.wait_with_output())
        .await
        .expect("tp did not finish")
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status; stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// The routes the tests call.
fn router() -> Router {
    let mut router = Router::new();
    router
        .pull("/home/add", |_: Ctx, [a, b]: [i64; 2]| async move {
            Ok::<_, Status>(a + b)
        })
        .pull("/home/div", |_: Ctx, [a, b]: [i64; 2]| async move {
            a.checked_div(b)
                .ok_or_else(|| Status::new(599, "division by zero"))
        })
        .pull("/home/echo", |_: Ctx, v: Value| async move {
            Ok::<_, Status>(v)
        })
        .pull("/home/text", |ctx: Ctx, s: String| async move {
            // Replies compressed at the level the pull came with (the default).
            Ok::<_, Status>(format!(
                "{s}|gzip={}|header={:?}",
                ctx.header().gzip,
                ctx.header_codec()
            ))
        })
        .pull("/home/never", |_: Ctx, (): ()| async move {
            std::future::pending::<Result<(), Status>>().await
        })
        .pull_raw("/raw/echo", |ctx: Ctx, body: Bytes| async move {
            RawReply {
                status: Status::ok(),
                gzip: ctx.header().gzip,
                body,
            }
        });
    router
}

async fn server() -> (Peer, SocketAddr) {
    server_with(PeerConfig::default(), router()).await
}

async fn server_with(config: PeerConfig, router: Router) -> (Peer, SocketAddr) {
    let peer = Peer::new(config, router);
    let addr = peer.listen("127.0.0.1:0").await.unwrap();
    (peer, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_prints_the_reply_as_pretty_json_and_the_status_on_stderr() {
    let (_server, addr) = server().await;
    let out = run(&["pull", &addr.to_string(), "/home/add", "[40, 2]"]).await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "42\n");
    assert_eq!(stderr(&out).trim(), "200 OK");

    let out = run(&["pull", &addr.to_string(), "/home/echo", r#"{"a":[1,"x"]}"#]).await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "{\n  \"a\": [\n    1,\n    \"x\"\n  ]\n}\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_other_than_200_exits_1_with_its_code_and_text() {
    let (_server, addr) = server().await;
    let out = run(&["pull", &addr.to_string(), "/home/div", "[1, 0]"]).await;
    assert_exit(&out, 1);
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("/home/div: the remote side replied 599 division by zero"),
        "{}",
        stderr(&out)
    );

    let out = run(&["pull", &addr.to_string(), "/no/such"]).await;
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("404 Not Found"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_come_from_stdin_or_a_file() {
    let (_server, addr) = server().await;
    let out = run_with_stdin(
        &["pull", &addr.to_string(), "/home/add", "-"],
        b"[1,\n 2]\n",
    )
    .await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "3\n");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body.json");
    std::fs::write(&path, br#"{"from": "file"}"#).unwrap();
    let arg = format!("@{}", path.display());
    let out = run(&["pull", &addr.to_string(), "/home/echo", &arg]).await;
    assert_exit(&out, 0);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!({"from": "file"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_and_names_the_problem() {
    let (_server, addr) = server().await;
    let out = run(&["pull", &addr.to_string(), "/home/echo", "{not json"]).await;
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));

    let out = run(&[
        "pull",
        &addr.to_string(),
        "/home/echo",
        "@/no/such/file.json",
    ])
    .await;
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("cannot read the body file /no/such/file.json"),
        "{}",
        stderr(&out)
    );

    let out = run(&[
        "pull",
        &addr.to_string(),
        "/home/echo",
        "1",
        "--codec",
        "yaml",
    ])
    .await;
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("unknown codec `yaml`"),
        "{}",
        stderr(&out)
    );

    let out = run(&["pull", &addr.to_string(), "/home/echo", "1", "--gzip", "10"]).await;
    assert_exit(&out, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_peer_exits_3_and_a_silent_one_exits_4() {
    // A port that was just free: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = free.local_addr().unwrap();
    drop(free);
    let out = run(&["pull", &closed.to_string(), "/home/add", "[1,2]"]).await;
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains(&format!("cannot dial {closed}")),
        "{}",
        stderr(&out)
    );
    // The operating system's reason is shown too, once.
    assert_eq!(
        stderr(&out).matches("refused").count(),
        1,
        "{}",
        stderr(&out)
    );

    let (_server, addr) = server().await;
    let out = run(&[
        "pull",
        &addr.to_string(),
        "/home/never",
        "--timeout",
        "300ms",
    ])
    .await;
    assert_exit(&out, 4);
    assert!(
        stderr(&out).contains("pull /home/never timed out after 300ms"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_the_string_codec_travel_both_ways() {
    let (_server, addr) = server().await;
    let text = "compress me ".repeat(50);
    let out = run(&[
        "pull",
        &addr.to_string(),
        "/home/text",
        &text,
        "--codec",
        "string",
        "--gzip",
        "6",
    ])
    .await;
    assert_exit(&out, 0);
    // The string codec's reply is printed as it is, decompressed.
    assert_eq!(stdout(&out), format!("{text}|gzip=6|header=Protobuf"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_headers_are_sent_when_asked_for() {
    let (_server, addr) = server().await;
    let out = run(&[
        "pull",
        &addr.to_string(),
        "/home/text",
        "\"hi\"",
        "--header-codec",
        "json",
    ])
    .await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "\"hi|gzip=0|header=Json\"\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_codecs_take_and_give_the_bytes_as_they_are() {
    let (_server, addr) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msg.bin");
    // A protobuf message (field 1 = 150) and a byte that is not UTF-8.
    let bytes = [0x08, 0x96, 0x01, 0xff];
    std::fs::write(&path, bytes).unwrap();
    let arg = format!("@{}", path.display());
    let out = run(&[
        "pull",
        &addr.to_string(),
        "/raw/echo",
        &arg,
        "--codec",
        "protobuf",
    ])
    .await;
    assert_exit(&out, 0);
    assert_eq!(out.stdout, bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_prints_each_frame_with_its_header_and_sizes() {
    let (_server, addr) = server().await;
    let out = run(&["pull", "-v", &addr.to_string(), "/home/add", "[40,2]"]).await;
    assert_exit(&out, 0);
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("> PULL "))
        .unwrap_or_else(|| panic!("no frame line for the pull:\n{err}"));
    assert!(
        line.starts_with(r#"> PULL seq=0 uri="/home/add" gzip=0 header=protobuf:"#),
        "{line}"
    );
    // The frame is both length prefixes, the header section (codec byte
    // and header) and the body section (codec byte and `[40,2]`).
    let size = |key: &str| -> usize {
        let rest = line.split(key).nth(1).unwrap();
        rest[..rest.find('B').unwrap()].parse().unwrap()
    };
    assert!(line.contains(" body=json:7B "), "{line}");
    assert_eq!(
        size("frame="),
        4 + size("header=protobuf:") + 4 + 7,
        "{line}"
    );
    assert!(
        err.contains(r#"< REPLY seq=0 uri="/home/add" status=200 "OK" gzip=0"#),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_returns_once_the_push_is_on_the_wire() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut router = Router::new();
    router.push("/msg/note", move |_: Ctx, v: Value| {
        let _ = tx.send(v);
        async {}
    });
    let (_server, addr) = server_with(PeerConfig::default(), router).await;
    let out = run(&["push", &addr.to_string(), "/msg/note", r#"{"n": 1}"#]).await;
    assert_exit(&out, 0);
    let got = tokio::time::timeout(BOUND, rx.recv()).await.unwrap();
    assert_eq!(got, Some(json!({"n": 1})));

    // Gzip and stdin too; the process has exited before the server reads.
    let out = run_with_stdin(
        &["push", &addr.to_string(), "/msg/note", "-", "--gzip", "9"],
        b"[\"z\"]",
    )
    .await;
    assert_exit(&out, 0);
    let got = tokio::time::timeout(BOUND, rx.recv()).await.unwrap();
    assert_eq!(got, Some(json!(["z"])));
}

/// Hands every accepted session to the test.
struct OnAccept(mpsc::UnboundedSender<Session>);

impl Plugin for OnAccept {
    fn after_accept<'a>(&'a self, session: &'a Session) -> PluginFuture<'a> {
        let _ = self.0.send(session.clone());
        Box::pin(async { Ok(()) })
    }
}

async fn accepting_server() -> (Peer, SocketAddr, mpsc::UnboundedReceiver<Session>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (peer, addr) = server_with(PeerConfig::default().plugin(OnAccept(tx)), Router::new()).await;
    (peer, addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_prints_each_push_as_a_json_line_and_answers_pulls() {
    let (_server, addr, mut accepted) = accepting_server().await;
    let child = tp()
        .args([
            "listen",
            &addr.to_string(),
            "/msg",
            "--pull-reply",
            r#"{"ok": true}"#,
            "--count",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let session = tokio::time::timeout(BOUND, accepted.recv())
        .await
        .unwrap()
        .unwrap();

    let answer: Value = session.pull("/ask/ready", &"?").await.unwrap();
    assert_eq!(answer, json!({"ok": true}));
    session.push("/msg/back", &json!({"n": 1})).await.unwrap();
    session.push("/other/skip", &json!({"n": 2})).await.unwrap();
    session
        .push("/msg/back?from=server", &"two")
        .gzip(teleport::GzipLevel::L5)
        .await
        .unwrap();

    let out = tokio::time::timeout(BOUND, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_exit(&out, 0);
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}", stdout(&out));
    assert_eq!(lines[0]["kind"], "pull");
    assert_eq!(lines[0]["uri"], "/ask/ready");
    assert_eq!(lines[0]["body"], "?");
    assert_eq!(lines[1]["kind"], "push");
    assert_eq!(lines[1]["uri"], "/msg/back");
    assert_eq!(lines[1]["body"], json!({"n": 1}));
    assert_eq!(lines[2]["uri"], "/msg/back?from=server");
    assert_eq!(lines[2]["gzip"], 5);
    assert_eq!(lines[2]["body"], "two");
    for line in &lines {
        let time = line["time"].as_str().unwrap();
        humantime::parse_rfc3339(time).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_without_pull_reply_answers_404_and_exits_4_when_the_server_leaves() {
    let (_server, addr, mut accepted) = accepting_server().await;
    let child = tp()
        .args(["listen", &addr.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let session = tokio::time::timeout(BOUND, accepted.recv())
        .await
        .unwrap()
        .unwrap();
    let err = session.pull::<_, Value>("/ask", &1).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.code()), Some(404));
    session.push("/msg/last", &"bye").await.unwrap();
    session.close().await;

    let out = tokio::time::timeout(BOUND, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_exit(&out, 4);
    assert!(
        stderr(&out).contains("the connection ended"),
        "{}",
        stderr(&out)
    );
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", stdout(&out));
    assert_eq!(lines[1]["body"], "bye");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_can_push_first_to_subscribe() {
    let mut router = Router::new();
    router.push("/msg/note", |ctx: Ctx, text: String| async move {
        let _ = ctx
            .session()
            .push("/msg/back?from=server", &format!("echo:{text}"))
            .await;
    });
    let (_server, addr) = server_with(PeerConfig::default(), router).await;
    let out = run(&[
        "listen",
        &addr.to_string(),
        "/msg/back",
        "--push",
        "/msg/note",
        "\"hi\"",
        "--count",
        "1",
    ])
    .await;
    assert_exit(&out, 0);
    let line: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["uri"], "/msg/back?from=server");
    assert_eq!(line["body"], "echo:hi");
}

#[cfg(unix)]
fn interrupt(child: &Child, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_stops_cleanly_on_ctrl_c() {
    let (_server, addr, mut accepted) = accepting_server().await;
    let mut child = tp()
        .args(["listen", &addr.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let session = tokio::time::timeout(BOUND, accepted.recv())
        .await
        .unwrap()
        .unwrap();
    session.push("/msg/one", &1).await.unwrap();
    // Once the line is out, the signal handler is installed too.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(BOUND, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&first).unwrap()["uri"],
        "/msg/one"
    );
    interrupt(&child, nix::sys::signal::Signal::SIGINT);
    let status = tokio::time::timeout(BOUND, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    session.closed().await;
}

/// Starts `tp serve` and returns it with the address it printed.
async fn spawn_serve(extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = tp()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(BOUND, stderr.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("tp serve printed its address");
    let addr = line
        .strip_prefix("tp serve: listening on ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .parse()
        .unwrap();
    // Keep draining stderr so the child never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    (child, addr)
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_echoes_every_pull_and_logs_every_call() {
    let (mut child, addr) = spawn_serve(&[]).await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let got: Value = session
        .pull("/any/thing?x=1", &json!({"k": [1, 2]}))
        .await
        .unwrap();
    assert_eq!(got, json!({"k": [1, 2]}));
    let got: String = session
        .pull("/other", &"zipped")
        .codec(teleport::CodecId::STRING)
        .gzip(teleport::GzipLevel::L4)
        .await
        .unwrap();
    assert_eq!(got, "zipped");
    session.push("/note", &"pushed").await.unwrap();
    // A pull after the push on the same connection: once it is answered,
    // the push has been logged too.
    let _: Value = session.pull("/sync", &0).await.unwrap();

    // The tp binary is a client too: pull from tp serve with tp pull.
    let out = run(&["pull", &addr.to_string(), "/via/tp", "[true]"]).await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "[\n  true\n]\n");

    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let line = tokio::time::timeout(BOUND, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    assert_eq!(seen[0]["kind"], "pull");
    assert_eq!(seen[0]["uri"], "/any/thing?x=1");
    assert_eq!(seen[0]["body"], json!({"k": [1, 2]}));
    assert_eq!(seen[0]["remote"], session.local_addr().to_string());
    assert_eq!(seen[1]["codec"], "string");
    assert_eq!(seen[1]["gzip"], 4);
    assert_eq!(seen[1]["body"], "zipped");
    assert_eq!(seen[2]["kind"], "push");
    assert_eq!(seen[2]["uri"], "/note");
    assert_eq!(seen[3]["uri"], "/sync");
    assert_eq!(seen[4]["uri"], "/via/tp");

    interrupt(&child, nix::sys::signal::Signal::SIGTERM);
    let status = tokio::time::timeout(BOUND, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    session.closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_every_call_its_statuses_and_latency_percentiles() {
    let (_server, addr) = server().await;
    let out = run(&[
        "bench",
        &addr.to_string(),
        "/home/echo",
        r#""hello""#,
        "-n",
        "400",
        "-c",
        "16",
        "--conns",
        "2",
        "--json",
    ])
    .await;
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["calls"], 400);
    assert_eq!(report["ok"], 400);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["statuses"], json!({"200 OK": 400}));
    let lat = &report["latency_us"];
    let p = |k: &str| lat[k].as_f64().unwrap();
    assert!(p("min") > 0.0);
    assert!(p("min") <= p("p50") && p("p50") <= p("p90") && p("p90") <= p("p99"));
    assert!(p("p99") <= p("p99_9") && p("p99_9") <= p("max"));
    // Bodies are counted: 8 bytes ("j" + "\"hello\"") each way per call.
    assert_eq!(report["sent_bytes"], 400 * 8);
    assert_eq!(report["received_bytes"], 400 * 8);

    // Statuses other than 200 are counted as errors, by status.
    let out = run(&[
        "bench",
        &addr.to_string(),
        "/no/such",
        "-n",
        "50",
        "-c",
        "4",
        "--json",
    ])
    .await;
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["errors"], 50);
    assert_eq!(report["statuses"], json!({"404 Not Found": 50}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_prints_a_readable_summary() {
    let (_server, addr) = server().await;
    let out = run(&[
        "bench",
        &addr.to_string(),
        "/home/add",
        "[1,2]",
        "-n",
        "300",
        "-c",
        "8",
    ])
    .await;
    assert_exit(&out, 0);
    let text = stdout(&out);
    for label in [
        "calls",
        "ok",
        "errors",
        "200 OK",
        "throughput",
        "latency",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "histogram",
    ] {
        assert!(text.contains(label), "{label} missing from:\n{text}");
    }
    let count = |label: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(count("calls"), 300);
    assert_eq!(count("ok"), 300);
    assert_eq!(count("errors"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_for_a_duration_at_most_at_the_rate_asked() {
    let (_server, addr) = server().await;
    let args = ["-d", "1s", "-c", "8", "--rate", "500", "--json"];
    let out = run_cmd(
        tp().args(["bench", &addr.to_string(), "/home/add", "[1,2]"])
            .args(args),
    )
    .await;
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let calls = report["calls"].as_u64().unwrap();
    let elapsed = report["elapsed_secs"].as_f64().unwrap();
    assert!(calls >= 1 && report["errors"] == 0, "{report}");
    assert!(elapsed >= 1.0, "runs for the duration: {report}");
    // Call k starts no earlier than k/500 s after the start.
    assert!(calls as f64 <= 500.0 * elapsed + 1.0, "{report}");
}

/// A self-signed certificate for localhost and 127.0.0.1, written as PEM.
struct Identity {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

fn identity() -> Identity {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    Identity {
        cert: made.cert.der().clone(),
        key: made.signing_key.serialize_der(),
        cert_pem: made.cert.pem(),
        key_pem: made.signing_key.serialize_pem(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_tls(id: &Identity) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key.clone()));
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![id.cert.clone()], key)
            .unwrap(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_pulls_check_the_certificate_against_the_ca_and_name() {
    let id = identity();
    let server = Peer::new(PeerConfig::default(), router());
    let addr = server
        .listen_tls("127.0.0.1:0", server_tls(&id))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &id.cert_pem);
    let addr = addr.to_string();

    let out = run(&["pull", &addr, "/home/add", "[2,3]", "--tls", "--ca", &ca]).await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "5\n");

    let out = run(&[
        "pull",
        &addr,
        "/home/add",
        "[2,3]",
        "--ca",
        &ca,
        "--sni",
        "localhost",
    ])
    .await;
    assert_exit(&out, 0);

    // A name the certificate does not hold is refused.
    let out = run(&[
        "pull",
        &addr,
        "/home/add",
        "[2,3]",
        "--ca",
        &ca,
        "--sni",
        "other.example",
    ])
    .await;
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("cannot dial"), "{}", stderr(&out));

    // A certificate from an authority that is not trusted is refused...
    let other = identity();
    let wrong_ca = write(dir.path(), "other.pem", &other.cert_pem);
    let out = run(&["pull", &addr, "/home/add", "[2,3]", "--ca", &wrong_ca]).await;
    assert_exit(&out, 3);

    // ...unless checking is turned off.
    let out = run(&["pull", &addr, "/home/add", "[2,3]", "--insecure"]).await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "5\n");

    // A CA file that holds no certificate is bad input.
    let empty = write(dir.path(), "empty.pem", "");
    let out = run(&["pull", &addr, "/home/add", "[2,3]", "--ca", &empty]).await;
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("no PEM certificate"),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_over_tls_with_a_token_is_reachable_by_pull_and_push() {
    let id = identity();
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "cert.pem", &id.cert_pem);
    let key = write(dir.path(), "key.pem", &id.key_pem);
    let (mut child, addr) = spawn_serve(&[
        "--cert", &cert, "--key", &key, "--token", "s3cret", "--quiet",
    ])
    .await;
    let addr = addr.to_string();

    let out = run(&[
        "pull",
        &addr,
        "/echo",
        "\"secure\"",
        "--ca",
        &cert,
        "--token",
        "s3cret",
    ])
    .await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "\"secure\"\n");

    let out = run(&[
        "push", &addr, "/note", "1", "--ca", &cert, "--token", "s3cret",
    ])
    .await;
    assert_exit(&out, 0);

    // A wrong token is refused before any call.
    let out = run(&[
        "pull", &addr, "/echo", "1", "--ca", &cert, "--token", "wrong",
    ])
    .await;
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));

    interrupt(&child, nix::sys::signal::Signal::SIGINT);
    let status = tokio::time::timeout(BOUND, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_tokens_reach_the_auth_plugin() {
    let config = PeerConfig::default().plugin(AuthServer::new(|_s, token: String| async move {
        if token == "s3cret" {
            Ok("tester".to_owned())
        } else {
            Err(Status::unauthorized())
        }
    }));
    let (_server, addr) = server_with(config, router()).await;
    let out = run(&[
        "pull",
        &addr.to_string(),
        "/home/add",
        "[1,1]",
        "--token",
        "s3cret",
    ])
    .await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "2\n");
    // From the environment, too.
    let out = run_cmd(
        tp().args(["pull", &addr.to_string(), "/home/add", "[1,1]"])
            .env("TP_TOKEN", "s3cret"),
    )
    .await;
    assert_exit(&out, 0);
    // Without a token the pull is answered 401 (a status: exit 1).
    let out = run(&["pull", &addr.to_string(), "/home/add", "[1,1]"]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("401 Unauthorized"),
        "{}",
        stderr(&out)
    );
    // A wrong one is refused when connecting (exit 3).
    let out = run(&[
        "pull",
        &addr.to_string(),
        "/home/add",
        "[1,1]",
        "--token",
        "nope",
    ])
    .await;
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("refused the session"),
        "{}",
        stderr(&out)
    );
}

/// The packets of a Go Teleport v2.0 capture: (client to server, server to client).
fn capture(name: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let path = format!(
        "{}/../tests/data/teleport-go-v2.0-captures/{name}.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut c2s, mut s2c) = (Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (dir, hex) = line.split_once(' ').unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        match dir {
            "c2s" => c2s.push(bytes),
            "s2c" => s2c.push(bytes),
            other => panic!("unknown direction {other}"),
        }
    }
    (c2s, s2c)
}

/// A protobuf-header frame without header field 15: the deadline
/// extension a teleport peer may add to a pull with a timeout, which Go
/// v2.0 peers skip as an unknown field. Everything else is kept byte for
/// byte.
fn without_deadline(frame: &[u8]) -> Vec<u8> {
    fn varint(bytes: &[u8], at: &mut usize) -> u64 {
        let mut value = 0;
        for shift in (0..64).step_by(7) {
            let b = bytes[*at];
            *at += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        value
    }
    let header_len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(frame[4], b'p', "a protobuf header");
    let header = &frame[5..4 + header_len];
    let mut kept = Vec::new();
    let mut at = 0;
    while at < header.len() {
        let start = at;
        let tag = varint(header, &mut at);
        match tag & 7 {
            0 => {
                varint(header, &mut at);
            }
            2 => {
                let len = varint(header, &mut at) as usize;
                at += len;
            }
            other => panic!("unexpected wire type {other} in a header"),
        }
        if tag >> 3 != 15 {
            kept.extend_from_slice(&header[start..at]);
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(kept.len() as u32 + 1).to_be_bytes());
    out.push(b'p');
    out.extend_from_slice(&kept);
    out.extend_from_slice(&frame[4 + header_len..]);
    out
}

/// A stand-in for a Go Teleport v2.0 server: accepts one connection, reads
/// the client's first frame (returned for the test to compare with the Go
/// client's) and answers with the Go server's packets.
async fn go_stand_in(name: &str) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let (c2s, s2c) = capture(name);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _ = c2s;
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        // One frame, cut by its two length prefixes.
        let mut got = Vec::new();
        for _section in 0..2 {
            let mut len = [0; 4];
            stream.read_exact(&mut len).await.unwrap();
            let mut bytes = vec![0; u32::from_be_bytes(len) as usize];
            stream.read_exact(&mut bytes).await.unwrap();
            got.extend_from_slice(&len);
            got.extend_from_slice(&bytes);
        }
        // A client that only pushes may be gone already: a broken pipe
        // here is its business, as it would be for a Go server.
        for reply in &s2c {
            if stream.write_all(reply).await.is_err() {
                break;
            }
        }
        // Like a Go server, keep the connection until the client leaves.
        let _ = stream.read_to_end(&mut Vec::new()).await;
        got
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_speaks_to_go_teleport_v2_byte_for_byte() {
    let (addr, server) = go_stand_in("json_add").await;
    let out = run(&["pull", &addr.to_string(), "/arith/add", "[1,2]"]).await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "3\n");
    let (c2s, _) = capture("json_add");
    assert_eq!(
        without_deadline(&server.await.unwrap()),
        c2s[0],
        "the pull as the Go client writes it"
    );

    // JSON headers and the Go server's gzip (sync-flushed, no trailer).
    let (addr, server) = go_stand_in("jsonhdr_gzip_add").await;
    let out = run(&[
        "pull",
        &addr.to_string(),
        "/arith/add",
        "[1,2]",
        "--header-codec",
        "json",
        "--gzip",
        "5",
    ])
    .await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "3\n");
    // Go's JSON key order and gzip bytes are its encoder's choice: compare
    // the decoded header and body.
    let sent = server.await.unwrap();
    let header_len = u32::from_be_bytes(sent[..4].try_into().unwrap()) as usize;
    assert_eq!(sent[4], b'j', "a JSON header");
    let header = teleport::Header::decode(HeaderCodec::Json, &sent[5..4 + header_len]).unwrap();
    assert_eq!(
        (header.kind, &*header.uri, header.gzip),
        (teleport::Kind::Pull, "/arith/add", 5)
    );
    let body = &sent[4 + header_len + 4..];
    assert_eq!(body[0], b'j');
    assert_eq!(
        teleport::codec::gzip::decompress(&body[1..], 1 << 20).unwrap(),
        b"[1,2]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_speaks_to_go_teleport_v2_byte_for_byte() {
    let (addr, server) = go_stand_in("push_json").await;
    let out = run(&[
        "push",
        &addr.to_string(),
        "/push/record",
        r#"{"k":"v","n":1}"#,
    ])
    .await;
    assert_exit(&out, 0);
    let (c2s, _) = capture("push_json");
    assert_eq!(server.await.unwrap(), c2s[0]);
}

#[test]
fn help_lists_every_command_and_the_exit_codes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tp"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "pull",
        "push",
        "listen",
        "serve",
        "bench",
        "Exit codes:",
        "RUST_LOG",
    ] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tp"))
        .args(["pull"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
}
