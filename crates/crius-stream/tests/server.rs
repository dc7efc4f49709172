//! The server end to end on loopback, with fake backends: tokens, routing, protocol
//! negotiation, remote command over SPDY and WebSocket, port forwarding.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use crius_stream::client::{self, ClientError, exit_code, read_to_end, send_resize};
use crius_stream::request::StreamOptions;
use crius_stream::{AttachRequest, PortForwardRequest, TerminalSize};

const V4: &str = "v4.channel.k8s.io";

#[tokio::test]
async fn urls_are_single_use_and_nothing_else_is_served() {
    let (server, _) = server().await;
    let url = server.get_exec(exec_req(&["true"], false, false)).unwrap();
    assert!(url.starts_with(&format!("http://{}/exec/", server.local_addr())), "{url}");
    let c = client::spdy_connect(&url, &[V4]).await.unwrap();
    assert_eq!(c.protocol.as_deref(), Some(V4));
    // Reused: 404, whatever the client asks.
    match client::spdy_connect(&url, &[V4]).await {
        Err(ClientError::Status { status: 404, .. }) => {}
        other => panic!("{:?}", other.err()),
    }
    let base = format!("http://{}", server.local_addr());
    for path in ["/", "/exec/", "/exec/nope", "/metrics", "/attach/x/y"] {
        assert_eq!(client::get_status(&format!("{base}{path}")).await.unwrap(), 404, "{path}");
    }
    // A token of one kind does not open another.
    let url = server
        .get_attach(AttachRequest { container_id: "c".into(), tty: false, stdin: true, stdout: true, stderr: false })
        .unwrap();
    let wrong = url.replace("/attach/", "/exec/");
    assert_eq!(client::get_status(&wrong).await.unwrap(), 404);
    assert_eq!(client::get_status(&url).await.unwrap(), 404, "consumed by the wrong-kind attempt");
    // Invalid requests get no URL.
    assert!(server.get_exec(exec_req(&[], false, false)).is_err());
}

#[tokio::test]
async fn protocol_negotiation() {
    let (server, _) = server().await;
    let url = server.get_exec(exec_req(&["true"], false, false)).unwrap();
    match client::spdy_connect(&url, &["v9.channel.k8s.io"]).await {
        Err(ClientError::Status { status: 403, headers, .. }) => {
            let accepted: Vec<_> = headers.iter().filter(|(n, _)| n == "x-accepted-stream-protocol-versions").collect();
            assert_eq!(accepted.len(), 5);
        }
        other => panic!("{:?}", other.err()),
    }
    // Several offered: the client's first supported one.
    let url = server.get_exec(exec_req(&["true"], false, false)).unwrap();
    let c = client::spdy_connect(&url, &["v9.channel.k8s.io", "v3.channel.k8s.io", V4]).await.unwrap();
    assert_eq!(c.protocol.as_deref(), Some("v3.channel.k8s.io"));
    let url = server.get_exec(exec_req(&["true"], false, false)).unwrap();
    match client::ws_connect(&url, &["nope.k8s.io"]).await {
        Err(ClientError::Status { status: 400, .. }) => {}
        other => panic!("{:?}", other.err()),
    }
}

#[tokio::test]
async fn spdy_exec_reports_exit_codes_v4_json_and_v3_text() {
    let (server, _) = server().await;
    for (cmd, code) in [(&["exit", "3"][..], 3), (&["echo", "hi"][..], 0)] {
        let url = server.get_exec(exec_req(cmd, false, false)).unwrap();
        let c = client::spdy_connect(&url, &[V4]).await.unwrap();
        let s = c.remote_command(StreamOptions { tty: false, stdin: false, stdout: true, stderr: true }).await.unwrap();
        let out = read_to_end(s.stdout.as_ref().unwrap()).await;
        assert_eq!(out, cmd.join(" ").as_bytes());
        assert!(read_to_end(s.stderr.as_ref().unwrap()).await.is_empty());
        assert_eq!(exit_code(&read_to_end(&s.error).await), Ok(code));
    }
    let url = server.get_exec(exec_req(&["exit", "7"], false, false)).unwrap();
    let c = client::spdy_connect(&url, &["v3.channel.k8s.io"]).await.unwrap();
    let s = c.remote_command(StreamOptions { tty: false, stdin: false, stdout: true, stderr: true }).await.unwrap();
    let text = String::from_utf8(read_to_end(&s.error).await).unwrap();
    assert!(text.starts_with("command terminated with non-zero exit code"), "{text}");
    let url = server.get_exec(exec_req(&["fail"], false, false)).unwrap();
    let c = client::spdy_connect(&url, &[V4]).await.unwrap();
    let s = c.remote_command(StreamOptions { tty: false, stdin: false, stdout: true, stderr: true }).await.unwrap();
    let err = exit_code(&read_to_end(&s.error).await).unwrap_err();
    assert!(err.contains("no such binary"), "{err}");
}

#[tokio::test]
async fn spdy_attach_echoes_stdin_and_resizes() {
    let (server, _) = server().await;
    let url = server
        .get_attach(AttachRequest { container_id: "c".into(), tty: true, stdin: true, stdout: true, stderr: false })
        .unwrap();
    let c = client::spdy_connect(&url, &[V4, "v3.channel.k8s.io"]).await.unwrap();
    let s = c.remote_command(StreamOptions { tty: true, stdin: true, stdout: true, stderr: false }).await.unwrap();
    let stdin = s.stdin.as_ref().unwrap();
    // stdin and resizes travel on streams of their own, so each step waits for the echo of the one
    // before: that makes the order of the output known.
    let stdout = s.stdout.as_ref().unwrap();
    let mut out = Vec::new();
    stdin.send(Bytes::from_static(b"hello ")).await.unwrap();
    read_until(stdout, &mut out, b"hello ").await;
    send_resize(s.resize.as_ref().unwrap(), TerminalSize { width: 120, height: 33 }).await.unwrap();
    read_until(stdout, &mut out, b"hello [120x33]").await;
    stdin.send(Bytes::from_static(b"world")).await.unwrap();
    stdin.finish().await.unwrap();
    out.extend(read_to_end(stdout).await);
    assert_eq!(String::from_utf8(out).unwrap(), "hello [120x33]world");
    assert_eq!(exit_code(&read_to_end(&s.error).await), Ok(0));
}

/// Reads `stream` into `out` until `out` is `want`.
async fn read_until(stream: &crius_stream::spdy::SpdyStream, out: &mut Vec<u8>, want: &[u8]) {
    while out.len() < want.len() {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.recv()).await.expect("output in time");
        out.extend_from_slice(&chunk.unwrap().expect("the stream open"));
    }
    assert_eq!(String::from_utf8_lossy(out), String::from_utf8_lossy(want));
}

#[tokio::test]
async fn websocket_attach_v5_closes_stdin_and_base64_works() {
    let (server, _) = server().await;
    let attach = AttachRequest { container_id: "c".into(), tty: false, stdin: true, stdout: true, stderr: true };
    let url = server.get_attach(attach.clone()).unwrap();
    let mut ws = client::ws_connect(&url, &["v5.channel.k8s.io", "v4.channel.k8s.io"]).await.unwrap();
    assert_eq!(ws.protocol, "v5.channel.k8s.io");
    // The server's hello: an empty message on stdout.
    assert_eq!(ws.recv().await, Some((1, Bytes::new())));
    ws.send(0, b"ping").await.unwrap();
    ws.close_channel(0).await.unwrap();
    let got = ws.collect().await;
    assert_eq!(got.get(&1).map(Vec::as_slice), Some(&b"ping"[..]));
    assert_eq!(got.get(&2).map(Vec::as_slice), Some(&b"err:ping"[..]));
    assert_eq!(exit_code(got.get(&3).unwrap()), Ok(0));

    let url = server.get_attach(attach).unwrap();
    let mut ws = client::ws_connect(&url, &["v4.base64.channel.k8s.io"]).await.unwrap();
    assert_eq!(ws.protocol, "v4.base64.channel.k8s.io");
    assert_eq!(ws.recv().await, Some((1, Bytes::new())));
    ws.send(0, b"b64").await.unwrap();
    let (ch, data) = ws.recv().await.unwrap();
    assert_eq!((ch, &data[..]), (1, &b"b64"[..]));
}

#[tokio::test]
async fn websocket_exec_exit_code() {
    let (server, _) = server().await;
    let url = server.get_exec(exec_req(&["exit", "42"], false, false)).unwrap();
    let mut ws = client::ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    let got = ws.collect().await;
    assert_eq!(got.get(&1).map(Vec::as_slice), Some(&b"exit 42"[..]));
    assert_eq!(exit_code(got.get(&3).unwrap()), Ok(42));
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_command() {
    let (server, exec) = server().await;
    for ws in [false, true] {
        let before = exec.dropped.load(Ordering::SeqCst);
        exec.running.store(false, Ordering::SeqCst);
        let url = server.get_exec(exec_req(&["hang"], false, true)).unwrap();
        if ws {
            let c = client::ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
            wait_until(|| exec.running.load(Ordering::SeqCst)).await;
            drop(c);
        } else {
            let c = client::spdy_connect(&url, &[V4]).await.unwrap();
            let s =
                c.remote_command(StreamOptions { tty: false, stdin: true, stdout: true, stderr: true }).await.unwrap();
            wait_until(|| exec.running.load(Ordering::SeqCst)).await;
            drop(s);
            drop(c);
        }
        wait_until(|| exec.dropped.load(Ordering::SeqCst) == before + 1).await;
    }
    wait_until(|| server.active_sessions() == 0).await;
}

#[tokio::test]
async fn streams_not_opened_in_time_end_the_session() {
    let exec = std::sync::Arc::new(FakeExec::default());
    let backends = crius_stream::Backends {
        exec,
        attach: std::sync::Arc::new(EchoAttach),
        port_forward: std::sync::Arc::new(Loopback),
    };
    let config =
        crius_stream::ServerConfig { stream_creation_timeout: Duration::from_millis(200), ..Default::default() };
    let server = crius_stream::StreamServer::start(config, backends).await.unwrap();
    let url = server.get_exec(exec_req(&["true"], false, false)).unwrap();
    let c = client::spdy_connect(&url, &[V4]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), c.session.closed()).await.unwrap();
}

async fn wait_until(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "condition not reached in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn spdy_port_forward_to_loopback_many_connections() {
    let (server, _) = server().await;
    let port = echo_server().await;
    let url = server
        .get_port_forward(PortForwardRequest { pod_sandbox_id: "p".into(), netns: None, ports: vec![port] })
        .unwrap();
    let c = std::sync::Arc::new(client::spdy_connect(&url, &["portforward.k8s.io"]).await.unwrap());
    assert_eq!(c.protocol.as_deref(), Some("portforward.k8s.io"));
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let (data, error) = c.port_forward(port, i).await.unwrap();
            let payload: Vec<u8> = (0..200_000u32).map(|b| (b * 7 + i) as u8).collect();
            let sender = {
                let data = data.clone();
                let payload = payload.clone();
                tokio::spawn(async move {
                    data.send(Bytes::from(payload)).await.unwrap();
                    data.finish().await.unwrap();
                })
            };
            let echoed = read_to_end(&data).await;
            sender.await.unwrap();
            assert_eq!(echoed.len(), payload.len());
            assert!(echoed == payload, "connection {i}");
            assert!(read_to_end(&error).await.is_empty());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A closed port: the error stream says so.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (data, error) = c.port_forward(closed, 100).await.unwrap();
    let message = String::from_utf8(read_to_end(&error).await).unwrap();
    assert!(message.contains(&format!("error forwarding port {closed}")), "{message}");
    let _ = read_to_end(&data).await;
}

#[tokio::test]
async fn websocket_port_forward_prefixes_ports() {
    let (server, _) = server().await;
    let port = echo_server().await;
    let url = server
        .get_port_forward(PortForwardRequest { pod_sandbox_id: "p".into(), netns: None, ports: vec![port] })
        .unwrap();
    let mut ws = client::ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    let le = port.to_le_bytes().to_vec();
    assert_eq!(ws.recv().await, Some((0, Bytes::from(le.clone()))));
    assert_eq!(ws.recv().await, Some((1, Bytes::from(le))));
    ws.send(0, b"echo me").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 7 {
        let (ch, data) = ws.recv().await.unwrap();
        assert_eq!(ch, 0);
        got.extend_from_slice(&data);
    }
    assert_eq!(got, b"echo me");
}

/// Port-forward throughput over loopback: one SPDY stream, 256 MiB echoed (both directions
/// carry it). Prints MiB/s; asserts only a floor that any working build clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_throughput() {
    let (server, _) = server().await;
    let port = echo_server().await;
    let url = server
        .get_port_forward(PortForwardRequest { pod_sandbox_id: "p".into(), netns: None, ports: vec![port] })
        .unwrap();
    let c = client::spdy_connect(&url, &["portforward.k8s.io"]).await.unwrap();
    let (data, _error) = c.port_forward(port, 1).await.unwrap();
    let total: usize = 256 << 20;
    let chunk = Bytes::from(vec![0x5au8; 256 * 1024]);
    let started = Instant::now();
    let sender = {
        let data = data.clone();
        tokio::spawn(async move {
            let mut sent = 0;
            while sent < total {
                data.send(chunk.clone()).await.unwrap();
                sent += chunk.len();
            }
            data.finish().await.unwrap();
        })
    };
    let mut got = 0;
    while let Some(c) = data.recv().await.unwrap() {
        got += c.len();
    }
    sender.await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(got, total);
    let mib_s = (total as f64 / (1 << 20) as f64) / secs;
    println!("PORT-FORWARD THROUGHPUT: {mib_s:.0} MiB/s echoed ({total} bytes each way in {secs:.2} s)");
    assert!(mib_s > 20.0, "{mib_s} MiB/s");
}
