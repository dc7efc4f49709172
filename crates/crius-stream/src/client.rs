//! Clients of the streaming server speaking what kubectl/crictl speak (client-go's SPDY
//! executor and port forwarder, and the WebSocket channel protocols), for tests here and in
//! crius-testkit. Plain HTTP only.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::TerminalSize;
use crate::http::Prefixed;
use crate::protocol::{self, RcVersion};
use crate::request::StreamOptions;
use crate::spdy::{Headers, Incoming, Role, SpdyConfig, SpdySession, SpdyStream};
use crate::ws::channel::Codec;
use crate::ws::frame::Message;
use crate::ws::{WsConfig, WsConnection, WsReceiver, WsRole, WsSender};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad URL {0:?}")]
    Url(String),
    #[error("the server answered {status}: {body}")]
    Status { status: u16, headers: Vec<(String, String)>, body: String },
    #[error("malformed response: {0}")]
    Response(String),
    #[error("SPDY")]
    Spdy(#[from] crate::error::SpdyError),
    #[error("I/O")]
    Io(#[from] std::io::Error),
}

/// host:port and path of an `http://` URL.
fn split_url(url: &str) -> Result<(String, String), ClientError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| ClientError::Url(url.to_string()))?;
    let (host, path) = rest.split_once('/').ok_or_else(|| ClientError::Url(url.to_string()))?;
    Ok((host.to_string(), format!("/{path}")))
}

/// The response head: status, headers, and bytes past it.
async fn send_request(
    url: &str,
    method: &str,
    headers: &[(&str, String)],
) -> Result<(u16, Vec<(String, String)>, Bytes, TcpStream), ClientError> {
    let (host, path) = split_url(url)?;
    let mut tcp = TcpStream::connect(&host).await?;
    tcp.set_nodelay(true)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await?;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if tcp.read_buf(&mut buf).await? == 0 {
            return Err(ClientError::Response("connection closed before the response".into()));
        }
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut hs);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let headers: Vec<(String, String)> = resp
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect();
                let rest = buf.split_off(len).freeze();
                return Ok((status, headers, rest, tcp));
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(ClientError::Response(e.to_string())),
        }
    }
}

async fn fail(status: u16, headers: Vec<(String, String)>, rest: Bytes, mut tcp: TcpStream) -> ClientError {
    let mut body = rest.to_vec();
    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut body)).await;
    ClientError::Status { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// A plain GET: the status code (for 404 checks).
pub async fn get_status(url: &str) -> Result<u16, ClientError> {
    Ok(send_request(url, "GET", &[]).await?.0)
}

/// An upgraded SPDY connection and the protocol the server chose.
pub struct SpdyClient {
    pub session: SpdySession,
    pub incoming: Incoming,
    pub protocol: Option<String>,
}

/// POSTs the SPDY/3.1 upgrade offering `protocols` (most preferred first), as client-go does.
pub async fn spdy_connect(url: &str, protocols: &[&str]) -> Result<SpdyClient, ClientError> {
    let mut headers = vec![("Connection", "Upgrade".to_string()), ("Upgrade", protocol::SPDY_31.to_string())];
    for p in protocols {
        headers.push((protocol::PROTOCOL_VERSION_HEADER, p.to_string()));
    }
    let (status, resp_headers, rest, tcp) = send_request(url, "POST", &headers).await?;
    if status != 101 {
        return Err(fail(status, resp_headers, rest, tcp).await);
    }
    let chosen = header(&resp_headers, protocol::PROTOCOL_VERSION_HEADER).map(str::to_string);
    let config = SpdyConfig { flow_control: crate::spdy::FlowControl::Strict, ..SpdyConfig::new(Role::Client) };
    let (session, incoming) = SpdySession::new(Prefixed::new(rest, tcp), config);
    Ok(SpdyClient { session, incoming, protocol: chosen })
}

/// The streams of a remote command session, opened in client-go's order.
pub struct RemoteCommandStreams {
    pub error: SpdyStream,
    pub stdin: Option<SpdyStream>,
    pub stdout: Option<SpdyStream>,
    pub stderr: Option<SpdyStream>,
    pub resize: Option<SpdyStream>,
}

impl SpdyClient {
    pub async fn remote_command(&self, opts: StreamOptions) -> Result<RemoteCommandStreams, ClientError> {
        let version = self.protocol.as_deref().and_then(RcVersion::from_name).unwrap_or(RcVersion::V1);
        let open = |kind: &str| self.session.open_stream(Headers::new().with(protocol::STREAM_TYPE, kind));
        let error = open(protocol::STREAM_ERROR).await?;
        let stdin = if opts.stdin { Some(open(protocol::STREAM_STDIN).await?) } else { None };
        let stdout = if opts.stdout { Some(open(protocol::STREAM_STDOUT).await?) } else { None };
        let stderr = if opts.stderr { Some(open(protocol::STREAM_STDERR).await?) } else { None };
        let resize =
            if opts.tty && version.supports_resize() { Some(open(protocol::STREAM_RESIZE).await?) } else { None };
        Ok(RemoteCommandStreams { error, stdin, stdout, stderr, resize })
    }

    /// Opens the error and data streams of one forwarded connection (client-go's order).
    pub async fn port_forward(&self, port: u16, request_id: u32) -> Result<(SpdyStream, SpdyStream), ClientError> {
        let headers = |kind: &str| {
            Headers::new()
                .with(protocol::STREAM_TYPE, kind)
                .with(protocol::PORT_HEADER, &port.to_string())
                .with(protocol::REQUEST_ID_HEADER, &request_id.to_string())
        };
        let error = self.session.open_stream(headers(protocol::STREAM_ERROR)).await?;
        let data = self.session.open_stream(headers(protocol::STREAM_DATA)).await?;
        Ok((data, error))
    }
}

/// Everything a stream delivers until FIN (or reset).
pub async fn read_to_end(stream: &SpdyStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = stream.recv().await {
        out.extend_from_slice(&chunk);
    }
    out
}

/// Sends a resize event as client-go does (JSON, one per line).
pub async fn send_resize(stream: &SpdyStream, size: TerminalSize) -> Result<(), ClientError> {
    let mut line = serde_json::to_vec(&size).map_err(|e| ClientError::Response(e.to_string()))?;
    line.push(b'\n');
    Ok(stream.send(Bytes::from(line)).await?)
}

/// The exit code a v4 Status reports: 0 for Success, the ExitCode cause for NonZeroExitCode;
/// Err(message) for any other failure.
pub fn exit_code(status_json: &[u8]) -> Result<i32, String> {
    let v: serde_json::Value = serde_json::from_slice(status_json).map_err(|e| format!("{e}: {status_json:?}"))?;
    match v["status"].as_str() {
        Some("Success") => Ok(0),
        Some("Failure") if v["reason"] == "NonZeroExitCode" => v["details"]["causes"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["reason"] == "ExitCode"))
            .and_then(|c| c["message"].as_str()?.parse().ok())
            .ok_or_else(|| format!("no exit code in {v}")),
        _ => Err(v["message"].as_str().unwrap_or("unknown failure").to_string()),
    }
}

/// An upgraded WebSocket connection.
pub struct WsClient {
    pub conn: WsConnection,
    pub tx: WsSender,
    pub rx: WsReceiver,
    pub protocol: String,
}

/// GETs the WebSocket upgrade offering `protocols`.
pub async fn ws_connect(url: &str, protocols: &[&str]) -> Result<WsClient, ClientError> {
    let mut key_raw = [0u8; 16];
    getrandom::fill(&mut key_raw).map_err(|e| ClientError::Response(e.to_string()))?;
    let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key_raw);
    let mut headers = vec![
        ("Connection", "Upgrade".to_string()),
        ("Upgrade", "websocket".to_string()),
        ("Sec-WebSocket-Version", "13".to_string()),
        ("Sec-WebSocket-Key", key.clone()),
    ];
    if !protocols.is_empty() {
        headers.push(("Sec-WebSocket-Protocol", protocols.join(", ")));
    }
    let (status, resp_headers, rest, tcp) = send_request(url, "GET", &headers).await?;
    if status != 101 {
        return Err(fail(status, resp_headers, rest, tcp).await);
    }
    if header(&resp_headers, "sec-websocket-accept") != Some(crate::ws::handshake::accept_key(&key).as_str()) {
        return Err(ClientError::Response("wrong Sec-WebSocket-Accept".into()));
    }
    let protocol = header(&resp_headers, "sec-websocket-protocol").unwrap_or("").to_string();
    let (conn, tx, rx) = WsConnection::new(Prefixed::new(rest, tcp), WsConfig::new(WsRole::Client));
    Ok(WsClient { conn, tx, rx, protocol })
}

impl WsClient {
    pub fn codec(&self) -> Codec {
        if self.protocol.contains("base64") { Codec::Base64 } else { Codec::Binary }
    }

    pub async fn send(&self, channel: u8, data: &[u8]) -> Result<(), ClientError> {
        let (text, msg) = self.codec().encode(channel, data);
        let sent = if text { self.tx.send_text(msg).await } else { self.tx.send_binary(msg).await };
        sent.map_err(|e| ClientError::Response(e.to_string()))
    }

    /// v5's close signal for a channel.
    pub async fn close_channel(&self, channel: u8) -> Result<(), ClientError> {
        self.tx
            .send_binary(Bytes::from(vec![crate::ws::channel::CLOSE_CHANNEL, channel]))
            .await
            .map_err(|e| ClientError::Response(e.to_string()))
    }

    /// The next (channel, data) message; None once the server closed.
    pub async fn recv(&mut self) -> Option<(u8, Bytes)> {
        loop {
            let message = self.rx.recv().await?;
            if let Message::Binary(_) | Message::Text(_) = &message
                && let crate::ws::channel::Inbound::Data(ch, data) = self.codec().decode(message, false)
            {
                return Some((ch, data));
            }
        }
    }

    /// Everything until the server closes, per channel.
    pub async fn collect(&mut self) -> std::collections::BTreeMap<u8, Vec<u8>> {
        let mut out = std::collections::BTreeMap::<u8, Vec<u8>>::new();
        while let Some((ch, data)) = self.recv().await {
            out.entry(ch).or_default().extend_from_slice(&data);
        }
        out
    }
}
