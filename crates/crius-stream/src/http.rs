//! The little HTTP/1.1 the server needs, on httparse: one request head per connection (every
//! endpoint is an upgrade, so there are no bodies, no keep-alive, no chunking), a plain response
//! or a 101, and then the raw connection. Owning the socket after the head (rather than going
//! through hyper's upgrade machinery) hands SPDY and WebSocket the connection directly.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Anything a session runs on: TCP or TLS over TCP.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Conn for T {}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("the request head is over {0} bytes")]
    TooLarge(usize),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("the connection closed before a whole request head")]
    Eof,
    #[error("reading the request")]
    Io(#[from] io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.all(name).any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    /// `Connection: Upgrade` (among other tokens).
    pub fn is_upgrade(&self) -> bool {
        self.all("connection").any(|v| v.to_ascii_lowercase().contains("upgrade"))
    }

    /// k8s' wsstream.IsWebSocketRequest.
    pub fn is_websocket(&self) -> bool {
        self.header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) && self.is_upgrade()
    }

    /// What spdy.UpgradeResponse checks.
    pub fn is_spdy(&self) -> bool {
        self.is_upgrade() && self.has_token("upgrade", crate::protocol::SPDY_31)
    }

    /// Values of a query parameter (no percent-decoding: ports and tokens need none).
    pub fn query_values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query.split('&').filter_map(move |kv| kv.strip_prefix(key)?.strip_prefix('='))
    }
}

/// Reads one request head; returns it and the bytes read past it.
pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R, limit: usize) -> Result<(Request, Bytes), HttpError> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if r.read_buf(&mut buf).await? == 0 {
            return Err(HttpError::Eof);
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let target = req.path.unwrap_or("/");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let request = Request {
                    method: req.method.unwrap_or("").to_string(),
                    path: path.to_string(),
                    query: query.to_string(),
                    headers: req
                        .headers
                        .iter()
                        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                        .collect(),
                };
                buf.advance(len);
                return Ok((request, buf.freeze()));
            }
            Ok(httparse::Status::Partial) if buf.len() < limit => {}
            Ok(httparse::Status::Partial) => return Err(HttpError::TooLarge(limit)),
            Err(e) => return Err(HttpError::Malformed(e.to_string())),
        }
    }
}

/// Writes a whole response (`Connection: close`: the connection ends after it).
pub async fn respond<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    head.push_str(body);
    w.write_all(head.as_bytes()).await?;
    w.flush().await?;
    let _ = w.shutdown().await;
    Ok(())
}

/// Writes a 101 Switching Protocols with `headers`.
pub async fn switching_protocols<W: AsyncWrite + Unpin>(w: &mut W, headers: &[(&str, &str)]) -> io::Result<()> {
    let mut head = String::from("HTTP/1.1 101 Switching Protocols\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes()).await?;
    w.flush().await
}

/// A connection with bytes already read from it put back in front.
pub struct Prefixed<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO> Prefixed<IO> {
    pub fn new(prefix: Bytes, io: IO) -> Self {
        Prefixed { prefix, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parses_a_spdy_upgrade_and_keeps_what_follows() {
        let raw = b"POST /exec/abc?x=1&ports=80,81 HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
X-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: v3.channel.k8s.io\r\n\r\n\x80\x03";
        let (mut a, mut b) = tokio::io::duplex(4096);
        b.write_all(raw).await.unwrap();
        let (req, rest) = read_request(&mut a, 16 * 1024).await.unwrap();
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/exec/abc"));
        assert!(req.is_spdy() && !req.is_websocket());
        assert_eq!(
            req.all("x-stream-protocol-version").collect::<Vec<_>>(),
            ["v4.channel.k8s.io", "v3.channel.k8s.io"]
        );
        assert_eq!(req.query_values("ports").collect::<Vec<_>>(), ["80,81"]);
        assert_eq!(&rest[..], b"\x80\x03");
        let mut p = Prefixed::new(rest, a);
        let mut two = [0u8; 2];
        p.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"\x80\x03");
    }

    #[tokio::test]
    async fn websocket_detection_and_limits() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        b.write_all(b"GET /attach/t HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        let (req, _) = read_request(&mut a, 1024).await.unwrap();
        assert!(req.is_websocket() && !req.is_spdy());
        b.write_all(&[b'a'; 3000]).await.unwrap();
        assert!(matches!(read_request(&mut a, 1024).await, Err(HttpError::Malformed(_) | HttpError::TooLarge(_))));
        drop(b);
        assert!(matches!(read_request(&mut a, 1024).await, Err(HttpError::Eof)));
    }
}
