//! The HTTP endpoint: GET /metrics answers the OpenMetrics text; anything else is 404. HTTP/1
//! through hyper (already there for tonic), one task per connection.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::error::MetricsError;
use crate::registry::Metrics;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `address` and serves until `shutdown` completes. Returns the bound address (port 0
/// picks a free one) once listening, and the serving future.
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl std::future::Future<Output = ()> + Send + 'static), MetricsError> {
    let listener = TcpListener::bind(address).await.map_err(|source| MetricsError::Bind { address, source })?;
    let bound = listener.local_addr().map_err(|source| MetricsError::Bind { address, source })?;
    let serving = async move {
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        continue;
                    }
                },
                _ = &mut shutdown => return,
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, std::convert::Infallible>(respond(&metrics, &req)) }
                });
                if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                    tracing::debug!(error = %e, "metrics endpoint: connection ended");
                }
            });
        }
    };
    Ok((bound, serving))
}

fn respond<B>(metrics: &Metrics, req: &http::Request<B>) -> http::Response<Full<Bytes>> {
    let reply = |status: http::StatusCode, content_type: &str, body: String| {
        let mut r = http::Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = http::HeaderValue::from_str(content_type) {
            r.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
        r
    };
    if req.method() != http::Method::GET || req.uri().path() != "/metrics" {
        return reply(http::StatusCode::NOT_FOUND, "text/plain", "only GET /metrics is served here\n".into());
    }
    match metrics.encode() {
        Ok(text) => reply(http::StatusCode::OK, CONTENT_TYPE, text),
        Err(e) => reply(http::StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("{e}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_and_404_elsewhere() {
        let metrics = Arc::new(Metrics::new());
        metrics.pod_monitor_exited();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr, serving) = serve("127.0.0.1:0".parse().unwrap(), metrics, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
        let task = tokio::spawn(serving);
        let ok = get(addr, "/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains(CONTENT_TYPE) && ok.contains("crius_pod_monitor_exits_total 1"), "{ok}");
        assert!(get(addr, "/").await.starts_with("HTTP/1.1 404"));
        let _ = tx.send(());
        task.await.unwrap();
    }
}
