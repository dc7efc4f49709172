//! [`PortForwardBackend`] for pods: connects to the port on the loopback of the pod's network
//! namespace. setns(2) changes only the calling thread's namespace, so the connection is made on
//! a short-lived thread of its own (never a pooled one, which would stay in the pod's
//! namespace); the socket keeps the namespace it was created in and is handed to tokio.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream as StdTcpStream};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use nix::sched::{CloneFlags, setns};
use tokio::net::TcpStream;

use crate::backend::PortForwardBackend;
use crate::error::BackendError;
use crate::request::PortForwardRequest;

pub struct NetnsPortForward {
    pub connect_timeout: Duration,
}

impl Default for NetnsPortForward {
    fn default() -> Self {
        NetnsPortForward { connect_timeout: Duration::from_secs(10) }
    }
}

#[async_trait]
impl PortForwardBackend for NetnsPortForward {
    async fn connect(&self, request: &PortForwardRequest, port: u16) -> Result<TcpStream, BackendError> {
        let timeout = self.connect_timeout;
        let netns = request.netns.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("crius-pf-connect".into())
            .spawn(move || {
                let result = match &netns {
                    Some(path) => enter(path).and_then(|()| connect_loopback(port, timeout)),
                    None => connect_loopback(port, timeout),
                };
                let _ = tx.send(result);
            })
            .map_err(|e| BackendError::io("starting a thread to connect from", e))?;
        let stream = rx
            .await
            .map_err(|_| BackendError::Runtime("the connecting thread died".into()))?
            .map_err(|e| BackendError::io(format!("connecting to port {port} in pod {}", request.pod_sandbox_id), e))?;
        stream.set_nonblocking(true).map_err(|e| BackendError::io("making the socket non-blocking", e))?;
        let _ = stream.set_nodelay(true);
        TcpStream::from_std(stream).map_err(|e| BackendError::io("registering the socket", e))
    }
}

fn enter(path: &Path) -> io::Result<()> {
    let ns = File::open(path)?;
    setns(&ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// 127.0.0.1, then ::1 (what "localhost" means to the kubelet's runtimes).
fn connect_loopback(port: u16, timeout: Duration) -> io::Result<StdTcpStream> {
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match StdTcpStream::connect_timeout(&v4, timeout) {
        Ok(s) => Ok(s),
        Err(e4) => {
            StdTcpStream::connect_timeout(&SocketAddr::from((Ipv6Addr::LOCALHOST, port)), timeout).map_err(|_| e4)
        }
    }
}
