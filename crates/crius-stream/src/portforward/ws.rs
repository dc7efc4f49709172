//! Port forwarding over WebSocket (the kubelet's websocket.go): the ports are fixed by the
//! request; port i has data channel 2i and error channel 2i+1, and each channel's first server
//! message is the port, 16-bit little-endian.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{ForwardError, Source, copy_both_ways};
use crate::backend::PortForwardBackend;
use crate::io::Sink;
use crate::request::PortForwardRequest;
use crate::ws::channel::{Codec, Inbound};
use crate::ws::{WsConnection, WsReceiver, WsSender};

/// The subprotocols served ("" is the binary protocol of clients that name none).
pub const PROTOCOLS: [&str; 3] = ["", "v4.channel.k8s.io", "v4.base64.channel.k8s.io"];

pub fn codec(protocol: &str) -> Option<Codec> {
    match protocol {
        "" | "v4.channel.k8s.io" => Some(Codec::Binary),
        "v4.base64.channel.k8s.io" => Some(Codec::Base64),
        _ => None,
    }
}

pub async fn serve(
    conn: WsConnection,
    tx: WsSender,
    rx: WsReceiver,
    codec: Codec,
    request: PortForwardRequest,
    backend: Arc<dyn PortForwardBackend>,
) {
    let request = Arc::new(request);
    let mut inbound = HashMap::new();
    let mut forwards = JoinSet::new();
    for (i, port) in request.ports.iter().copied().enumerate() {
        let Ok(data_channel) = u8::try_from(2 * i) else { break };
        let data = Sink::Ws { tx: tx.clone(), channel: data_channel, codec };
        let error = Sink::Ws { tx: tx.clone(), channel: data_channel + 1, codec };
        let prefix = Bytes::copy_from_slice(&port.to_le_bytes());
        let _ = data.send(prefix.clone()).await;
        let _ = error.send(prefix).await;
        let (in_tx, in_rx) = mpsc::channel(16);
        inbound.insert(data_channel, in_tx);
        forwards.spawn(forward(backend.clone(), request.clone(), port, in_rx, data, error));
    }
    let dispatch = tokio::spawn(dispatch(rx, codec, inbound));
    tokio::select! {
        _ = async { while forwards.join_next().await.is_some() {} } => conn.close().await,
        _ = conn.closed() => {}
    }
    dispatch.abort();
}

async fn dispatch(mut rx: WsReceiver, codec: Codec, mut inbound: HashMap<u8, mpsc::Sender<Bytes>>) {
    while let Some(message) = rx.recv().await {
        if let Inbound::Data(channel, data) = codec.decode(message, false)
            && let Some(tx) = inbound.get(&channel)
            && tx.send(data).await.is_err()
        {
            inbound.remove(&channel);
        }
    }
}

async fn forward(
    backend: Arc<dyn PortForwardBackend>,
    request: Arc<PortForwardRequest>,
    port: u16,
    from_client: mpsc::Receiver<Bytes>,
    data: Sink,
    error: Sink,
) {
    let result = match backend.connect(&request, port).await {
        Ok(tcp) => copy_both_ways(tcp, Source::Channel(from_client), data).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(message) = result {
        let report = ForwardError::new(port, &request.pod_sandbox_id, &message, None);
        let _ = error.send(Bytes::from(report.message)).await;
    }
}
