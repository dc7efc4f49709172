//! Typed runtime invocations turned into argv. runc and crun take the same subcommands and long
//! flags; they differ in how a flag's value is passed: crun parses with argp, where a flag with
//! an *optional* value (`--tty[=TTY]`) only takes it as `--flag=value`, so crun always gets the
//! `=` form; runc (urfave/cli) gets `--flag value` as its documentation shows.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crius_core::ports::container::RuntimeHandler;

/// Which command-line dialect the runtime speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    Runc,
    Crun,
}

impl RuntimeKind {
    /// From the binary's file name: crun* is crun; anything else (runc, youki, runsc) takes
    /// runc's flags.
    pub fn of_binary(binary: &Path) -> Self {
        match binary.file_name().and_then(|n| n.to_str()) {
            Some(name) if name.starts_with("crun") => RuntimeKind::Crun,
            _ => RuntimeKind::Runc,
        }
    }
}

/// One OCI runtime and its global flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub kind: RuntimeKind,
    pub binary: PathBuf,
    /// The runtime's state directory (--root).
    pub root: PathBuf,
    /// Where the runtime writes its own messages as JSON lines (`--log FILE --log-format json`).
    /// Needed whenever its stderr is not its own (create and exec pass it to the container).
    pub log: Option<PathBuf>,
    /// `--systemd-cgroup`: cgroupsPath is "slice:prefix:name".
    pub systemd_cgroup: bool,
    /// Configured global flags, after crius's own.
    pub global_args: Vec<String>,
}

impl Runtime {
    pub fn new(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        let binary = binary.into();
        Runtime {
            kind: RuntimeKind::of_binary(&binary),
            binary,
            root: root.into(),
            log: None,
            systemd_cgroup: false,
            global_args: Vec::new(),
        }
    }

    pub fn from_handler(handler: &RuntimeHandler) -> Self {
        Runtime {
            systemd_cgroup: handler.systemd_cgroup,
            global_args: handler.global_args.clone(),
            ..Runtime::new(&handler.binary, &handler.root)
        }
    }

    pub fn with_log(mut self, log: impl Into<PathBuf>) -> Self {
        self.log = Some(log.into());
        self
    }

    /// The arguments after the program name.
    pub fn argv(&self, sub: &Subcommand) -> Vec<OsString> {
        let mut out = Argv { kind: self.kind, args: Vec::new() };
        out.flag("root", &self.root);
        if let Some(log) = &self.log {
            out.flag("log", log);
            out.flag("log-format", "json");
        }
        if self.systemd_cgroup {
            out.switch("systemd-cgroup");
        }
        for arg in &self.global_args {
            out.word(arg);
        }
        out.word(sub.name());
        sub.push_args(&mut out);
        out.args
    }

    /// A `std::process::Command` for `sub` (stdio left to the caller).
    pub fn command(&self, sub: &Subcommand) -> std::process::Command {
        let mut command = std::process::Command::new(&self.binary);
        command.args(self.argv(sub));
        command
    }
}

/// `create`: the container is set up and waits for `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    pub id: String,
    pub bundle: PathBuf,
    /// Where the runtime writes the container's init pid (host view).
    pub pid_file: PathBuf,
    /// A unix socket that receives the pty master (for `terminal: true`).
    pub console_socket: Option<PathBuf>,
    /// Use chroot instead of pivot_root (rootfs on a ramfs).
    pub no_pivot: bool,
}

/// What `exec` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecProcess {
    /// An OCI Process JSON, used as is (nothing is inherited from the container's).
    File(PathBuf),
    /// A command; env, cwd and user default to the container's own process.
    Args { args: Vec<String>, env: Vec<String>, cwd: Option<String>, user: Option<String> },
}

impl ExecProcess {
    pub fn command(args: &[String]) -> Self {
        ExecProcess::Args { args: args.to_vec(), env: Vec::new(), cwd: None, user: None }
    }
}

/// `exec`: a new process in a running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub id: String,
    pub tty: bool,
    pub detach: bool,
    /// Where the runtime writes the exec'd process's pid (host view).
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub process: ExecProcess,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subcommand {
    Create(Create),
    Start {
        id: String,
    },
    /// `force` also kills a running container.
    Delete {
        id: String,
        force: bool,
    },
    /// `all`: every process of the container, not only its init.
    Kill {
        id: String,
        signal: i32,
        all: bool,
    },
    State {
        id: String,
    },
    Exec(Exec),
    /// `resources`: a file holding OCI LinuxResources as JSON.
    Update {
        id: String,
        resources: PathBuf,
    },
}

impl Subcommand {
    pub fn name(&self) -> &'static str {
        match self {
            Subcommand::Create(_) => "create",
            Subcommand::Start { .. } => "start",
            Subcommand::Delete { .. } => "delete",
            Subcommand::Kill { .. } => "kill",
            Subcommand::State { .. } => "state",
            Subcommand::Exec(_) => "exec",
            Subcommand::Update { .. } => "update",
        }
    }

    pub fn container_id(&self) -> &str {
        match self {
            Subcommand::Create(c) => &c.id,
            Subcommand::Exec(e) => &e.id,
            Subcommand::Start { id }
            | Subcommand::Delete { id, .. }
            | Subcommand::Kill { id, .. }
            | Subcommand::State { id }
            | Subcommand::Update { id, .. } => id,
        }
    }

    /// The subcommand's flags, then its positional arguments: both runtimes stop reading flags
    /// at the container id, so an exec'd command's own flags (`sh -c`) stay its own.
    fn push_args(&self, out: &mut Argv) {
        match self {
            Subcommand::Create(c) => {
                out.flag("bundle", &c.bundle);
                out.flag("pid-file", &c.pid_file);
                if let Some(socket) = &c.console_socket {
                    out.flag("console-socket", socket);
                }
                if c.no_pivot {
                    out.switch("no-pivot");
                }
                out.word(&c.id);
            }
            Subcommand::Start { id } | Subcommand::State { id } => out.word(id),
            Subcommand::Delete { id, force } => {
                if *force {
                    out.switch("force");
                }
                out.word(id);
            }
            Subcommand::Kill { id, signal, all } => {
                if *all {
                    out.switch("all");
                }
                out.word(id);
                out.word(signal.to_string());
            }
            Subcommand::Update { id, resources } => {
                out.flag("resources", resources);
                out.word(id);
            }
            Subcommand::Exec(e) => push_exec(e, out),
        }
    }
}

fn push_exec(e: &Exec, out: &mut Argv) {
    if e.tty {
        out.switch("tty");
    }
    if e.detach {
        out.switch("detach");
    }
    if let Some(pid_file) = &e.pid_file {
        out.flag("pid-file", pid_file);
    }
    if let Some(socket) = &e.console_socket {
        out.flag("console-socket", socket);
    }
    match &e.process {
        ExecProcess::File(path) => {
            out.flag("process", path);
            out.word(&e.id);
        }
        ExecProcess::Args { args, env, cwd, user } => {
            for var in env {
                out.flag("env", var);
            }
            if let Some(cwd) = cwd {
                out.flag("cwd", cwd);
            }
            if let Some(user) = user {
                out.flag("user", user);
            }
            out.word(&e.id);
            for arg in args {
                out.word(arg);
            }
        }
    }
}

struct Argv {
    kind: RuntimeKind,
    args: Vec<OsString>,
}

impl Argv {
    fn word(&mut self, word: impl Into<OsString>) {
        self.args.push(word.into());
    }

    fn switch(&mut self, name: &str) {
        self.args.push(format!("--{name}").into());
    }

    fn flag(&mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) {
        match self.kind {
            RuntimeKind::Runc => {
                self.args.push(format!("--{name}").into());
                self.args.push(value.as_ref().to_os_string());
            }
            RuntimeKind::Crun => {
                let mut arg = OsString::from(format!("--{name}="));
                arg.push(value.as_ref());
                self.args.push(arg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(runtime: &Runtime, sub: &Subcommand) -> Vec<String> {
        runtime.argv(sub).into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    fn runc() -> Runtime {
        Runtime::new("/usr/sbin/runc", "/run/crius/runc")
    }

    fn crun() -> Runtime {
        Runtime::new("/usr/bin/crun", "/run/crius/crun")
    }

    fn create(console: bool) -> Subcommand {
        Subcommand::Create(Create {
            id: "c1".into(),
            bundle: "/b".into(),
            pid_file: "/p/pid".into(),
            console_socket: console.then(|| PathBuf::from("/p/console.sock")),
            no_pivot: false,
        })
    }

    #[test]
    fn kinds_from_binary_names() {
        assert_eq!(RuntimeKind::of_binary(Path::new("/usr/bin/crun")), RuntimeKind::Crun);
        assert_eq!(RuntimeKind::of_binary(Path::new("crun-1.8")), RuntimeKind::Crun);
        assert_eq!(RuntimeKind::of_binary(Path::new("/usr/sbin/runc")), RuntimeKind::Runc);
        assert_eq!(RuntimeKind::of_binary(Path::new("/opt/youki")), RuntimeKind::Runc);
        let handler = RuntimeHandler {
            name: "fast".into(),
            binary: "/usr/bin/crun".into(),
            root: "/r".into(),
            ..Default::default()
        };
        let rt = Runtime::from_handler(&handler);
        assert_eq!((rt.kind, rt.root.as_path()), (RuntimeKind::Crun, Path::new("/r")));
    }

    #[test]
    fn runc_create_start_delete_kill_state() {
        let rt = runc();
        assert_eq!(
            words(&rt, &create(false)),
            ["--root", "/run/crius/runc", "create", "--bundle", "/b", "--pid-file", "/p/pid", "c1"]
        );
        assert_eq!(
            words(&rt, &create(true)),
            [
                "--root",
                "/run/crius/runc",
                "create",
                "--bundle",
                "/b",
                "--pid-file",
                "/p/pid",
                "--console-socket",
                "/p/console.sock",
                "c1"
            ]
        );
        assert_eq!(words(&rt, &Subcommand::Start { id: "c1".into() }), ["--root", "/run/crius/runc", "start", "c1"]);
        assert_eq!(
            words(&rt, &Subcommand::Delete { id: "c1".into(), force: true }),
            ["--root", "/run/crius/runc", "delete", "--force", "c1"]
        );
        assert_eq!(
            words(&rt, &Subcommand::Kill { id: "c1".into(), signal: 15, all: false }),
            ["--root", "/run/crius/runc", "kill", "c1", "15"]
        );
        assert_eq!(
            words(&rt, &Subcommand::Kill { id: "c1".into(), signal: 9, all: true }),
            ["--root", "/run/crius/runc", "kill", "--all", "c1", "9"]
        );
        assert_eq!(words(&rt, &Subcommand::State { id: "c1".into() }), ["--root", "/run/crius/runc", "state", "c1"]);
    }

    #[test]
    fn runc_global_log_and_systemd() {
        let mut rt = runc().with_log("/p/runtime.log");
        rt.systemd_cgroup = true;
        assert_eq!(
            words(&rt, &Subcommand::Start { id: "c1".into() }),
            [
                "--root",
                "/run/crius/runc",
                "--log",
                "/p/runtime.log",
                "--log-format",
                "json",
                "--systemd-cgroup",
                "start",
                "c1"
            ]
        );
    }

    #[test]
    fn a_systemd_handler_asks_for_systemd_cgroups() {
        let handler = RuntimeHandler {
            name: "runc".into(),
            binary: "/usr/sbin/runc".into(),
            root: "/r".into(),
            systemd_cgroup: true,
            global_args: vec!["--debug".into()],
            ..Default::default()
        };
        let words = words(&Runtime::from_handler(&handler), &Subcommand::State { id: "c1".into() });
        assert_eq!(words, ["--root", "/r", "--systemd-cgroup", "--debug", "state", "c1"]);
        let plain = RuntimeHandler { systemd_cgroup: false, ..handler };
        assert!(!Runtime::from_handler(&plain).systemd_cgroup);
    }

    #[test]
    fn runc_exec_and_update() {
        let rt = runc();
        let exec = Subcommand::Exec(Exec {
            id: "c1".into(),
            tty: false,
            detach: false,
            pid_file: Some("/x/pid".into()),
            console_socket: None,
            process: ExecProcess::Args {
                args: vec!["sh".into(), "-c".into(), "echo --root".into()],
                env: vec!["A=1".into(), "B=2".into()],
                cwd: Some("/tmp".into()),
                user: Some("1000:1000".into()),
            },
        });
        assert_eq!(
            words(&rt, &exec),
            [
                "--root",
                "/run/crius/runc",
                "exec",
                "--pid-file",
                "/x/pid",
                "--env",
                "A=1",
                "--env",
                "B=2",
                "--cwd",
                "/tmp",
                "--user",
                "1000:1000",
                "c1",
                "sh",
                "-c",
                "echo --root"
            ]
        );
        let tty = Subcommand::Exec(Exec {
            id: "c1".into(),
            tty: true,
            detach: true,
            pid_file: None,
            console_socket: Some("/s".into()),
            process: ExecProcess::File("/x/process.json".into()),
        });
        assert_eq!(
            words(&rt, &tty),
            [
                "--root",
                "/run/crius/runc",
                "exec",
                "--tty",
                "--detach",
                "--console-socket",
                "/s",
                "--process",
                "/x/process.json",
                "c1"
            ]
        );
        let update = Subcommand::Update { id: "c1".into(), resources: "/x/r.json".into() };
        assert_eq!(words(&rt, &update), ["--root", "/run/crius/runc", "update", "--resources", "/x/r.json", "c1"]);
    }

    #[test]
    fn crun_takes_values_after_an_equals_sign() {
        let rt = crun().with_log("/p/runtime.log");
        assert_eq!(
            words(&rt, &create(true)),
            [
                "--root=/run/crius/crun",
                "--log=/p/runtime.log",
                "--log-format=json",
                "create",
                "--bundle=/b",
                "--pid-file=/p/pid",
                "--console-socket=/p/console.sock",
                "c1"
            ]
        );
        let exec = Subcommand::Exec(Exec {
            id: "c1".into(),
            tty: true,
            detach: false,
            pid_file: Some("/x/pid".into()),
            console_socket: None,
            process: ExecProcess::Args {
                args: vec!["echo".into(), "hi".into()],
                env: vec!["A=1".into()],
                cwd: None,
                user: None,
            },
        });
        assert_eq!(
            words(&crun(), &exec),
            ["--root=/run/crius/crun", "exec", "--tty", "--pid-file=/x/pid", "--env=A=1", "c1", "echo", "hi"]
        );
        assert_eq!(
            words(&crun(), &Subcommand::Delete { id: "c1".into(), force: true }),
            ["--root=/run/crius/crun", "delete", "--force", "c1"]
        );
        assert_eq!(
            words(&crun(), &Subcommand::Update { id: "c1".into(), resources: "/r.json".into() }),
            ["--root=/run/crius/crun", "update", "--resources=/r.json", "c1"]
        );
        assert_eq!(
            words(&crun(), &Subcommand::Kill { id: "c1".into(), signal: 9, all: true }),
            ["--root=/run/crius/crun", "kill", "--all", "c1", "9"]
        );
    }

    #[test]
    fn command_uses_the_binary() {
        let command = runc().command(&Subcommand::State { id: "c1".into() });
        assert_eq!(command.get_program(), "/usr/sbin/runc");
        assert_eq!(command.get_args().count(), 4);
        assert_eq!(create(false).container_id(), "c1");
        assert_eq!(create(false).name(), "create");
    }
}
