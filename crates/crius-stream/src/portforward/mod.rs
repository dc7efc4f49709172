//! Port forwarding: every forwarded connection is a pair of streams (SPDY) or channels
//! (WebSocket), data and error; the data is copied to and from a TCP connection the backend
//! opens in the pod's network namespace.

pub mod spdy;
pub mod ws;

use std::io;

use bytes::BytesMut;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::io::Sink;

/// What the kubelet writes on the error stream when forwarding fails (portForwardErrResponse):
/// `closeConnection` tells client-go to tear the whole session down.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardError {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub close_connection: bool,
    pub message: String,
}

impl ForwardError {
    /// The kubelet keeps the session for a peer that reset or stopped reading (ECONNRESET,
    /// EPIPE: kubernetes #111825, #74551) and closes it for anything else.
    pub fn new(port: u16, pod: &str, error: &dyn std::fmt::Display, kind: Option<io::ErrorKind>) -> Self {
        let benign = matches!(kind, Some(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe));
        ForwardError {
            close_connection: !benign,
            message: format!("error forwarding port {port} to pod {pod}, uid : {error}"),
        }
    }

    pub fn to_json_line(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// Where the client's data for one forwarded connection comes from.
pub enum Source {
    Spdy(crate::spdy::SpdyStream),
    Channel(tokio::sync::mpsc::Receiver<bytes::Bytes>),
}

impl Source {
    async fn next(&mut self) -> io::Result<Option<bytes::Bytes>> {
        match self {
            Source::Spdy(s) => s.recv().await.map_err(|e| io::Error::new(io::ErrorKind::ConnectionReset, e)),
            Source::Channel(rx) => Ok(rx.recv().await),
        }
    }
}

/// Copies both ways until both directions have ended (or either fails). The pod's EOF finishes
/// the client's stream; the client's FIN shuts the pod connection's write side.
pub async fn copy_both_ways(tcp: TcpStream, mut from_client: Source, to_client: Sink) -> io::Result<()> {
    let (mut rd, mut wr) = tcp.into_split();
    let up = async {
        let mut buf = BytesMut::with_capacity(128 * 1024);
        loop {
            buf.reserve(128 * 1024);
            if rd.read_buf(&mut buf).await? == 0 {
                to_client.finish().await;
                return Ok::<_, io::Error>(());
            }
            to_client.send(buf.split().freeze()).await?;
        }
    };
    let down = async {
        while let Some(chunk) = from_client.next().await? {
            wr.write_all(&chunk).await?;
        }
        wr.shutdown().await
    };
    tokio::try_join!(up, down).map(|_| ())
}
