//! The streaming server: hands out single-use URLs for validated CRI requests, accepts
//! connections (TLS optional), and routes `/exec/<token>`, `/attach/<token>` and
//! `/portforward/<token>` (GET or POST, as the kubelet routes them) to a SPDY or WebSocket
//! session. Everything else is a 404, and so is a token that was used, expired or never issued.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::backend::{AttachBackend, ExecBackend, PortForwardBackend};
use crate::error::{RequestError, ServerError};
use crate::http::{self, Conn, Prefixed, Request};
use crate::protocol::{self, RcVersion};
use crate::remotecommand::{self, Command, Timeouts};
use crate::request::{AttachRequest, ExecRequest, Pending, PortForwardRequest};
use crate::spdy::{FlowControl, Role, SpdyConfig, SpdySession};
use crate::token::TokenCache;
use crate::ws::handshake;
use crate::ws::{WsConfig, WsConnection, WsRole};
use crate::{portforward, tls};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free one.
    pub addr: SocketAddr,
    /// The URLs' base (`http://host:port`); default: the scheme and the bound address.
    pub base_url: Option<String>,
    /// Serve HTTPS with this certificate and key (PEM). Meant for non-loopback addresses.
    pub tls: Option<TlsFiles>,
    /// A session with no traffic either way for this long is closed (the kubelet: 4 h).
    pub idle_timeout: Duration,
    /// How long a SPDY client has to open its streams (the kubelet: 30 s).
    pub stream_creation_timeout: Duration,
    /// How long a URL stays valid (the kubelet: 1 min).
    pub token_ttl: Duration,
    /// URLs issued and not yet used, at most (the kubelet: 1000).
    pub max_in_flight: usize,
    /// How long a client has to send its request head.
    pub request_timeout: Duration,
    /// After a command ends, how long its last output may take to reach the client.
    pub drain_timeout: Duration,
    /// How SPDY sessions treat the client's flow-control windows.
    pub flow_control: FlowControl,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base_url: None,
            tls: None,
            idle_timeout: Duration::from_secs(4 * 3600),
            stream_creation_timeout: Duration::from_secs(30),
            token_ttl: Duration::from_secs(60),
            max_in_flight: 1000,
            request_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            flow_control: FlowControl::Adaptive { grace: Duration::from_millis(500) },
        }
    }
}

/// The runtime behind the server.
#[derive(Clone)]
pub struct Backends {
    pub exec: Arc<dyn ExecBackend>,
    pub attach: Arc<dyn AttachBackend>,
    pub port_forward: Arc<dyn PortForwardBackend>,
}

struct Inner {
    config: ServerConfig,
    backends: Backends,
    tokens: TokenCache,
    base_url: String,
    active: AtomicUsize,
    shutdown: watch::Receiver<bool>,
}

pub struct StreamServer {
    inner: Arc<Inner>,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept: AbortHandle,
}

impl StreamServer {
    /// Binds and starts serving (on the current tokio runtime).
    pub async fn start(config: ServerConfig, backends: Backends) -> Result<StreamServer, ServerError> {
        let acceptor = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let listener =
            TcpListener::bind(config.addr).await.map_err(|source| ServerError::Bind { addr: config.addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: config.addr, source })?;
        if acceptor.is_none() && !local_addr.ip().is_loopback() {
            tracing::warn!(
                addr = %local_addr,
                "the streaming server listens on a non-loopback address without TLS: anyone who learns a URL \
                 within its minute can use it"
            );
        }
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{local_addr}"))
            .trim_end_matches('/')
            .to_string();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            tokens: TokenCache::new(config.token_ttl, config.max_in_flight),
            config,
            backends,
            base_url,
            active: AtomicUsize::new(0),
            shutdown: shutdown_rx,
        });
        let accept = tokio::spawn(accept_loop(inner.clone(), listener, acceptor)).abort_handle();
        tracing::info!(addr = %local_addr, "streaming server listening");
        Ok(StreamServer { inner, local_addr, shutdown: shutdown_tx, accept })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The URL for a validated Exec (the CRI ExecResponse.url).
    pub fn get_exec(&self, request: ExecRequest) -> Result<String, RequestError> {
        request.validate()?;
        self.issue(Pending::Exec(request))
    }

    pub fn get_attach(&self, request: AttachRequest) -> Result<String, RequestError> {
        request.validate()?;
        self.issue(Pending::Attach(request))
    }

    pub fn get_port_forward(&self, request: PortForwardRequest) -> Result<String, RequestError> {
        request.validate()?;
        self.issue(Pending::PortForward(request))
    }

    fn issue(&self, pending: Pending) -> Result<String, RequestError> {
        let kind = pending.kind();
        let token = self.inner.tokens.insert(pending)?;
        Ok(format!("{}/{kind}/{token}", self.inner.base_url))
    }

    /// Connections being served now.
    pub fn active_sessions(&self) -> usize {
        self.inner.active.load(Ordering::SeqCst)
    }

    /// Stops accepting and ends every session (their processes are killed, sockets closed).
    pub fn shutdown(&self) {
        self.accept.abort();
        let _ = self.shutdown.send(true);
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accepting a streaming connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let inner = inner.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _active = ActiveGuard::new(&inner.active);
            let mut shutdown = inner.shutdown.clone();
            tokio::select! {
                _ = serve_connection(&inner, stream, tls) => {}
                _ = shutdown.wait_for(|s| *s) => {}
            }
            tracing::debug!(%peer, "streaming connection done");
        });
    }
}

struct ActiveGuard<'a>(&'a AtomicUsize);

impl<'a> ActiveGuard<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(n)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve_connection(inner: &Inner, stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
    let timeout = inner.config.request_timeout;
    let mut io: Box<dyn Conn> = match tls {
        None => Box::new(stream),
        Some(acceptor) => match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Box::new(tls),
            _ => return,
        },
    };
    let (request, rest) = match tokio::time::timeout(timeout, http::read_request(&mut io, 16 * 1024)).await {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(http::HttpError::Malformed(_) | http::HttpError::TooLarge(_))) => {
            let _ = http::respond(&mut io, 400, "Bad Request", &[], "bad request\n").await;
            return;
        }
        _ => return,
    };
    let Some(pending) = route(inner, &request) else {
        let _ = http::respond(&mut io, 404, "Not Found", &[], "404 page not found\n").await;
        return;
    };
    let io = Prefixed::new(rest, io);
    if request.is_websocket() {
        serve_websocket(inner, io, &request, pending).await;
    } else {
        serve_spdy(inner, io, &request, pending).await;
    }
}

/// The pending request a path's token names, consumed; None for anything that is not ours.
fn route(inner: &Inner, request: &Request) -> Option<Pending> {
    if request.method != "GET" && request.method != "POST" {
        return None;
    }
    let mut parts = request.path.strip_prefix('/')?.split('/');
    let (kind, token) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || !matches!(kind, "exec" | "attach" | "portforward") {
        return None;
    }
    let pending = inner.tokens.consume(token)?;
    (pending.kind() == kind).then_some(pending)
}

fn timeouts(inner: &Inner) -> Timeouts {
    Timeouts { stream_creation: inner.config.stream_creation_timeout, drain: inner.config.drain_timeout }
}

fn command(inner: &Inner, pending: Pending) -> Result<Command, PortForwardRequest> {
    match pending {
        Pending::Exec(r) => Ok(Command::Exec(r, inner.backends.exec.clone())),
        Pending::Attach(r) => Ok(Command::Attach(r, inner.backends.attach.clone())),
        Pending::PortForward(r) => Err(r),
    }
}

async fn serve_spdy<IO: Conn>(inner: &Inner, mut io: Prefixed<IO>, request: &Request, pending: Pending) {
    let supported: &[&str] = match pending {
        Pending::PortForward(_) => &[protocol::PORT_FORWARD_V1],
        _ => &protocol::SPDY_RC_PROTOCOLS,
    };
    let offered = request.all(protocol::PROTOCOL_VERSION_HEADER);
    let chosen = match protocol::negotiate_spdy(offered, supported) {
        protocol::Negotiated::Chosen(p) => Some(p),
        protocol::Negotiated::NotOffered => None,
        protocol::Negotiated::NoMatch => {
            let offered: Vec<&str> = request.all(protocol::PROTOCOL_VERSION_HEADER).collect();
            let accepted: Vec<(&str, &str)> =
                supported.iter().map(|p| (protocol::ACCEPTED_VERSIONS_HEADER, *p)).collect();
            let body = format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {supported:?}\n"
            );
            let _ = http::respond(&mut io, 403, "Forbidden", &accepted, &body).await;
            return;
        }
    };
    if !request.is_spdy() {
        let body = "unable to upgrade: missing upgrade headers in request\n";
        let _ = http::respond(&mut io, 400, "Bad Request", &[], body).await;
        return;
    }
    let mut headers = vec![("Connection", "Upgrade"), ("Upgrade", protocol::SPDY_31)];
    if let Some(p) = &chosen {
        headers.push((protocol::PROTOCOL_VERSION_HEADER, p.as_str()));
    }
    if http::switching_protocols(&mut io, &headers).await.is_err() {
        return;
    }
    let config = SpdyConfig {
        idle_timeout: Some(inner.config.idle_timeout),
        flow_control: inner.config.flow_control,
        ..SpdyConfig::new(Role::Server)
    };
    let (session, incoming) = SpdySession::new(io, config);
    match command(inner, pending) {
        Ok(command) => {
            let version = chosen.as_deref().and_then(RcVersion::from_name).unwrap_or(RcVersion::V1);
            remotecommand::spdy::serve(session, incoming, version, command, timeouts(inner)).await;
        }
        Err(pf) => {
            let backend = inner.backends.port_forward.clone();
            portforward::spdy::serve(session, incoming, pf, backend, inner.config.stream_creation_timeout).await;
        }
    }
}

async fn serve_websocket<IO: Conn>(inner: &Inner, mut io: Prefixed<IO>, request: &Request, pending: Pending) {
    let key = request.header("sec-websocket-key").map(str::to_string);
    let version_ok = request.header("sec-websocket-version").is_some_and(|v| v.trim() == "13");
    let Some(key) = key.filter(|_| version_ok) else {
        let headers = [("Sec-WebSocket-Version", "13")];
        let _ = http::respond(&mut io, 400, "Bad Request", &headers, "a WebSocket version 13 handshake is required\n")
            .await;
        return;
    };
    let supported: &[&str] = match pending {
        Pending::PortForward(_) => &portforward::ws::PROTOCOLS,
        _ => &remotecommand::ws::PROTOCOLS,
    };
    let offered = handshake::offered(request.all("sec-websocket-protocol"));
    let Some(chosen) = handshake::negotiate(&offered, supported) else {
        let body = format!("requested protocol(s) are not supported: {offered:?}; supports {supported:?}\n");
        let _ = http::respond(&mut io, 400, "Bad Request", &[], &body).await;
        return;
    };
    let accept = handshake::accept_key(&key);
    let mut headers =
        vec![("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept.as_str())];
    if !chosen.is_empty() {
        headers.push(("Sec-WebSocket-Protocol", chosen.as_str()));
    }
    // Port forwarding needs its ports before the upgrade: a request without any is refused.
    let pending = match pending {
        Pending::PortForward(mut pf) => {
            if pf.ports.is_empty() {
                pf.ports = request
                    .query_values("ports")
                    .flat_map(|v| v.split(','))
                    .filter_map(|p| p.parse::<u16>().ok().filter(|p| *p > 0))
                    .collect();
            }
            if pf.ports.is_empty() {
                let _ = http::respond(&mut io, 400, "Bad Request", &[], "query parameter \"port\" is required\n").await;
                return;
            }
            Pending::PortForward(pf)
        }
        other => other,
    };
    if http::switching_protocols(&mut io, &headers).await.is_err() {
        return;
    }
    let config = WsConfig { idle_timeout: Some(inner.config.idle_timeout), ..WsConfig::new(WsRole::Server) };
    let (conn, tx, rx) = WsConnection::new(io, config);
    match command(inner, pending) {
        Ok(command) => {
            let Some((codec, version)) = remotecommand::ws::protocol(&chosen) else { return };
            remotecommand::ws::serve(conn, tx, rx, codec, version, command, timeouts(inner)).await;
        }
        Err(pf) => {
            let Some(codec) = portforward::ws::codec(&chosen) else { return };
            portforward::ws::serve(conn, tx, rx, codec, pf, inner.backends.port_forward.clone()).await;
        }
    }
}
