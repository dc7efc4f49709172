//! `crius ctl`: a small CRI client for people without crictl.

use std::path::PathBuf;

use anyhow::Context;
use k8s_cri::v1 as cri;

use crate::client;

#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The CRI socket (default: the configured `listen`).
    #[arg(long)]
    pub endpoint: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CtlCommand {
    /// Runtime name and versions.
    Version,
    /// Runtime and network conditions.
    Info,
    /// List pod sandboxes.
    Pods,
    /// Run a pod sandbox from a JSON PodSandboxConfig (crictl's format).
    Runp { file: PathBuf },
    /// Status of a pod sandbox, with crius's verbose info and start timeline.
    Inspectp { id: String },
    /// Stop a pod sandbox.
    Stopp { id: String },
    /// Remove a pod sandbox (stopping it first).
    Rmp { id: String },
}

pub fn run(args: CtlArgs, default_endpoint: PathBuf) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_async(args, default_endpoint))
}

async fn run_async(args: CtlArgs, default_endpoint: PathBuf) -> anyhow::Result<()> {
    let endpoint = args.endpoint.unwrap_or(default_endpoint);
    let mut rt = client::runtime(client::connect(&endpoint).await?);
    match args.command {
        CtlCommand::Version => {
            let v = rt.version(cri::VersionRequest::default()).await?.into_inner();
            println!("{} {} (CRI {})", v.runtime_name, v.runtime_version, v.runtime_api_version);
        }
        CtlCommand::Info => {
            let s = rt.status(cri::StatusRequest { verbose: true }).await?.into_inner();
            for c in s.status.map(|s| s.conditions).unwrap_or_default() {
                println!("{:<14} {:<5} {} {}", c.r#type, c.status, c.reason, c.message);
            }
            if let Some(info) = s.info.get("info") {
                println!("{}", pretty(info));
            }
        }
        CtlCommand::Pods => {
            let pods = rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()).await?.into_inner().items;
            println!("{:<13}  {:<9}  {:<30}  {:<20}  ATTEMPT", "POD ID", "STATE", "NAME", "NAMESPACE");
            for p in pods {
                let md = p.metadata.unwrap_or_default();
                let state = if p.state == cri::PodSandboxState::SandboxReady as i32 { "Ready" } else { "NotReady" };
                println!(
                    "{:<13}  {:<9}  {:<30}  {:<20}  {}",
                    &p.id[..p.id.len().min(13)],
                    state,
                    md.name,
                    md.namespace,
                    md.attempt
                );
            }
        }
        CtlCommand::Runp { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let config = crate::pod_file::parse(&text)
                .with_context(|| format!("parsing {} as a PodSandboxConfig", file.display()))?;
            let request = cri::RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() };
            println!("{}", rt.run_pod_sandbox(request).await?.into_inner().pod_sandbox_id);
        }
        CtlCommand::Inspectp { id } => {
            let resp =
                rt.pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: id, verbose: true }).await?;
            let resp = resp.into_inner();
            println!("{}", serde_json::to_string_pretty(&resp.status)?);
            if let Some(info) = resp.info.get("info") {
                println!("{}", pretty(info));
            }
        }
        CtlCommand::Stopp { id } => {
            rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: id.clone() }).await?;
            println!("stopped {id}");
        }
        CtlCommand::Rmp { id } => {
            rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id.clone() }).await?;
            println!("removed {id}");
        }
    }
    Ok(())
}

fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| json.to_string())
}
