//! Exec, Attach and PortForward through a real daemon (run as root): the CRI call returns a URL,
//! a SPDY client (crius-stream's, speaking what the kubelet speaks) or a WebSocket client (what
//! newer kubectl speaks) connects to it.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use crius_stream::client::{self, exit_code, read_to_end};
use crius_stream::request::StreamOptions;
use crius_testkit::cri;
use crius_testkit::image_builder::catalog;
use crius_testkit::shared_registry::SharedRegistry;
use crius_testkit::{PodConfigExt, TestDaemon, pod_config};

const BIN: &str = env!("CARGO_BIN_EXE_crius");
const V4: &str = "v4.channel.k8s.io";

static REG: LazyLock<SharedRegistry> = LazyLock::new(|| {
    SharedRegistry::start(vec![("busybox", catalog::busybox())])
        .unwrap_or_else(|e| panic!("the shared registry did not start: {e}"))
});

/// A daemon with a pod running `sleep` in a busybox container; (daemon, pod id, container id).
async fn running_container(name: &str) -> (TestDaemon, String, String) {
    running_container_with(name, |_| {}).await
}

/// The same, with the container's config changed by `change` first.
async fn running_container_with(
    name: &str,
    change: impl FnOnce(&mut cri::ContainerConfig),
) -> (TestDaemon, String, String) {
    let td = TestDaemon::start(BIN).await.unwrap_or_else(|e| panic!("the daemon did not start: {e}"));
    let image = REG.reference("busybox");
    let pull = cri::PullImageRequest {
        image: Some(cri::ImageSpec { image: image.clone(), ..Default::default() }),
        ..Default::default()
    };
    td.image().pull_image(pull).await.unwrap_or_else(|s| panic!("pull: {}", s.message()));
    let logs = log_dir(&td);
    let pod_cfg = pod_config(name).log_directory(&logs.to_string_lossy());
    let pod = td.run_pod(pod_cfg.clone()).await.unwrap_or_else(|s| panic!("run pod: {}", s.message()));
    let config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: "main".into(), attempt: 0 }),
        image: Some(cri::ImageSpec { image, ..Default::default() }),
        command: vec!["sleep".into(), "1000".into()],
        ..Default::default()
    };
    let mut config = config;
    change(&mut config);
    let create = cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(config),
        sandbox_config: Some(pod_cfg),
    };
    let id = td
        .runtime()
        .create_container(create)
        .await
        .unwrap_or_else(|s| panic!("create: {}\n{}", s.message(), td.log_tail(40)))
        .into_inner()
        .container_id;
    td.runtime()
        .start_container(cri::StartContainerRequest { container_id: id.clone() })
        .await
        .unwrap_or_else(|s| panic!("start: {}", s.message()));
    (td, pod, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_streams_output_and_the_exit_code() {
    let (td, pod, id) = running_container("stream-exec").await;
    let exec = cri::ExecRequest {
        container_id: id[..12].to_string(),
        cmd: vec!["sh".into(), "-c".into(), "read line; echo \"got $line\"; echo err >&2; exit 3".into()],
        tty: false,
        stdin: true,
        stdout: true,
        stderr: true,
    };
    let url = td.runtime().exec(exec).await.unwrap_or_else(|s| panic!("Exec: {}", s.message())).into_inner().url;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let session = client::spdy_connect(&url, &[V4]).await.expect("connect");
    let s = session
        .remote_command(StreamOptions { tty: false, stdin: true, stdout: true, stderr: true })
        .await
        .expect("streams");
    let stdin = s.stdin.as_ref().expect("stdin");
    stdin.send(Bytes::from_static(b"hello\n")).await.expect("send");
    stdin.finish().await.expect("close stdin");
    let out = tokio::time::timeout(Duration::from_secs(20), read_to_end(s.stdout.as_ref().expect("stdout")))
        .await
        .expect("stdout in time");
    assert_eq!(out, b"got hello\n");
    assert_eq!(read_to_end(s.stderr.as_ref().expect("stderr")).await, b"err\n");
    assert_eq!(exit_code(&read_to_end(&s.error).await), Ok(3));
    // The URL is single-use.
    assert_eq!(client::get_status(&url).await.ok(), Some(404));

    // Exec needs a running container; tty with stderr is refused as the kubelet refuses it.
    let bad = cri::ExecRequest {
        container_id: id.clone(),
        cmd: vec!["true".into()],
        tty: true,
        stdin: false,
        stdout: true,
        stderr: true,
    };
    assert_eq!(td.runtime().exec(bad).await.expect_err("tty+stderr").code(), tonic::Code::InvalidArgument);
    td.runtime()
        .stop_container(cri::StopContainerRequest { container_id: id.clone(), timeout: 0 })
        .await
        .expect("stop");
    let after = cri::ExecRequest {
        container_id: id.clone(),
        cmd: vec!["true".into()],
        tty: false,
        stdin: false,
        stdout: true,
        stderr: false,
    };
    assert_eq!(td.runtime().exec(after).await.expect_err("stopped").code(), tonic::Code::FailedPrecondition);
    td.remove_pod(&pod).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_reaches_a_server_in_the_pod() {
    let (td, pod, _id) = running_container("stream-pf").await;
    let info = td.pod_info(&pod).await.expect("info");
    let netns = info.namespaces.net.clone().expect("a pinned netns");
    // An echo server on the pod's loopback, on a thread that joined the pod's netns.
    let file = std::fs::File::open(&netns).expect("open netns");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let listener = std::net::TcpListener::bind("127.0.0.1:7070").expect("bind in the pod");
        let _ = ready_tx.send(());
        if let Ok((mut conn, _)) = listener.accept() {
            let _ = std::io::copy(&mut conn.try_clone().expect("clone"), &mut conn);
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).expect("server ready");
    let request = cri::PortForwardRequest { pod_sandbox_id: pod.clone(), port: vec![7070] };
    let url = td
        .runtime()
        .port_forward(request)
        .await
        .unwrap_or_else(|s| panic!("PortForward: {}", s.message()))
        .into_inner()
        .url;
    let session = client::spdy_connect(&url, &["portforward.k8s.io"]).await.expect("connect");
    let (data, _error) = session.port_forward(7070, 0).await.expect("streams");
    data.send(Bytes::from_static(b"ping through the pod")).await.expect("send");
    data.finish().await.expect("half-close");
    let echoed = tokio::time::timeout(Duration::from_secs(20), read_to_end(&data)).await.expect("echo in time");
    assert_eq!(echoed, b"ping through the pod");
    let _ = server.join();
    td.remove_pod(&pod).await.expect("remove");
    td.assert_no_leaks().await;
}

/// The pods' log directory, inside the test's own dir (removed with it).
fn log_dir(td: &TestDaemon) -> std::path::PathBuf {
    td.root().join("pod-logs")
}

/// The container's status as ContainerStatus gives it.
async fn status_of(td: &TestDaemon, id: &str) -> cri::ContainerStatus {
    td.runtime()
        .container_status(cri::ContainerStatusRequest { container_id: id.to_string(), verbose: false })
        .await
        .expect("status")
        .into_inner()
        .status
        .expect("a status")
}

/// Waits until the container has exited; its exit code.
async fn exit_code_of(td: &TestDaemon, id: &str) -> i32 {
    for _ in 0..200 {
        let status = status_of(td, id).await;
        if status.state == cri::ContainerState::ContainerExited as i32 {
            return status.exit_code;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("container {id} did not exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_passes_stdin_and_output_and_stdin_once_ends_the_input() {
    let script = "echo started; while read line; do echo \"out $line\"; echo \"err $line\" >&2; done; echo bye; exit 4";
    let (td, pod, id) = running_container_with("stream-attach", |c| {
        c.command = vec!["sh".into(), "-c".into(), script.into()];
        c.stdin = true;
        c.stdin_once = true;
        c.log_path = "main.log".into();
    })
    .await;
    let attach =
        cri::AttachRequest { container_id: id[..12].to_string(), stdin: true, tty: false, stdout: true, stderr: true };
    let url = td.runtime().attach(attach).await.unwrap_or_else(|s| panic!("Attach: {}", s.message())).into_inner().url;
    assert!(url.starts_with("http://127.0.0.1:") && url.contains("/attach/"), "{url}");
    let session = client::spdy_connect(&url, &[V4]).await.expect("connect");
    let s = session
        .remote_command(StreamOptions { tty: false, stdin: true, stdout: true, stderr: true })
        .await
        .expect("streams");
    let stdin = s.stdin.as_ref().expect("stdin");
    stdin.send(Bytes::from_static(b"one\n")).await.expect("send");
    stdin.send(Bytes::from_static(b"two\n")).await.expect("send");
    // Closing the client's stdin closes the container's (stdin_once): its loop ends.
    stdin.finish().await.expect("close stdin");
    let out = tokio::time::timeout(Duration::from_secs(20), read_to_end(s.stdout.as_ref().expect("stdout")))
        .await
        .expect("stdout in time");
    // "started" may come before the attach: only what follows it is certain.
    let out = String::from_utf8_lossy(&out).replace("started\n", "");
    if out.is_empty() {
        let error = String::from_utf8_lossy(&read_to_end(&s.error).await).into_owned();
        panic!("no output; error stream: {error}\n{}", td.log_tail(30));
    }
    assert_eq!(out, "out one\nout two\nbye\n");
    assert_eq!(read_to_end(s.stderr.as_ref().expect("stderr")).await, b"err one\nerr two\n");
    assert_eq!(exit_code(&read_to_end(&s.error).await), Ok(0), "the attach session itself succeeded");
    assert_eq!(exit_code_of(&td, &id).await, 4);
    // What the attach saw also went to the CRI log.
    let log = std::fs::read_to_string(log_dir(&td).join("main.log")).expect("the container's log");
    for line in ["out one", "err two", "bye"] {
        assert!(log.contains(line), "{line:?} in the log:\n{log}");
    }
    assert_eq!(client::get_status(&url).await.ok(), Some(404), "the URL is single-use");

    // An exited container cannot be attached to.
    let again = cri::AttachRequest { container_id: id.clone(), stdin: false, tty: false, stdout: true, stderr: false };
    assert_eq!(td.runtime().attach(again).await.expect_err("exited").code(), tonic::Code::FailedPrecondition);
    td.remove_pod(&pod).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_over_websocket_to_a_terminal_with_resize() {
    let (td, pod, id) = running_container_with("stream-attach-tty", |c| {
        c.command =
            vec!["sh".into(), "-c".into(), r#"while read l; do [ "$l" = done ] && exit 0; stty size; done"#.into()];
        c.stdin = true;
        c.tty = true;
    })
    .await;
    let attach = cri::AttachRequest { container_id: id.clone(), stdin: true, tty: true, stdout: true, stderr: false };
    let url = td.runtime().attach(attach).await.unwrap_or_else(|s| panic!("Attach: {}", s.message())).into_inner().url;
    let mut ws = client::ws_connect(&url, &["v5.channel.k8s.io"]).await.expect("connect");
    assert_eq!(ws.protocol, "v5.channel.k8s.io");
    ws.send(4, br#"{"Width":101,"Height":33}"#).await.expect("resize");
    // The resize and the stdin travel separately, so the resize may land after the next line:
    // ask again until the terminal shows it.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let shows_size = |seen: &[u8]| String::from_utf8_lossy(seen).lines().any(|l| l.trim() == "33 101");
    while !shows_size(&seen) {
        assert!(tokio::time::Instant::now() < deadline, "the size in time: {:?}", String::from_utf8_lossy(&seen));
        ws.send(0, b"ask\r").await.expect("stdin");
        let asked = tokio::time::Instant::now();
        while !shows_size(&seen) && asked.elapsed() < Duration::from_millis(200) {
            let Ok(message) = tokio::time::timeout(Duration::from_millis(200), ws.recv()).await else { break };
            let (channel, data) = message.expect("a message");
            assert_ne!(channel, 2, "a terminal has no stderr: {data:?}");
            if channel == 1 {
                seen.extend_from_slice(&data);
            }
        }
    }
    ws.send(0, b"done\r").await.expect("stdin");
    let rest = tokio::time::timeout(Duration::from_secs(20), ws.collect()).await.expect("the end in time");
    assert_eq!(exit_code(rest.get(&3).map(Vec::as_slice).unwrap_or_default()), Ok(0), "{rest:?}");
    assert_eq!(exit_code_of(&td, &id).await, 0);
    td.remove_pod(&pod).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_refuses_what_the_container_cannot_give() {
    let (td, pod, id) = running_container("stream-attach-bad").await;
    let ask = |stdin, tty, stdout, stderr| cri::AttachRequest { container_id: id.clone(), stdin, tty, stdout, stderr };
    let err = td.runtime().attach(ask(true, false, true, false)).await.expect_err("no stdin");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("stdin"), "{}", err.message());
    let err = td.runtime().attach(ask(false, true, true, true)).await.expect_err("tty and stderr");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = td.runtime().attach(ask(false, false, false, false)).await.expect_err("no stream");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let unknown =
        cri::AttachRequest { container_id: "nope".into(), stdin: false, tty: false, stdout: true, stderr: false };
    assert_eq!(td.runtime().attach(unknown).await.expect_err("unknown").code(), tonic::Code::NotFound);

    // A client that attaches and leaves: the container runs on, and its monitor keeps no
    // descriptor of the session.
    let monitor = td.pod_info(&pod).await.expect("info").monitor_pid.expect("a monitor");
    // Sockets by inode, not a count of descriptors: the monitor opens and closes others (the
    // daemon's status calls) meanwhile.
    let sockets = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir(format!("/proc/{monitor}/fd"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .map(|t| t.to_string_lossy().into_owned())
                    .filter(|t| t.starts_with("socket:"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = sockets();
    let url = td.runtime().attach(ask(false, false, true, true)).await.expect("attach").into_inner().url;
    let session = client::spdy_connect(&url, &[V4]).await.expect("connect");
    let s = session
        .remote_command(StreamOptions { tty: false, stdin: false, stdout: true, stderr: true })
        .await
        .expect("streams");
    let mut session_sockets = std::collections::BTreeSet::new();
    for _ in 0..250 {
        session_sockets = sockets().difference(&before).cloned().collect();
        if !session_sockets.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!session_sockets.is_empty(), "the monitor holds the attach connection while the session lasts");
    drop(s);
    drop(session);
    let mut kept = session_sockets.clone();
    for _ in 0..250 {
        kept = sockets().intersection(&session_sockets).cloned().collect();
        if kept.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(kept.is_empty(), "the monitor let go of the attach connection: it still holds {kept:?}");
    assert_eq!(status_of(&td, &id).await.state, cri::ContainerState::ContainerRunning as i32);
    td.remove_pod(&pod).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_attach_clients_both_get_the_output() {
    let script = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done";
    let (td, pod, id) = running_container_with("stream-attach-two", |c| {
        c.command = vec!["sh".into(), "-c".into(), script.into()];
    })
    .await;
    let ask = || cri::AttachRequest { container_id: id.clone(), stdin: false, tty: false, stdout: true, stderr: false };
    let mut clients = Vec::new();
    for protocol in ["v4.channel.k8s.io", "v5.channel.k8s.io"] {
        let url = td.runtime().attach(ask()).await.expect("Attach").into_inner().url;
        clients.push(client::ws_connect(&url, &[protocol]).await.expect("connect"));
    }
    for c in &mut clients {
        let mut seen = Vec::new();
        while String::from_utf8_lossy(&seen).matches("tick").count() < 3 {
            let (channel, data) = tokio::time::timeout(Duration::from_secs(20), c.recv())
                .await
                .expect("output in time")
                .expect("a message");
            if channel == 1 {
                seen.extend_from_slice(&data);
            }
        }
    }
    drop(clients);
    assert_eq!(status_of(&td, &id).await.state, cri::ContainerState::ContainerRunning as i32);
    td.remove_pod(&pod).await.expect("remove");
    td.assert_no_leaks().await;
}
