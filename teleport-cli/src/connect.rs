//! Dialing: the flags every client command shares (header codec, timeout,
//! TLS, auth token, `-v`) and the peer they configure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use teleport::plugin::auth::AuthClient;
use teleport::tls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use teleport::{HeaderCodec, Peer, PeerConfig, Router, Session};

use crate::error::CliError;
use crate::frames::FrameLog;

/// The header codec, as `--header-codec` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum HeaderCodecArg {
    /// Protobuf headers (`p`), Go Teleport's default.
    Protobuf,
    /// JSON headers (`j`).
    Json,
}

impl From<HeaderCodecArg> for HeaderCodec {
    fn from(arg: HeaderCodecArg) -> HeaderCodec {
        match arg {
            HeaderCodecArg::Protobuf => HeaderCodec::Protobuf,
            HeaderCodecArg::Json => HeaderCodec::Json,
        }
    }
}

/// Flags for dialing a peer.
#[derive(Clone, Debug, Args)]
pub(crate) struct DialOpts {
    /// Header codec of the frames this side sends.
    #[arg(long, value_enum, default_value = "protobuf")]
    pub(crate) header_codec: HeaderCodecArg,
    /// How long to wait for the connection and for each reply (e.g. 500ms, 10s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
    /// Dial with TLS; the server's certificate is checked against --ca, or the system's roots.
    #[arg(long)]
    pub(crate) tls: bool,
    /// PEM file with the certificate authorities to trust (implies --tls).
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// Do not check the server's certificate (implies --tls). For tests only.
    #[arg(long)]
    pub(crate) insecure: bool,
    /// Server name to check the certificate against and send as SNI
    /// (default: the host part of ADDR).
    #[arg(long, value_name = "NAME")]
    pub(crate) sni: Option<String>,
    /// Credential for the auth plugin (`teleport::plugin::auth`), sent right after connecting.
    #[arg(long, value_name = "TOKEN", env = "TP_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Print every frame sent and received on stderr (decoded header, sizes).
    #[arg(short, long)]
    pub(crate) verbose: bool,
}

impl DialOpts {
    fn uses_tls(&self) -> bool {
        self.tls || self.ca.is_some() || self.insecure
    }

    /// The peer configuration these flags ask for.
    pub(crate) fn config(&self) -> PeerConfig {
        let mut config = PeerConfig::default()
            .header_codec(self.header_codec.into())
            .dial_timeout(self.timeout)
            .pull_timeout(Some(self.timeout));
        if self.verbose {
            config = config.plugin(FrameLog::new());
        }
        if let Some(token) = &self.token {
            config = config.plugin(AuthClient::new(token.clone()));
        }
        config
    }

    /// Dials `addr` with a peer configured by these flags that serves
    /// `router`.
    pub(crate) async fn dial(&self, addr: &str, router: Router) -> Result<Session, CliError> {
        let peer = Peer::new(self.config(), router);
        self.connect(&peer, addr).await
    }

    /// Dials `addr` from `peer` (plain or TLS, as the flags say).
    pub(crate) async fn connect(&self, peer: &Peer, addr: &str) -> Result<Session, CliError> {
        let session = if self.uses_tls() {
            let config = self.client_tls()?;
            let name = match &self.sni {
                Some(name) => name.clone(),
                None => host_of(addr).to_owned(),
            };
            peer.dial_tls(addr, &name, config).await?
        } else {
            peer.dial(addr).await?
        };
        tracing::debug!(remote = %session.remote_addr(), "connected");
        Ok(session)
    }

    fn client_tls(&self) -> Result<Arc<ClientConfig>, CliError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| CliError::Tls(e.to_string()))?;
        let config = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnyCert(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            match &self.ca {
                Some(path) => {
                    for cert in read_certs(path)? {
                        roots.add(cert).map_err(|e| {
                            CliError::Tls(format!(
                                "{}: not a usable CA certificate: {e}",
                                path.display()
                            ))
                        })?;
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    for cert in found.certs {
                        let _ = roots.add(cert);
                    }
                    if roots.is_empty() {
                        return Err(CliError::Tls(
                            "no system root certificates found: give --ca FILE (or --insecure for tests)".into(),
                        ));
                    }
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        Ok(Arc::new(config))
    }
}

/// The host part of `host:port` or `[v6]:port`.
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((host, _port)) => host,
        None => addr,
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file.
fn read_certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, CliError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            CliError::Tls(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(CliError::Tls(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// A TLS server configuration from PEM files (for `tp serve --tls`).
pub(crate) fn server_tls(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, CliError> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let certs = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        CliError::Tls(format!(
            "cannot read a private key from {}: {e}",
            key.display()
        ))
    })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| CliError::Tls(format!("the certificate and key do not fit together: {e}")))?;
    Ok(Arc::new(config))
}

/// `--insecure`: a verifier that accepts any certificate but still checks
/// the handshake signatures made with it.
mod insecure {
    use std::sync::Arc;

    use teleport::tls::rustls::client::danger::{
        HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
    };
    use teleport::tls::rustls::crypto::{
        CryptoProvider, verify_tls12_signature, verify_tls13_signature,
    };
    use teleport::tls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use teleport::tls::rustls::{DigitallySignedStruct, Error, SignatureScheme};

    #[derive(Debug)]
    pub(crate) struct AcceptAnyCert(pub(crate) Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyCert {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_of_an_address_is_its_sni_name() {
        assert_eq!(host_of("localhost:9090"), "localhost");
        assert_eq!(host_of("127.0.0.1:9090"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9090"), "::1");
        assert_eq!(host_of("example.com"), "example.com");
    }
}
