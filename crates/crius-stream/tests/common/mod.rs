//! Shared test support: fake backends and a server on a free loopback port.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use crius_stream::error::BackendError;
use crius_stream::server::{Backends, ServerConfig, StreamServer};
use crius_stream::{AttachBackend, AttachRequest, ExecBackend, ExecRequest, PortForwardBackend, SessionIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Attach that echoes stdin to stdout (and "err:" + stdin to stderr) until stdin ends, and
/// reports resize events on stdout.
pub struct EchoAttach;

#[async_trait]
impl AttachBackend for EchoAttach {
    async fn attach(&self, _request: &AttachRequest, mut io: SessionIo) -> Result<(), BackendError> {
        let mut stdin = io.stdin.take().ok_or_else(|| BackendError::Runtime("no stdin".into()))?;
        let mut stdout = io.stdout.take();
        let mut stderr = io.stderr.take();
        let mut resize = io.resize.take();
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                n = stdin.read(&mut buf) => {
                    let n = n.map_err(|e| BackendError::io("stdin", e))?;
                    if n == 0 { break; }
                    if let Some(out) = stdout.as_mut() { out.write_all(&buf[..n]).await.map_err(|e| BackendError::io("stdout", e))?; }
                    if let Some(err) = stderr.as_mut() {
                        err.write_all(b"err:").await.map_err(|e| BackendError::io("stderr", e))?;
                        err.write_all(&buf[..n]).await.map_err(|e| BackendError::io("stderr", e))?;
                    }
                }
                Some(size) = async { match resize.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => {
                    if let Some(out) = stdout.as_mut() {
                        out.write_all(format!("[{}x{}]", size.width, size.height).as_bytes()).await.map_err(|e| BackendError::io("stdout", e))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Exec that writes its command line to stdout, and exits with the code in `exit N` or 0; a
/// command `hang` waits forever (until dropped: `dropped` counts those).
#[derive(Default)]
pub struct FakeExec {
    pub dropped: Arc<AtomicUsize>,
    pub running: Arc<AtomicBool>,
}

struct DropFlag(Arc<AtomicUsize>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl ExecBackend for FakeExec {
    async fn exec(&self, request: &ExecRequest, mut io: SessionIo) -> Result<i32, BackendError> {
        let line = request.cmd.join(" ");
        if let Some(out) = io.stdout.as_mut() {
            out.write_all(line.as_bytes()).await.map_err(|e| BackendError::io("stdout", e))?;
        }
        match request.cmd.as_slice() {
            [c] if c == "hang" => {
                let _flag = DropFlag(self.dropped.clone());
                self.running.store(true, Ordering::SeqCst);
                std::future::pending::<()>().await;
                Ok(0)
            }
            [c] if c == "fail" => Err(BackendError::Runtime("no such binary".into())),
            [c, n] if c == "exit" => Ok(n.parse().unwrap_or(1)),
            _ => Ok(0),
        }
    }
}

/// Port forwarding that connects to 127.0.0.1 of the test's own namespace.
pub struct Loopback;

#[async_trait]
impl PortForwardBackend for Loopback {
    async fn connect(
        &self,
        _r: &crius_stream::PortForwardRequest,
        port: u16,
    ) -> Result<tokio::net::TcpStream, BackendError> {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| BackendError::io("connect", e))
    }
}

pub async fn server_with(exec: Arc<dyn ExecBackend>, port_forward: Arc<dyn PortForwardBackend>) -> StreamServer {
    let backends = Backends { exec, attach: Arc::new(EchoAttach), port_forward };
    StreamServer::start(ServerConfig::default(), backends).await.expect("starting the server")
}

pub async fn server() -> (StreamServer, Arc<FakeExec>) {
    let exec = Arc::new(FakeExec::default());
    (server_with(exec.clone(), Arc::new(Loopback)).await, exec)
}

/// A TCP echo server on a free loopback port (in the caller's namespace).
pub async fn echo_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

pub fn exec_req(cmd: &[&str], tty: bool, stdin: bool) -> ExecRequest {
    ExecRequest {
        container_id: "c1".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    }
}
