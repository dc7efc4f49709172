//! Exec and attach sessions (the remotecommand protocols): collect the client's streams (SPDY)
//! or channels (WebSocket), run the backend with them, and report how it ended on the error
//! stream. The client going away drops the backend's future, which ends the process.

pub mod spdy;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::backend::{AttachBackend, ExecBackend, SessionIo};
use crate::request::{AttachRequest, ExecRequest, StreamOptions};
use crate::status::Status;

/// What a session runs.
#[derive(Clone)]
pub enum Command {
    Exec(ExecRequest, Arc<dyn ExecBackend>),
    Attach(AttachRequest, Arc<dyn AttachBackend>),
}

impl Command {
    pub fn options(&self) -> StreamOptions {
        match self {
            Command::Exec(r, _) => r.options(),
            Command::Attach(r, _) => r.options(),
        }
    }

    /// Runs the backend to its end and turns the result into the final Status.
    async fn run(&self, io: SessionIo) -> Status {
        match self {
            Command::Exec(req, backend) => match backend.exec(req, io).await {
                Ok(0) => Status::success(),
                Ok(code) => Status::exit_code(&req.cmd, code),
                Err(e) => {
                    let message = format!("error executing command in container: {e}");
                    tracing::warn!(container_id = %req.container_id, error = %message, "exec failed");
                    Status::internal_error(&message)
                }
            },
            Command::Attach(req, backend) => match backend.attach(req, io).await {
                Ok(()) => Status::success(),
                Err(e) => {
                    let message = format!("error attaching to container: {e}");
                    tracing::warn!(container_id = %req.container_id, error = %message, "attach failed");
                    Status::internal_error(&message)
                }
            },
        }
    }
}

/// Session timing.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long the client has to open its streams (SPDY).
    pub stream_creation: Duration,
    /// After the command ends, how long its remaining output may take to reach the client.
    pub drain: Duration,
}

/// Runs `command` until it ends or `gone` resolves (the client left: the command is dropped,
/// which kills it). Returns the final status, or None when the client left first.
async fn run_until_gone(
    command: &Command,
    io: SessionIo,
    output_pumps: Vec<JoinHandle<()>>,
    gone: impl std::future::Future<Output = ()>,
    drain: Duration,
) -> Option<Status> {
    tokio::pin!(gone);
    let status = tokio::select! {
        status = command.run(io) => status,
        _ = &mut gone => return None,
    };
    // The backend dropped its writers: the pumps finish once the output is queued.
    let drained = async {
        for pump in output_pumps {
            let _ = pump.await;
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(drain, drained) => {}
        _ = &mut gone => return None,
    }
    Some(status)
}
