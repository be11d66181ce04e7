//! Errors a user can act on: a status names the URI it answered, a dial
//! error gives its cause once (in `source()`), and service methods use `?`
//! on `std::io::Error`, on `anyhow::Error` (feature `anyhow`) and, through
//! `Status::from_error`, on any other error type.

use std::error::Error as _;

use teleport::{Peer, PeerConfig, PeerError, Router, Status};

#[teleport::service]
trait Files {
    /// Reads a file: `?` on `std::io::Error`.
    async fn read(&self, path: String) -> Result<String, Status>;
    /// Parses a number: `?` on any error through `Status::from_error`.
    async fn parse(&self, text: String) -> Result<u16, Status>;
    /// Returns `anyhow::Result` (feature `anyhow`).
    async fn sum(&self, texts: Vec<String>) -> anyhow::Result<u32>;
}

struct Disk;

impl Files for Disk {
    async fn read(&self, path: String) -> Result<String, Status> {
        Ok(std::fs::read_to_string(path)?)
    }
    async fn parse(&self, text: String) -> Result<u16, Status> {
        let port = text.parse::<u16>().map_err(Status::from_error)?;
        Ok(port)
    }
    async fn sum(&self, texts: Vec<String>) -> anyhow::Result<u32> {
        use anyhow::Context as _;
        let mut sum = 0;
        for text in texts {
            sum += text
                .parse::<u32>()
                .with_context(|| format!("{text:?} is not a number"))?;
        }
        Ok(sum)
    }
}

async fn client() -> FilesClient {
    let mut router = Router::new();
    FilesServer::new(Disk).register(&mut router);
    let server = Peer::new(PeerConfig::default(), router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let session = Peer::new(PeerConfig::default(), Router::new())
        .dial(addr)
        .await
        .unwrap();
    // The server peer lives as long as its listener task.
    FilesClient::new(session)
}

#[tokio::test]
async fn a_status_error_names_the_uri_it_answered() {
    let files = client().await;
    let err = files
        .session()
        .pull::<_, String>("/no/such/route", &"x")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/no/such/route: the remote peer replied 404 Not Found"
    );
    assert_eq!(err.status().map(Status::code), Some(404));
}

#[tokio::test]
async fn service_methods_use_question_mark_on_io_parse_and_anyhow_errors() {
    let files = client().await;
    let err = files.read("/no/such/file".into()).await.unwrap_err();
    let status = err.status().unwrap();
    assert_eq!(status.code(), 500);
    assert!(status.text().contains("No such file"), "{err}");
    assert_eq!(
        err.to_string(),
        format!("/files/read: the remote peer replied {status}")
    );

    let err = files.parse("http".into()).await.unwrap_err();
    assert_eq!(
        err.status().unwrap().text(),
        "invalid digit found in string"
    );
    assert_eq!(files.parse("8080".into()).await.unwrap(), 8080);

    let err = files.sum(vec!["1".into(), "two".into()]).await.unwrap_err();
    assert_eq!(
        err.status().unwrap().text(),
        "\"two\" is not a number: invalid digit found in string",
        "anyhow's context chain travels"
    );
    assert_eq!(files.sum(vec!["1".into(), "2".into()]).await.unwrap(), 3);
}

#[tokio::test]
async fn a_dial_error_gives_its_cause_once() {
    // A port nothing listens on: bind one, then free it.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = Peer::new(PeerConfig::default(), Router::new())
        .dial(addr)
        .await
        .unwrap_err();
    assert!(matches!(err, PeerError::Dial { .. }), "{err}");
    let cause = err
        .source()
        .expect("the operating system's error")
        .to_string();
    assert_eq!(err.to_string(), format!("cannot dial {addr}"));
    assert!(
        !err.to_string().contains(&cause),
        "the cause is not repeated"
    );
}
