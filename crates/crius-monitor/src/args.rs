//! The flags of the hidden `monitor` subcommand. The daemon builds them with [`MonitorArgs::to_argv`]
//! so both sides agree on one definition.

use std::ffi::OsString;
use std::path::PathBuf;

use crius_sys::cgroups::{CgroupDriver, DEFAULT_ROOT};

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct MonitorArgs {
    /// crius's volatile directory: namespace pins go under <run-dir>/ns, the monitor's socket
    /// under <run-dir>/pods/<pod-id>.
    #[arg(long, value_name = "DIR")]
    pub run_dir: PathBuf,
    /// Also pin the pod's network namespace here as crius-<pod-id> (e.g. /run/netns, so that
    /// `ip netns` lists it).
    #[arg(long, value_name = "DIR")]
    pub netns_dir: Option<PathBuf>,
    /// Where the cgroup hierarchies are mounted.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_ROOT)]
    pub cgroup_root: PathBuf,
    /// How the pod's cgroup parent is named: cgroupfs or systemd.
    #[arg(long, value_name = "DRIVER", default_value = "cgroupfs")]
    pub cgroup_driver: CgroupDriver,
    /// The pod this monitor serves (must match the spec read on stdin; shows in `ps`).
    #[arg(long, value_name = "ID")]
    pub pod_id: String,
}

impl MonitorArgs {
    /// The flags, as the daemon passes them after the `monitor` subcommand.
    pub fn to_argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec!["--run-dir".into(), self.run_dir.clone().into()];
        if let Some(dir) = &self.netns_dir {
            argv.push("--netns-dir".into());
            argv.push(dir.clone().into());
        }
        argv.push("--cgroup-root".into());
        argv.push(self.cgroup_root.clone().into());
        argv.push("--cgroup-driver".into());
        argv.push(self.cgroup_driver.as_str().into());
        argv.push("--pod-id".into());
        argv.push(self.pod_id.clone().into());
        argv
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: MonitorArgs,
    }

    #[test]
    fn argv_round_trips_through_clap() {
        let args = MonitorArgs {
            run_dir: "/run/crius".into(),
            netns_dir: Some("/run/netns".into()),
            cgroup_root: "/sys/fs/cgroup".into(),
            cgroup_driver: CgroupDriver::Systemd,
            pod_id: "abc".into(),
        };
        let mut argv: Vec<OsString> = vec!["monitor".into()];
        argv.extend(args.to_argv());
        assert_eq!(Cli::try_parse_from(argv).unwrap().args, args);
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["monitor", "--run-dir", "/r", "--pod-id", "p"]).unwrap();
        assert_eq!(cli.args.cgroup_root, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(cli.args.cgroup_driver, CgroupDriver::Cgroupfs);
        assert_eq!(cli.args.netns_dir, None);
        assert!(Cli::try_parse_from(["monitor", "--run-dir", "/r", "--pod-id", "p", "--cgroup-driver", "x"]).is_err());
    }
}
