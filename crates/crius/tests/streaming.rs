//! Exec and PortForward through a real daemon (run as root): the CRI call returns a URL, a SPDY
//! client (crius-stream's, speaking what the kubelet speaks) connects to it.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use crius_stream::client::{self, exit_code, read_to_end};
use crius_stream::request::StreamOptions;
use crius_testkit::cri;
use crius_testkit::image_builder::catalog;
use crius_testkit::shared_registry::SharedRegistry;
use crius_testkit::{TestDaemon, pod_config};

const BIN: &str = env!("CARGO_BIN_EXE_crius");
const V4: &str = "v4.channel.k8s.io";

static REG: LazyLock<SharedRegistry> = LazyLock::new(|| {
    SharedRegistry::start(vec![("busybox", catalog::busybox())])
        .unwrap_or_else(|e| panic!("the shared registry did not start: {e}"))
});

/// A daemon with a pod running `sleep` in a busybox container; (daemon, pod id, container id).
async fn running_container(name: &str) -> (TestDaemon, String, String) {
    let td = TestDaemon::start(BIN).await.unwrap_or_else(|e| panic!("the daemon did not start: {e}"));
    let image = REG.reference("busybox");
    let pull = cri::PullImageRequest {
        image: Some(cri::ImageSpec { image: image.clone(), ..Default::default() }),
        ..Default::default()
    };
    td.image().pull_image(pull).await.unwrap_or_else(|s| panic!("pull: {}", s.message()));
    let pod_cfg = pod_config(name);
    let pod = td.run_pod(pod_cfg.clone()).await.unwrap_or_else(|s| panic!("run pod: {}", s.message()));
    let config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: "main".into(), attempt: 0 }),
        image: Some(cri::ImageSpec { image, ..Default::default() }),
        command: vec!["sleep".into(), "1000".into()],
        ..Default::default()
    };
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
