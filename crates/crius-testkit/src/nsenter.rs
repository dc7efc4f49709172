//! Running a command inside a pod's namespaces with util-linux's `nsenter`.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use crate::error::{Error, Result};
use crate::info::PodNamespaces;

/// A namespace kind nsenter can enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    Net,
    Ipc,
    Uts,
    Pid,
    Mount,
}

impl Ns {
    fn flag(self) -> &'static str {
        match self {
            Ns::Net => "--net",
            Ns::Ipc => "--ipc",
            Ns::Uts => "--uts",
            Ns::Pid => "--pid",
            Ns::Mount => "--mount",
        }
    }
}

/// An `nsenter` command line being built.
///
/// ```no_run
/// # use crius_testkit::{Nsenter, Ns};
/// let out = Nsenter::new().ns_path(Ns::Uts, "/run/crius/ns/uts/ID").run(["hostname"]).unwrap();
/// let out = Nsenter::target(1234).enter(&[Ns::Net]).run(["ip", "-o", "link"]).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct Nsenter {
    args: Vec<OsString>,
}

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub command: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Stdout of a command that must have succeeded (panics with its stderr otherwise).
    pub fn expect_ok(self) -> String {
        assert!(
            self.status.success(),
            "`{}` failed ({}): stdout: {} stderr: {}",
            self.command,
            self.status,
            self.stdout,
            self.stderr
        );
        self.stdout
    }
}

impl Nsenter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Enters every namespace the pod has pinned (the host's are left alone).
    pub fn pinned(ns: &PodNamespaces) -> Self {
        let mut n = Self::new();
        for (kind, p) in [(Ns::Net, &ns.net), (Ns::Ipc, &ns.ipc), (Ns::Uts, &ns.uts), (Ns::Pid, &ns.pid)] {
            if let Some(p) = p {
                n = n.ns_path(kind, p);
            }
        }
        n
    }

    /// `--target PID`: namespaces then given with [`Nsenter::enter`] are that process's.
    pub fn target(pid: i32) -> Self {
        let mut n = Self::new();
        n.args.push("--target".into());
        n.args.push(pid.to_string().into());
        n
    }

    /// Enters the namespace of `kind` pinned at `path` (`--net=PATH`).
    pub fn ns_path(mut self, kind: Ns, path: impl AsRef<Path>) -> Self {
        let mut a = OsString::from(kind.flag());
        a.push("=");
        a.push(path.as_ref());
        self.args.push(a);
        self
    }

    /// Enters the target's namespaces of these kinds (`--net --uts ...`, with [`Nsenter::target`]).
    pub fn enter(mut self, kinds: &[Ns]) -> Self {
        for k in kinds {
            self.args.push(k.flag().into());
        }
        self
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    /// The full argv (`nsenter ... -- cmd...`).
    pub fn argv<I, S>(&self, cmd: I) -> Vec<OsString>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut v = self.args.clone();
        v.push("--".into());
        v.extend(cmd.into_iter().map(Into::into));
        v
    }

    /// Runs `cmd` inside the namespaces and collects its output.
    pub fn run<I, S>(&self, cmd: I) -> Result<CmdOutput>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let argv = self.argv(cmd);
        let command =
            format!("nsenter {}", argv.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" "));
        let out = Command::new("nsenter")
            .args(&argv)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::context(format!("running {command}"), e))?;
        Ok(CmdOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            command,
        })
    }

    /// Like [`Nsenter::run`], for a command that must succeed: its trimmed stdout.
    pub fn output<I, S>(&self, cmd: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        match self.run(cmd) {
            Ok(out) => out.expect_ok().trim().to_string(),
            Err(e) => panic!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_argv() {
        let ns =
            PodNamespaces { net: Some("/s/ns/net/p".into()), uts: Some("/s/ns/uts/p".into()), ..Default::default() };
        let argv = Nsenter::pinned(&ns).argv(["hostname"]);
        assert_eq!(
            argv,
            vec![OsString::from("--net=/s/ns/net/p"), "--uts=/s/ns/uts/p".into(), "--".into(), "hostname".into()]
        );
        let argv = Nsenter::target(7).enter(&[Ns::Net]).argv(["true"]);
        assert_eq!(argv, vec![OsString::from("--target"), "7".into(), "--net".into(), "--".into(), "true".into()]);
    }
}
