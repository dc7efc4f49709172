//! Remote command over WebSocket: channels 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize
//! (one message per chunk, prefixed with its channel), the protocols of the kubelet's
//! websocket.go plus v5.channel.k8s.io (whose `[255, 0]` closes stdin).

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Command, Timeouts, run_until_gone};
use crate::backend::SessionIo;
use crate::io::{ChannelReader, Sink, pipe_to, resize_decoder};
use crate::protocol::RcVersion;
use crate::ws::channel::{Codec, Inbound};
use crate::ws::{WsConnection, WsReceiver, WsSender};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;

/// The subprotocols served, in no particular order (the client's order decides).
pub const PROTOCOLS: [&str; 6] = [
    "",
    "channel.k8s.io",
    "base64.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "v5.channel.k8s.io",
];

/// The codec and status format of a negotiated subprotocol.
pub fn protocol(name: &str) -> Option<(Codec, RcVersion)> {
    Some(match name {
        "" | "channel.k8s.io" => (Codec::Binary, RcVersion::V1),
        "base64.channel.k8s.io" => (Codec::Base64, RcVersion::V1),
        "v4.channel.k8s.io" => (Codec::Binary, RcVersion::V4),
        "v4.base64.channel.k8s.io" => (Codec::Base64, RcVersion::V4),
        "v5.channel.k8s.io" => (Codec::Binary, RcVersion::V5),
        _ => return None,
    })
}

/// Serves one exec/attach session on an upgraded connection.
pub async fn serve(
    conn: WsConnection,
    tx: WsSender,
    rx: WsReceiver,
    codec: Codec,
    version: RcVersion,
    command: Command,
    t: Timeouts,
) {
    let opts = command.options();
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(dispatch(rx, codec, version == RcVersion::V5, opts.stdin.then_some(stdin_tx), resize_tx));

    let sink = |channel| Sink::Ws { tx: tx.clone(), channel, codec };
    // An empty message on the lowest writable channel tells the client the session is up.
    let hello = if opts.stdout {
        STDOUT
    } else if opts.stderr {
        STDERR
    } else {
        ERROR
    };
    let _ = sink(hello).send(Bytes::new()).await;

    let mut pumps = Vec::new();
    let mut writer = |wanted: bool, channel| {
        wanted.then(|| {
            let (w, pump) = pipe_to(sink(channel));
            pumps.push(pump);
            w
        })
    };
    let stdout = writer(opts.stdout, STDOUT);
    let stderr = writer(opts.stderr, STDERR);
    let io = SessionIo {
        stdin: opts.stdin.then(|| Box::pin(ChannelReader::new(stdin_rx)) as _),
        stdout,
        stderr,
        resize: opts.tty.then(|| resize_decoder(resize_rx)),
    };
    let Some(status) = run_until_gone(&command, io, pumps, conn.closed(), t.drain).await else {
        tracing::debug!("the client went away; the session is over");
        return;
    };
    let body = status.encode(version);
    if !body.is_empty() {
        let _ = sink(ERROR).send(Bytes::from(body)).await;
    }
    conn.close().await;
}

/// Routes the client's messages to stdin and resize.
async fn dispatch(
    mut rx: WsReceiver,
    codec: Codec,
    close_signal: bool,
    mut stdin: Option<mpsc::Sender<Bytes>>,
    resize: mpsc::Sender<Bytes>,
) {
    while let Some(message) = rx.recv().await {
        match codec.decode(message, close_signal) {
            Inbound::Data(STDIN, data) => {
                if let Some(tx) = &stdin
                    && tx.send(data).await.is_err()
                {
                    stdin = None;
                }
            }
            Inbound::Data(RESIZE, data) => {
                let _ = resize.send(data).await;
            }
            Inbound::Close(STDIN) => stdin = None,
            _ => {}
        }
    }
}
