//! Pod networking through a real daemon (run as root): real CNI plugins on a bridge private to
//! each test, crius's hostport manager in an nftables table of its own. Traffic goes only to the
//! test's own pods, to 127.0.0.1 and to the node's address on a veth into a namespace the test
//! made to play another host.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crius_testkit::cri::{PodSandboxState, Protocol};
use crius_testkit::network::{OtherHost, UdpEcho, udp_echo};
use crius_testkit::{Nsenter, PodConfigExt, TestDaemon, pod_config, run_request};

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

fn free_udp_port() -> i32 {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind a free UDP port");
    i32::from(socket.local_addr().expect("local addr").port())
}

fn sock(ip: &str, port: i32) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("an IP address"), u16::try_from(port).expect("a port number"))
}

/// A namespace on a veth of its own that plays another host; gone on drop, even when the test fails.
fn other_host() -> OtherHost {
    OtherHost::unique(false).unwrap_or_else(|e| panic!("making another host: {e}"))
}

/// Retries `f` for a few seconds (a fresh veth may still be coming up); its last answer.
fn eventually<T>(mut f: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match f() {
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            done => return done,
        }
    }
}

/// Whether a TCP connection to `addr` is accepted (one try: for checks that it is not).
fn connects(addr: &str) -> bool {
    let sock: SocketAddr = addr.parse().expect("a socket address");
    std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2)).is_ok()
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
        Httpd::start_on(netns, "0.0.0.0", port, text)
    }

    /// Listening on `ip` ("::" takes both families).
    fn start_on(netns: &str, ip: &str, port: u16, text: &str) -> Httpd {
        let ip: std::net::IpAddr = ip.parse().expect("an IP to listen on");
        let file = std::fs::File::open(netns).expect("open the netns pin");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (flag, body) = (stop.clone(), text.to_string());
        let thread = std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns into the pod netns");
            let listener = std::net::TcpListener::bind((ip, port)).expect("bind in the pod");
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
    // Port, protocol and address, in the hostport manager's words.
    let want = format!("host port {host_port}/tcp on 0.0.0.0 is already in use");
    assert!(err.message().contains(&want), "the message does not say {want:?}: {}", err.message());
    let pods = td.list_pods(None).await.expect("list");
    assert_eq!(pods.len(), 1, "the failed pod is listed: {pods:?}");
    // The same number over UDP is another port.
    let udp = run(&td, pod_config("third").port_mapping_on(Protocol::Udp, 80, host_port, "")).await;
    td.remove_pod(&udp).await.expect("remove the UDP pod");
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
    // The node is not set up, the request is fine; the message says where config was looked for.
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{}", err.message());
    let conf_dir = td.base().join("cni-conf");
    assert!(
        err.message().contains("no usable CNI network config") && err.message().contains(&*conf_dir.to_string_lossy()),
        "the message does not name the config dir {}: {}",
        conf_dir.display(),
        err.message()
    );
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_host_port_reaches_an_echo_in_the_pod() {
    let td = bridge_daemon().await;
    let other = other_host();
    let host_port = free_udp_port();
    let id = run(&td, pod_config("udp-echo").port_mapping_on(Protocol::Udp, 5353, host_port, "")).await;
    let ns = netns(&td, &id).await;
    let _echo = UdpEcho::start(&ns, 5353).unwrap_or_else(|e| panic!("{e}"));

    let local = eventually(|| udp_echo(sock("127.0.0.1", host_port), "one"));
    assert_eq!(local.as_deref(), Ok("echo:one"), "127.0.0.1\n{}", td.log_tail(60));
    let node = sock(&other.node_v4, host_port);
    let remote = eventually(|| in_netns(&other.netns_path(), move || udp_echo(node, "two")));
    assert_eq!(remote.as_deref(), Ok("echo:two"), "from another host\n{}", td.log_tail(60));
    let held = std::net::UdpSocket::bind(("0.0.0.0", host_port as u16));
    assert!(held.is_err(), "the UDP host port is not held");

    td.remove_pod(&id).await.expect("remove");
    assert!(std::net::UdpSocket::bind(("0.0.0.0", host_port as u16)).is_ok(), "the UDP host port is still held");
    td.assert_no_leaks().await;
}

/// A client on another host sends UDP to a host port before any pod maps it (a DNS client that
/// retries, say): conntrack records that flow without NAT. Once a pod maps the port, the same
/// client socket must reach the pod, not keep going to the node until the entry expires (30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_flow_from_before_the_mapping_reaches_the_pod() {
    let td = bridge_daemon().await;
    let other = other_host();
    let host_port = free_udp_port();
    let node = sock(&other.node_v4, host_port);
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let client = {
        let file = std::fs::File::open(other.netns_path()).expect("open the other host's netns");
        std::thread::spawn(move || -> Result<String, String> {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
            let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).map_err(|e| e.to_string())?;
            socket.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
            socket.send_to(b"early", node).map_err(|e| e.to_string())?;
            let _ = sent_tx.send(socket.local_addr().map_err(|e| e.to_string())?.port());
            go_rx.recv().map_err(|e| e.to_string())?;
            let mut buf = [0u8; 1500];
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                socket.send_to(b"late", node).map_err(|e| e.to_string())?;
                if let Ok((n, _)) = socket.recv_from(&mut buf) {
                    return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
            Err("the old flow never reached the pod".into())
        })
    };
    sent_rx.recv_timeout(Duration::from_secs(10)).expect("the early packet was sent");
    // The flow is in conntrack, un-NATed: what the mapping must get rid of.
    let listed = std::process::Command::new("conntrack")
        .args(["-L", "-f", "ipv4", "-p", "udp", "--orig-port-dst", &host_port.to_string()])
        .output()
        .expect("conntrack -L (apt-get install conntrack)");
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&format!("dport={host_port}")), "{listed:?}");

    let id = run(&td, pod_config("udp-old-flow").port_mapping_on(Protocol::Udp, 5353, host_port, "")).await;
    let ns = netns(&td, &id).await;
    let _echo = UdpEcho::start(&ns, 5353).unwrap_or_else(|e| panic!("{e}"));
    go_tx.send(()).expect("the client waits");
    let got = client.join().expect("the client thread");
    assert_eq!(got.as_deref(), Ok("echo:late"), "{}", td.log_tail(40));
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_port_on_one_host_ip_answers_there_only() {
    let td = bridge_daemon().await;
    let other = other_host();
    let host_port = free_port();
    let id = run(&td, pod_config("one-ip").port_mapping_on(Protocol::Tcp, 8080, host_port, &other.node_v4)).await;
    let ns = netns(&td, &id).await;
    let _server = Httpd::start(&ns, 8080, "on one address");

    let on_it = format!("{}:{host_port}", other.node_v4);
    let got = fetch(Some(&other.netns_path()), &on_it);
    assert_eq!(got.as_deref(), Some("on one address"), "from another host to {on_it}\n{}", td.log_tail(60));
    let got = fetch(None, &on_it);
    assert_eq!(got.as_deref(), Some("on one address"), "from the node to {on_it}\n{}", td.log_tail(60));
    // Not on the node's other addresses, from the node nor from the other host.
    let gateway = td.bridge().expect("a bridge network").gateway();
    for elsewhere in [format!("127.0.0.1:{host_port}"), format!("{gateway}:{host_port}")] {
        assert!(!connects(&elsewhere), "the host port answers on {elsewhere}");
        let from_other = elsewhere.clone();
        assert!(!in_netns(&other.netns_path(), move || connects(&from_other)), "{elsewhere} from the other host");
    }
    // Held on that address only: the same number elsewhere is free.
    assert!(std::net::TcpListener::bind((other.node_v4.as_str(), host_port as u16)).is_err(), "not held");
    drop(std::net::TcpListener::bind(("127.0.0.1", host_port as u16)).expect("the port on 127.0.0.1 is free"));

    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_port_is_reachable_from_another_host() {
    let td = bridge_daemon().await;
    let other = other_host();
    let host_port = free_port();
    let id = run(&td, pod_config("remote-web").port_mapping(8080, host_port)).await;
    let ns = netns(&td, &id).await;
    let _server = Httpd::start(&ns, 8080, "hello, other host");

    let node = format!("{}:{host_port}", other.node_v4);
    let got = fetch(Some(&other.netns_path()), &node);
    assert_eq!(got.as_deref(), Some("hello, other host"), "from another host to {node}\n{}", td.log_tail(60));

    td.remove_pod(&id).await.expect("remove");
    assert!(!in_netns(&other.netns_path(), move || connects(&node)), "the host port still answers");
    td.assert_no_leaks().await;
}

/// A kill -9 while a plugin of the chain is half-way through ADD (bridge has made the veth and
/// host-local the IP allocation): the restart undoes the pod, nothing is left and its name is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill9_during_cni_add_leaks_nothing_and_frees_the_name() {
    let mut td = TestDaemon::builder()
        .cni_plugin("crius-test-slow", crius_testkit::network::slow_cni_plugin("ADD"))
        .bridge_chain_plugin(crius_testkit::serde_json::json!({"type": "crius-test-slow"}))
        .start(BIN)
        .await
        .unwrap_or_else(|e| panic!("the daemon did not start: {e}"));
    let bin = td.cni_bin_dir();
    let config = pod_config("cut-add").port_mapping(8080, free_port());

    let mut runtime = td.runtime();
    let request = run_request(config.clone());
    let call = tokio::spawn(async move { runtime.run_pod_sandbox(request).await });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !bin.join("add-started").exists() {
        assert!(Instant::now() < deadline, "the slow plugin's ADD did not start\n{}", td.log_tail(60));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Mid-ADD: the plugins before it have made their part.
    let made = td.bridge().expect("a bridge network").leaks();
    assert!(made.iter().any(|l| l.starts_with("IP allocation")), "no IP allocated before the slow plugin: {made:?}");
    let plugin: i32 = std::fs::read_to_string(bin.join("add-started"))
        .expect("read the slow plugin's pid")
        .trim()
        .parse()
        .expect("a pid");
    let plugin_start = crius_testkit::host::proc_stat(plugin).map(|s| s.start_time);

    td.kill9();
    let cut = call.await.expect("the RunPodSandbox task");
    assert!(cut.is_err(), "RunPodSandbox succeeded though the daemon was killed during ADD: {cut:?}");
    // The plugin dies with the daemon: left running, it would finish its ADD after the restart
    // has undone the pod.
    let gone = crius_testkit::host::wait_process_gone(plugin, plugin_start, Duration::from_secs(5));
    // Let a plugin that is still there go on (and end), whatever the verdict.
    std::fs::write(bin.join("fast"), "").expect("write the fast marker");
    assert!(gone, "the plugin the daemon ran (pid {plugin}) outlived the daemon");
    td.restart().await.unwrap_or_else(|e| panic!("restart: {e}"));

    let pods = td.list_pods(None).await.expect("list");
    assert!(pods.is_empty(), "the half-made pod is listed after the restart: {pods:?}");
    td.assert_no_leaks().await;

    // The name is free: the same config runs.
    let id = run(&td, config).await;
    assert_eq!(td.pod_state(&id).await.expect("status"), PodSandboxState::SandboxReady);
    td.remove_pod(&id).await.expect("remove");
    td.assert_no_leaks().await;
}

/// A dual-stack network: the pod gets an IPv4 address (first, the kubelet's primary) and an IPv6
/// one, answers on both, and a host port with no host IP reaches it from another host over
/// either family. Nothing is left after the pod goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_pod_answers_on_both_families_and_its_host_port_too() {
    if std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").map(|v| v.trim() != "0").unwrap_or(true) {
        eprintln!("SKIPPED: IPv6 is turned off on this host");
        return;
    }
    let td = TestDaemon::builder()
        .dual_stack_bridge_network()
        .start(BIN)
        .await
        .unwrap_or_else(|e| panic!("the daemon did not start: {e}"));
    let other = OtherHost::unique(true).unwrap_or_else(|e| panic!("making another host: {e}"));
    let host_port = free_port();
    let id = run(&td, pod_config("dual").port_mapping(8080, host_port)).await;

    let network = td.pod_status(&id).await.expect("status").status.and_then(|s| s.network).expect("a network status");
    let v4: std::net::IpAddr = network.ip.parse().unwrap_or_else(|e| panic!("pod IP {:?}: {e}", network.ip));
    assert!(v4.is_ipv4(), "the primary IP is IPv4, as the first range: {network:?}");
    let extra: Vec<&str> = network.additional_ips.iter().map(|p| p.ip.as_str()).collect();
    let bridge = td.bridge().expect("a bridge network");
    let v6_prefix = bridge.subnet_v6().expect("a dual-stack bridge").trim_end_matches("::/64").to_string();
    assert!(
        extra.len() == 1 && extra[0].starts_with(&format!("{v6_prefix}:")),
        "one more IP, in {v6_prefix}::/64: {network:?}"
    );
    let v6 = extra[0].to_string();

    let ns = netns(&td, &id).await;
    let _server = Httpd::start_on(&ns, "::", 8080, "hello, both");
    // The pod itself, from the node.
    assert_eq!(fetch(None, &format!("{v4}:8080")).as_deref(), Some("hello, both"), "{}", td.log_tail(40));
    assert_eq!(fetch(None, &format!("[{v6}]:8080")).as_deref(), Some("hello, both"), "{}", td.log_tail(40));
    // Its host port, from another host, on the node's address of each family.
    let on_v4 = format!("{}:{host_port}", other.node_v4);
    let on_v6 = format!("[{}]:{host_port}", other.node_v6);
    assert_eq!(fetch(Some(&other.netns_path()), &on_v4).as_deref(), Some("hello, both"), "{on_v4}");
    assert_eq!(fetch(Some(&other.netns_path()), &on_v6).as_deref(), Some("hello, both"), "{on_v6}");

    td.remove_pod(&id).await.expect("remove");
    for addr in [on_v4, on_v6] {
        assert!(!in_netns(&other.netns_path(), move || connects(&addr)), "the host port still answers");
    }
    td.assert_no_leaks().await;
}
