//! crius answers Unavailable until start-up recovery is done, so no call sees a half-loaded state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Whether crius serves yet (start-up recovery done), and whether it is stopping.
#[derive(Clone)]
pub struct Readiness(Arc<AtomicBool>, Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Readiness {
    fn default() -> Self {
        Readiness(Arc::default(), Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl Readiness {
    /// The daemon is stopping: long-lived streams (GetContainerEvents) end, so the graceful
    /// shutdown, which waits for every call in flight, can finish.
    pub fn set_stopping(&self) {
        self.1.send_replace(true);
    }

    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.1.subscribe()
    }

    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Interceptor for Readiness {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.is_ready() {
            Ok(request)
        } else {
            Err(Status::unavailable("crius is starting: recovering pods and containers from disk; retry shortly"))
        }
    }
}
