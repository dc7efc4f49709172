//! A SPDY/3.1 connection: a reader task that decodes frames and routes them to streams, a writer
//! task that owns the header compressor and the socket's write half, and handles
//! ([`SpdySession`], [`SpdyStream`]) the protocol code uses. Server and client (for tests and
//! crius-testkit) share it; only stream and ping id parity differ.
//!
//! Frames that must stay in order with a stream's DATA (SYN_STREAM, SYN_REPLY, DATA, RST_STREAM
//! sent by the application, GOAWAY) share one bounded queue; frames the reader or a consumer
//! emits on their own (PING replies, WINDOW_UPDATE, refusals) take a small priority queue and are
//! dropped rather than block the reader when it is full (a dropped WINDOW_UPDATE's credit is
//! kept for the next one).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::AbortHandle;

use super::flow::{DEFAULT_WINDOW, FlowControl, RecvWindow, SendWindow};
use super::frame::{self, Frame, FrameDecoder, Setting, rst, setting};
use super::headers::{HeaderCompressor, Headers};
use super::recv::{Received, RecvBuffer};
use crate::error::SpdyError;
use crate::sync::lock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

#[derive(Debug, Clone)]
pub struct SpdyConfig {
    pub role: Role,
    /// The per-stream receive window we advertise (SETTINGS INITIAL_WINDOW_SIZE when not 64 KiB),
    /// which is also each stream's inbound buffer bound.
    pub recv_window: u32,
    /// The connection receive window we grant (raised from 64 KiB by a WINDOW_UPDATE on stream 0
    /// at the start).
    pub conn_recv_window: u32,
    pub flow_control: FlowControl,
    /// The largest DATA payload we send.
    pub max_frame: usize,
    /// The largest frame payload we accept.
    pub max_incoming_frame: usize,
    /// The largest decompressed header block we accept.
    pub max_header_block: usize,
    /// The connection is closed after this long without a frame in either direction.
    pub idle_timeout: Option<Duration>,
    /// How long `close` waits for the peer to close after our GOAWAY, so that nothing it still
    /// sends turns our close into a TCP reset that would destroy data it has not read yet.
    pub linger: Duration,
}

impl SpdyConfig {
    pub fn new(role: Role) -> Self {
        SpdyConfig {
            role,
            recv_window: 1 << 20,
            conn_recv_window: 16 << 20,
            flow_control: FlowControl::Adaptive { grace: Duration::from_millis(500) },
            max_frame: 64 * 1024,
            max_incoming_frame: frame::MAX_PAYLOAD,
            max_header_block: 256 * 1024,
            idle_timeout: None,
            linger: Duration::from_secs(5),
        }
    }
}

enum WriterCmd {
    Frame(Frame),
    /// Flush everything queued before, shut the write half down, then answer.
    Shutdown(oneshot::Sender<()>),
}

struct Slot {
    inner: Arc<StreamInner>,
    send: SendWindow,
    /// For streams we opened: where the SYN_REPLY (or the RST instead of one) goes.
    reply: Option<oneshot::Sender<Result<Headers, u32>>>,
}

struct ConnState {
    streams: HashMap<u32, Slot>,
    conn_send: SendWindow,
    conn_recv: RecvWindow,
    /// The peer's INITIAL_WINDOW_SIZE: the send window of streams opened from now on.
    peer_initial_window: u32,
    /// The peer sent WINDOW_UPDATE or INITIAL_WINDOW_SIZE: it manages windows.
    peer_manages_windows: bool,
    /// Adaptive flow control gave up on the peer's windows.
    peer_ignores_windows: bool,
    next_stream_id: u32,
    next_ping_id: u32,
    pings: HashMap<u32, oneshot::Sender<()>>,
    last_peer_stream: u32,
    goaway_received: bool,
    goaway_sent: bool,
    closed: bool,
}

struct Shared {
    config: SpdyConfig,
    ordered: mpsc::Sender<WriterCmd>,
    urgent: mpsc::Sender<Frame>,
    state: Mutex<ConnState>,
    /// Woken on every change that can unblock a sender: WINDOW_UPDATE, SETTINGS, reset, close.
    window_changed: Notify,
    closed_tx: watch::Sender<bool>,
    /// Milliseconds since `epoch` of the last frame read or written.
    last_activity: AtomicU64,
    epoch: Instant,
    /// Serialises stream creation so SYN_STREAM ids go out in increasing order.
    open_lock: tokio::sync::Mutex<()>,
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

    fn own_parity(&self) -> u32 {
        match self.config.role {
            Role::Client => 1,
            Role::Server => 0,
        }
    }

    fn urgent(&self, frame: Frame) -> bool {
        self.urgent.try_send(frame).is_ok()
    }

    /// Marks the connection gone: every stream ends (after its buffered data), every waiter is
    /// woken, sends fail.
    fn close_all(&self) {
        let (streams, replies, pings) = {
            let mut st = lock(&self.state);
            if st.closed {
                return;
            }
            st.closed = true;
            let mut replies = Vec::new();
            let streams: Vec<_> = st
                .streams
                .drain()
                .map(|(_, mut slot)| {
                    if let Some(r) = slot.reply.take() {
                        replies.push(r);
                    }
                    slot.inner
                })
                .collect();
            let pings: Vec<_> = st.pings.drain().collect();
            (streams, replies, pings)
        };
        // What already arrived stays readable: a server that sends its last output and closes
        // right away must not lose it because the client had not read it yet.
        for s in streams {
            s.remote_fin.store(true, Ordering::Release);
            s.recv.finish();
        }
        for r in replies {
            let _ = r.send(Err(rst::CANCEL));
        }
        drop(pings);
        self.window_changed.notify_waiters();
        let _ = self.closed_tx.send(true);
    }

    /// Forgets a stream both sides are done with.
    fn maybe_remove(&self, id: u32) {
        let mut st = lock(&self.state);
        let done = st.streams.get(&id).is_some_and(|slot| {
            let i = &slot.inner;
            i.recv.is_reset() || (i.local_fin.load(Ordering::Acquire) && i.remote_fin.load(Ordering::Acquire))
        });
        if done {
            st.streams.remove(&id);
        }
    }

    /// Credits `n` consumed bytes to the connection window, sending WINDOW_UPDATE when due.
    fn credit_connection(&self, n: usize) {
        let due = lock(&self.state).conn_recv.consume(n);
        if let Some(delta) = due
            && !self.urgent(Frame::WindowUpdate { stream_id: 0, delta })
        {
            lock(&self.state).conn_recv.restore(delta);
        }
    }
}

struct StreamInner {
    id: u32,
    headers: Headers,
    recv: RecvBuffer,
    recv_window: Mutex<RecvWindow>,
    local_fin: AtomicBool,
    remote_fin: AtomicBool,
}

/// The owner of a connection: dropping it tears the connection down (tasks aborted, socket
/// closed, every stream reset).
pub struct SpdySession {
    shared: Arc<Shared>,
    tasks: Vec<AbortHandle>,
    reader_done: watch::Receiver<bool>,
}

/// Streams the peer opens, in order.
pub struct Incoming {
    rx: mpsc::Receiver<IncomingStream>,
}

impl Incoming {
    /// The next stream the peer opened; None once the connection is gone.
    pub async fn next(&mut self) -> Option<IncomingStream> {
        self.rx.recv().await
    }
}

/// A stream the peer opened and that waits for our SYN_REPLY.
pub struct IncomingStream {
    stream: SpdyStream,
}

impl IncomingStream {
    pub fn id(&self) -> u32 {
        self.stream.id()
    }

    pub fn headers(&self) -> &Headers {
        self.stream.headers()
    }

    /// Sends SYN_REPLY (no headers: what the kubelet sends) and returns the stream.
    pub async fn accept(self) -> Result<SpdyStream, SpdyError> {
        let frame = Frame::SynReply { stream_id: self.stream.id(), fin: false, headers: Headers::new() };
        self.stream.shared.ordered.send(WriterCmd::Frame(frame)).await.map_err(|_| SpdyError::Closed)?;
        Ok(self.stream)
    }

    /// Refuses the stream with RST_STREAM.
    pub async fn reject(self, status: u32) {
        self.stream.reset(status).await;
    }
}

/// One stream. Clones share it; one task at a time may call `recv`.
#[derive(Clone)]
pub struct SpdyStream {
    inner: Arc<StreamInner>,
    shared: Arc<Shared>,
}

impl SpdySession {
    /// Starts the connection's tasks on `io` (already past the HTTP upgrade).
    pub fn new<IO>(io: IO, config: SpdyConfig) -> (SpdySession, Incoming)
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (ordered_tx, ordered_rx) = mpsc::channel(256);
        let (urgent_tx, urgent_rx) = mpsc::channel(1024);
        let (incoming_tx, incoming_rx) = mpsc::channel(64);
        let (closed_tx, _) = watch::channel(false);
        let first_stream = match config.role {
            Role::Client => 1,
            Role::Server => 2,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(ConnState {
                streams: HashMap::new(),
                conn_send: SendWindow::new(DEFAULT_WINDOW),
                conn_recv: RecvWindow::new(config.conn_recv_window.max(DEFAULT_WINDOW)),
                peer_initial_window: DEFAULT_WINDOW,
                peer_manages_windows: false,
                peer_ignores_windows: false,
                next_stream_id: first_stream,
                next_ping_id: first_stream,
                pings: HashMap::new(),
                last_peer_stream: 0,
                goaway_received: false,
                goaway_sent: false,
                closed: false,
            }),
            config,
            ordered: ordered_tx,
            urgent: urgent_tx,
            window_changed: Notify::new(),
            closed_tx,
            last_activity: AtomicU64::new(0),
            epoch: Instant::now(),
            open_lock: tokio::sync::Mutex::new(()),
        });
        // Our windows, announced before anything else (both are frame types Go's framer knows,
        // and spdystream ignores them harmlessly).
        let recv_window = shared.config.recv_window;
        if recv_window != DEFAULT_WINDOW {
            let entries = vec![Setting { flags: 0, id: setting::INITIAL_WINDOW_SIZE, value: recv_window }];
            let _ = shared.ordered.try_send(WriterCmd::Frame(Frame::Settings { clear: false, entries }));
        }
        if shared.config.conn_recv_window > DEFAULT_WINDOW {
            let delta = shared.config.conn_recv_window - DEFAULT_WINDOW;
            let _ = shared.ordered.try_send(WriterCmd::Frame(Frame::WindowUpdate { stream_id: 0, delta }));
        }
        let (rd, wr) = tokio::io::split(io);
        let (done_tx, reader_done) = watch::channel(false);
        let reader = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let result = read_loop(&shared, rd, incoming_tx).await;
                if let Err(e) = &result {
                    tracing::debug!(error = %e, "SPDY connection reader stopped");
                }
                shared.close_all();
                let _ = done_tx.send(true);
            })
        };
        let writer = {
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = write_loop(&shared, wr, ordered_rx, urgent_rx).await {
                    tracing::debug!(error = %e, "SPDY connection writer stopped");
                    shared.close_all();
                }
            })
        };
        let tasks = vec![reader.abort_handle(), writer.abort_handle()];
        (SpdySession { shared, tasks, reader_done }, Incoming { rx: incoming_rx })
    }

    /// Opens a stream and waits for the peer's SYN_REPLY.
    pub async fn open_stream(&self, headers: Headers) -> Result<SpdyStream, SpdyError> {
        let (tx, rx) = oneshot::channel();
        let stream = {
            let _order = self.shared.open_lock.lock().await;
            let stream = {
                let mut st = lock(&self.shared.state);
                if st.closed || st.goaway_received || st.goaway_sent {
                    return Err(SpdyError::Closed);
                }
                let id = st.next_stream_id;
                st.next_stream_id += 2;
                let inner = Arc::new(StreamInner::new(id, headers.clone(), self.shared.config.recv_window));
                let send = SendWindow::new(st.peer_initial_window);
                st.streams.insert(id, Slot { inner: inner.clone(), send, reply: Some(tx) });
                SpdyStream { inner, shared: self.shared.clone() }
            };
            let syn =
                Frame::SynStream { stream_id: stream.id(), associated_to: 0, priority: 0, slot: 0, flags: 0, headers };
            self.shared.ordered.send(WriterCmd::Frame(syn)).await.map_err(|_| SpdyError::Closed)?;
            stream
        };
        match rx.await {
            Ok(Ok(_)) => Ok(stream),
            Ok(Err(status)) => Err(SpdyError::Reset(stream.id(), status)),
            Err(_) => Err(SpdyError::Closed),
        }
    }

    /// Sends a PING and waits for its echo.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, SpdyError> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut st = lock(&self.shared.state);
            if st.closed {
                return Err(SpdyError::Closed);
            }
            let id = st.next_ping_id;
            st.next_ping_id = st.next_ping_id.wrapping_add(2).max(1);
            st.pings.insert(id, tx);
            id
        };
        let start = Instant::now();
        if !self.shared.urgent(Frame::Ping { id }) {
            return Err(SpdyError::Closed);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => Ok(start.elapsed()),
            _ => {
                lock(&self.shared.state).pings.remove(&id);
                Err(SpdyError::Closed)
            }
        }
    }

    /// Closes gracefully: GOAWAY after everything queued, the write half shut down, then up to
    /// `linger` for the peer to close its side.
    pub async fn close(&self) {
        let last_good = {
            let mut st = lock(&self.shared.state);
            st.goaway_sent = true;
            st.last_peer_stream
        };
        let goaway = Frame::GoAway { last_good_stream_id: last_good, status: 0 };
        let (tx, rx) = oneshot::channel();
        let queued = self.shared.ordered.send(WriterCmd::Frame(goaway)).await.is_ok()
            && self.shared.ordered.send(WriterCmd::Shutdown(tx)).await.is_ok();
        if queued {
            let _ = tokio::time::timeout(self.shared.config.linger, rx).await;
        }
        let mut done = self.reader_done.clone();
        let _ = tokio::time::timeout(self.shared.config.linger, done.wait_for(|d| *d)).await;
        self.shared.close_all();
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Resolves once the connection is gone (the peer closed it, it failed, or it idled out).
    pub async fn closed(&self) {
        let mut rx = self.shared.closed_tx.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.shared.state).closed
    }

    /// Streams currently open (for tests and diagnostics).
    pub fn open_streams(&self) -> usize {
        lock(&self.shared.state).streams.len()
    }
}

impl Drop for SpdySession {
    fn drop(&mut self) {
        self.shared.close_all();
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl StreamInner {
    fn new(id: u32, headers: Headers, window: u32) -> Self {
        StreamInner {
            id,
            headers,
            recv: RecvBuffer::new(window as usize),
            recv_window: Mutex::new(RecvWindow::new(window)),
            local_fin: AtomicBool::new(false),
            remote_fin: AtomicBool::new(false),
        }
    }
}

impl SpdyStream {
    pub fn id(&self) -> u32 {
        self.inner.id
    }

    /// The headers of the SYN_STREAM that opened the stream.
    pub fn headers(&self) -> &Headers {
        &self.inner.headers
    }

    /// The next chunk of data; None when the peer finished the stream; an error when it was
    /// reset (or the connection went away).
    pub async fn recv(&self) -> Result<Option<Bytes>, SpdyError> {
        match self.inner.recv.pop().await {
            Received::Data(data) => {
                self.credit(data.len());
                Ok(Some(data))
            }
            Received::Fin => Ok(None),
            Received::Reset(status) => Err(SpdyError::Reset(self.id(), status)),
        }
    }

    /// Returns credit for consumed bytes to the stream's and the connection's windows.
    fn credit(&self, n: usize) {
        if !self.inner.remote_fin.load(Ordering::Acquire) && !self.inner.recv.is_reset() {
            let due = lock(&self.inner.recv_window).consume(n);
            if let Some(delta) = due
                && !self.shared.urgent(Frame::WindowUpdate { stream_id: self.id(), delta })
            {
                lock(&self.inner.recv_window).restore(delta);
            }
        }
        self.shared.credit_connection(n);
    }

    /// Sends `data` as DATA frames, within the peer's windows.
    pub async fn send(&self, mut data: Bytes) -> Result<(), SpdyError> {
        if self.inner.local_fin.load(Ordering::Acquire) {
            return Err(SpdyError::Protocol("data after FIN"));
        }
        while !data.is_empty() {
            let n = self.acquire(data.len().min(self.shared.config.max_frame)).await?;
            let chunk = data.split_to(n);
            let frame = Frame::Data { stream_id: self.id(), fin: false, data: chunk };
            self.shared.ordered.send(WriterCmd::Frame(frame)).await.map_err(|_| SpdyError::Closed)?;
        }
        Ok(())
    }

    /// Waits for up to `want` bytes of send credit and takes it.
    async fn acquire(&self, want: usize) -> Result<usize, SpdyError> {
        let mut exhausted_since: Option<Instant> = None;
        loop {
            let notified = self.shared.window_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let grace = {
                let mut st = lock(&self.shared.state);
                if st.closed {
                    return Err(SpdyError::Closed);
                }
                if self.inner.recv.is_reset() {
                    return Err(SpdyError::Reset(self.id(), rst::CANCEL));
                }
                let enforce = match self.shared.config.flow_control {
                    FlowControl::Strict => true,
                    FlowControl::Adaptive { .. } => !st.peer_ignores_windows,
                };
                let conn_avail = st.conn_send.available();
                let Some(slot) = st.streams.get_mut(&self.inner.id) else {
                    return Err(SpdyError::Reset(self.id(), rst::CANCEL));
                };
                let avail = slot.send.available().min(conn_avail);
                if !enforce || avail > 0 {
                    let n = if enforce { want.min(avail) } else { want };
                    slot.send.consume(n);
                    st.conn_send.consume(n);
                    return Ok(n);
                }
                match self.shared.config.flow_control {
                    FlowControl::Adaptive { grace } if !st.peer_manages_windows => {
                        let since = *exhausted_since.get_or_insert_with(Instant::now);
                        Some(grace.saturating_sub(since.elapsed()))
                    }
                    _ => None,
                }
            };
            match grace {
                None => notified.await,
                Some(left) => {
                    if tokio::time::timeout(left, notified).await.is_err() {
                        let mut st = lock(&self.shared.state);
                        if !st.peer_manages_windows && !st.peer_ignores_windows {
                            tracing::debug!(
                                stream = self.id(),
                                "the SPDY peer left its window exhausted and never sent WINDOW_UPDATE: \
                                 ignoring its windows (moby/spdystream does no flow control)"
                            );
                            st.peer_ignores_windows = true;
                        }
                    }
                }
            }
        }
    }

    /// Half-closes our side (an empty DATA frame with FIN). Idempotent.
    pub async fn finish(&self) -> Result<(), SpdyError> {
        if self.inner.local_fin.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let frame = Frame::Data { stream_id: self.id(), fin: true, data: Bytes::new() };
        let sent = self.shared.ordered.send(WriterCmd::Frame(frame)).await;
        self.shared.maybe_remove(self.id());
        sent.map_err(|_| SpdyError::Closed)
    }

    /// Resets the stream (RST_STREAM): both directions end, buffered data is dropped.
    pub async fn reset(&self, status: u32) {
        if self.inner.recv.is_reset() {
            return;
        }
        self.inner.recv.reset(status);
        self.inner.local_fin.store(true, Ordering::Release);
        let _ = self.shared.ordered.send(WriterCmd::Frame(Frame::RstStream { stream_id: self.id(), status })).await;
        self.shared.maybe_remove(self.id());
        self.shared.window_changed.notify_waiters();
    }

    pub fn is_reset(&self) -> bool {
        self.inner.recv.is_reset()
    }
}

async fn read_loop<R>(shared: &Arc<Shared>, mut rd: R, incoming: mpsc::Sender<IncomingStream>) -> Result<(), SpdyError>
where
    R: AsyncRead + Unpin,
{
    let mut decoder = FrameDecoder::new(shared.config.max_incoming_frame, shared.config.max_header_block);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        while let Some(frame) = decoder.decode(&mut buf)? {
            shared.touch();
            handle_frame(shared, frame, &incoming).await?;
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let n = match shared.config.idle_timeout {
            None => rd.read_buf(&mut buf).await?,
            Some(idle) => loop {
                let left = idle.saturating_sub(shared.idle_for());
                if left.is_zero() {
                    return Err(SpdyError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the streaming connection was idle too long",
                    )));
                }
                // read_buf is cancel-safe: a timed-out read loses nothing.
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

async fn handle_frame(
    shared: &Arc<Shared>,
    frame: Frame,
    incoming: &mpsc::Sender<IncomingStream>,
) -> Result<(), SpdyError> {
    match frame {
        Frame::Data { stream_id, fin, data } => {
            let inner = lock(&shared.state).streams.get(&stream_id).map(|s| s.inner.clone());
            let Some(inner) = inner else {
                // A stream already gone (spdystream drops such data too); its bytes still count
                // against the connection window, so return them.
                shared.credit_connection(data.len());
                return Ok(());
            };
            let len = data.len();
            if len > 0 && !inner.recv.push(data).await {
                shared.credit_connection(len);
            }
            if fin {
                remote_finish(shared, &inner);
            }
        }
        Frame::SynStream { stream_id, flags, headers, .. } => {
            let refuse = |status| shared.urgent(Frame::RstStream { stream_id, status });
            let stream = {
                let mut st = lock(&shared.state);
                if stream_id % 2 == shared.own_parity() || stream_id <= st.last_peer_stream {
                    drop(st);
                    refuse(rst::PROTOCOL_ERROR);
                    return Ok(());
                }
                st.last_peer_stream = stream_id;
                if st.goaway_sent || st.closed {
                    drop(st);
                    refuse(rst::REFUSED_STREAM);
                    return Ok(());
                }
                let inner = Arc::new(StreamInner::new(stream_id, headers, shared.config.recv_window));
                if flags & frame::FLAG_UNIDIRECTIONAL != 0 {
                    inner.local_fin.store(true, Ordering::Release);
                }
                let send = SendWindow::new(st.peer_initial_window);
                st.streams.insert(stream_id, Slot { inner: inner.clone(), send, reply: None });
                SpdyStream { inner, shared: shared.clone() }
            };
            if flags & frame::FLAG_FIN != 0 {
                remote_finish(shared, &stream.inner);
            }
            if incoming.try_send(IncomingStream { stream }).is_err() {
                // Nobody takes streams (or too many wait): refuse rather than stall the reader.
                lock(&shared.state).streams.remove(&stream_id);
                refuse(rst::REFUSED_STREAM);
            }
        }
        Frame::SynReply { stream_id, fin, headers } => {
            let (reply, inner) = {
                let mut st = lock(&shared.state);
                match st.streams.get_mut(&stream_id) {
                    Some(slot) => (slot.reply.take(), Some(slot.inner.clone())),
                    None => (None, None),
                }
            };
            if let Some(reply) = reply {
                let _ = reply.send(Ok(headers));
            }
            if let (true, Some(inner)) = (fin, inner) {
                remote_finish(shared, &inner);
            }
        }
        Frame::Headers { stream_id, fin: true, .. } => {
            let inner = lock(&shared.state).streams.get(&stream_id).map(|s| s.inner.clone());
            if let Some(inner) = inner {
                remote_finish(shared, &inner);
            }
        }
        Frame::RstStream { stream_id, status } => {
            let slot = lock(&shared.state).streams.remove(&stream_id);
            if let Some(mut slot) = slot {
                slot.inner.recv.reset(status);
                if let Some(reply) = slot.reply.take() {
                    let _ = reply.send(Err(status));
                }
                shared.window_changed.notify_waiters();
            }
        }
        Frame::Settings { entries, .. } => {
            for e in entries {
                if e.id == setting::INITIAL_WINDOW_SIZE && i64::from(e.value) <= super::flow::MAX_WINDOW {
                    let mut st = lock(&shared.state);
                    let old = st.peer_initial_window;
                    for slot in st.streams.values_mut() {
                        slot.send.adjust(old, e.value);
                    }
                    st.peer_initial_window = e.value;
                    st.peer_manages_windows = true;
                }
            }
            shared.window_changed.notify_waiters();
        }
        Frame::Ping { id } => {
            if id % 2 == shared.own_parity() % 2 {
                // Odd ids are the client's, even the server's (2.6.5): this answers one of ours.
                let pending = lock(&shared.state).pings.remove(&id);
                if let Some(p) = pending {
                    let _ = p.send(());
                }
            } else {
                shared.urgent(Frame::Ping { id });
            }
        }
        Frame::GoAway { .. } => {
            lock(&shared.state).goaway_received = true;
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let mut st = lock(&shared.state);
            st.peer_manages_windows = true;
            if stream_id == 0 {
                if st.conn_send.grow(delta).is_err() {
                    return Err(SpdyError::FlowControl("the connection window overflowed"));
                }
            } else if let Some(slot) = st.streams.get_mut(&stream_id)
                && slot.send.grow(delta).is_err()
            {
                drop(st);
                shared.urgent(Frame::RstStream { stream_id, status: rst::FLOW_CONTROL_ERROR });
            }
            shared.window_changed.notify_waiters();
        }
        Frame::Headers { .. } | Frame::Unknown { .. } => {}
    }
    Ok(())
}

fn remote_finish(shared: &Shared, inner: &StreamInner) {
    inner.remote_fin.store(true, Ordering::Release);
    inner.recv.finish();
    shared.maybe_remove(inner.id);
}

async fn write_loop<W>(
    shared: &Arc<Shared>,
    mut wr: W,
    mut ordered: mpsc::Receiver<WriterCmd>,
    mut urgent: mpsc::Receiver<Frame>,
) -> Result<(), SpdyError>
where
    W: AsyncWrite + Unpin,
{
    let mut compressor = HeaderCompressor::new()?;
    let mut out = BytesMut::with_capacity(128 * 1024);
    let mut closed = shared.closed_tx.subscribe();
    loop {
        let mut shutdown = None;
        let first = tokio::select! {
            biased;
            f = urgent.recv() => f.map(WriterCmd::Frame),
            c = ordered.recv() => c,
            _ = closed.wait_for(|c| *c) => None,
        };
        let Some(first) = first else {
            // The connection is gone: write what is already queued, best effort, then stop.
            while let Ok(cmd) = ordered.try_recv() {
                if let WriterCmd::Frame(f) = cmd {
                    f.encode(&mut out, &mut compressor)?;
                }
            }
            let _ = wr.write_all(&out).await;
            let _ = wr.shutdown().await;
            return Ok(());
        };
        let mut next = Some(first);
        // Batch what is already queued into one write, urgent frames first.
        while let Some(cmd) = next.take() {
            match cmd {
                WriterCmd::Frame(f) => f.encode(&mut out, &mut compressor)?,
                WriterCmd::Shutdown(done) => {
                    shutdown = Some(done);
                    break;
                }
            }
            if out.len() >= 256 * 1024 {
                break;
            }
            next = urgent.try_recv().ok().map(WriterCmd::Frame).or_else(|| ordered.try_recv().ok());
        }
        if !out.is_empty() {
            wr.write_all(&out).await?;
            wr.flush().await?;
            out.clear();
            shared.touch();
        }
        if let Some(done) = shutdown {
            let _ = wr.shutdown().await;
            let _ = done.send(());
            // Keep answering nothing more: drain until the session is dropped.
            let _ = closed.wait_for(|c| *c).await;
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests;
