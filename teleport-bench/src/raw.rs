//! The raw baseline: the ceiling for a multiplexed request/reply protocol.
//!
//! Frames are length-delimited frames (a 4-byte big-endian length, then
//! the frame, as tokio-util's `LengthDelimitedCodec` writes them) whose
//! first 8 bytes are the request id:
//!
//! ```text
//! +------------+------------+-------------+
//! | len u32 BE | id u64 BE  | payload ... |
//! +------------+------------+-------------+
//! ```
//!
//! Each side runs one task per connection that both reads and writes the
//! socket without blocking on either: the client task keeps the map of
//! pending requests (no lock: only it touches the map) and batches every
//! queued request into one write; the server task echoes every frame it
//! has decoded into one write. There is no per-call allocation beyond the
//! oneshot that hands the reply back, no header and no body codec.

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// Stop taking new work while this much is waiting to be written.
const WRITE_HIGH_WATER: usize = 1 << 20;
/// Free room kept in the read buffer before each read.
const READ_RESERVE: usize = 64 * 1024;
/// The longest frame taken (tokio-util's `LengthDelimitedCodec` default).
const MAX_FRAME: usize = 8 * 1024 * 1024;
/// Rounds of work per poll before yielding to other tasks.
const ROUNDS: usize = 32;

type Request = (Bytes, oneshot::Sender<Bytes>);

/// A client handle: cheap to clone, one connection task behind it.
#[derive(Clone)]
pub struct Client {
    tx: mpsc::Sender<Request>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(client_conn(stream, rx));
        Ok(Client { tx })
    }

    pub async fn call(&self, payload: Bytes) -> Result<Bytes, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((payload, tx))
            .await
            .map_err(|_| "raw: connection closed".to_owned())?;
        rx.await.map_err(|_| "raw: connection closed".to_owned())
    }
}

fn put_frame(wbuf: &mut BytesMut, id: u64, payload: &[u8]) {
    wbuf.reserve(12 + payload.len());
    wbuf.put_u32((8 + payload.len()) as u32);
    wbuf.put_u64(id);
    wbuf.put_slice(payload);
}

/// Writes as much of `wbuf` as the socket takes. `Err` on a broken socket.
fn poll_write_all<S: AsyncWrite + Unpin>(
    io: &mut S,
    cx: &mut std::task::Context<'_>,
    wbuf: &mut BytesMut,
) -> Result<bool, ()> {
    let mut progress = false;
    while !wbuf.is_empty() {
        match Pin::new(&mut *io).poll_write(cx, wbuf) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Err(()),
            Poll::Ready(Ok(n)) => {
                wbuf.advance(n);
                progress = true;
            }
            Poll::Pending => break,
        }
    }
    Ok(progress)
}

/// The length (length field included) of the frame whose first bytes are
/// buffered; 0 when no length field is in.
fn awaiting(rbuf: &[u8]) -> usize {
    match rbuf.first_chunk::<4>() {
        Some(len) => 4 + u32::from_be_bytes(*len) as usize,
        None => 0,
    }
}

/// The next whole frame in `rbuf` (length field stripped), as
/// tokio-util's `LengthDelimitedCodec` reads it, or `None` when it is not
/// all in yet. Frames over 8 MiB (the codec's default limit) are an error.
fn next_frame(rbuf: &mut BytesMut) -> Result<Option<BytesMut>, ()> {
    let total = awaiting(rbuf);
    if total > MAX_FRAME + 4 {
        return Err(());
    }
    if total == 0 || rbuf.len() < total {
        return Ok(None);
    }
    let mut frame = rbuf.split_to(total);
    frame.advance(4);
    Ok(Some(frame))
}

/// Reads once into `rbuf`. `Ok(true)` if bytes came, `Err` at EOF or error.
fn poll_read_some<S: AsyncRead + Unpin>(
    io: &mut S,
    cx: &mut std::task::Context<'_>,
    rbuf: &mut BytesMut,
) -> Result<bool, ()> {
    // The read buffer rule teleport's sessions use (`Connection::reserve_read`):
    // room for the rest of the frame being received and four more of its
    // size, so that copying a partial frame into a new buffer (all that
    // `reserve` can do while frames still share the old one) happens once
    // every few frames. The baseline is to be the better of the two.
    let awaiting = awaiting(rbuf);
    let missing = awaiting.saturating_sub(rbuf.len());
    if rbuf.capacity() - rbuf.len() < missing.max(READ_RESERVE / 4) {
        rbuf.reserve(missing + (awaiting * 4).clamp(READ_RESERVE, 1 << 20));
    }
    match tokio_util::io::poll_read_buf(Pin::new(io), cx, rbuf) {
        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Err(()),
        Poll::Ready(Ok(_)) => Ok(true),
        Poll::Pending => Ok(false),
    }
}

async fn client_conn(mut io: TcpStream, mut rx: mpsc::Receiver<Request>) {
    let mut rbuf = BytesMut::with_capacity(READ_RESERVE);
    let mut wbuf = BytesMut::with_capacity(READ_RESERVE);
    let mut pending: HashMap<u64, oneshot::Sender<Bytes>> = HashMap::new();
    let mut next_id = 0u64;
    let mut open = true;
    poll_fn(|cx| {
        for _ in 0..ROUNDS {
            let mut progress = false;
            while open && wbuf.len() < WRITE_HIGH_WATER {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some((payload, reply))) => {
                        put_frame(&mut wbuf, next_id, &payload);
                        pending.insert(next_id, reply);
                        next_id += 1;
                        progress = true;
                    }
                    Poll::Ready(None) => open = false,
                    Poll::Pending => break,
                }
            }
            if !open && pending.is_empty() && wbuf.is_empty() {
                return Poll::Ready(());
            }
            match poll_write_all(&mut io, cx, &mut wbuf) {
                Ok(p) => progress |= p,
                Err(()) => return Poll::Ready(()),
            }
            match poll_read_some(&mut io, cx, &mut rbuf) {
                Ok(p) => progress |= p,
                Err(()) => return Poll::Ready(()),
            }
            loop {
                match next_frame(&mut rbuf) {
                    Ok(Some(mut frame)) if frame.len() >= 8 => {
                        let id = frame.get_u64();
                        if let Some(reply) = pending.remove(&id) {
                            let _ = reply.send(frame.freeze());
                        }
                    }
                    Ok(None) => break,
                    _ => return Poll::Ready(()),
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

async fn server_conn(mut io: TcpStream) {
    let mut rbuf = BytesMut::with_capacity(READ_RESERVE);
    let mut wbuf = BytesMut::with_capacity(READ_RESERVE);
    poll_fn(|cx| {
        for _ in 0..ROUNDS {
            let mut progress = false;
            while wbuf.len() < WRITE_HIGH_WATER {
                match next_frame(&mut rbuf) {
                    Ok(Some(frame)) => {
                        // The frame already starts with the id: echo it whole.
                        wbuf.reserve(4 + frame.len());
                        wbuf.put_u32(frame.len() as u32);
                        wbuf.put_slice(&frame);
                        progress = true;
                    }
                    Ok(None) => break,
                    Err(_) => return Poll::Ready(()),
                }
            }
            match poll_write_all(&mut io, cx, &mut wbuf) {
                Ok(p) => progress |= p,
                Err(()) => return Poll::Ready(()),
            }
            if wbuf.len() < WRITE_HIGH_WATER {
                match poll_read_some(&mut io, cx, &mut rbuf) {
                    Ok(p) => progress |= p,
                    Err(()) => return Poll::Ready(()),
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

/// Starts the echo server; returns its address.
pub async fn serve() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(server_conn(stream));
        }
    });
    Ok(addr)
}
