//! Pod networking through a real daemon (run as root): real CNI plugins on a bridge private to
//! each test, crius's hostport manager in an nftables table of its own. Traffic goes only to the
//! test's own pods and to 127.0.0.1.

use std::time::{Duration, Instant};

use crius_testkit::cri::PodSandboxState;
use crius_testkit::{Nsenter, PodConfigExt, TestDaemon, pod_config};

const BIN: &str = env!("CARGO_BIN_EXE_crius");
const BUSYBOX: &str = "/bin/busybox";

async fn bridge_daemon() -> TestDaemon {
    match TestDaemon::builder().bridge_network().start(BIN).await {
        Ok(td) => td,
        Err(e) => panic!("the daemon did not start: {e}"),
    }
}

async fn run(td: &TestDaemon, cfg: crius_testkit::cri::PodSandboxConfig) -> String {
    match td.run_pod(cfg).await {
        Ok(id) => id,
        Err(s) => panic!("RunPodSandbox failed: {:?}: {}\n{}", s.code(), s.message(), td.log_tail(60)),
    }
}

async fn pod_ip(td: &TestDaemon, id: &str) -> String {
    let status = td.pod_status(id).await.expect("status").status.expect("a status");
    let ip = status.network.map(|n| n.ip).unwrap_or_default();
    assert!(!ip.is_empty(), "pod {id} has no IP");
    ip
}

async fn netns(td: &TestDaemon, id: &str) -> String {
    let info = td.pod_info(id).await.expect("info");
    info.namespaces.net.clone().map(|p| p.to_string_lossy().into_owned()).expect("a pinned netns")
}

fn free_port() -> i32 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    i32::from(listener.local_addr().expect("local addr").port())
}

/// Runs `f` on a thread of its own that has joined the network namespace at `netns` (setns
/// changes only the calling thread, so the test process stays where it is).
fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(netns).expect("open the netns pin");
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns into the pod netns");
        f()
    })
    .join()
    .expect("the netns thread panicked")
}

/// A tiny HTTP server answering `text`, listening inside a pod's network namespace on a thread
/// that stops when dropped.
struct Httpd {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Httpd {
    fn start(netns: &str, port: u16, text: &str) -> Httpd {
        let file = std::fs::File::open(netns).expect("open the netns pin");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (flag, body) = (stop.clone(), text.to_string());
        let thread = std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns into the pod netns");
            let listener = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind in the pod");
            listener.set_nonblocking(true).expect("nonblocking");
            let _ = ready_tx.send(());
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        use std::io::{Read, Write};
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 1024];
                        let _ = conn.read(&mut buf);
                        let reply = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                        let _ = conn.write_all(reply.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).expect("the server did not start");
        Httpd { stop, thread: Some(thread) }
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// GET http://addr/ from the host or from inside `netns`, retried briefly; the body.
fn fetch(netns: Option<&str>, addr: &str) -> Option<String> {
    let get = {
        let addr = addr.to_string();
        move || -> Option<String> {
            use std::io::{Read, Write};
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let attempt = (|| -> std::io::Result<String> {
                    let sock: std::net::SocketAddr = addr.parse().map_err(std::io::Error::other)?;
                    let mut conn = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
                    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
                    conn.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                    let mut reply = String::new();
                    conn.read_to_string(&mut reply)?;
                    Ok(reply.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
                })();
                match attempt {
                    Ok(body) => return Some(body),
                    Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                    Err(_) => return None,
                }
            }
        }
    };
    match netns {
        Some(ns) => in_netns(ns, get),
        None => get(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pods_get_ips_and_reach_each_other() {
    let td = bridge_daemon().await;
    let a = run(&td, pod_config("net-a")).await;
    let b = run(&td, pod_config("net-b")).await;
    let (ip_a, ip_b) = (pod_ip(&td, &a).await, pod_ip(&td, &b).await);
    let bridge = td.bridge().expect("a bridge network");
    let prefix = bridge.subnet().trim_end_matches("0/24").to_string();
    assert!(ip_a.starts_with(&prefix) && ip_b.starts_with(&prefix), "{ip_a} {ip_b} not in {}", bridge.subnet());
    assert_ne!(ip_a, ip_b);

    // The pod's /etc/hosts names its IP.
    let hosts = std::fs::read_to_string(td.pod_dir(&a).join("hosts")).expect("hosts");
    assert!(hosts.contains(&format!("{ip_a}\tnet-a")), "{hosts}");

    let (ns_a, ns_b) = (netns(&td, &a).await, netns(&td, &b).await);
    let _server = Httpd::start(&ns_b, 8080, "hello from b");
    let got = fetch(Some(&ns_a), &format!("{ip_b}:8080"));
    assert_eq!(got.as_deref(), Some("hello from b"), "pod a cannot reach pod b\n{}", td.log_tail(40));
    let ping =
        Nsenter::new().ns_path(crius_testkit::Ns::Net, &ns_b).run([BUSYBOX, "ping", "-c", "1", "-W", "2", &ip_a]);
    assert!(ping.map(|o| o.success()).unwrap_or(false), "pod b cannot ping pod a");

    td.remove_pod(&a).await.expect("remove a");
    td.remove_pod(&b).await.expect("remove b");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_port_reaches_the_pod_from_localhost() {
    let td = bridge_daemon().await;
    let host_port = free_port();
    let id = run(&td, pod_config("web").port_mapping(8080, host_port)).await;
    let ns = netns(&td, &id).await;
    let _server = Httpd::start(&ns, 8080, "via the host port");
    let got = fetch(None, &format!("127.0.0.1:{host_port}"));
    assert_eq!(got.as_deref(), Some("via the host port"), "{}", td.log_tail(60));

    // The port is held: nobody else can take it while the pod exists.
    assert!(std::net::TcpListener::bind(("0.0.0.0", host_port as u16)).is_err(), "the host port is not held");
    td.remove_pod(&id).await.expect("remove");
    assert!(std::net::TcpListener::bind(("0.0.0.0", host_port as u16)).is_ok(), "the host port is still held");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_port_in_use_fails_the_pod_and_leaves_nothing() {
    let td = bridge_daemon().await;
    let host_port = free_port();
    let first = run(&td, pod_config("first").port_mapping(80, host_port)).await;
    let err =
        td.run_pod(pod_config("second").port_mapping(80, host_port)).await.expect_err("a second pod on the same port");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{}", err.message());
    assert!(err.message().contains(&host_port.to_string()), "the message names the port: {}", err.message());
    let pods = td.list_pods(None).await.expect("list");
    assert_eq!(pods.len(), 1, "the failed pod is listed: {pods:?}");
    assert_eq!(td.pod_state(&first).await.expect("status"), PodSandboxState::SandboxReady);
    td.remove_pod(&first).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_releases_the_network_and_a_restart_keeps_host_ports() {
    let mut td = bridge_daemon().await;
    let host_port = free_port();
    let id = run(&td, pod_config("keeper").port_mapping(8080, host_port)).await;
    let ns = netns(&td, &id).await;
    let _server = Httpd::start(&ns, 8080, "still here");

    // kill -9 of the daemon: the held socket dies with it; a restart restores rules and socket.
    td.kill9();
    td.restart().await.expect("restart");
    assert_eq!(td.pod_state(&id).await.expect("status"), PodSandboxState::SandboxReady);
    let got = fetch(None, &format!("127.0.0.1:{host_port}"));
    assert_eq!(got.as_deref(), Some("still here"), "{}", td.log_tail(60));
    assert!(std::net::TcpListener::bind(("0.0.0.0", host_port as u16)).is_err(), "the port is not held again");

    td.stop_pod(&id).await.expect("stop");
    let bridge = td.bridge().expect("bridge");
    assert!(bridge.leaks().is_empty(), "stop left network state: {:?}", bridge.leaks());
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_ready_follows_the_cni_config() {
    let td = TestDaemon::builder().cni_conflist("").start(BIN).await.expect("start");
    let status = td.runtime().status(crius_testkit::cri::StatusRequest { verbose: false }).await.expect("status");
    let conditions = status.into_inner().status.expect("status").conditions;
    let net = conditions.iter().find(|c| c.r#type == "NetworkReady").expect("NetworkReady");
    assert!(!net.status, "NetworkReady with an empty CNI config: {net:?}");
    assert!(!net.message.is_empty());
    let err = td.run_pod(pod_config("no-net")).await.expect_err("no network, no pod");
    assert!(!err.message().is_empty());
    td.assert_no_leaks().await;
}
