//! crius.toml: every setting has a built-in default, so crius runs with no file at all. Unknown
//! keys and bad values are refused with the file, the key and what is allowed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/crius/crius.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriverName {
    Cgroupfs,
    Systemd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The CRI endpoint (a unix socket, mode 0660).
    pub listen: PathBuf,
    /// Persistent state: pod records, images, writable layers.
    pub root: PathBuf,
    /// Volatile state (gone after a reboot): pinned namespaces, monitor sockets, /dev/shm mounts.
    pub state: PathBuf,
    pub log_level: LogLevel,
    /// Where pod network namespaces are also pinned so `ip netns` sees them; "" turns that off.
    pub netns_dir: PathBuf,
    pub cgroup_driver: CgroupDriverName,
    /// Where the cgroup hierarchies are mounted.
    pub cgroup_root: PathBuf,
    /// Size of each pod's /dev/shm tmpfs, in bytes.
    pub shm_size: u64,
    /// IPv6 duplicate address detection in pod network namespaces (off: it delays pod start).
    pub ipv6_dad: bool,
    /// The runtime handler for pods that name none.
    pub default_runtime: String,
    /// OCI runtimes by handler name (RunPodSandbox's runtime_handler).
    pub runtimes: BTreeMap<String, RuntimeConfig>,
    /// Registries by host: mirrors, plain HTTP, credentials (`[registries."host:port"]`).
    pub registries: crius_image::Registries,
    /// Pull parallelism and time-outs (`[image_pull]`).
    pub image_pull: crius_image::PullConfig,
    /// Pod networking: CNI and the hostport manager (a table, so it comes last).
    pub network: crius_net::NetworkConfig,
    /// The Prometheus endpoint (off by default) and stats settings (`[metrics]`).
    pub metrics: crius_metrics::MetricsConfig,
    /// The streaming server for Exec and PortForward (`[streaming]`).
    pub streaming: StreamingConfig,
}

/// Where kubectl exec / port-forward sessions connect (through the kubelet or crictl).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingConfig {
    /// Listen address; port 0 picks a free port. Anything but loopback needs TLS.
    pub address: std::net::SocketAddr,
    /// A session with no traffic for this long is closed (the kubelet's default: 4 h).
    pub idle_timeout_secs: u64,
    /// PEM certificate and key for HTTPS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            address: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            idle_timeout_secs: 4 * 3600,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// One OCI runtime (`[runtimes.NAME]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// The runtime binary: a path, or a name looked up in PATH (and /usr/sbin, /usr/bin, /sbin, /bin).
    pub binary: PathBuf,
    /// The runtime's state directory (--root); default `<state>/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    #[serde(default)]
    pub options: RuntimeOptions,
}

/// `[runtimes.NAME.options]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeOptions {
    /// `create --no-pivot`: for a root filesystem on a ramdisk, where pivot_root fails.
    pub no_pivot: bool,
    /// Global flags given to every call of the runtime, before its subcommand (`--debug`,
    /// `--rootless=false`, ...). The flags crius sets itself are refused.
    pub global_args: Vec<String>,
}

/// Global flags crius gives the runtime itself.
const MANAGED_RUNTIME_FLAGS: &[&str] = &["--root", "--log", "--log-format", "--systemd-cgroup"];

impl RuntimeOptions {
    fn validate(&self) -> Result<(), String> {
        for arg in &self.global_args {
            if !arg.starts_with("--") {
                return Err(format!("global_args: {arg:?} is not a --flag (or --flag=value)"));
            }
            let flag = arg.split('=').next().unwrap_or(arg);
            if MANAGED_RUNTIME_FLAGS.contains(&flag) {
                return Err(format!("global_args: {flag} is set by crius itself"));
            }
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "/run/crius/crius.sock".into(),
            root: "/var/lib/crius".into(),
            state: "/run/crius".into(),
            log_level: LogLevel::Info,
            netns_dir: "/run/netns".into(),
            cgroup_driver: CgroupDriverName::Cgroupfs,
            cgroup_root: "/sys/fs/cgroup".into(),
            shm_size: 64 * 1024 * 1024,
            ipv6_dad: false,
            default_runtime: "runc".into(),
            runtimes: ["runc", "crun"]
                .into_iter()
                .map(|name| (name.to_string(), RuntimeConfig { binary: name.into(), ..Default::default() }))
                .collect(),
            registries: crius_image::Registries::default(),
            image_pull: crius_image::PullConfig::default(),
            network: crius_net::NetworkConfig::default(),
            streaming: StreamingConfig::default(),
            metrics: crius_metrics::MetricsConfig::default(),
        }
    }
}

/// Settings given on the command line; they override the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigFlags {
    /// Configuration file (default /etc/crius/crius.toml, if it exists).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// CRI socket path.
    #[arg(long, global = true)]
    pub listen: Option<PathBuf>,
    /// Persistent state directory.
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Volatile state directory.
    #[arg(long, global = true)]
    pub state: Option<PathBuf>,
    /// error, warn, info, debug or trace.
    #[arg(long, global = true, value_parser = parse_log_level)]
    pub log_level: Option<LogLevel>,
}

fn parse_log_level(s: &str) -> Result<LogLevel, String> {
    LogLevel::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s))
        .map_err(|_| format!("{s:?} is not a log level; use error, warn, info, debug or trace"))
}

impl Config {
    /// The file (explicit, or the default path if it exists), then the flags.
    pub fn load(flags: &ConfigFlags) -> anyhow::Result<Config> {
        let file = match &flags.config {
            Some(path) => Some(path.as_path()),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => Some(Path::new(DEFAULT_CONFIG_PATH)),
            None => None,
        };
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = &flags.listen {
            config.listen = v.clone();
        }
        if let Some(v) = &flags.root {
            config.root = v.clone();
        }
        if let Some(v) = &flags.state {
            config.state = v.clone();
        }
        if let Some(v) = flags.log_level {
            config.log_level = v;
        }
        // Name where a bad value came from: the file, unless a flag set it.
        config.validate().map_err(|e| match file {
            Some(path) => e.context(format!("in {} (and the command-line flags)", path.display())),
            None => e.context("in the command-line flags"),
        })?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Config> {
        Ok(toml::from_str(text)?)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        for (key, path) in [("listen", &self.listen), ("root", &self.root), ("state", &self.state)] {
            if !path.is_absolute() {
                bail!("{key} = {:?}: must be an absolute path", path.display());
            }
        }
        if !self.netns_dir.as_os_str().is_empty() && !self.netns_dir.is_absolute() {
            bail!("netns_dir = {:?}: must be an absolute path, or \"\" to turn the ip-netns alias off", self.netns_dir);
        }
        for (name, rt) in &self.runtimes {
            rt.options.validate().map_err(|e| anyhow::anyhow!("[runtimes.{name}.options] {e}"))?;
        }
        if !self.runtimes.contains_key(&self.default_runtime) {
            bail!(
                "default_runtime = {:?}: no [runtimes.{}] is configured (configured: {})",
                self.default_runtime,
                self.default_runtime,
                self.runtimes.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        self.network.validate().map_err(|e| anyhow::anyhow!("[network]: {e}"))?;
        self.metrics.socket_addr().map_err(|e| anyhow::anyhow!("[metrics]: {e}"))?;
        self.registries.validate().map_err(|e| anyhow::anyhow!("[registries]: {e}"))?;
        self.image_pull.validate().map_err(|e| anyhow::anyhow!("[image_pull]: {e}"))?;
        let s = &self.streaming;
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            bail!("[streaming]: tls_cert and tls_key go together");
        }
        if !s.address.ip().is_loopback() && s.tls_cert.is_none() {
            bail!(
                "[streaming] address = {:?}: a non-loopback address needs tls_cert and tls_key (exec sessions would be unauthenticated plain text)",
                s.address.to_string()
            );
        }
        if self.shm_size < 1024 * 1024 {
            bail!("shm_size = {}: must be at least 1048576 bytes (1 MiB)", self.shm_size);
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render the config: {e}\n"))
    }

    /// Each runtime with its binary found and its root decided.
    pub fn runtime_handlers(&self) -> BTreeMap<String, crius_core::ports::container::RuntimeHandler> {
        self.runtimes
            .iter()
            .map(|(name, rt)| {
                let handler = crius_core::ports::container::RuntimeHandler {
                    name: name.clone(),
                    binary: find_binary(&rt.binary).to_string_lossy().into_owned(),
                    root: rt.root.clone().unwrap_or_else(|| self.state.join(name)).to_string_lossy().into_owned(),
                    systemd_cgroup: self.cgroup_driver == CgroupDriverName::Systemd,
                    no_pivot: rt.options.no_pivot,
                    global_args: rt.options.global_args.clone(),
                };
                (name.clone(), handler)
            })
            .collect()
    }

    pub fn netns_dir(&self) -> Option<&Path> {
        (!self.netns_dir.as_os_str().is_empty()).then_some(self.netns_dir.as_path())
    }
}

/// A bare name is looked up in PATH and the sbin dirs (runc lives in /usr/sbin on Debian); not
/// found, it is kept as given so the error names it when it is used.
fn find_binary(binary: &Path) -> PathBuf {
    if binary.components().count() > 1 {
        return binary.to_path_buf();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
        .unwrap_or_else(|| binary.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn defaults_round_trip() {
        let text = Config::default().to_toml();
        assert_eq!(Config::from_toml(&text).unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let err = format!("{:#}", Config::from_toml("listne = \"/x\"").unwrap_err());
        assert!(err.contains("listne"), "{err}");
        assert!(err.contains("listen"), "lists the allowed keys: {err}");
    }

    #[test]
    fn bad_value_names_what_is_allowed() {
        let err = format!("{:#}", Config::from_toml("cgroup_driver = \"cgroupv3\"").unwrap_err());
        assert!(err.contains("cgroupfs") && err.contains("systemd"), "{err}");
        let err = format!("{:#}", Config::from_toml("shm_size = \"big\"").unwrap_err());
        assert!(err.contains("shm_size"), "{err}");
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("crius.toml");
        std::fs::write(&file, "root = \"/srv/crius\"\nlog_level = \"debug\"\n").unwrap();
        let flags = ConfigFlags {
            config: Some(file),
            state: Some("/tmp/crius-state".into()),
            log_level: Some(LogLevel::Warn),
            ..Default::default()
        };
        let c = Config::load(&flags).unwrap();
        assert_eq!(c.root, PathBuf::from("/srv/crius"));
        assert_eq!(c.state, PathBuf::from("/tmp/crius-state"));
        assert_eq!(c.log_level, LogLevel::Warn);
    }

    #[test]
    fn relative_paths_and_tiny_shm_are_refused() {
        let c = Config { root: "var/lib".into(), ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("root"));
        let c = Config { shm_size: 10, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("shm_size"));
    }

    #[test]
    fn runtimes_default_and_override() {
        let c = Config::from_toml("default_runtime = \"crun\"\n[runtimes.crun]\nbinary = \"/opt/crun\"\n").unwrap();
        assert_eq!(c.runtimes.len(), 1);
        c.validate().unwrap();
        let handlers = c.runtime_handlers();
        assert_eq!(handlers["crun"].binary, "/opt/crun");
        assert_eq!(handlers["crun"].root, "/run/crius/crun");
        let bad = Config::from_toml("default_runtime = \"kata\"").unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("[runtimes.kata]"));
        assert!(Config::default().runtime_handlers().contains_key("runc"));
    }

    #[test]
    fn runtime_options_reach_the_handler_and_bad_ones_are_refused() {
        let c = Config::from_toml(
            "[runtimes.runc]\nbinary = \"/usr/sbin/runc\"\n[runtimes.runc.options]\nno_pivot = true\nglobal_args = [\"--debug\"]\n",
        )
        .unwrap();
        c.validate().unwrap();
        let h = &c.runtime_handlers()["runc"];
        assert!(h.no_pivot);
        assert_eq!(h.global_args, ["--debug"]);
        for (bad, why) in [("[\"debug\"]", "not a --flag"), ("[\"--root=/x\"]", "set by crius")] {
            let c = Config::from_toml(&format!(
                "[runtimes.runc]\nbinary = \"runc\"\noptions = {{ global_args = {bad} }}\n"
            ))
            .unwrap();
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("[runtimes.runc.options]") && err.contains(why), "{err}");
        }
        assert!(Config::from_toml("[runtimes.runc]\nbinary = \"runc\"\noptions = { nonsense = 1 }\n").is_err());
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let flags = ConfigFlags { config: Some("/nonexistent/crius.toml".into()), ..Default::default() };
        let err = format!("{:#}", Config::load(&flags).unwrap_err());
        assert!(err.contains("/nonexistent/crius.toml"), "{err}");
    }
}
