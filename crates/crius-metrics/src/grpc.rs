//! A tower layer that counts and times every gRPC call of the services it wraps (put it on the
//! tonic `Server` with `.layer(...)`, so it sees every service and method by path).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};

use crate::registry::Metrics;

#[derive(Clone)]
pub struct GrpcMetricsLayer {
    metrics: Arc<Metrics>,
}

impl GrpcMetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        GrpcMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let (service, method) = split_path(request.uri().path());
        let start = Instant::now();
        let future = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let response = future.await;
            // A failed unary call is "trailers only": its grpc-status is in the headers. A
            // successful one carries status 0 in the trailers, which come after the body.
            let code = match &response {
                Ok(r) => grpc_status(r.headers()).unwrap_or(0),
                Err(_) => 2,
            };
            metrics.rpc_done(&service, &method, code, start.elapsed());
            response
        })
    }
}

/// "/runtime.v1.RuntimeService/ListContainers" -> ("runtime.v1.RuntimeService", "ListContainers").
fn split_path(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    (service.to_string(), method.to_string())
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// The name of a gRPC status code, as gRPC's own metrics label it.
pub fn code_name(code: i32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(code).ok().and_then(|i| NAMES.get(i)).map_or_else(|| format!("Code({code})"), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    #[test]
    fn paths_and_codes() {
        assert_eq!(
            split_path("/runtime.v1.RuntimeService/Version"),
            ("runtime.v1.RuntimeService".into(), "Version".into())
        );
        assert_eq!(split_path("/"), (String::new(), String::new()));
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(12), "Unimplemented");
        assert_eq!(code_name(99), "Code(99)");
    }

    #[tokio::test]
    async fn counts_calls_and_errors_by_code() {
        let metrics = Arc::new(Metrics::new());
        let inner = tower::service_fn(|req: http::Request<()>| async move {
            let mut response = http::Response::new(());
            if req.uri().path().ends_with("Missing") {
                response.headers_mut().insert("grpc-status", http::HeaderValue::from_static("5"));
            }
            Ok::<_, Infallible>(response)
        });
        let mut svc = GrpcMetricsLayer::new(metrics.clone()).layer(inner);
        for path in ["/s.S/Ok", "/s.S/Ok", "/s.S/Missing"] {
            let req = http::Request::builder().uri(path).body(()).unwrap();
            svc.call(req).await.unwrap();
        }
        let text = metrics.encode().unwrap();
        assert!(text.contains(r#"crius_grpc_requests_total{service="s.S",method="Ok"} 2"#), "{text}");
        assert!(
            text.contains(r#"crius_grpc_errors_total{service="s.S",method="Missing",code="NotFound"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"method="Ok",code="#), "{text}");
    }
}
