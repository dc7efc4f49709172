//! crius answers Unavailable until start-up recovery is done, so no call sees a half-loaded state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tonic::service::Interceptor;
use tonic::{Request, Status};

#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
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
