//! Glue between the protocol streams and the byte streams backends see: an AsyncRead over a
//! channel of chunks (stdin), pumps that move a backend's writes onto a SPDY stream or a
//! WebSocket channel (stdout, stderr), and the resize decoder.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backend::{BoxWrite, TerminalSize};
use crate::spdy::SpdyStream;
use crate::ws::WsSender;
use crate::ws::channel::Codec;

/// Reads the chunks a channel delivers; EOF when the sender is dropped.
pub struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChannelReader { rx, current: Bytes::new() }
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        while self.current.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => self.current = chunk,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.current.len().min(buf.remaining());
        buf.put_slice(&self.current[..n]);
        self.current.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// Moves an inbound SPDY stream's data into a channel (for ChannelReader); the channel ends at
/// the stream's FIN or reset.
pub fn spdy_inbound(stream: SpdyStream) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok(Some(chunk)) = stream.recv().await {
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// Where a backend's output goes.
#[derive(Clone)]
pub enum Sink {
    Spdy(SpdyStream),
    Ws { tx: WsSender, channel: u8, codec: Codec },
}

impl Sink {
    pub async fn send(&self, data: Bytes) -> io::Result<()> {
        match self {
            Sink::Spdy(s) => s.send(data).await.map_err(io::Error::other),
            Sink::Ws { tx, channel, codec } => {
                let (text, msg) = codec.encode(*channel, &data);
                let sent = if text { tx.send_text(msg).await } else { tx.send_binary(msg).await };
                sent.map_err(io::Error::other)
            }
        }
    }

    /// Our side of the stream is done (SPDY FIN; WebSocket channels have no per-channel end).
    pub async fn finish(&self) {
        if let Sink::Spdy(s) = self {
            let _ = s.finish().await;
        }
    }
}

/// A writer for a backend whose bytes a task forwards to `sink`, finishing the sink when the
/// writer is dropped (or shut down). The task ends then; await its handle to know the output
/// is all on its way.
pub fn pipe_to(sink: Sink) -> (BoxWrite, JoinHandle<()>) {
    let (writer, mut reader) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(async move {
        let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
        loop {
            buf.reserve(64 * 1024);
            match reader.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if sink.send(buf.split().freeze()).await.is_err() {
                        break;
                    }
                }
            }
        }
        sink.finish().await;
    });
    (Box::pin(writer), task)
}

/// Decodes the resize stream: JSON TerminalSize values back to back (Go's json.Encoder writes
/// one per line; nothing requires the newline or that a value arrives in one chunk).
pub fn resize_decoder(mut chunks: mpsc::Receiver<Bytes>) -> mpsc::Receiver<TerminalSize> {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            pending.extend_from_slice(&chunk);
            let mut values = serde_json::Deserializer::from_slice(&pending).into_iter::<TerminalSize>();
            let mut used = 0;
            loop {
                match values.next() {
                    Some(Ok(size)) => {
                        used = values.byte_offset();
                        if tx.send(size).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    // Garbage: the kubelet stops decoding too.
                    Some(Err(_)) => return,
                    None => {
                        used = pending.len();
                        break;
                    }
                }
            }
            pending.drain(..used);
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn channel_reader_reads_chunks_then_eof() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        tx.send(Bytes::from_static(b"de")).await.unwrap();
        drop(tx);
        let mut r = ChannelReader::new(rx);
        let mut small = [0u8; 2];
        r.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"ab");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"cde");
    }

    #[tokio::test]
    async fn resize_values_across_chunk_boundaries() {
        let (tx, rx) = mpsc::channel(8);
        let mut sizes = resize_decoder(rx);
        tx.send(Bytes::from_static(b"{\"Width\":80,\"Height\":24}\n{\"Wid")).await.unwrap();
        tx.send(Bytes::from_static(b"th\":100,\"Height\":40}{\"Width\":1,\"Height\":2}")).await.unwrap();
        assert_eq!(sizes.recv().await, Some(TerminalSize { width: 80, height: 24 }));
        assert_eq!(sizes.recv().await, Some(TerminalSize { width: 100, height: 40 }));
        assert_eq!(sizes.recv().await, Some(TerminalSize { width: 1, height: 2 }));
        drop(tx);
        assert_eq!(sizes.recv().await, None);
    }

    #[tokio::test]
    async fn pipe_to_a_spdy_stream_forwards_and_finishes() {
        use crate::spdy::{Headers, Role, SpdyConfig, SpdySession};
        let (a, b) = tokio::io::duplex(1 << 16);
        let (_server, mut incoming) = SpdySession::new(a, SpdyConfig::new(Role::Server));
        let (client, _ci) = SpdySession::new(b, SpdyConfig::new(Role::Client));
        let opener = tokio::spawn(async move { (client.open_stream(Headers::new()).await.unwrap(), client) });
        let s = incoming.next().await.unwrap().accept().await.unwrap();
        let (cs, _client) = opener.await.unwrap();
        let (mut w, task) = pipe_to(Sink::Spdy(s));
        w.write_all(b"out").await.unwrap();
        drop(w);
        task.await.unwrap();
        let mut got = Vec::new();
        while let Some(c) = cs.recv().await.unwrap() {
            got.extend_from_slice(&c);
        }
        assert_eq!(got, b"out");
    }
}
