//! TLS end to end: a server and a client peer over loopback TCP with TLS,
//! with a certificate made when the program starts (nothing secret is kept
//! on disk).
//!
//! In production the server loads its certificate chain and key from PEM
//! files (see `load_pem` below) and the client trusts the authority that
//! signed them; here one self-signed certificate for `localhost` plays both
//! parts. Once the handshake is done a TLS session is an ordinary session:
//! pulls, pushes both ways, plugins and graceful shutdown work the same.
//!
//! Needs the `tls` feature of `teleport`:
//! `teleport = { version = "0.1", features = ["tls"] }`.
//!
//! Run with: `cargo run --example tls`

// An example talks to its user on stdout; the library never does.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use teleport::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use teleport::tls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use teleport::{Ctx, Peer, PeerConfig, Router, Status};
use tokio::sync::mpsc;

/// rustls' `ring` provider, the one teleport is built with.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A certificate for the names the client will dial by.
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let cert: CertificateDer<'static> = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));

    // The server: its certificate and key, no client certificates.
    let server_config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    let mut router = Router::new();
    router
        .pull("/home/echo", |_: Ctx, text: String| async move {
            Ok::<_, Status>(text)
        })
        .push("/msg/note", |ctx: Ctx, text: String| async move {
            // Push back to the caller over the same TLS connection.
            let _ = ctx
                .session()
                .push("/msg/back", &format!("echo:{text}"))
                .await;
        });
    let server = Peer::new(PeerConfig::default(), router);
    let addr = server
        .listen_tls("127.0.0.1:0", Arc::new(server_config))
        .await?;
    println!("server listening with TLS on {addr}");

    // The client trusts that certificate (in production: your CA, or the
    // system's roots through the `rustls-native-certs` crate).
    let mut roots = RootCertStore::empty();
    roots.add(cert)?;
    let client_config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client_config = Arc::new(client_config);

    let (back_tx, mut back_rx) = mpsc::unbounded_channel();
    let mut client_router = Router::new();
    client_router.push("/msg/back", move |_: Ctx, text: String| {
        let _ = back_tx.send(text);
        async {}
    });
    let client = Peer::new(PeerConfig::default(), client_router);
    // The name is checked against the certificate and sent as SNI.
    let session = client
        .dial_tls(addr, "localhost", client_config.clone())
        .await?;

    let echoed: String = session.pull("/home/echo", &"hello over TLS").await?;
    println!("pull /home/echo -> {echoed:?}");
    session.push("/msg/note", &"hi").await?;
    let back = tokio::time::timeout(Duration::from_secs(5), back_rx.recv()).await?;
    println!("push /msg/note -> the server pushed back {back:?}");

    // A name the certificate does not hold is refused during the handshake.
    match client.dial_tls(addr, "other.example", client_config).await {
        Ok(_) => println!("unexpected: a wrong name was accepted"),
        Err(e) => println!("dialing as other.example fails: {}", with_causes(&e)),
    }

    // A graceful close ends the TLS stream with close_notify.
    session.close().await;
    server.shutdown(Duration::from_secs(1)).await;
    Ok(())
}

/// An error and its causes (the `source()` chain): the reason a TLS dial
/// failed is the cause of the dial error.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        cause = c.source();
    }
    text
}

/// How a real server reads its certificate chain and key from PEM files.
#[allow(dead_code)]
fn load_pem(
    cert_path: &str,
    key_path: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Box<dyn std::error::Error>> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(cert_path)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key_path)?;
    Ok((certs, key))
}
