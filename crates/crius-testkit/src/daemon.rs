//! [`TestDaemon`]: a real `crius daemon` on private temp dirs.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ListPodSandboxRequest, PodSandbox, PodSandboxConfig, PodSandboxFilter, PodSandboxState, PodSandboxStatusRequest,
    PodSandboxStatusResponse, RemovePodSandboxRequest, StopPodSandboxRequest, VersionRequest,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::builders::{random_hex, run_request};
use crate::error::{Error, Result};
use crate::host;
use crate::info::PodInfo;

/// How long one CRI request may take before the client gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long asynchronous teardown (a monitor exiting, a process being reaped) may take before a
/// leftover counts as a leak.
pub const LEAK_GRACE: Duration = Duration::from_secs(10);
const NS_KINDS: [&str; 4] = ["net", "ipc", "uts", "pid"];
/// In each test dir: "PID START_TIME" of the test process that made it.
const OWNER_FILE: &str = "crius-testkit.owner";
/// In each test dir: the test's cgroup parents, one a line.
const CGROUPS_FILE: &str = "crius-testkit.cgroups";
/// Test dirs are /tmp/crius-XXXXXX.
const DIR_PREFIX: &str = "crius-";
/// In each test dir: the CNI plugins of the test ([`TestDaemonBuilder::cni_plugin`]).
const CNI_BIN_DIR: &str = "cni-bin";

/// Writes a script with mode 0755.
fn write_executable(path: &Path, script: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, script)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Connects a gRPC channel to a unix socket.
pub async fn connect(socket: &Path) -> Result<Channel> {
    let path = socket.to_path_buf();
    let channel = Endpoint::try_from("http://[::]")?
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await?;
    Ok(channel)
}

/// How a [`TestDaemon`] is started. Made by [`TestDaemon::builder`].
#[derive(Debug, Clone)]
pub struct TestDaemonBuilder {
    env: Vec<(OsString, OsString)>,
    config_lines: Vec<String>,
    log_level: String,
    ready_timeout: Duration,
    netns_alias: bool,
    /// The CNI network list the daemon uses (default: loopback only, no bridge, no IPs).
    cni_conflist: String,
    /// Lines of crius.toml's `[network]` table, after the harness's own.
    network_lines: Vec<String>,
    /// Give pods a real bridge network of their own (see [`TestDaemonBuilder::bridge_network`]).
    bridge_network: bool,
    /// The bridge network gives pods an IPv6 address too.
    dual_stack: bool,
    /// Plugins appended to the bridge network's chain.
    bridge_extra_plugins: Vec<serde_json::Value>,
    /// CNI plugins of the test (name, script), in a bin dir searched before the system's.
    cni_plugins: Vec<(String, String)>,
}

/// A network that needs no bridge and no address space, so tests that do not test networking
/// still go through the real CNI path.
pub const LOOPBACK_CONFLIST: &str = r#"{"cniVersion":"1.0.0","name":"crius-test-lo","plugins":[{"type":"loopback"}]}"#;

impl Default for TestDaemonBuilder {
    fn default() -> Self {
        // Debug logs of crius, without the HTTP/2 frame-by-frame noise; a CRIUS_LOG of the test's
        // environment wins.
        let mut env = Vec::new();
        if std::env::var_os("CRIUS_LOG").is_none() {
            env.push(("CRIUS_LOG".into(), "debug,h2=info,hyper=info,hyper_util=info,tower=info,tonic=info".into()));
        }
        Self {
            env,
            config_lines: Vec::new(),
            cni_conflist: LOOPBACK_CONFLIST.to_string(),
            network_lines: Vec::new(),
            bridge_network: false,
            dual_stack: false,
            bridge_extra_plugins: Vec::new(),
            cni_plugins: Vec::new(),
            log_level: std::env::var("CRIUS_TEST_LOG_LEVEL").unwrap_or_else(|_| "debug".into()),
            // Generous: a loaded 2-core CI machine running tests in parallel is slow to start daemons.
            ready_timeout: Duration::from_secs(120),
            netns_alias: true,
        }
    }
}

impl TestDaemonBuilder {
    /// An environment variable for every start of the daemon (restarts included).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// A line added to crius.toml (`listen`, `root`, `state`, `log_level` and `netns_dir` are
    /// already set by the harness).
    pub fn config_line(mut self, line: impl Into<String>) -> Self {
        self.config_lines.push(line.into());
        self
    }

    /// The CNI network list (JSON) the daemon's pods get, instead of loopback only.
    pub fn cni_conflist(mut self, json: impl Into<String>) -> Self {
        self.cni_conflist = json.into();
        self
    }

    /// Pods get a bridge network private to this daemon: its own bridge, a random /24 in
    /// 10.200.0.0/13, host-local's data under the test dir; the bridge is deleted on drop.
    pub fn bridge_network(mut self) -> Self {
        self.bridge_network = true;
        self
    }

    /// [`TestDaemonBuilder::bridge_network`] with an IPv6 range beside the IPv4 one (a /64 in
    /// fd8a:200::/32): pods get both addresses, IPv4 first.
    pub fn dual_stack_bridge_network(mut self) -> Self {
        self.bridge_network = true;
        self.dual_stack = true;
        self
    }

    /// A plugin appended to the bridge network's chain (after bridge and loopback); implies
    /// [`TestDaemonBuilder::bridge_network`].
    pub fn bridge_chain_plugin(mut self, plugin: serde_json::Value) -> Self {
        self.bridge_network = true;
        self.bridge_extra_plugins.push(plugin);
        self
    }

    /// A CNI plugin of the test: `script` is written, executable, as `<base>/cni-bin/<name>`,
    /// and `bin_dirs` becomes that dir then the system's (so do not set `bin_dirs` with
    /// [`TestDaemonBuilder::network_line`] too). The script can find its dir with `dirname "$0"`.
    pub fn cni_plugin(mut self, name: impl Into<String>, script: impl Into<String>) -> Self {
        self.cni_plugins.push((name.into(), script.into()));
        self
    }

    /// A line of crius.toml's `[network]` table (conf_dirs and hostport_table are the harness's).
    pub fn network_line(mut self, line: impl Into<String>) -> Self {
        self.network_lines.push(line.into());
        self
    }

    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = level.into();
        self
    }

    /// How long to wait for the daemon to answer Version after a (re)start.
    pub fn ready_timeout(mut self, t: Duration) -> Self {
        self.ready_timeout = t;
        self
    }

    /// Sets `netns_dir = ""`: no `ip netns` alias of pod network namespaces.
    pub fn without_netns_alias(mut self) -> Self {
        self.netns_alias = false;
        self
    }

    pub async fn start(self, bin: impl AsRef<Path>) -> Result<TestDaemon> {
        self.start_with_env(bin, &[]).await
    }

    /// Starts with extra environment for this first start only (`restart` goes without it):
    /// what a crash test needs for `CRIUS_CRASH_AT`.
    pub async fn start_with_env(self, bin: impl AsRef<Path>, once_env: &[(&str, &str)]) -> Result<TestDaemon> {
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_stale_test_dirs);
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in("/tmp")
            .map_err(|e| Error::context("creating the test dir", e))?;
        let base = dir.path().canonicalize()?;
        // Short names: the monitor socket, <state>/pods/<64-hex id>/monitor.sock, must fit in a
        // unix socket address (107 bytes); /tmp/crius-XXXXXX/run/pods/<id>/monitor.sock is 104.
        let root = base.join("lib");
        let state = base.join("run");
        let netns_dir = self.netns_alias.then(|| base.join("netns"));
        let socket = base.join("crius.sock");
        let config_path = base.join("crius.toml");
        let log_path = base.join("daemon.log");

        // Who owns the dir: a later test process sweeps it if this one dies without cleaning up
        // (killed on a time-out, say).
        let me = std::process::id() as i32;
        let my_start = host::proc_stat(me).map(|s| s.start_time).unwrap_or(0);
        fs::write(base.join(OWNER_FILE), format!("{me} {my_start}\n"))?;

        let toml_str = |p: &Path| format!("{:?}", p.to_string_lossy());
        let mut config = format!(
            "# written by crius-testkit\nlisten = {}\nroot = {}\nstate = {}\nlog_level = {:?}\nnetns_dir = {}\n",
            toml_str(&socket),
            toml_str(&root),
            toml_str(&state),
            self.log_level,
            netns_dir.as_deref().map(toml_str).unwrap_or_else(|| "\"\"".into()),
        );
        for line in &self.config_lines {
            config.push_str(line);
            config.push('\n');
        }
        // The network: a private CNI config dir and nftables table per daemon, so tests run in
        // parallel and never touch the node's.
        let cni_dir = base.join("cni-conf");
        fs::create_dir_all(&cni_dir)?;
        let bridge = self.bridge_network.then(|| match self.dual_stack {
            true => crate::network::TestBridge::dual_stack(&base),
            false => crate::network::TestBridge::new(&base),
        });
        let conflist = match &bridge {
            Some(b) => b.conflist_with(&self.bridge_extra_plugins),
            None => self.cni_conflist.clone(),
        };
        fs::write(cni_dir.join("10-test.conflist"), conflist)?;
        let table = format!(
            "crius-t-{}",
            base.file_name().map(|n| n.to_string_lossy().replace(['.', '-'], "")).unwrap_or_default()
        );
        config.push_str(&format!("\n[network]\nconf_dirs = [{}]\nhostport_table = {table:?}\n", toml_str(&cni_dir)));
        if !self.cni_plugins.is_empty() {
            let bin = base.join(CNI_BIN_DIR);
            fs::create_dir_all(&bin)?;
            for (name, script) in &self.cni_plugins {
                write_executable(&bin.join(name), script)?;
            }
            config.push_str(&format!("bin_dirs = [{}, \"/opt/cni/bin\", \"/usr/lib/cni\"]\n", toml_str(&bin)));
        }
        for line in &self.network_lines {
            config.push_str(line);
            config.push('\n');
        }
        fs::write(&config_path, config)?;

        let mut td = TestDaemon {
            bin: bin.as_ref().to_path_buf(),
            base,
            dir: Some(dir),
            root,
            state,
            netns_dir,
            socket,
            config_path,
            log_path,
            bridge,
            env: self.env,
            log_level: self.log_level,
            ready_timeout: self.ready_timeout,
            child: None,
            runtime: None,
            image: None,
            known: Mutex::new(Known::default()),
        };
        let once: Vec<(OsString, OsString)> =
            once_env.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect();
        td.spawn(&once)?;
        td.wait_ready().await?;
        Ok(td)
    }
}

#[derive(Debug, Clone)]
struct KnownProc {
    pid: i32,
    start_time: u64,
    what: String,
}

/// What the harness learned of the pods it saw, for the leak check and the cleanup.
#[derive(Debug, Default)]
struct Known {
    pods: BTreeSet<String>,
    procs: Vec<KnownProc>,
    cgroup_parents: Vec<String>,
}

/// A `crius daemon` on its own temp dirs, with connected CRI clients.
///
/// Dropping it removes every pod through CRI (when the daemon is alive), stops the daemon, then
/// kills every process and unmounts every mount left under its dirs, removes the test cgroup
/// parents and the dirs: a failed test leaks nothing. When the test is panicking, the tail of the
/// daemon's log is printed.
pub struct TestDaemon {
    bin: PathBuf,
    base: PathBuf,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    state: PathBuf,
    netns_dir: Option<PathBuf>,
    socket: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    bridge: Option<crate::network::TestBridge>,
    env: Vec<(OsString, OsString)>,
    log_level: String,
    ready_timeout: Duration,
    child: Option<Child>,
    runtime: Option<RuntimeServiceClient<Channel>>,
    image: Option<ImageServiceClient<Channel>>,
    known: Mutex<Known>,
}

impl TestDaemon {
    pub fn builder() -> TestDaemonBuilder {
        TestDaemonBuilder::default()
    }

    /// Starts `bin daemon` on fresh temp dirs and waits until it serves.
    pub async fn start(bin: impl AsRef<Path>) -> Result<TestDaemon> {
        Self::builder().start(bin).await
    }

    /// Like [`TestDaemon::start`], with environment for this first start only.
    pub async fn start_with_env(bin: impl AsRef<Path>, env: &[(&str, &str)]) -> Result<TestDaemon> {
        Self::builder().start_with_env(bin, env).await
    }

    // ---- paths ----

    /// The test's temp dir; everything else is below it.
    pub fn base(&self) -> &Path {
        &self.base
    }
    /// The daemon's persistent dir (`root`).
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The daemon's volatile dir (`state`).
    pub fn state(&self) -> &Path {
        &self.state
    }
    /// The `netns_dir` (None when the alias is disabled).
    pub fn netns_dir(&self) -> Option<&Path> {
        self.netns_dir.as_deref()
    }
    pub fn socket(&self) -> &Path {
        &self.socket
    }
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    /// `<root>/pods/<id>`
    pub fn pod_dir(&self, id: &str) -> PathBuf {
        self.root.join("pods").join(id)
    }
    /// `<state>/pods/<id>`
    pub fn pod_run_dir(&self, id: &str) -> PathBuf {
        self.state.join("pods").join(id)
    }
    /// `<state>/pods/<id>/shm`
    pub fn shm_path(&self, id: &str) -> PathBuf {
        self.pod_run_dir(id).join("shm")
    }
    /// `<state>/ns/<kind>/<id>`
    pub fn ns_pin(&self, kind: &str, id: &str) -> PathBuf {
        self.state.join("ns").join(kind).join(id)
    }
    /// `<netns_dir>/crius-<id>`
    pub fn netns_alias(&self, id: &str) -> Option<PathBuf> {
        self.netns_dir.as_ref().map(|d| d.join(format!("crius-{id}")))
    }

    // ---- the daemon process ----

    /// The daemon's pid, while it is started (it may have died since).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the daemon process is alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn spawn(&mut self, once_env: &[(OsString, OsString)]) -> Result<()> {
        let mut log = OpenOptions::new().create(true).append(true).open(&self.log_path)?;
        writeln!(log, "==== crius-testkit: starting {} daemon (extra env {:?}) ====", self.bin.display(), once_env)?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("daemon")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--listen")
            .arg(&self.socket)
            .arg("--root")
            .arg(&self.root)
            .arg("--state")
            .arg(&self.state)
            .arg("--log-level")
            .arg(&self.log_level)
            .current_dir(&self.base)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env_remove(crate::CRASH_ENV);
        for (k, v) in self.env.iter().chain(once_env) {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| Error::context(format!("starting {}", self.bin.display()), e))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the daemon serves CRI (its start-up recovery is done), up to the ready timeout.
    pub async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.ready_timeout;
        let mut last = String::from("not tried");
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                return Err(Error::msg(format!(
                    "the daemon exited ({status}) before it served; last: {last}\n{}",
                    self.log_tail(60)
                )));
            }
            match connect(&self.socket).await {
                Ok(ch) => {
                    let mut rt = RuntimeServiceClient::new(ch.clone());
                    match rt.version(VersionRequest { version: "v1".into() }).await {
                        Ok(_) => match rt.list_pod_sandbox(ListPodSandboxRequest { filter: None }).await {
                            Err(s) if s.code() == tonic::Code::Unavailable => {
                                last = format!("ListPodSandbox: Unavailable: {}", s.message())
                            }
                            _ => {
                                self.runtime = Some(rt);
                                self.image = Some(ImageServiceClient::new(ch));
                                return Ok(());
                            }
                        },
                        Err(s) => last = format!("Version: {:?}: {}", s.code(), s.message()),
                    }
                }
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(Error::msg(format!(
                    "the daemon did not serve within {:?}; last: {last}\n{}",
                    self.ready_timeout,
                    self.log_tail(60)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILLs the daemon and reaps it (pods and monitors stay).
    pub fn kill9(&mut self) {
        self.runtime = None;
        self.image = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the daemon to exit by itself (as after an injected crash).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.child.as_mut()?;
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                self.runtime = None;
                self.image = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, and waits for the exit (20 s; then SIGKILL and an error).
    pub async fn stop(&mut self) -> Result<ExitStatus> {
        let Some(pid) = self.pid() else {
            return Err(Error::msg("the daemon is not started"));
        };
        if let Some(status) = self.wait_exit(Duration::ZERO).await {
            return Ok(status);
        }
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        if let Some(status) = self.wait_exit(Duration::from_secs(20)).await {
            return Ok(status);
        }
        self.kill9();
        Err(Error::msg(format!("the daemon did not exit within 20 s of SIGTERM (killed)\n{}", self.log_tail(40))))
    }

    /// Stops the daemon if it runs (SIGTERM) and starts it again on the same dirs, with the
    /// builder's environment only.
    pub async fn restart(&mut self) -> Result<()> {
        self.restart_with_env(&[]).await
    }

    pub async fn restart_with_env(&mut self, env: &[(&str, &str)]) -> Result<()> {
        self.restart_unready(env).await?;
        self.wait_ready().await
    }

    /// Stops the daemon if it runs and starts it again without waiting for its start-up recovery
    /// to end, for tests of what it answers meanwhile; `wait_ready` then waits for it to serve.
    pub async fn restart_unready(&mut self, env: &[(&str, &str)]) -> Result<()> {
        if self.is_running() {
            self.stop().await?;
        } else {
            self.kill9();
        }
        let once: Vec<(OsString, OsString)> = env.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect();
        self.spawn(&once)
    }

    /// The last `n` lines of the daemon's log (stdout and stderr of every start).
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(n);
        format!(
            "---- daemon log {} (last {} lines) ----\n{}\n---- end of daemon log ----",
            self.log_path.display(),
            lines.len() - from,
            lines[from..].join("\n")
        )
    }

    /// The last `n` lines of every pod monitor's log (`<state>/pods/<id>/monitor.log`).
    pub fn monitor_logs(&self, n: usize) -> String {
        let mut out = String::new();
        for dir in list_dir(&self.state.join("pods")) {
            let path = dir.join("monitor.log");
            let Ok(text) = fs::read_to_string(&path) else { continue };
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(n);
            out.push_str(&format!("---- {} ----\n{}\n", path.display(), lines[from..].join("\n")));
        }
        out
    }

    // ---- CRI ----

    /// A RuntimeService client (cheap clone). Panics when the daemon is not serving.
    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone().expect("the daemon is not serving (killed or crashed: restart it first)")
    }

    /// An ImageService client (cheap clone). Panics when the daemon is not serving.
    pub fn image(&self) -> ImageServiceClient<Channel> {
        self.image.clone().expect("the daemon is not serving (killed or crashed: restart it first)")
    }

    /// RunPodSandbox; remembers the pod (and its processes and namespaces) for the leak check.
    pub async fn run_pod(&self, config: PodSandboxConfig) -> std::result::Result<String, tonic::Status> {
        let id = self.runtime().run_pod_sandbox(run_request(config)).await?.into_inner().pod_sandbox_id;
        self.track_pod(&id);
        let _ = self.pod_info(&id).await;
        Ok(id)
    }

    /// Remembers a pod id made without [`TestDaemon::run_pod`].
    pub fn track_pod(&self, id: &str) {
        self.known().pods.insert(id.to_string());
    }

    pub fn known_pod_ids(&self) -> Vec<String> {
        self.known().pods.iter().cloned().collect()
    }

    /// Verbose PodSandboxStatus.
    pub async fn pod_status(&self, id: &str) -> std::result::Result<PodSandboxStatusResponse, tonic::Status> {
        Ok(self
            .runtime()
            .pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: id.to_string(), verbose: true })
            .await?
            .into_inner())
    }

    /// The pod's state as PodSandboxStatus reports it.
    pub async fn pod_state(&self, id: &str) -> std::result::Result<PodSandboxState, tonic::Status> {
        let st = self.pod_status(id).await?;
        let state = st.status.map(|s| s.state).unwrap_or(-1);
        PodSandboxState::try_from(state).map_err(|_| tonic::Status::internal(format!("unknown pod state {state}")))
    }

    /// Polls PodSandboxStatus until the pod is in `state`.
    pub async fn wait_pod_state(&self, id: &str, state: PodSandboxState, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.pod_state(id).await;
            if matches!(now, Ok(s) if s == state) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::msg(format!("pod {id} not {state:?} within {timeout:?}: {now:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The verbose info of a pod; remembers its processes and namespaces for the leak check.
    pub async fn pod_info(&self, id: &str) -> Result<PodInfo> {
        let st = self.pod_status(id).await?;
        let info = PodInfo::from_info_map(&st.info)?;
        self.remember(id, &info);
        Ok(info)
    }

    fn remember(&self, id: &str, info: &PodInfo) {
        let mut known = self.known();
        known.pods.insert(id.to_string());
        for (pid, what) in [(info.pid, "pod init"), (info.monitor_pid, "monitor")] {
            let Some(pid) = pid else { continue };
            let Some(st) = host::proc_stat(pid) else {
                continue;
            };
            if st.state == 'Z' || known.procs.iter().any(|k| k.pid == pid && k.start_time == st.start_time) {
                continue;
            }
            known.procs.push(KnownProc { pid, start_time: st.start_time, what: format!("{what} of pod {id}") });
        }
    }

    pub async fn stop_pod(&self, id: &str) -> std::result::Result<(), tonic::Status> {
        self.runtime().stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id.to_string() }).await?;
        Ok(())
    }

    pub async fn remove_pod(&self, id: &str) -> std::result::Result<(), tonic::Status> {
        self.runtime().remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id.to_string() }).await?;
        Ok(())
    }

    pub async fn list_pods(
        &self,
        filter: Option<PodSandboxFilter>,
    ) -> std::result::Result<Vec<PodSandbox>, tonic::Status> {
        Ok(self.runtime().list_pod_sandbox(ListPodSandboxRequest { filter }).await?.into_inner().items)
    }

    /// Stops and removes every pod the daemon lists.
    pub async fn remove_all_pods(&self) -> std::result::Result<(), tonic::Status> {
        for p in self.list_pods(None).await? {
            self.remove_pod(&p.id).await?;
        }
        Ok(())
    }

    // ---- cgroups ----

    /// A unique cgroup parent (`/crius-test-<hex>`) for a pod config; the harness checks it
    /// for leftover pod cgroups and removes it at the end.
    pub fn cgroup_parent(&self) -> String {
        let p = format!("/crius-test-{}", random_hex(6));
        self.known().cgroup_parents.push(p.clone());
        // For the sweep of a test process that died without cleaning up.
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(self.base.join(CGROUPS_FILE)) {
            let _ = writeln!(f, "{p}");
        }
        p
    }

    fn cgroup_parent_dirs(&self) -> Vec<PathBuf> {
        cgroup_dirs_of(&self.known().cgroup_parents)
    }

    // ---- leaks ----

    fn known(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What identifies this test's leftovers on the host.
    fn scope(&self) -> Scope {
        let mut pin_dirs: Vec<PathBuf> = NS_KINDS.iter().map(|k| self.state.join("ns").join(k)).collect();
        pin_dirs.extend(self.netns_dir.clone());
        Scope {
            base: self.base.clone(),
            pin_dirs,
            cgroup_dirs: self.cgroup_parent_dirs(),
            known_procs: self.known().procs.clone(),
            daemon: self.child.as_ref().map(|c| c.id() as i32),
        }
    }

    fn test_processes(&self, with_daemon: bool) -> Vec<(host::ProcStat, String, String)> {
        self.scope().processes(with_daemon)
    }

    /// What this test left behind on the host, as sentences; empty when nothing leaked. Meant
    /// for after every pod was removed: mounts under the test dirs (other than the dirs
    /// themselves), processes of the test (other than the daemon), pod and namespace files,
    /// netns files, and cgroups under the test cgroup parents.
    pub fn leaks(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut infra: Vec<PathBuf> =
            vec![self.base.clone(), self.root.clone(), self.state.clone(), self.state.join("ns")];
        infra.extend(NS_KINDS.iter().map(|k| self.state.join("ns").join(k)));
        infra.extend(self.netns_dir.clone());
        for m in host::mounts_under(&self.base) {
            if !infra.contains(&m.mount_point) {
                out.push(format!("mount {} ({} from {})", m.mount_point.display(), m.fstype, m.source));
            }
        }
        for (st, reason, cmd) in self.test_processes(false) {
            out.push(format!("process {} ({}, {reason}): {cmd}", st.pid, st.comm));
        }
        let mut dirs = vec![
            self.root.join("pods"),
            self.root.join("containers"),
            self.root.join("cni").join("results"),
            self.state.join("pods"),
            self.state.join("containers"),
            self.state.join("records").join("pods"),
            self.state.join("records").join("containers"),
        ];
        dirs.extend(NS_KINDS.iter().map(|k| self.state.join("ns").join(k)));
        dirs.extend(self.netns_dir.clone());
        for d in dirs {
            for e in list_dir(&d) {
                out.push(format!("leftover {}", e.display()));
            }
        }
        for d in self.cgroup_parent_dirs() {
            for c in host::cgroup_tree(&d) {
                if c != d {
                    out.push(format!("cgroup {}", c.display()));
                }
            }
        }
        if let Some(bridge) = &self.bridge {
            out.extend(bridge.leaks());
        }
        out.extend(pod_chains(&nft_table_name(&self.base)).into_iter().map(|c| format!("nftables chain {c}")));
        out
    }

    /// The per-pod nftables chains of this daemon's hostport tables (`family table chain`).
    pub fn hostport_chains(&self) -> Vec<String> {
        pod_chains(&nft_table_name(&self.base))
    }

    /// The dir of the test's own CNI plugins (when it has any: [`TestDaemonBuilder::cni_plugin`]).
    pub fn cni_bin_dir(&self) -> PathBuf {
        self.base.join(CNI_BIN_DIR)
    }

    /// The test bridge network, when the daemon was built with `bridge_network()`.
    pub fn bridge(&self) -> Option<&crate::network::TestBridge> {
        self.bridge.as_ref()
    }

    /// Polls [`TestDaemon::leaks`] until it is empty or `timeout` passes; the last answer.
    pub async fn wait_no_leaks(&self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let leaks = self.leaks();
            if leaks.is_empty() || Instant::now() >= deadline {
                return leaks;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Panics (with the leaks and the daemon log) unless nothing leaked within [`LEAK_GRACE`].
    pub async fn assert_no_leaks(&self) {
        let leaks = self.wait_no_leaks(LEAK_GRACE).await;
        assert!(leaks.is_empty(), "leaked after {LEAK_GRACE:?}:\n  {}\n{}", leaks.join("\n  "), self.log_tail(80));
    }

    // ---- destruction ----

    /// What a reboot does to a node: SIGKILLs the daemon and every process of its pods, unmounts
    /// and deletes the volatile dirs (`state` and the netns dir, like /run emptied) and removes
    /// the test cgroups. The persistent `root` stays. Restart the daemon afterwards.
    pub fn simulate_reboot(&mut self) -> Vec<String> {
        self.kill9();
        let mut errors = self.kill_test_processes();
        let mut volatile = vec![self.state.clone()];
        volatile.extend(self.netns_dir.clone());
        for d in volatile {
            errors.extend(host::unmount_all_under(&d));
            if let Err(e) = fs::remove_dir_all(&d)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                errors.push(format!("removing {}: {e}", d.display()));
            }
        }
        for d in self.cgroup_parent_dirs() {
            errors.extend(host::remove_cgroup_tree(&d));
        }
        errors
    }

    fn kill_test_processes(&self) -> Vec<String> {
        self.scope().kill_processes()
    }

    /// Removes every pod through CRI, on a thread of its own (Drop may run inside a runtime).
    fn cri_cleanup_blocking(&self) {
        let socket = self.socket.clone();
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let _ = tokio::time::timeout(Duration::from_secs(60), async {
                    let Ok(ch) = connect(&socket).await else {
                        return;
                    };
                    let mut c = RuntimeServiceClient::new(ch);
                    let Ok(pods) = c.list_pod_sandbox(ListPodSandboxRequest { filter: None }).await else {
                        return;
                    };
                    for p in pods.into_inner().items {
                        let _ = c.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: p.id.clone() }).await;
                        let _ = c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: p.id }).await;
                    }
                })
                .await;
            });
        });
        let _ = handle.join();
    }

    fn terminate_blocking(&mut self) {
        self.runtime = None;
        self.image = None;
        let Some(mut c) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Kills, unmounts and removes whatever is left of the test. Returns what failed.
    fn force_clean(&mut self) -> Vec<String> {
        let mut errors = self.scope().force_clean();
        if let Some(bridge) = &self.bridge {
            errors.extend(bridge.remove());
        }
        errors.extend(remove_nft_tables(&nft_table_name(&self.base)));
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.close()
        {
            errors.push(format!("removing {}: {e}", self.base.display()));
        }
        errors
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(200));
            eprintln!("{}", self.monitor_logs(40));
        }
        if self.is_running() && self.runtime.is_some() {
            self.cri_cleanup_blocking();
        }
        self.terminate_blocking();
        let errors = self.force_clean();
        if !errors.is_empty() {
            eprintln!("crius-testkit: cleanup of {} left:\n  {}", self.base.display(), errors.join("\n  "));
        }
    }
}

/// The hostport manager's nftables table of this daemon (one per test, so tests run in parallel).
fn nft_table_name(base: &Path) -> String {
    format!("crius-t-{}", base.file_name().map(|n| n.to_string_lossy().replace(['.', '-'], "")).unwrap_or_default())
}

/// The per-pod chains (`pod-<id>`, crius-net's naming) left in the test's hostport tables,
/// as `family table chain`; the tables themselves stay for the daemon's life.
pub fn pod_chains(table: &str) -> Vec<String> {
    let mut chains = Vec::new();
    for family in ["ip", "ip6"] {
        let Ok(out) = std::process::Command::new("nft").args(["list", "table", family, table]).output() else {
            continue;
        };
        if !out.status.success() {
            continue;
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(name) = line.trim().strip_prefix("chain ").and_then(|r| r.split_whitespace().next())
                && name.starts_with("pod-")
            {
                chains.push(format!("{family} {table} {name}"));
            }
        }
    }
    chains
}

/// Deletes the test's hostport tables (both families), if the daemon made them.
fn remove_nft_tables(table: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for family in ["ip", "ip6"] {
        let listed = std::process::Command::new("nft").args(["list", "table", family, table]).output();
        if !listed.is_ok_and(|o| o.status.success()) {
            continue;
        }
        match std::process::Command::new("nft").args(["delete", "table", family, table]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                errors.push(format!("nft delete table {family} {table}: {}", String::from_utf8_lossy(&o.stderr).trim()))
            }
            Err(e) => errors.push(format!("nft delete table {family} {table}: {e}")),
        }
    }
    errors
}

fn list_dir(d: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(d).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    v.sort();
    v
}

/// What identifies one test's leftovers on the host: its dir, where its namespaces are pinned, its
/// cgroup parents, the pod processes the harness saw and the daemon's pid.
struct Scope {
    base: PathBuf,
    pin_dirs: Vec<PathBuf>,
    cgroup_dirs: Vec<PathBuf>,
    known_procs: Vec<KnownProc>,
    daemon: Option<i32>,
}

impl Scope {
    /// Processes that belong to this test: their command line names the test dirs, they are in
    /// a namespace of one of its pods or in one of its cgroup parents, they are a pod process
    /// the harness saw, or they descend from one of those. The daemon itself is left out unless
    /// `with_daemon`.
    fn processes(&self, with_daemon: bool) -> Vec<(host::ProcStat, String, String)> {
        let me = std::process::id() as i32;
        let daemon = self.daemon;
        // With the slash: /tmp/crius-abc must not match /tmp/crius-abcd.
        let base = format!("{}/", self.base.to_string_lossy());
        let hosts = host::host_ns_inodes();
        let known_procs = &self.known_procs;
        // Namespace inodes are reused once a namespace is gone: only namespaces held right now by
        // a pin under the test dirs, or by a live pod process the harness saw (same pid and start
        // time), identify this test's processes. A remembered inode could be another test's pod.
        let mut ns_set = BTreeSet::new();
        for k in known_procs {
            if host::process_alive(k.pid, Some(k.start_time)) {
                for kind in NS_KINDS {
                    ns_set.extend(host::ns_inode_of_pid(k.pid, kind));
                }
            }
        }
        for p in self.pin_dirs.iter().flat_map(|d| list_dir(d)) {
            if let Some(i) = host::ns_inode_of_path(&p) {
                ns_set.insert(i);
            }
        }
        ns_set.retain(|i| !hosts.contains(i));
        let mut cg_pids = BTreeSet::new();
        for d in &self.cgroup_dirs {
            for c in host::cgroup_tree(d) {
                cg_pids.extend(host::cgroup_procs(&c));
            }
        }

        let mut stats = BTreeMap::new();
        let mut matched: BTreeMap<i32, String> = BTreeMap::new();
        for pid in host::pids() {
            if pid == me || pid == 1 {
                continue;
            }
            let Some(st) = host::proc_stat(pid) else {
                continue;
            };
            if st.state == 'Z' {
                continue;
            }
            if Some(pid) == daemon {
                if with_daemon {
                    matched.insert(pid, "the daemon".into());
                }
                stats.insert(pid, st);
                continue;
            }
            let reason = if host::cmdline(pid).contains(&base) {
                Some("its command line names the test dirs".to_string())
            } else if let Some(kind) =
                NS_KINDS.iter().find(|k| host::ns_inode_of_pid(pid, k).is_some_and(|i| ns_set.contains(&i)))
            {
                Some(format!("in a pod {kind} namespace"))
            } else if cg_pids.contains(&pid) {
                Some("in a test cgroup".to_string())
            } else {
                known_procs.iter().find(|k| k.pid == pid && k.start_time == st.start_time).map(|k| k.what.clone())
            };
            if let Some(r) = reason {
                matched.insert(pid, r);
            }
            stats.insert(pid, st);
        }
        // Descendants of what matched (not of the daemon: its children are its business
        // while it runs, and they are caught by the other rules when they matter).
        loop {
            let mut added = Vec::new();
            for (pid, st) in &stats {
                if !matched.contains_key(pid)
                    && Some(*pid) != daemon
                    && Some(st.ppid) != daemon
                    && matched.contains_key(&st.ppid)
                {
                    added.push((*pid, format!("a child of {}", st.ppid)));
                }
            }
            if added.is_empty() {
                break;
            }
            matched.extend(added);
        }
        matched
            .into_iter()
            .filter_map(|(pid, reason)| stats.get(&pid).cloned().map(|st| (st, reason, host::cmdline(pid))))
            .collect()
    }

    /// SIGKILLs every process of the test (the daemon included) until none is left.
    fn kill_processes(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let procs = self.processes(true);
            if procs.is_empty() {
                return Vec::new();
            }
            for (st, _, _) in &procs {
                let _ = kill(Pid::from_raw(st.pid), Signal::SIGKILL);
            }
            for (st, _, _) in &procs {
                host::wait_process_gone(st.pid, Some(st.start_time), Duration::from_secs(2));
            }
            if Instant::now() >= deadline {
                return procs.iter().map(|(st, r, c)| format!("could not kill {} ({r}): {c}", st.pid)).collect();
            }
        }
    }

    /// Kills every process, unmounts every mount and removes the cgroups of the scope (a few
    /// rounds, for what a dying process leaves). The dir itself stays. Returns what failed.
    fn force_clean(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for _ in 0..5 {
            errors = self.kill_processes();
            errors.extend(host::unmount_all_under(&self.base));
            for d in &self.cgroup_dirs {
                errors.extend(host::remove_cgroup_tree(d));
            }
            if errors.is_empty() && host::mounts_under(&self.base).is_empty() && self.processes(true).is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        errors
    }
}

/// The directory of each cgroup parent in every hierarchy.
fn cgroup_dirs_of(parents: &[String]) -> Vec<PathBuf> {
    let hierarchies = host::cgroup_hierarchies();
    let mut out = Vec::new();
    for h in &hierarchies {
        for p in parents {
            out.push(h.join(p.trim_start_matches('/')));
        }
    }
    out
}

/// Cleans up after test processes that died without doing it themselves (a test killed on a
/// time-out does not run its destructors): every /tmp/crius-* test dir whose owner is gone loses
/// its processes, mounts, cgroups and files. Dirs without an owner file are not the harness's and
/// are left alone; an flock on the owner file keeps two sweepers apart.
pub fn sweep_stale_test_dirs() {
    let Ok(rd) = fs::read_dir("/tmp") else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let base = e.path();
        let owner_path = base.join(OWNER_FILE);
        let Ok(owner) = fs::read_to_string(&owner_path) else { continue };
        let mut it = owner.split_whitespace().map(|w| w.parse::<u64>().ok());
        let (Some(Some(pid)), Some(Some(start))) = (it.next(), it.next()) else { continue };
        if host::process_alive(pid as i32, Some(start)) {
            continue;
        }
        let Ok(file) = fs::File::open(&owner_path) else { continue };
        let Ok(_lock) = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        let parents: Vec<String> = fs::read_to_string(base.join(CGROUPS_FILE))
            .map(|t| t.lines().map(str::to_string).filter(|l| !l.is_empty()).collect())
            .unwrap_or_default();
        let run = base.join("run");
        let mut pin_dirs: Vec<PathBuf> = NS_KINDS.iter().map(|k| run.join("ns").join(k)).collect();
        pin_dirs.push(base.join("netns"));
        let scope = Scope {
            base: base.clone(),
            pin_dirs,
            cgroup_dirs: cgroup_dirs_of(&parents),
            known_procs: vec![],
            daemon: None,
        };
        let mut errors = scope.force_clean();
        // The hostport manager's tables of that daemon (named after its dir).
        errors.extend(remove_nft_tables(&nft_table_name(&base)));
        if let Err(e) = fs::remove_dir_all(&base)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            errors.push(format!("removing {}: {e}", base.display()));
        }
        eprintln!(
            "crius-testkit: swept {} (its test process {pid} is gone){}",
            base.display(),
            if errors.is_empty() { String::new() } else { format!("; left: {}", errors.join("; ")) }
        );
    }
}
