//! Registration and discovery in etcd v3 (feature `etcd`).
//!
//! (Longer than most files: the small HTTP client for etcd's JSON gateway,
//! leases, the watch stream and its resynchronisation are one concept, the
//! etcd backend, with its tests.)
//!
//! A serving peer [registers](Registration::register) itself: its
//! [`Endpoint`] as JSON under `/teleport/services/{service}/{addr}`,
//! attached to a *lease* with a TTL that a background task keeps alive. It
//! [deregisters](Registration::deregister) before it starts draining, so
//! clients move away while it still answers; a peer that crashes stops
//! renewing and etcd deletes its key when the lease expires, one TTL later.
//! An [`EtcdResolver`] reads the keys under a service's prefix and watches
//! them, so every change reaches clients as an etcd watch event, not on
//! the next poll.
//!
//! The client speaks etcd's JSON gateway (`/v3/kv/range`, `/v3/kv/put`,
//! `/v3/lease/grant`, `/v3/lease/keepalive`, `/v3/watch`) over HTTP/1.1:
//! every etcd since 3.3 serves it on the client port, and building it
//! needs no `protoc` and no gRPC stack.
//!
//! ```no_run
//! # #![allow(dead_code)]
//! use std::time::Duration;
//! use teleport::balance::Balanced;
//! use teleport::discovery::{Endpoint, EtcdClient, EtcdResolver, Registration};
//! use teleport::{Peer, PeerConfig, Router};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let etcd = EtcdClient::new(["127.0.0.1:2379"]);
//!
//! // The server: listen, then register under a 10 s lease.
//! let server = Peer::new(PeerConfig::default(), Router::new());
//! let addr = server.listen("127.0.0.1:9090").await?;
//! let registration =
//!     Registration::register(&etcd, "arith", Endpoint::from(addr), Duration::from_secs(10)).await?;
//!
//! // A client, anywhere: every live "arith" server.
//! let client = Peer::new(PeerConfig::default(), Router::new());
//! let arith = Balanced::builder(client, EtcdResolver::new(etcd.clone()), "arith").connect().await?;
//!
//! // Shutting down: leave the registry first, then drain.
//! registration.deregister().await?;
//! server.close(Duration::from_secs(5)).await;
//! # let _ = arith; Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{DiscoveryError, Endpoint, EndpointWatch, Endpoints, Resolver};

/// The key prefix services are registered under, unless
/// [`EtcdResolver::prefix`] / [`Registration::register_under`] say
/// otherwise.
pub const DEFAULT_PREFIX: &str = "/teleport/services/";

/// The environment variable [`EtcdClient::from_env`] reads: etcd client
/// endpoints, comma-separated (`127.0.0.1:2379,10.0.0.2:2379`).
pub const ENDPOINTS_ENV: &str = "TELEPORT_ETCD_ENDPOINTS";

/// Why an etcd request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// The client was given no endpoint.
    #[error(
        "no etcd endpoint configured (EtcdClient::new with an empty list, or {ENDPOINTS_ENV} unset)"
    )]
    NoEndpoint,
    /// Connecting to etcd failed.
    #[error("cannot connect to etcd at {endpoint}")]
    Connect {
        /// The etcd endpoint.
        endpoint: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The HTTP exchange with etcd failed.
    #[error("HTTP exchange with etcd at {endpoint} failed")]
    Http {
        /// The etcd endpoint.
        endpoint: String,
        /// hyper's error.
        source: hyper::Error,
    },
    /// etcd did not answer within the client's timeout.
    #[error("etcd at {endpoint} did not answer {path} within {timeout:?} (EtcdClient::timeout)")]
    Timeout {
        /// The etcd endpoint.
        endpoint: String,
        /// The API path.
        path: &'static str,
        /// The timeout.
        timeout: Duration,
    },
    /// etcd answered with an error.
    #[error("etcd at {endpoint} refused {path}: HTTP {status}: {message}")]
    Refused {
        /// The etcd endpoint.
        endpoint: String,
        /// The API path.
        path: &'static str,
        /// The HTTP status.
        status: u16,
        /// etcd's message.
        message: String,
    },
    /// etcd's answer was not what its API documents.
    #[error("unexpected answer from etcd to {path}: {reason}")]
    BadAnswer {
        /// The API path.
        path: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// A small etcd v3 client over the JSON gateway: the key-value, lease and
/// watch calls registration and discovery need. Cheap to clone.
///
/// Requests go to the first endpoint that answers, in the order given.
///
/// ```no_run
/// # #![allow(dead_code)]
/// # async fn f() -> Result<(), teleport::discovery::etcd::EtcdError> {
/// use teleport::discovery::EtcdClient;
///
/// let etcd = EtcdClient::new(["127.0.0.1:2379"]);
/// etcd.put("/config/answer", "42", None).await?;
/// let (pairs, _revision) = etcd.get_prefix("/config/").await?;
/// assert_eq!(pairs, [("/config/answer".to_string(), b"42".to_vec())]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct EtcdClient {
    endpoints: Arc<[String]>,
    timeout: Duration,
}

impl EtcdClient {
    /// A client of the etcd cluster at `endpoints` (`host:port`, with or
    /// without `http://`). Requests time out after 5 s.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        EtcdClient {
            endpoints: endpoints
                .into_iter()
                .map(|e| {
                    let e: String = e.into();
                    e.trim()
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_owned()
                })
                .filter(|e| !e.is_empty())
                .collect(),
            timeout: Duration::from_secs(5),
        }
    }

    /// A client of the endpoints in [`ENDPOINTS_ENV`]
    /// (`TELEPORT_ETCD_ENDPOINTS`), if it is set and not empty.
    pub fn from_env() -> Option<Self> {
        let value = std::env::var(ENDPOINTS_ENV).ok()?;
        let client = Self::new(value.split(','));
        (!client.endpoints.is_empty()).then_some(client)
    }

    /// Sets how long one request may take (watches are not bounded).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The endpoints, as given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Opens an HTTP/1.1 exchange with one endpoint: POST `path` with a
    /// JSON body, returning the response status and its body stream.
    async fn open(
        &self,
        endpoint: &str,
        path: &'static str,
        body: &Value,
    ) -> Result<(u16, Incoming), EtcdError> {
        let stream = TcpStream::connect(endpoint)
            .await
            .map_err(|source| EtcdError::Connect {
                endpoint: endpoint.to_owned(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let http = |source| EtcdError::Http {
            endpoint: endpoint.to_owned(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "etcd connection ended with an error");
            }
        });
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, endpoint)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| EtcdError::BadAnswer {
                path,
                reason: format!("cannot build the request: {e}"),
            })?;
        let response = sender.send_request(request).await.map_err(http)?;
        Ok((response.status().as_u16(), response.into_body()))
    }

    /// One unary call: POST, read the whole answer, parse it as JSON.
    async fn call(&self, path: &'static str, body: Value) -> Result<Value, EtcdError> {
        let mut last = EtcdError::NoEndpoint;
        for endpoint in self.endpoints.iter() {
            let exchange = async {
                let (status, incoming) = self.open(endpoint, path, &body).await?;
                let bytes = incoming
                    .collect()
                    .await
                    .map_err(|source| EtcdError::Http {
                        endpoint: endpoint.clone(),
                        source,
                    })?
                    .to_bytes();
                let value: Value =
                    serde_json::from_slice(&bytes).map_err(|e| EtcdError::BadAnswer {
                        path,
                        reason: format!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)),
                    })?;
                if status != 200 {
                    return Err(EtcdError::Refused {
                        endpoint: endpoint.clone(),
                        path,
                        status,
                        message: value["message"]
                            .as_str()
                            .or(value["error"].as_str())
                            .unwrap_or("no message")
                            .to_owned(),
                    });
                }
                Ok(value)
            };
            match tokio::time::timeout(self.timeout, exchange).await {
                Ok(Ok(value)) => return Ok(value),
                // etcd itself said no: another member would say the same.
                Ok(Err(e @ EtcdError::Refused { .. })) => return Err(e),
                Ok(Err(e)) => last = e,
                Err(_) => {
                    last = EtcdError::Timeout {
                        endpoint: endpoint.clone(),
                        path,
                        timeout: self.timeout,
                    }
                }
            }
        }
        Err(last)
    }

    /// Writes `key = value`, attached to `lease` if given (the key goes
    /// when the lease expires or is revoked).
    ///
    /// # Errors
    ///
    /// An [`EtcdError`] naming the endpoint and the call.
    pub async fn put(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        lease: Option<i64>,
    ) -> Result<(), EtcdError> {
        let mut body = json!({ "key": B64.encode(key), "value": B64.encode(value) });
        if let Some(lease) = lease {
            body["lease"] = json!(lease.to_string());
        }
        self.call("/v3/kv/put", body).await.map(drop)
    }

    /// Deletes `key`.
    ///
    /// # Errors
    ///
    /// An [`EtcdError`].
    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        self.call("/v3/kv/deleterange", json!({ "key": B64.encode(key) }))
            .await
            .map(drop)
    }

    /// Every key under `prefix` with its value, and the store's revision
    /// they were read at (watch from the next one to miss nothing).
    ///
    /// # Errors
    ///
    /// An [`EtcdError`].
    pub async fn get_prefix(
        &self,
        prefix: &str,
    ) -> Result<(Vec<(String, Vec<u8>)>, i64), EtcdError> {
        const PATH: &str = "/v3/kv/range";
        let answer = self
            .call(
                PATH,
                json!({ "key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix)) }),
            )
            .await?;
        let revision = int(&answer["header"]["revision"]);
        let pairs = answer["kvs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|kv| Ok((key_of(kv, PATH)?, bytes_of(&kv["value"], PATH)?)))
            .collect::<Result<_, EtcdError>>()?;
        Ok((pairs, revision))
    }

    /// Grants a lease of `ttl` (rounded up to whole seconds; etcd may
    /// raise very short ones to its minimum); returns its id.
    ///
    /// # Errors
    ///
    /// An [`EtcdError`].
    pub async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let answer = self
            .call("/v3/lease/grant", json!({ "TTL": secs.max(1).to_string() }))
            .await?;
        match int(&answer["ID"]) {
            0 => Err(EtcdError::BadAnswer {
                path: "/v3/lease/grant",
                reason: format!("no lease id in {answer}"),
            }),
            id => Ok(id),
        }
    }

    /// Renews `lease` once; returns the TTL it has again, or `None` if it
    /// already expired (its keys are gone).
    ///
    /// # Errors
    ///
    /// An [`EtcdError`].
    pub async fn keep_alive(&self, lease: i64) -> Result<Option<Duration>, EtcdError> {
        let answer = self
            .call("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))
            .await?;
        let ttl = int(&answer["result"]["TTL"]);
        Ok(u64::try_from(ttl)
            .ok()
            .filter(|&t| t > 0)
            .map(Duration::from_secs))
    }

    /// Revokes `lease`, deleting its keys at once.
    ///
    /// # Errors
    ///
    /// An [`EtcdError`].
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", json!({ "ID": lease.to_string() }))
            .await
            .map(drop)
    }

    /// Watches the keys under `prefix` from `revision` on, calling
    /// `on_event` for each change (`Some(value)` for a put, `None` for a
    /// delete) until the stream ends (`Ok`) or fails, or `stop` fires.
    async fn watch_prefix(
        &self,
        prefix: &str,
        revision: i64,
        stop: &CancellationToken,
        mut on_event: impl FnMut(String, Option<Vec<u8>>),
    ) -> Result<(), EtcdError> {
        const PATH: &str = "/v3/watch";
        let body = json!({ "create_request": {
            "key": B64.encode(prefix),
            "range_end": B64.encode(prefix_end(prefix)),
            "start_revision": revision.to_string(),
        }});
        let mut last = EtcdError::NoEndpoint;
        for endpoint in self.endpoints.iter() {
            let opened = tokio::time::timeout(self.timeout, self.open(endpoint, PATH, &body)).await;
            let (status, mut incoming) = match opened {
                Ok(Ok(open)) => open,
                Ok(Err(e)) => {
                    last = e;
                    continue;
                }
                Err(_) => {
                    last = EtcdError::Timeout {
                        endpoint: endpoint.clone(),
                        path: PATH,
                        timeout: self.timeout,
                    };
                    continue;
                }
            };
            if status != 200 {
                return Err(EtcdError::Refused {
                    endpoint: endpoint.clone(),
                    path: PATH,
                    status,
                    message: "the watch was refused".into(),
                });
            }
            // The gateway streams one JSON object per line.
            let mut buf = BytesMut::new();
            loop {
                let frame = tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    frame = incoming.frame() => frame,
                };
                let Some(frame) = frame else { return Ok(()) };
                let frame = frame.map_err(|source| EtcdError::Http {
                    endpoint: endpoint.clone(),
                    source,
                })?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                buf.extend_from_slice(&data);
                while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                    let line = buf.split_to(end + 1);
                    let message: Value =
                        serde_json::from_slice(&line).map_err(|e| EtcdError::BadAnswer {
                            path: PATH,
                            reason: format!("not JSON ({e}): {}", String::from_utf8_lossy(&line)),
                        })?;
                    if let Some(error) = message.get("error") {
                        return Err(EtcdError::Refused {
                            endpoint: endpoint.clone(),
                            path: PATH,
                            status,
                            message: error["message"]
                                .as_str()
                                .unwrap_or("watch error")
                                .to_owned(),
                        });
                    }
                    let result = &message["result"];
                    if result["canceled"].as_bool() == Some(true) {
                        return Err(EtcdError::BadAnswer {
                            path: PATH,
                            reason: format!(
                                "the watch was canceled: {}",
                                result["cancel_reason"]
                                    .as_str()
                                    .unwrap_or("no reason given")
                            ),
                        });
                    }
                    for event in result["events"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                    {
                        let key = key_of(&event["kv"], PATH)?;
                        if event["type"].as_str() == Some("DELETE") {
                            on_event(key, None);
                        } else {
                            on_event(key, Some(bytes_of(&event["kv"]["value"], PATH)?));
                        }
                    }
                }
            }
        }
        Err(last)
    }
}

/// The end of the key range of a prefix: the prefix with its last byte
/// incremented (the etcd convention).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// etcd's JSON gateway writes 64-bit integers as strings, and omits zeros.
fn int(value: &Value) -> i64 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn bytes_of(value: &Value, path: &'static str) -> Result<Vec<u8>, EtcdError> {
    match value.as_str() {
        None => Ok(Vec::new()),
        Some(s) => B64.decode(s).map_err(|e| EtcdError::BadAnswer {
            path,
            reason: format!("a value that is not base64: {e}"),
        }),
    }
}

fn key_of(kv: &Value, path: &'static str) -> Result<String, EtcdError> {
    String::from_utf8(bytes_of(&kv["key"], path)?).map_err(|_| EtcdError::BadAnswer {
        path,
        reason: "a key that is not UTF-8".into(),
    })
}

/// A serving peer's entry in etcd, kept alive under a lease until
/// [`deregister`](Registration::deregister)ed or dropped.
///
/// The keep-alive task renews the lease every third of its TTL. If the
/// lease is lost anyway (etcd unreachable for longer than the TTL), it
/// grants a new one and writes the entry again as soon as etcd answers.
/// Dropping the registration stops renewing: the entry disappears when the
/// lease expires, as for a crashed peer.
#[derive(Debug)]
pub struct Registration {
    client: EtcdClient,
    key: String,
    lease: watch::Receiver<i64>,
    stop: CancellationToken,
}

impl Registration {
    /// Registers `endpoint` as an instance of `service` under
    /// [`DEFAULT_PREFIX`], with a lease of `ttl`.
    ///
    /// # Errors
    ///
    /// An [`EtcdError`] when the lease or the entry cannot be written.
    pub async fn register(
        client: &EtcdClient,
        service: &str,
        endpoint: Endpoint,
        ttl: Duration,
    ) -> Result<Registration, EtcdError> {
        Self::register_under(client, DEFAULT_PREFIX, service, endpoint, ttl).await
    }

    /// As [`register`](Self::register), under another key prefix (one per
    /// environment, say).
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register).
    pub async fn register_under(
        client: &EtcdClient,
        prefix: &str,
        service: &str,
        endpoint: Endpoint,
        ttl: Duration,
    ) -> Result<Registration, EtcdError> {
        let key = format!("{prefix}{service}/{}", endpoint.addr);
        let value = serde_json::to_vec(&endpoint).expect("an endpoint serializes");
        let lease = client.grant(ttl).await?;
        client.put(&key, &value, Some(lease)).await?;
        tracing::info!(%key, lease, ?ttl, "registered in etcd");
        let (lease_tx, lease_rx) = watch::channel(lease);
        let stop = CancellationToken::new();
        tokio::spawn(keep_alive(
            client.clone(),
            key.clone(),
            value,
            ttl,
            lease_tx,
            stop.clone(),
        ));
        Ok(Registration {
            client: client.clone(),
            key,
            lease: lease_rx,
            stop,
        })
    }

    /// The key of the entry.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The id of the lease the entry is attached to now.
    pub fn lease(&self) -> i64 {
        *self.lease.borrow()
    }

    /// Leaves the registry now: stops renewing and revokes the lease, so
    /// the entry is deleted at once and every resolver watching hears it.
    /// Call it before draining on shutdown or restart.
    ///
    /// # Errors
    ///
    /// An [`EtcdError`] if etcd could not be told; the entry then goes when
    /// its lease expires.
    pub async fn deregister(self) -> Result<(), EtcdError> {
        self.stop.cancel();
        let lease = self.lease();
        self.client.revoke(lease).await?;
        tracing::info!(key = %self.key, lease, "deregistered from etcd");
        Ok(())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn keep_alive(
    client: EtcdClient,
    key: String,
    value: Vec<u8>,
    ttl: Duration,
    lease: watch::Sender<i64>,
    stop: CancellationToken,
) {
    let period = (ttl / 3).max(Duration::from_millis(200));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let id = *lease.borrow();
        let renewed = tokio::select! {
            () = stop.cancelled() => return,
            r = client.keep_alive(id) => r,
        };
        match renewed {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::warn!(%key, lease = id, "lease expired; registering again");
                let again = async {
                    let id = client.grant(ttl).await?;
                    client.put(&key, &value, Some(id)).await?;
                    Ok::<_, EtcdError>(id)
                };
                match again.await {
                    Ok(id) => {
                        lease.send_replace(id);
                    }
                    Err(e) => {
                        tracing::warn!(%key, error = %e, "registering again failed; retrying")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%key, lease = id, error = %e, "renewing the lease failed; retrying")
            }
        }
    }
}

/// Resolves services from the entries [`Registration`] writes: reads
/// every key under `{prefix}{service}/`, then follows them with an etcd
/// watch. If the watch breaks (etcd restarted, network), it reads the
/// whole prefix again and watches on, keeping the last set meanwhile.
///
/// ```no_run
/// # #![allow(dead_code)]
/// # async fn f() -> Result<(), teleport::discovery::DiscoveryError> {
/// use teleport::discovery::{EtcdClient, EtcdResolver, Resolver};
///
/// let resolver = EtcdResolver::new(EtcdClient::new(["127.0.0.1:2379"]));
/// let mut arith = resolver.resolve("arith").await?;
/// while arith.changed().await.is_ok() {
///     tracing::info!(endpoints = ?arith.borrow_and_update(), "arith moved");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct EtcdResolver {
    client: EtcdClient,
    prefix: String,
}

impl EtcdResolver {
    /// A resolver reading the entries under [`DEFAULT_PREFIX`].
    pub fn new(client: EtcdClient) -> Self {
        EtcdResolver {
            client,
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }

    /// Reads the entries under another prefix (as given to
    /// [`Registration::register_under`]).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// The endpoint set of a map of entries.
fn set_of(entries: &BTreeMap<String, Endpoint>) -> Endpoints {
    entries.values().cloned().collect()
}

/// Reads an entry's value; a malformed one is logged and skipped.
fn endpoint_of(key: &str, value: &[u8]) -> Option<Endpoint> {
    serde_json::from_slice(value)
        .inspect_err(
            |e| tracing::warn!(%key, error = %e, "skipping an etcd entry that is not an endpoint"),
        )
        .ok()
}

impl Resolver for EtcdResolver {
    fn resolve<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<EndpointWatch, DiscoveryError>> {
        Box::pin(async move {
            let prefix = format!("{}{service}/", self.prefix);
            let read = |client: EtcdClient, prefix: String| async move {
                let (pairs, revision) = client.get_prefix(&prefix).await?;
                let entries: BTreeMap<String, Endpoint> = pairs
                    .into_iter()
                    .filter_map(|(k, v)| endpoint_of(&k, &v).map(|e| (k, e)))
                    .collect();
                Ok::<_, EtcdError>((entries, revision))
            };
            let (mut entries, mut revision) = read(self.client.clone(), prefix.clone()).await?;
            let (tx, rx) = watch::channel(set_of(&entries));
            let client = self.client.clone();
            let service = service.to_owned();
            tokio::spawn(async move {
                let stop = CancellationToken::new();
                let closed = {
                    let stop = stop.clone();
                    let tx = tx.clone();
                    async move {
                        tx.closed().await;
                        stop.cancel();
                    }
                };
                let follow = async {
                    let mut attempt = 0u32;
                    loop {
                        let result = client
                            .watch_prefix(&prefix, revision + 1, &stop, |key, value| {
                                attempt = 0;
                                match value.and_then(|v| endpoint_of(&key, &v)) {
                                    Some(endpoint) => entries.insert(key, endpoint),
                                    None => entries.remove(&key),
                                };
                                tx.send_replace(set_of(&entries));
                            })
                            .await;
                        if stop.is_cancelled() {
                            return;
                        }
                        let delay = Duration::from_millis(100 << attempt.min(6));
                        attempt += 1;
                        match result {
                            Ok(()) => {
                                tracing::info!(%service, "etcd watch ended; reading the prefix again")
                            }
                            Err(e) => {
                                tracing::warn!(%service, error = %e, ?delay, "etcd watch failed; reading the prefix again")
                            }
                        }
                        tokio::time::sleep(delay).await;
                        match read(client.clone(), prefix.clone()).await {
                            Ok((fresh, rev)) => {
                                entries = fresh;
                                revision = rev;
                                tx.send_if_modified(|old| {
                                    let new = set_of(&entries);
                                    let changed = *old != new;
                                    *old = new;
                                    changed
                                });
                            }
                            Err(e) => {
                                tracing::warn!(%service, error = %e, "reading the prefix failed; keeping the last endpoints")
                            }
                        }
                    }
                };
                tokio::join!(closed, follow);
            });
            Ok(rx)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_follow_the_etcd_convention() {
        assert_eq!(prefix_end("/a/"), b"/a0");
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80");
        assert_eq!(prefix_end(""), [0]);
    }

    #[test]
    fn gateway_integers_are_strings_or_absent() {
        assert_eq!(int(&json!("42")), 42);
        assert_eq!(int(&json!(7)), 7);
        assert_eq!(int(&Value::Null), 0);
    }

    #[test]
    fn endpoints_read_back_as_written_and_bad_entries_are_skipped() {
        let e = Endpoint::new("10.0.0.1:1")
            .with_zone("z")
            .with_meta("v", "2");
        let bytes = serde_json::to_vec(&e).unwrap();
        assert_eq!(endpoint_of("k", &bytes), Some(e));
        assert_eq!(
            endpoint_of("k", br#"{"addr":"h:1"}"#).unwrap().weight,
            super::super::DEFAULT_WEIGHT
        );
        assert_eq!(endpoint_of("k", b"not json"), None);
    }

    #[test]
    fn endpoints_come_from_the_environment_variable() {
        // Read only: the variable is whatever the environment has.
        match std::env::var(ENDPOINTS_ENV) {
            Ok(v) if !v.trim().is_empty() => assert!(EtcdClient::from_env().is_some()),
            _ => assert!(EtcdClient::from_env().is_none()),
        }
        let c = EtcdClient::new(["http://127.0.0.1:2379/", " ", "10.0.0.2:2379"]);
        assert_eq!(c.endpoints(), ["127.0.0.1:2379", "10.0.0.2:2379"]);
    }
}
