//! A stand-in for `crius monitor`, so crius-monitor's own tests can start real monitors before
//! the `crius` binary exists: `crius-monitor-test monitor --run-dir ... --pod-id ...`.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
enum Cli {
    /// Run a pod monitor (what the daemon starts for each pod).
    Monitor(crius_monitor::MonitorArgs),
}

fn main() -> ExitCode {
    match Cli::parse() {
        Cli::Monitor(args) => crius_monitor::run_monitor(args),
    }
}
