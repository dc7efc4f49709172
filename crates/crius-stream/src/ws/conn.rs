//! A WebSocket connection past the handshake: a reader task (frames, fragments, PING/PONG,
//! the closing handshake) and a writer task, for either side (a client masks what it sends).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

use super::frame::{self, FrameDecoder, Message, Opcode, Reassembler};
use crate::error::WsError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsRole {
    Client,
    Server,
}

#[derive(Debug, Clone)]
pub struct WsConfig {
    pub role: WsRole,
    /// The largest message accepted (after reassembly).
    pub max_message: usize,
    pub idle_timeout: Option<Duration>,
    /// How long `close` waits for the peer's closing frame.
    pub linger: Duration,
}

impl WsConfig {
    pub fn new(role: WsRole) -> Self {
        WsConfig { role, max_message: 32 << 20, idle_timeout: None, linger: Duration::from_secs(5) }
    }
}

enum Out {
    Frame(Opcode, Bytes),
    /// Send a Close frame, flush, shut the write half down, answer.
    Close(u16, oneshot::Sender<()>),
}

struct Shared {
    out: mpsc::Sender<Out>,
    closed: watch::Sender<bool>,
    last_activity: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// The owner of a connection; dropping it closes the socket.
pub struct WsConnection {
    shared: Arc<Shared>,
    tasks: Vec<AbortHandle>,
    reader_done: watch::Receiver<bool>,
    linger: Duration,
}

/// Sends messages; clones share the connection.
#[derive(Clone)]
pub struct WsSender {
    shared: Arc<Shared>,
}

/// Whole data messages (text or binary) from the peer; None once it closed.
pub struct WsReceiver {
    rx: mpsc::Receiver<Message>,
}

impl WsReceiver {
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

impl WsConnection {
    pub fn new<IO>(io: IO, config: WsConfig) -> (WsConnection, WsSender, WsReceiver)
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (out_tx, out_rx) = mpsc::channel(256);
        let (msg_tx, msg_rx) = mpsc::channel(64);
        let (closed, _) = watch::channel(false);
        let shared = Arc::new(Shared { out: out_tx, closed, last_activity: AtomicU64::new(0), epoch: Instant::now() });
        let (rd, wr) = tokio::io::split(io);
        let (done_tx, reader_done) = watch::channel(false);
        let reader = {
            let shared = shared.clone();
            let config = config.clone();
            tokio::spawn(async move {
                if let Err(e) = read_loop(&shared, &config, rd, msg_tx).await {
                    tracing::debug!(error = %e, "WebSocket reader stopped");
                }
                let _ = shared.closed.send(true);
                let _ = done_tx.send(true);
            })
        };
        let writer = {
            let shared = shared.clone();
            let mask = config.role == WsRole::Client;
            tokio::spawn(async move {
                if let Err(e) = write_loop(&shared, wr, out_rx, mask).await {
                    tracing::debug!(error = %e, "WebSocket writer stopped");
                }
                let _ = shared.closed.send(true);
            })
        };
        let conn = WsConnection {
            shared: shared.clone(),
            tasks: vec![reader.abort_handle(), writer.abort_handle()],
            reader_done,
            linger: config.linger,
        };
        (conn, WsSender { shared }, WsReceiver { rx: msg_rx })
    }

    /// The closing handshake: Close(1000) after everything queued, then up to `linger` for the
    /// peer's Close (or EOF).
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.out.send(Out::Close(1000, tx)).await.is_ok() {
            let _ = tokio::time::timeout(self.linger, rx).await;
        }
        let mut done = self.reader_done.clone();
        let _ = tokio::time::timeout(self.linger, done.wait_for(|d| *d)).await;
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.shared.closed.send(true);
    }

    /// Resolves once the connection is gone.
    pub async fn closed(&self) {
        let mut rx = self.shared.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

impl Drop for WsConnection {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.shared.closed.send(true);
    }
}

impl WsSender {
    pub async fn send_binary(&self, data: Bytes) -> Result<(), WsError> {
        self.shared.out.send(Out::Frame(Opcode::Binary, data)).await.map_err(|_| WsError::Closed)
    }

    pub async fn send_text(&self, data: Bytes) -> Result<(), WsError> {
        self.shared.out.send(Out::Frame(Opcode::Text, data)).await.map_err(|_| WsError::Closed)
    }

    pub async fn ping(&self, data: Bytes) -> Result<(), WsError> {
        self.shared.out.send(Out::Frame(Opcode::Ping, data)).await.map_err(|_| WsError::Closed)
    }

    pub fn is_closed(&self) -> bool {
        *self.shared.closed.borrow()
    }
}

async fn read_loop<R>(shared: &Shared, config: &WsConfig, mut rd: R, msgs: mpsc::Sender<Message>) -> Result<(), WsError>
where
    R: AsyncRead + Unpin,
{
    let decoder = FrameDecoder::new(config.role == WsRole::Server, config.max_message);
    let mut reassembler = Reassembler::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        while let Some(f) = decoder.decode(&mut buf)? {
            shared.touch();
            match reassembler.push(f, config.max_message)? {
                None | Some(Message::Pong(_)) => {}
                Some(Message::Ping(p)) => {
                    let _ = shared.out.try_send(Out::Frame(Opcode::Pong, p));
                }
                Some(Message::Close(code, _)) => {
                    // Answer the closing handshake (a no-op if ours went first), then stop.
                    let (tx, _rx) = oneshot::channel();
                    let _ = shared.out.try_send(Out::Close(if code == 1005 { 1000 } else { code }, tx));
                    return Ok(());
                }
                Some(m) => {
                    if msgs.send(m).await.is_err() {
                        // Nobody reads messages any more: drop them, keep the connection.
                    }
                }
            }
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let n = match config.idle_timeout {
            None => rd.read_buf(&mut buf).await?,
            Some(idle) => loop {
                let left = idle.saturating_sub(shared.idle_for());
                if left.is_zero() {
                    return Err(WsError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the streaming connection was idle too long",
                    )));
                }
                if let Ok(read) = tokio::time::timeout(left, rd.read_buf(&mut buf)).await {
                    break read?;
                }
            },
        };
        if n == 0 {
            return Ok(());
        }
    }
}

async fn write_loop<W>(shared: &Shared, mut wr: W, mut out: mpsc::Receiver<Out>, mask: bool) -> Result<(), WsError>
where
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(128 * 1024);
    let mut closed = shared.closed.subscribe();
    let mut close_sent = false;
    loop {
        let first = tokio::select! {
            biased;
            m = out.recv() => m,
            _ = closed.wait_for(|c| *c) => None,
        };
        let Some(first) = first else {
            let _ = wr.shutdown().await;
            return Ok(());
        };
        let mut next = Some(first);
        let mut shutdown = None;
        while let Some(msg) = next.take() {
            match msg {
                Out::Frame(opcode, data) => {
                    if !close_sent {
                        frame::encode(&mut buf, true, opcode, &data, mask.then(mask_key));
                    }
                }
                Out::Close(code, done) => {
                    if !close_sent {
                        frame::encode(&mut buf, true, Opcode::Close, &code.to_be_bytes(), mask.then(mask_key));
                        close_sent = true;
                    }
                    shutdown = Some(done);
                    break;
                }
            }
            if buf.len() >= 256 * 1024 {
                break;
            }
            next = out.try_recv().ok();
        }
        if !buf.is_empty() {
            wr.write_all(&buf).await?;
            wr.flush().await?;
            buf.clear();
            shared.touch();
        }
        if let Some(done) = shutdown {
            let _ = wr.shutdown().await;
            let _ = done.send(());
            let _ = closed.wait_for(|c| *c).await;
            return Ok(());
        }
    }
}

/// A client's masking key: it only has to be unpredictable to the page of a browser, which is
/// not our threat model, but RFC 6455 asks for fresh random keys, and getrandom is at hand.
fn mask_key() -> [u8; 4] {
    let mut key = [0u8; 4];
    if getrandom::fill(&mut key).is_err() {
        let nanos = Instant::now().elapsed().subsec_nanos() ^ std::process::id();
        key = nanos.to_be_bytes();
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_ping_and_close() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (server, s_tx, mut s_rx) = WsConnection::new(a, WsConfig::new(WsRole::Server));
        let (client, c_tx, mut c_rx) = WsConnection::new(b, WsConfig::new(WsRole::Client));
        c_tx.send_binary(Bytes::from_static(b"\x00hi")).await.unwrap();
        assert_eq!(s_rx.recv().await, Some(Message::Binary(Bytes::from_static(b"\x00hi"))));
        let big = Bytes::from(vec![9u8; 200_000]);
        s_tx.send_text(big.clone()).await.unwrap();
        assert_eq!(c_rx.recv().await, Some(Message::Text(big)));
        c_tx.ping(Bytes::from_static(b"p")).await.unwrap();
        let closing = tokio::spawn(async move {
            server.close().await;
        });
        // The client sees the close, answers, and both sides end.
        assert_eq!(c_rx.recv().await, None);
        tokio::time::timeout(Duration::from_secs(2), closing).await.unwrap().unwrap();
        tokio::time::timeout(Duration::from_secs(2), client.closed()).await.unwrap();
        assert!(s_tx.send_binary(Bytes::new()).await.is_err() || s_tx.is_closed());
    }

    #[tokio::test]
    async fn idle_timeout_closes() {
        let (a, _b) = tokio::io::duplex(1024);
        let config = WsConfig { idle_timeout: Some(Duration::from_millis(100)), ..WsConfig::new(WsRole::Server) };
        let (server, _tx, _rx) = WsConnection::new(a, config);
        tokio::time::timeout(Duration::from_secs(2), server.closed()).await.unwrap();
    }
}
