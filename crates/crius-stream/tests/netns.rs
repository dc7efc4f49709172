//! Port forwarding into a network namespace this test creates (as root): an echo server listens
//! on the namespace's loopback only, and several forwarded connections reach it at once.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use crius_stream::PortForwardRequest;
use crius_stream::client::{self, read_to_end};
use crius_stream::netns::NetnsPortForward;

/// `ip netns add`, removed on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("crius-stream-{}", std::process::id());
        let ok = |args: &[&str]| {
            Command::new("ip").args(args).status().expect("running ip (apt-get install iproute2)").success()
        };
        let _ = ok(&["netns", "del", &name]);
        assert!(ok(&["netns", "add", &name]), "ip netns add");
        assert!(ok(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]));
        Netns(name)
    }

    fn path(&self) -> std::path::PathBuf {
        format!("/run/netns/{}", self.0).into()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// An echo server on 127.0.0.1 inside `ns`, on a thread that joined it.
fn echo_in(ns: &std::path::Path) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        tx.send(listener.local_addr().unwrap().port()).unwrap();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    rx.recv().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_into_the_pod_namespace() {
    let ns = Netns::new();
    let port = echo_in(&ns.path());
    // The port is not open in the test's own namespace.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let server = server_with(Arc::new(FakeExec::default()), Arc::new(NetnsPortForward::default())).await;
    let request = PortForwardRequest { pod_sandbox_id: "pod".into(), netns: Some(ns.path()), ports: vec![port] };
    let url = server.get_port_forward(request.clone()).unwrap();
    let c = Arc::new(client::spdy_connect(&url, &["portforward.k8s.io"]).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..6u32 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let (data, error) = c.port_forward(port, i).await.unwrap();
            let payload = Bytes::from(format!("connection {i} ").repeat(10_000));
            let sender = {
                let (data, payload) = (data.clone(), payload.clone());
                tokio::spawn(async move {
                    data.send(payload).await.unwrap();
                    data.finish().await.unwrap();
                })
            };
            let echoed = read_to_end(&data).await;
            sender.await.unwrap();
            assert!(echoed == payload, "connection {i}");
            assert!(read_to_end(&error).await.is_empty());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The WebSocket flavour reaches it too.
    let url = server.get_port_forward(request).unwrap();
    let mut ws = client::ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    assert_eq!(ws.recv().await.map(|m| m.0), Some(0));
    assert_eq!(ws.recv().await.map(|m| m.0), Some(1));
    ws.send(0, b"over websocket").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 14 {
        got.extend_from_slice(&ws.recv().await.unwrap().1);
    }
    assert_eq!(got, b"over websocket");
}
