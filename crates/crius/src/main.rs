//! crius: a Kubernetes CRI v1 container runtime. One binary: the daemon, the per-pod monitor
//! (internal), a small client, and config/version helpers.

mod adapters;
mod client;
mod config;
mod ctl;
mod daemon;
mod host_caps;
mod image_cli;
mod lock;
mod pod_file;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigFlags};

#[derive(Debug, Parser)]
#[command(name = "crius", version, about = "A Kubernetes CRI v1 container runtime")]
struct Cli {
    #[command(flatten)]
    flags: ConfigFlags,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve CRI on the configured socket (the default).
    Daemon,
    /// The per-pod monitor, started by the daemon.
    #[command(hide = true)]
    Monitor(crius_monitor::MonitorArgs),
    /// Print the effective configuration as TOML.
    Config,
    /// Print crius's version.
    Version,
    /// A small CRI client (pods, inspect, stop, remove).
    Ctl(ctl::CtlArgs),
    /// The image store: import an archive, list, remove.
    Image(image_cli::ImageArgs),
    /// Write the default CNI network (bridge + host-local) if no CNI config exists yet.
    InitNetwork,
}

fn main() -> ExitCode {
    let Cli { flags, command } = Cli::parse();
    let command = match command.unwrap_or(Command::Daemon) {
        // The monitor is single-threaded and must stay lean: nothing else is set up for it.
        Command::Monitor(args) => return crius_monitor::run_monitor(args),
        command => command,
    };
    match run(&flags, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("crius: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(flags: &ConfigFlags, command: Command) -> anyhow::Result<()> {
    let config = Config::load(flags)?;
    match command {
        Command::Daemon => {
            init_tracing(&config);
            daemon::run(config)
        }
        Command::Config => {
            print!("{}", config.to_toml());
            Ok(())
        }
        Command::Version => {
            println!("crius {} (CRI API v1)", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Ctl(args) => ctl::run(args, config.listen),
        Command::InitNetwork => {
            match crius_net::default_network::ensure_default_network(&config.network)? {
                Some(path) => println!("wrote the default pod network to {}", path.display()),
                None => println!("a CNI network config already exists; nothing written"),
            }
            Ok(())
        }
        Command::Image(args) => image_cli::run(args, &config),
        Command::Monitor(_) => anyhow::bail!("the monitor is started by the daemon before any config is read"),
    }
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CRIUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(config.log_level.as_str()));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
