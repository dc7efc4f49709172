//! Remote command over SPDY: the client opens one stream per role (`streamType` error, stdin,
//! stdout, stderr, resize) and the session starts once all it asked for are there (the
//! kubelet's waitForStreams: unknown types get a reply but do not count).

use bytes::Bytes;

use super::{Command, Timeouts, run_until_gone};
use crate::backend::SessionIo;
use crate::io::{ChannelReader, Sink, pipe_to, resize_decoder, spdy_inbound};
use crate::protocol::{self, RcVersion};
use crate::spdy::{Incoming, SpdySession, SpdyStream, rst};

#[derive(Default)]
struct Streams {
    error: Option<SpdyStream>,
    stdin: Option<SpdyStream>,
    stdout: Option<SpdyStream>,
    stderr: Option<SpdyStream>,
    resize: Option<SpdyStream>,
}

impl Streams {
    fn all(&self) -> impl Iterator<Item = &SpdyStream> {
        [&self.error, &self.stdin, &self.stdout, &self.stderr, &self.resize].into_iter().flatten()
    }
}

/// Serves one exec/attach session on an upgraded connection.
pub async fn serve(session: SpdySession, mut incoming: Incoming, version: RcVersion, command: Command, t: Timeouts) {
    let opts = command.options();
    let expected = 1
        + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr)
        + usize::from(opts.tty && version.supports_resize());
    let mut streams = Streams::default();
    let collected = tokio::time::timeout(t.stream_creation, async {
        let mut received = 0;
        while received < expected {
            let Some(inc) = incoming.next().await else { return false };
            let kind = inc.headers().get(protocol::STREAM_TYPE).unwrap_or("").to_string();
            let Ok(stream) = inc.accept().await else { return false };
            let slot = match kind.as_str() {
                protocol::STREAM_ERROR => &mut streams.error,
                protocol::STREAM_STDIN => &mut streams.stdin,
                protocol::STREAM_STDOUT => &mut streams.stdout,
                protocol::STREAM_STDERR => &mut streams.stderr,
                protocol::STREAM_RESIZE => &mut streams.resize,
                other => {
                    tracing::debug!(stream_type = other, "unexpected stream type");
                    continue;
                }
            };
            *slot = Some(stream);
            received += 1;
        }
        true
    })
    .await;
    if !matches!(collected, Ok(true)) {
        tracing::info!("the client did not open its streams in time; closing the connection");
        session.close().await;
        return;
    }
    // Streams opened from now on are refused.
    tokio::spawn(async move {
        while let Some(extra) = incoming.next().await {
            extra.reject(rst::REFUSED_STREAM).await;
        }
    });

    let mut pumps = Vec::new();
    let mut sink = |s: &Option<SpdyStream>| {
        s.clone().map(|s| {
            let (w, pump) = pipe_to(Sink::Spdy(s));
            pumps.push(pump);
            w
        })
    };
    let stdout = sink(&streams.stdout);
    let stderr = sink(&streams.stderr);
    let io = SessionIo {
        stdin: streams.stdin.clone().map(|s| Box::pin(ChannelReader::new(spdy_inbound(s))) as _),
        stdout,
        stderr,
        resize: streams.resize.clone().map(|s| resize_decoder(spdy_inbound(s))),
    };
    let status = run_until_gone(&command, io, pumps, session.closed(), t.drain).await;
    let Some(status) = status else {
        tracing::debug!("the client went away; the session is over");
        return;
    };
    if let Some(error) = &streams.error {
        let body = status.encode(version);
        if !body.is_empty() {
            let _ = error.send(Bytes::from(body)).await;
        }
    }
    for s in streams.all() {
        let _ = s.finish().await;
    }
    session.close().await;
}
