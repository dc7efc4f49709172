//! Exec against a real runc container (busybox-static), as root: stdin, exit codes (v4 Status),
//! a tty and its resizes, no process left behind when the client leaves, and the latency of a
//! whole session.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use crius_core::ports::container::RuntimeHandler;
use crius_oci::argv::{Create, Runtime, Subcommand};
use crius_oci::run::run;
use crius_oci::testing::{BundleSpec, busybox_rootfs};
use crius_stream::client::{self, exit_code, read_to_end, send_resize};
use crius_stream::request::StreamOptions;
use crius_stream::runc_exec::RuncExec;
use crius_stream::spdy::SpdyStream;
use crius_stream::{StreamServer, TerminalSize};

const V4: &str = "v4.channel.k8s.io";
const TIMEOUT: Duration = Duration::from_secs(30);

struct Container {
    runtime: Runtime,
    id: String,
    _dir: tempfile::TempDir,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = run(&self.runtime, &Subcommand::Delete { id: self.id.clone(), force: true }, TIMEOUT);
    }
}

fn runc() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| p.to_str().map(str::to_string))
        .and_then(|p| p.split(':').map(|d| Path::new(d).join("runc")).find(|p| p.is_file()))
        .expect("runc is not installed (apt-get install runc)")
}

fn container(name: &str) -> Container {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    busybox_rootfs(&rootfs).expect("building the busybox rootfs (apt-get install busybox-static)");
    let bundle = dir.path().join("bundle");
    BundleSpec::new(&["sleep", "100000"]).write(&bundle, &rootfs).unwrap();
    let runtime = Runtime::new(runc(), dir.path().join("root"));
    let id = format!("{name}-{}", std::process::id());
    let create = Subcommand::Create(Create {
        id: id.clone(),
        bundle,
        pid_file: dir.path().join("pid"),
        console_socket: None,
        no_pivot: false,
    });
    run(&runtime, &create, TIMEOUT).expect("runc create");
    run(&runtime, &Subcommand::Start { id: id.clone() }, TIMEOUT).expect("runc start");
    Container { runtime, id, _dir: dir }
}

async fn server_for(c: &Container) -> StreamServer {
    let handler = RuntimeHandler {
        name: "runc".into(),
        binary: c.runtime.binary.display().to_string(),
        root: c.runtime.root.display().to_string(),
        ..Default::default()
    };
    let scratch = c._dir.path().join("exec");
    let exec = RuncExec::new(Arc::new(move |_id: &str| Ok(handler.clone())), scratch);
    server_with(Arc::new(exec), Arc::new(Loopback)).await
}

fn req(c: &Container, cmd: &[&str], tty: bool, stdin: bool) -> crius_stream::ExecRequest {
    crius_stream::ExecRequest { container_id: c.id.clone(), ..exec_req(cmd, tty, stdin) }
}

/// Everything exec'd here carries this marker, so leftovers can be found.
fn marker() -> String {
    format!("{}", 700_000 + std::process::id())
}

fn leftovers(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).split('\0').any(|a| a.contains(marker)))
                && std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| !s.contains(") Z "))
        })
        .count()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_without_tty_stdin_and_exit_codes() {
    let c = container("stream-exec");
    let server = server_for(&c).await;
    // stdin through cat, stdout and stderr apart, the exit code in a v4 Status.
    let url = server.get_exec(req(&c, &["sh", "-c", "cat; echo oops >&2; exit 3"], false, true)).unwrap();
    let cl = client::spdy_connect(&url, &[V4]).await.unwrap();
    let s = cl.remote_command(StreamOptions { tty: false, stdin: true, stdout: true, stderr: true }).await.unwrap();
    let stdin = s.stdin.as_ref().unwrap();
    stdin.send(Bytes::from_static(b"through stdin\n")).await.unwrap();
    stdin.finish().await.unwrap();
    assert_eq!(read_to_end(s.stdout.as_ref().unwrap()).await, b"through stdin\n");
    assert_eq!(read_to_end(s.stderr.as_ref().unwrap()).await, b"oops\n");
    assert_eq!(exit_code(&read_to_end(&s.error).await), Ok(3));
    // A command that does not exist: the runtime's own error, as an internal error.
    let url = server.get_exec(req(&c, &["/no/such/binary"], false, false)).unwrap();
    let cl = client::spdy_connect(&url, &[V4]).await.unwrap();
    let s = cl.remote_command(StreamOptions { tty: false, stdin: false, stdout: true, stderr: true }).await.unwrap();
    let status = read_to_end(&s.error).await;
    println!("missing binary: {}", String::from_utf8_lossy(&status));
    assert_ne!(exit_code(&status), Ok(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_tty_sees_its_size_and_resizes() {
    let c = container("stream-tty");
    let server = server_for(&c).await;
    let url = server.get_exec(req(&c, &["sh"], true, true)).unwrap();
    let cl = client::spdy_connect(&url, &[V4]).await.unwrap();
    let s = cl.remote_command(StreamOptions { tty: true, stdin: true, stdout: true, stderr: false }).await.unwrap();
    let resize = s.resize.as_ref().unwrap();
    let stdin = s.stdin.as_ref().unwrap();
    let stdout = s.stdout.as_ref().unwrap();
    let mut out = Vec::new();
    // A resize travels on its own stream, so it may land after the next stdin: ask again until the
    // terminal shows it, rather than guess how long it takes.
    send_resize(resize, TerminalSize { width: 123, height: 45 }).await.unwrap();
    shows_after_asking(stdin, stdout, &mut out, "45 123").await;
    // A resize while it runs reaches the container's terminal (runc gets SIGWINCH).
    send_resize(resize, TerminalSize { width: 77, height: 22 }).await.unwrap();
    shows_after_asking(stdin, stdout, &mut out, "22 77").await;
    stdin.send(Bytes::from_static(b"exit 5\n")).await.unwrap();
    tokio::time::timeout(TIMEOUT, read_to_end(stdout)).await.unwrap();
    assert_eq!(exit_code(&read_to_end(&s.error).await), Ok(5));
}

/// Types `stty size` into the terminal every 200 ms until its output shows `size`.
async fn shows_after_asking(stdin: &SpdyStream, stdout: &SpdyStream, out: &mut Vec<u8>, size: &str) {
    let deadline = Instant::now() + TIMEOUT;
    let seen = |out: &[u8]| String::from_utf8_lossy(out).lines().any(|l| l.trim() == size);
    while !seen(out) {
        assert!(Instant::now() < deadline, "the terminal never showed {size}: {:?}", String::from_utf8_lossy(out));
        stdin.send(Bytes::from_static(b"stty size\n")).await.unwrap();
        let asked = Instant::now();
        while !seen(out) && asked.elapsed() < Duration::from_millis(200) {
            match tokio::time::timeout(Duration::from_millis(200), stdout.recv()).await {
                Ok(Ok(Some(chunk))) => out.extend_from_slice(&chunk),
                Ok(_) => panic!("stdout ended before {size} showed: {:?}", String::from_utf8_lossy(out)),
                Err(_) => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_kills_the_exec() {
    let c = container("stream-gone");
    let server = server_for(&c).await;
    let fds_before = open_fds();
    let m = marker();
    for tty in [false, true] {
        let cmd = format!("sleep {m} & sleep {m}");
        let url = server.get_exec(req(&c, &["sh", "-c", &cmd], tty, true)).unwrap();
        let cl = client::spdy_connect(&url, &[V4]).await.unwrap();
        let s = cl.remote_command(StreamOptions { tty, stdin: true, stdout: true, stderr: !tty }).await.unwrap();
        let deadline = Instant::now() + TIMEOUT;
        while leftovers(&m) < 2 {
            assert!(Instant::now() < deadline, "the exec never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(s);
        drop(cl);
        let deadline = Instant::now() + TIMEOUT;
        while leftovers(&m) > 0 {
            assert!(Instant::now() < deadline, "processes survived the client (tty {tty})");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let deadline = Instant::now() + TIMEOUT;
    while server.active_sessions() > 0 || open_fds() > fds_before {
        assert!(Instant::now() < deadline, "sessions {} fds {} > {fds_before}", server.active_sessions(), open_fds());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Latency of a whole exec session — connect, upgrade, streams, `runc exec true`, status —
/// p50 and p90 over 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_session_latency() {
    let c = container("stream-lat");
    let server = server_for(&c).await;
    let mut times = Vec::new();
    for _ in 0..20 {
        let url = server.get_exec(req(&c, &["true"], false, false)).unwrap();
        let started = Instant::now();
        let cl = client::spdy_connect(&url, &[V4]).await.unwrap();
        let s =
            cl.remote_command(StreamOptions { tty: false, stdin: false, stdout: true, stderr: true }).await.unwrap();
        let status = read_to_end(&s.error).await;
        times.push(started.elapsed());
        assert_eq!(exit_code(&status), Ok(0));
    }
    times.sort();
    println!("EXEC SESSION LATENCY: p50 {:?}, p90 {:?}, min {:?}, max {:?}", times[10], times[18], times[0], times[19]);
}
