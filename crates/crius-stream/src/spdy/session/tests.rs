use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::spdy::frame::{FrameDecoder, MAX_PAYLOAD};

fn pair(server: SpdyConfig, client: SpdyConfig) -> ((SpdySession, Incoming), (SpdySession, Incoming)) {
    let (a, b) = tokio::io::duplex(1 << 20);
    (SpdySession::new(a, server), SpdySession::new(b, client))
}

fn strict(role: Role) -> SpdyConfig {
    SpdyConfig {
        flow_control: FlowControl::Strict,
        recv_window: DEFAULT_WINDOW,
        conn_recv_window: DEFAULT_WINDOW,
        ..SpdyConfig::new(role)
    }
}

async fn read_all(stream: &SpdyStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.recv().await.unwrap() {
        out.extend_from_slice(&chunk);
    }
    out
}

#[tokio::test]
async fn streams_carry_data_both_ways_and_half_close() {
    let ((server, mut incoming), (client, _)) = pair(SpdyConfig::new(Role::Server), SpdyConfig::new(Role::Client));
    let opener = tokio::spawn(async move {
        let s = client.open_stream(Headers::new().with("streamType", "stdin")).await.unwrap();
        assert_eq!(s.id(), 1);
        s.send(Bytes::from_static(b"hello")).await.unwrap();
        s.finish().await.unwrap();
        let back = read_all(&s).await;
        (client, back)
    });
    let inc = incoming.next().await.unwrap();
    assert_eq!(inc.headers().get("streamtype"), Some("stdin"));
    let s = inc.accept().await.unwrap();
    assert_eq!(read_all(&s).await, b"hello");
    s.send(Bytes::from_static(b"world")).await.unwrap();
    s.finish().await.unwrap();
    let (client, back) = opener.await.unwrap();
    assert_eq!(back, b"world");
    // Both sides finished: the stream is forgotten on both ends.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(server.open_streams(), 0);
    assert_eq!(client.open_streams(), 0);
}

#[tokio::test]
async fn many_concurrent_streams() {
    let ((_server, mut incoming), (client, _)) = pair(SpdyConfig::new(Role::Server), SpdyConfig::new(Role::Client));
    let echo = tokio::spawn(async move {
        while let Some(inc) = incoming.next().await {
            tokio::spawn(async move {
                let s = inc.accept().await.unwrap();
                while let Some(chunk) = s.recv().await.unwrap() {
                    s.send(chunk).await.unwrap();
                }
                s.finish().await.unwrap();
            });
        }
    });
    let client = std::sync::Arc::new(client);
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let s = client.open_stream(Headers::new().with("n", &i.to_string())).await.unwrap();
            let payload: Vec<u8> = (0..(100_000 + i as usize)).map(|b| (b as u32 ^ i) as u8).collect();
            let sender = {
                let s = s.clone();
                let payload = payload.clone();
                tokio::spawn(async move {
                    s.send(Bytes::from(payload)).await.unwrap();
                    s.finish().await.unwrap();
                })
            };
            let got = read_all(&s).await;
            sender.await.unwrap();
            assert_eq!(got, payload, "stream {i}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(client);
    echo.abort();
}

#[tokio::test]
async fn strict_sender_stops_at_the_window_until_window_update() {
    let ((server, mut incoming), (client, _)) = pair(strict(Role::Server), strict(Role::Client));
    let opener = tokio::spawn(async move {
        let s = client.open_stream(Headers::new()).await.unwrap();
        (client, s)
    });
    let s = incoming.next().await.unwrap().accept().await.unwrap();
    let (_client, cs) = opener.await.unwrap();
    let total = 3 * DEFAULT_WINDOW as usize;
    let sender = {
        let s = s.clone();
        tokio::spawn(async move { s.send(Bytes::from(vec![7u8; total])).await.unwrap() })
    };
    // The client does not read: the server can put exactly one window on the wire.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!sender.is_finished());
    {
        let st = lock(&server.shared.state);
        assert_eq!(st.conn_send.available(), 0);
        assert_eq!(st.streams.get(&s.id()).unwrap().send.available(), 0);
    }
    // Reading returns credit (WINDOW_UPDATE at half the window) and the rest flows.
    let mut got = 0;
    while got < total {
        got += cs.recv().await.unwrap().unwrap().len();
    }
    sender.await.unwrap();
    assert_eq!(got, total);
}

/// A raw peer that speaks SPDY framing but no flow control, like moby/spdystream: it opens a
/// stream, reads DATA and never sends WINDOW_UPDATE.
async fn raw_peer_reads(mut io: DuplexStream, want: usize) -> usize {
    let mut c = HeaderCompressor::new().unwrap();
    let mut out = BytesMut::new();
    Frame::SynStream { stream_id: 1, associated_to: 0, priority: 0, slot: 0, flags: 0, headers: Headers::new() }
        .encode(&mut out, &mut c)
        .unwrap();
    io.write_all(&out).await.unwrap();
    let mut d = FrameDecoder::new(MAX_PAYLOAD, 1 << 20);
    let mut buf = BytesMut::new();
    let mut got = 0;
    while got < want {
        while let Some(f) = d.decode(&mut buf).unwrap() {
            if let Frame::Data { data, .. } = f {
                got += data.len();
            }
        }
        if got >= want || io.read_buf(&mut buf).await.unwrap() == 0 {
            break;
        }
    }
    got
}

#[tokio::test]
async fn adaptive_sender_gives_up_on_a_peer_without_flow_control() {
    let (a, b) = tokio::io::duplex(1 << 20);
    let config = SpdyConfig {
        flow_control: FlowControl::Adaptive { grace: Duration::from_millis(100) },
        ..SpdyConfig::new(Role::Server)
    };
    let (server, mut incoming) = SpdySession::new(a, config);
    let total = 4 * DEFAULT_WINDOW as usize;
    let peer = tokio::spawn(raw_peer_reads(b, total));
    let s = incoming.next().await.unwrap().accept().await.unwrap();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), s.send(Bytes::from(vec![1u8; total]))).await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(peer.await.unwrap(), total);
    assert!(lock(&server.shared.state).peer_ignores_windows);
}

#[tokio::test]
async fn strict_sender_waits_forever_for_such_a_peer() {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (_server, mut incoming) = SpdySession::new(a, strict(Role::Server));
    let _peer = tokio::spawn(raw_peer_reads(b, usize::MAX));
    let s = incoming.next().await.unwrap().accept().await.unwrap();
    let send = s.send(Bytes::from(vec![1u8; 2 * DEFAULT_WINDOW as usize]));
    assert!(tokio::time::timeout(Duration::from_millis(300), send).await.is_err());
}

#[tokio::test]
async fn settings_initial_window_resizes_open_streams() {
    let ((server, mut incoming), (client, _)) = pair(strict(Role::Server), SpdyConfig::new(Role::Client));
    // The client (default config) announced a 1 MiB stream window and 16 MiB connection window.
    let opener = tokio::spawn(async move { (client.open_stream(Headers::new()).await.unwrap(), client) });
    let s = incoming.next().await.unwrap().accept().await.unwrap();
    let _keep = opener.await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let st = lock(&server.shared.state);
    assert!(st.peer_manages_windows);
    assert_eq!(st.streams.get(&s.id()).unwrap().send.available(), 1 << 20);
    assert_eq!(st.conn_send.available(), 16 << 20);
}

#[tokio::test]
async fn ping_round_trip_and_reset() {
    let ((server, mut incoming), (client, _)) = pair(SpdyConfig::new(Role::Server), SpdyConfig::new(Role::Client));
    server.ping(Duration::from_secs(2)).await.unwrap();
    client.ping(Duration::from_secs(2)).await.unwrap();
    let opener = tokio::spawn(async move {
        let s = client.open_stream(Headers::new()).await.unwrap();
        let err = s.recv().await.unwrap_err();
        assert!(matches!(err, SpdyError::Reset(1, rst::CANCEL)), "{err}");
        // Refused streams fail to open.
        let err = client.open_stream(Headers::new()).await.err().unwrap();
        assert!(matches!(err, SpdyError::Reset(3, rst::REFUSED_STREAM)), "{err}");
    });
    let s = incoming.next().await.unwrap().accept().await.unwrap();
    s.reset(rst::CANCEL).await;
    incoming.next().await.unwrap().reject(rst::REFUSED_STREAM).await;
    opener.await.unwrap();
}

#[tokio::test]
async fn the_peer_going_away_resets_streams_and_closes() {
    let ((server, mut incoming), (client, _)) = pair(SpdyConfig::new(Role::Server), SpdyConfig::new(Role::Client));
    let opener = tokio::spawn(async move {
        let s = client.open_stream(Headers::new()).await.unwrap();
        (client, s)
    });
    let s = incoming.next().await.unwrap().accept().await.unwrap();
    let (client, _cs) = opener.await.unwrap();
    drop(client);
    tokio::time::timeout(Duration::from_secs(2), server.closed()).await.unwrap();
    assert!(s.recv().await.unwrap().is_none());
    assert!(s.send(Bytes::from_static(b"x")).await.is_err());
    assert!(incoming.next().await.is_none());
}

#[tokio::test]
async fn graceful_close_sends_goaway_and_the_peer_refuses_new_streams() {
    let ((server, _incoming), (client, _ci)) = pair(SpdyConfig::new(Role::Server), SpdyConfig::new(Role::Client));
    let closing = tokio::spawn(async move { server.close().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(client.open_stream(Headers::new()).await.is_err());
    drop(client);
    tokio::time::timeout(Duration::from_secs(2), closing).await.unwrap().unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let config = SpdyConfig { idle_timeout: Some(Duration::from_millis(200)), ..SpdyConfig::new(Role::Server) };
    let ((server, _i), (_client, _ci)) = pair(config, SpdyConfig::new(Role::Client));
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), server.closed()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn stream_ids_from_the_wrong_side_are_refused() {
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let (_server, mut incoming) = SpdySession::new(a, SpdyConfig::new(Role::Server));
    let mut c = HeaderCompressor::new().unwrap();
    let mut out = BytesMut::new();
    for id in [2u32, 1, 1] {
        Frame::SynStream { stream_id: id, associated_to: 0, priority: 0, slot: 0, flags: 0, headers: Headers::new() }
            .encode(&mut out, &mut c)
            .unwrap();
    }
    b.write_all(&out).await.unwrap();
    // Only stream 1 (the first time) is a valid new client stream.
    assert_eq!(incoming.next().await.unwrap().id(), 1);
    let mut d = FrameDecoder::new(MAX_PAYLOAD, 1 << 20);
    let mut buf = BytesMut::new();
    let mut rsts = Vec::new();
    while rsts.len() < 2 {
        b.read_buf(&mut buf).await.unwrap();
        while let Some(f) = d.decode(&mut buf).unwrap() {
            if let Frame::RstStream { stream_id, status } = f {
                rsts.push((stream_id, status));
            }
        }
    }
    assert_eq!(rsts, [(2, rst::PROTOCOL_ERROR), (1, rst::PROTOCOL_ERROR)]);
}
