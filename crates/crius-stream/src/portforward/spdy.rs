//! Port forwarding over SPDY (portforward.k8s.io): the client opens an error and a data stream
//! per connection, both with `port` and `requestID` headers; the pair starts forwarding once
//! both are there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinSet;

use super::{ForwardError, Source, copy_both_ways};
use crate::backend::PortForwardBackend;
use crate::io::Sink;
use crate::protocol;
use crate::request::PortForwardRequest;
use crate::spdy::{Incoming, IncomingStream, SpdySession, SpdyStream, rst};
use crate::sync::lock;

#[derive(Default)]
struct Pair {
    data: Option<SpdyStream>,
    error: Option<SpdyStream>,
}

/// The headers a port-forward stream must carry, checked as the kubelet does.
fn check(inc: &IncomingStream) -> Result<(u16, bool), String> {
    let port = inc.headers().get(protocol::PORT_HEADER).ok_or("\"port\" header is required")?;
    let port: u16 = port.parse().map_err(|_| format!("unable to parse {port:?} as a port"))?;
    if port == 0 {
        return Err("port \"0\" must be > 0".into());
    }
    match inc.headers().get(protocol::STREAM_TYPE) {
        Some(protocol::STREAM_DATA) => Ok((port, true)),
        Some(protocol::STREAM_ERROR) => Ok((port, false)),
        Some(other) => Err(format!("invalid stream type {other:?}")),
        None => Err("\"streamType\" header is required".into()),
    }
}

/// The pair a stream belongs to; old clients send no requestID, and the kubelet then derives
/// one from the stream id (error n, data n+2).
fn request_id(inc: &IncomingStream, is_data: bool) -> String {
    match inc.headers().get(protocol::REQUEST_ID_HEADER) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ if is_data => inc.id().saturating_sub(2).to_string(),
        _ => inc.id().to_string(),
    }
}

/// Serves one port-forward connection until the client closes it.
pub async fn serve(
    session: SpdySession,
    mut incoming: Incoming,
    request: PortForwardRequest,
    backend: Arc<dyn PortForwardBackend>,
    creation_timeout: Duration,
) {
    let pairs: Arc<Mutex<HashMap<String, Pair>>> = Arc::default();
    let mut forwards = JoinSet::new();
    let request = Arc::new(request);
    while let Some(inc) = incoming.next().await {
        let (port, is_data) = match check(&inc) {
            Ok(v) => v,
            Err(reason) => {
                tracing::debug!(%reason, "refusing a port-forward stream");
                inc.reject(rst::PROTOCOL_ERROR).await;
                continue;
            }
        };
        let id = request_id(&inc, is_data);
        let Ok(stream) = inc.accept().await else { break };
        enum Next {
            Wait,
            Duplicate(SpdyStream),
            Start(Pair),
        }
        let next = {
            let mut map = lock(&pairs);
            let fresh = !map.contains_key(&id);
            let pair = map.entry(id.clone()).or_default();
            let slot = if is_data { &mut pair.data } else { &mut pair.error };
            if slot.is_some() {
                Next::Duplicate(stream)
            } else {
                *slot = Some(stream);
                if fresh {
                    forwards.spawn(expire(pairs.clone(), id.clone(), creation_timeout));
                }
                match (&pair.data, &pair.error) {
                    (Some(_), Some(_)) => map.remove(&id).map_or(Next::Wait, Next::Start),
                    _ => Next::Wait,
                }
            }
        };
        match next {
            Next::Wait => {}
            Next::Duplicate(stream) => {
                let kind = if is_data { "data" } else { "error" };
                let message = format!("error processing stream for request {id}: {kind} stream already assigned");
                let _ = stream.send(Bytes::from(message)).await;
                let _ = stream.finish().await;
            }
            Next::Start(Pair { data: Some(data), error: Some(error) }) => {
                forwards.spawn(forward(backend.clone(), request.clone(), port, data, error));
            }
            Next::Start(_) => {}
        }
        // Reap finished forwards as we go.
        while forwards.try_join_next().is_some() {}
    }
    // The connection is gone: every forward ends with it (their sockets close on drop).
    forwards.abort_all();
    drop(session);
}

/// Drops a pair whose other half never came, telling the client on its error stream.
async fn expire(pairs: Arc<Mutex<HashMap<String, Pair>>>, id: String, after: Duration) {
    tokio::time::sleep(after).await;
    let stale = lock(&pairs).remove(&id);
    if let Some(Pair { error: Some(error), .. }) = stale {
        let _ = error.send(Bytes::from(format!("timed out waiting for streams of request {id}"))).await;
        let _ = error.finish().await;
    }
}

async fn forward(
    backend: Arc<dyn PortForwardBackend>,
    request: Arc<PortForwardRequest>,
    port: u16,
    data: SpdyStream,
    error: SpdyStream,
) {
    let result = match backend.connect(&request, port).await {
        Ok(tcp) => copy_both_ways(tcp, Source::Spdy(data.clone()), Sink::Spdy(data.clone())).await.map_err(|e| {
            let kind = e.kind();
            (e.to_string(), Some(kind))
        }),
        Err(e) => Err((e.to_string(), None)),
    };
    if let Err((message, kind)) = result {
        tracing::debug!(port, pod = %request.pod_sandbox_id, error = %message, "port forward ended with an error");
        let report = ForwardError::new(port, &request.pod_sandbox_id, &message, kind);
        let _ = error.send(Bytes::from(report.to_json_line())).await;
        if report.close_connection {
            data.reset(rst::CANCEL).await;
        }
    }
    let _ = data.finish().await;
    let _ = error.finish().await;
}
