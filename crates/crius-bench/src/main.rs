//! crius-bench: measures any CRI endpoint the same way (pods, containers, images, memory), so
//! crius and containerd can be compared in one run. See BENCHMARKS.md and scripts/bench.sh.

mod bench;
mod client;
mod oci;
mod procfs;
mod registry;
mod report;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use k8s_cri::v1 as cri;
use tokio::signal::unix::{SignalKind, signal};

use crate::report::{Params, Report};

#[derive(Debug, Parser)]
#[command(
    name = "crius-bench",
    version,
    about = "Benchmark a CRI endpoint: pod, container, image latencies and memory",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark an endpoint (the default when no subcommand is given).
    Run(RunArgs),
    /// Compare two runs' JSON: tables, ratios (first / second) and the tracker's targets.
    Compare(CompareArgs),
    /// Remove every pod this tool made on an endpoint (names starting with crius-bench-).
    Cleanup(CleanupArgs),
    /// Add a single-layer image made of local files to an OCI image layout (and tar it).
    OciImage(OciImageArgs),
    /// Serve an OCI image layout as a read-only registry over HTTP on loopback.
    Registry(RegistryArgs),
}

#[derive(Debug, Clone, Args)]
struct RunArgs {
    /// The CRI socket (a path or unix:///path).
    #[arg(long)]
    endpoint: Option<String>,
    /// The runtime's label in tables and messages; also picks the default helper processes.
    #[arg(long, default_value = "crius")]
    name: String,
    /// Measured iterations of each latency series.
    #[arg(long, default_value_t = 20)]
    count: usize,
    /// Unmeasured iterations before each series.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Pods started at once in the concurrent phase.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Rounds of the concurrent phase.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Pods present while ListPodSandbox/PodSandboxStatus and memory are measured.
    #[arg(long, default_value_t = 50)]
    list_pods: usize,
    /// Containers (spread over those pods) while ListContainers/ContainerStatus are measured.
    #[arg(long, default_value_t = 100)]
    containers: usize,
    /// Iterations of the cheap read-only calls (List*, *Status).
    #[arg(long, default_value_t = 200)]
    rpc_count: usize,
    /// Image for the container and pull measurements (in a loopback registry or already
    /// present); without it those rows are skipped.
    #[arg(long)]
    image: Option<String>,
    /// Another image with the same layers as --image (another config): pulled while --image is
    /// present, it measures a pull whose layers are all there already.
    #[arg(long)]
    same_layers_image: Option<String>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Helper processes to count per pod, comma-separated patterns ("crius monitor",
    /// "containerd-shim-runc-v2"): argv words (argv[0] by file name) or a comm. Their
    /// descendants count too. Default by --name: crius -> "crius monitor", containerd ->
    /// "containerd-shim-runc-v2".
    #[arg(long, value_delimiter = ',')]
    helper_process_names: Vec<String>,
    /// The daemon's pid (default: the process listening on the endpoint).
    #[arg(long)]
    daemon_pid: Option<i32>,
    /// Pods get cgroup parent /<this>/<run id>/<pod name> ("" for none); the empty directories
    /// are removed at the end.
    #[arg(long, default_value = "crius-bench")]
    cgroup_parent: String,
    /// Give pods a log directory under here (as a kubelet does).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Deadline of each CRI call, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// The run being judged (crius).
    subject: PathBuf,
    /// The baseline (containerd).
    baseline: PathBuf,
    /// Also write a Markdown document (BENCHMARKS.md) here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Facts for the machine section, KEY=VALUE (repeatable).
    #[arg(long)]
    info: Vec<String>,
    /// The command that produced the runs, for the document.
    #[arg(long)]
    command: Option<String>,
    /// Exit 1 when any measurement failed in either run (not-supported and skipped rows are
    /// not failures).
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Args)]
struct CleanupArgs {
    #[arg(long)]
    endpoint: String,
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Also remove the empty cgroup directories under this top ("" for none).
    #[arg(long, default_value = "crius-bench")]
    cgroup_parent: String,
}

#[derive(Debug, Args)]
struct OciImageArgs {
    /// The OCI image layout directory (created or added to).
    #[arg(long)]
    layout: PathBuf,
    /// Full image name, e.g. crius-bench.local/pause:1.
    #[arg(long)]
    name: String,
    /// A file: IMAGE_PATH=LOCAL_FILE (mode 0755). Repeatable.
    #[arg(long = "add", value_name = "IMAGE_PATH=LOCAL_FILE")]
    files: Vec<String>,
    /// A file in a layer of its own, after the base layer: IMAGE_PATH=LOCAL_FILE. Repeatable.
    #[arg(long = "layer", value_name = "IMAGE_PATH=LOCAL_FILE")]
    layers: Vec<String>,
    /// An empty directory in the image. Repeatable.
    #[arg(long = "dir")]
    dirs: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    entrypoint: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    cmd: Vec<String>,
    /// KEY=VALUE. Repeatable.
    #[arg(long)]
    env: Vec<String>,
    /// Also write a tar of the whole layout here (for `ctr images import`).
    #[arg(long)]
    tar: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RegistryArgs {
    #[arg(long)]
    layout: PathBuf,
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Write the bound port here once listening.
    #[arg(long)]
    port_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("crius-bench: starting tokio: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            None => run(cli.run).await,
            Some(Command::Run(args)) => run(args).await,
            Some(Command::Compare(args)) => compare(args),
            Some(Command::Cleanup(args)) => cleanup(args).await,
            Some(Command::OciImage(args)) => oci_image(args).map(|()| ExitCode::SUCCESS),
            Some(Command::Registry(args)) => serve_registry(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crius-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn default_helpers(name: &str) -> Vec<String> {
    match name {
        "crius" => vec!["crius monitor".into()],
        "containerd" => vec!["containerd-shim-runc-v2".into()],
        _ => Vec::new(),
    }
}

fn new_run_id() -> String {
    let mut bytes = [0u8; 4];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if ok.is_err() {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        bytes = (nanos ^ std::process::id()).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let Some(endpoint) = args.endpoint.clone() else {
        bail!("--endpoint is required (the CRI socket to benchmark); see --help");
    };
    let socket = client::socket_path(&endpoint);
    let timeout = Duration::from_secs(args.timeout.max(1));
    let channel = client::connect(&socket).await?;
    let mut rt = client::runtime(channel.clone());
    let version = tokio::time::timeout(timeout, rt.version(cri::VersionRequest::default()))
        .await
        .context("Version: no answer")?
        .context("Version")?
        .into_inner();
    let daemon_pid = args.daemon_pid.or_else(|| procfs::socket_owner(&socket));
    let helpers = if args.helper_process_names.is_empty() {
        default_helpers(&args.name)
    } else {
        args.helper_process_names.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    };
    let params = Params {
        count: args.count,
        warmup: args.warmup,
        concurrency: args.concurrency.max(1),
        rounds: args.rounds.max(1),
        list_pods: args.list_pods,
        containers: args.containers,
        rpc_count: args.rpc_count,
        image: args.image.clone(),
        same_layers_image: args.same_layers_image.clone(),
        cgroup_parent: args.cgroup_parent.clone(),
    };
    let run_id = new_run_id();
    let ctx = bench::Ctx::new(
        channel,
        args.name.clone(),
        run_id.clone(),
        timeout,
        args.cgroup_parent.trim_matches('/').to_string(),
        args.log_dir.clone(),
        daemon_pid,
        helpers,
        params.clone(),
    );
    eprintln!(
        "[crius-bench {}] {} {} on {} (daemon pid {}), run {run_id}",
        args.name,
        version.runtime_name,
        version.runtime_version,
        socket.display(),
        daemon_pid.map_or("unknown".into(), |p| p.to_string())
    );

    // Leftovers of earlier runs (any run id) go first.
    let (n, errors) = bench::cleanup_pods(&ctx.rt, bench::NAME_PREFIX, &ctx.tracked, timeout, 1).await;
    if n > 0 {
        eprintln!("[crius-bench {}] removed {n} pods left by an earlier run", args.name);
    }
    for e in errors {
        eprintln!("[crius-bench {}] cleanup: {e}", args.name);
    }
    bench::cleanup_cgroups(&ctx.cgroup_top, None);

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let started = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let clock = Instant::now();
    let interrupted = tokio::select! {
        () = ctx.run() => None,
        _ = sigint.recv() => Some(130u8),
        _ = sigterm.recv() => Some(143),
        _ = sighup.recv() => Some(129),
    };
    if interrupted.is_some() {
        eprintln!("[crius-bench {}] interrupted: removing this run's pods", args.name);
    }
    let passes = if interrupted.is_some() { 3 } else { 1 };
    let (n, errors) = bench::cleanup_pods(&ctx.rt, &ctx.prefix(), &ctx.tracked, timeout, passes).await;
    if n > 0 {
        eprintln!("[crius-bench {}] cleanup removed {n} pods", args.name);
    }
    let cleanup_failed = !errors.is_empty();
    for e in &errors {
        eprintln!("[crius-bench {}] cleanup: {e}", args.name);
    }
    bench::cleanup_cgroups(&ctx.cgroup_top, Some(&run_id));

    let rows = ctx.rows.lock().map(|r| r.clone()).unwrap_or_default();
    let report = Report {
        name: args.name.clone(),
        endpoint: socket.display().to_string(),
        runtime_name: version.runtime_name,
        runtime_version: version.runtime_version,
        daemon_pid,
        run_id,
        params,
        started_unix: started,
        duration_s: clock.elapsed().as_secs_f64(),
        interrupted: interrupted.is_some(),
        rows,
    };
    println!(
        "\n## {} ({} {}), {:.0} s{}\n",
        report.name,
        report.runtime_name,
        report.runtime_version,
        report.duration_s,
        if report.interrupted { ", INTERRUPTED" } else { "" }
    );
    print!("{}", report::render_report(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(match interrupted {
        Some(code) => ExitCode::from(code),
        None if cleanup_failed => ExitCode::from(3),
        None => ExitCode::SUCCESS,
    })
}

fn read_report(path: &PathBuf) -> anyhow::Result<Report> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&raw).with_context(|| format!("parsing {}", path.display()))
}

fn compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let subject = read_report(&args.subject)?;
    let baseline = read_report(&args.baseline)?;
    let comparison = report::render_comparison(&subject, &baseline);
    let targets = report::render_targets(&report::targets(&subject, &baseline));
    println!("\n## {} vs {} (ratio = {} / {}, p50)\n", subject.name, baseline.name, subject.name, baseline.name);
    print!("{comparison}");
    println!("\n## Targets\n");
    print!("{targets}");
    if let Some(path) = &args.markdown {
        let doc = markdown(&subject, &baseline, &comparison, &targets, &args.info, args.command.as_deref());
        std::fs::write(path, doc).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("crius-bench: wrote {}", path.display());
    }
    let mut failed = Vec::new();
    for r in [&subject, &baseline] {
        if r.interrupted {
            failed.push(format!("{}: the run was interrupted", r.name));
        }
        for row in r.failed() {
            failed.push(format!("{}: {}: {}", r.name, row.title, row.message));
        }
    }
    if !failed.is_empty() {
        println!("\nFailed measurements:");
        for f in &failed {
            println!("  - {f}");
        }
    }
    Ok(if args.check && !failed.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn markdown(
    subject: &Report,
    baseline: &Report,
    comparison: &str,
    targets: &str,
    info: &[String],
    command: Option<&str>,
) -> String {
    let p = &subject.params;
    let mut doc = String::new();
    doc.push_str("# Benchmarks\n\n");
    doc.push_str(
        "crius beside containerd on the same machine, in one run of `scripts/bench.sh`, measured by `crius-bench` \
         (crates/crius-bench) over CRI. This file is written by that script: re-run it rather than editing.\n\n",
    );
    doc.push_str("## Machine and versions\n\n");
    let rows: Vec<Vec<String>> = info
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            vec![k.to_string(), v.to_string()]
        })
        .chain([
            vec![
                format!("{} (Version RPC)", subject.name),
                format!("{} {}", subject.runtime_name, subject.runtime_version),
            ],
            vec![
                format!("{} (Version RPC)", baseline.name),
                format!("{} {}", baseline.runtime_name, baseline.runtime_version),
            ],
        ])
        .collect();
    doc.push_str(&report::render_table(&["", ""], &rows, &[false, false]));
    if let Some(cmd) = command {
        doc.push_str(&format!("\nCommand: `{cmd}`\n"));
    }
    doc.push_str(&format!(
        "\nParameters: {} measured iterations per series after {} warm-up, {} pods at once x {} rounds, {} pods \
         present for the list/status/memory figures, {} containers, {} iterations of each read-only call, image `{}`.\n",
        p.count,
        p.warmup,
        p.concurrency,
        p.rounds,
        p.list_pods,
        p.containers,
        p.rpc_count,
        p.image.as_deref().unwrap_or("(none)")
    ));
    doc.push_str("\n## Targets (from the tracker)\n\n");
    doc.push_str(targets);
    doc.push_str(&format!(
        "\n## {} vs {}\n\nLatencies in ms (p50, p95, max over the measured iterations), memory in MiB; the ratio is \
         {} p50 / {} p50 (below 1 means {} is faster or smaller).\n\n",
        subject.name, baseline.name, subject.name, baseline.name, subject.name
    ));
    doc.push_str(comparison);
    for r in [subject, baseline] {
        doc.push_str(&format!("\n## {} ({} {}), {:.0} s\n\n", r.name, r.runtime_name, r.runtime_version, r.duration_s));
        doc.push_str(&report::render_report(r));
    }
    doc.push_str(METHOD);
    doc
}

const METHOD: &str = "
## How it is measured

- Both daemons run on private directories, one after the other, with nothing else of theirs running; the
  client is `crius-bench`, one gRPC connection, calls made as a kubelet makes them (pods with a cgroup parent,
  a log directory, PID namespace per container, no hostname for host-network pods). A pod network is a
  network namespace of its own holding only `lo`: crius's pod init makes it; containerd runs a CNI conflist of
  the loopback plugin plus `bench-ip` (scripts/bench/cni-ip.c), which only reports an address on `eth0`
  because containerd 1.6 refuses a pod without one.
- Images: the bench image (uncompressed layers: a base of a static pause, `true` and `serve`, plus four layers
  of random data, 100 MiB in all in a full run) is served by a loopback registry (`crius-bench registry`);
  bench:2 has the same layers and another config (the \"layers present\" pull). containerd's sandbox image is the
  same pause, imported with `ctr`.
- Latency is the client's wall time of one CRI call (or of RunPodSandbox + CreateContainer + StartContainer
  for \"pod to running\"). Percentiles are nearest-rank over the measured iterations; warm-up iterations are
  not counted. \"N pods one after another\" keeps every pod until all are up, then stops and removes them.
  \"At once\" starts the pods from concurrent tasks over the same connection; the wall time is per round.
  Cold pull = RemoveImage (both runtimes then delete the unreferenced blobs) + PullImage.
- crius runs `runc create` in CreateContainer and `runc start` in StartContainer; containerd creates the task
  (runc create + start) in StartContainer: compare their sum, or pod to running.
- Memory is read from /proc/PID/smaps_rollup. The daemon is the process listening on the socket. Helpers
  are, per pod, the processes whose argv starts a `crius monitor` or `containerd-shim-runc-v2` naming that pod
  plus all their descendants (crius's pod init; containerd's pause), measured with only pods running. Daemon
  CPU is its utime + stime over the run (not its helpers', nor runc's).
- The machine is shared: the load average before and after is recorded above; figures taken under load are
  noisy, ratios less so.
- A row that the runtime answers UNIMPLEMENTED is reported as \"not supported\", never as a figure.
";

async fn cleanup(args: CleanupArgs) -> anyhow::Result<ExitCode> {
    let socket = client::socket_path(&args.endpoint);
    let rt = client::runtime(client::connect(&socket).await?);
    let tracked = Default::default();
    let timeout = Duration::from_secs(args.timeout.max(1));
    let (n, errors) = bench::cleanup_pods(&rt, bench::NAME_PREFIX, &tracked, timeout, 2).await;
    let dirs = bench::cleanup_cgroups(args.cgroup_parent.trim_matches('/'), None);
    eprintln!("crius-bench cleanup: removed {n} pods and {dirs} cgroup directories on {}", socket.display());
    for e in &errors {
        eprintln!("crius-bench cleanup: {e}");
    }
    Ok(if errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn oci_image(args: OciImageArgs) -> anyhow::Result<()> {
    let read = |flag: &str, specs: &[String]| -> anyhow::Result<Vec<oci::ImageFile>> {
        specs
            .iter()
            .map(|spec| {
                let (path, local) = spec
                    .split_once('=')
                    .with_context(|| format!("--{flag} {spec:?}: expected IMAGE_PATH=LOCAL_FILE"))?;
                let data = std::fs::read(local).with_context(|| format!("reading {local}"))?;
                Ok(oci::ImageFile { path: path.to_string(), data, mode: 0o755 })
            })
            .collect()
    };
    let def = oci::ImageDef {
        name: args.name.clone(),
        files: read("add", &args.files)?,
        layers: read("layer", &args.layers)?,
        dirs: args.dirs.clone(),
        entrypoint: args.entrypoint.clone(),
        cmd: args.cmd.clone(),
        env: args.env.clone(),
    };
    let digest = oci::add_to_layout(&args.layout, &def)?;
    if let Some(tar) = &args.tar {
        std::fs::write(tar, oci::tar_layout(&args.layout)?).with_context(|| format!("writing {}", tar.display()))?;
    }
    println!("{} {digest}", args.name);
    Ok(())
}

async fn serve_registry(args: RegistryArgs) -> anyhow::Result<ExitCode> {
    if !args.listen.ip().is_loopback() {
        bail!("--listen {}: the registry serves loopback only", args.listen);
    }
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    if let Some(path) = &args.port_file {
        std::fs::write(path, format!("{}\n", addr.port())).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("crius-bench registry: serving {} on http://{addr}", args.layout.display());
    let registry = registry::Registry::new(args.layout.clone());
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    tokio::select! {
        r = registry.clone().serve(listener) => r?,
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    eprintln!("crius-bench registry: stopping after {} requests", registry.served());
    Ok(ExitCode::SUCCESS)
}
