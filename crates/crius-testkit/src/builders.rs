//! CRI request builders.

use std::collections::HashMap;

use k8s_cri::v1::{
    DnsConfig, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxFilter, PodSandboxMetadata, PodSandboxState, PodSandboxStateValue, PortMapping, Protocol,
    RunPodSandboxRequest,
};

/// 8 random hex characters.
pub(crate) fn random_hex(n_bytes: usize) -> String {
    let mut buf = vec![0u8; n_bytes];
    // getrandom only fails when the OS has no randomness source at all; a clock-based fallback
    // keeps names unique enough for tests.
    if getrandom::fill(&mut buf).is_err() {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
                ^ u128::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (nanos >> ((i % 16) * 8)) as u8;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// `prefix-<8 hex>`: a name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(4))
}

/// A minimal valid pod config: metadata with the given name, a unique uid and a unique
/// namespace, attempt 0, hostname = name, no log directory, default (POD) namespaces.
pub fn pod_config(name: &str) -> PodSandboxConfig {
    let suffix = random_hex(4);
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            uid: format!("uid-{}", random_hex(16)),
            namespace: format!("crius-test-{suffix}"),
            attempt: 0,
        }),
        hostname: name.chars().take(63).collect(),
        log_directory: String::new(),
        dns_config: None,
        port_mappings: vec![],
        labels: HashMap::new(),
        annotations: HashMap::new(),
        linux: Some(LinuxPodSandboxConfig::default()),
        windows: None,
    }
}

/// RunPodSandbox with the default runtime handler.
pub fn run_request(config: PodSandboxConfig) -> RunPodSandboxRequest {
    RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() }
}

pub fn filter_id(id: &str) -> PodSandboxFilter {
    PodSandboxFilter { id: id.to_string(), ..Default::default() }
}

pub fn filter_state(state: PodSandboxState) -> PodSandboxFilter {
    PodSandboxFilter { state: Some(PodSandboxStateValue { state: state as i32 }), ..Default::default() }
}

pub fn filter_labels(labels: &[(&str, &str)]) -> PodSandboxFilter {
    PodSandboxFilter {
        label_selector: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    }
}

/// Builder-style changes to a [`PodSandboxConfig`].
pub trait PodConfigExt: Sized {
    fn linux_mut(&mut self) -> &mut LinuxPodSandboxConfig;
    fn metadata_mut(&mut self) -> &mut PodSandboxMetadata;

    fn namespace_options_mut(&mut self) -> &mut NamespaceOption {
        self.linux_mut()
            .security_context
            .get_or_insert_with(LinuxSandboxSecurityContext::default)
            .namespace_options
            .get_or_insert_with(NamespaceOption::default)
    }

    /// Network namespace mode NODE.
    fn host_network(mut self) -> Self {
        self.namespace_options_mut().network = NamespaceMode::Node as i32;
        self
    }
    /// IPC namespace mode NODE.
    fn host_ipc(mut self) -> Self {
        self.namespace_options_mut().ipc = NamespaceMode::Node as i32;
        self
    }
    /// PID namespace mode NODE.
    fn host_pid(mut self) -> Self {
        self.namespace_options_mut().pid = NamespaceMode::Node as i32;
        self
    }
    fn pid_mode(mut self, mode: NamespaceMode) -> Self {
        self.namespace_options_mut().pid = mode as i32;
        self
    }
    fn dns(self, servers: &[&str], searches: &[&str], options: &[&str]) -> Self;
    fn hostname(self, hostname: &str) -> Self;
    fn sysctl(mut self, key: &str, value: &str) -> Self {
        self.linux_mut().sysctls.insert(key.to_string(), value.to_string());
        self
    }
    fn label(self, key: &str, value: &str) -> Self;
    fn annotation(self, key: &str, value: &str) -> Self;
    fn cgroup_parent(mut self, parent: &str) -> Self {
        self.linux_mut().cgroup_parent = parent.to_string();
        self
    }
    fn log_directory(self, dir: &str) -> Self;
    /// A TCP port mapping on every host address.
    fn port_mapping(self, container_port: i32, host_port: i32) -> Self;
    /// A port mapping of any protocol, limited to `host_ip` unless it is "".
    fn port_mapping_on(self, protocol: Protocol, container_port: i32, host_port: i32, host_ip: &str) -> Self;
    fn attempt(mut self, attempt: u32) -> Self {
        self.metadata_mut().attempt = attempt;
        self
    }
    /// Drops the metadata altogether (an invalid request).
    fn without_metadata(self) -> Self;
    fn request(self) -> RunPodSandboxRequest;
}

impl PodConfigExt for PodSandboxConfig {
    fn linux_mut(&mut self) -> &mut LinuxPodSandboxConfig {
        self.linux.get_or_insert_with(LinuxPodSandboxConfig::default)
    }
    fn metadata_mut(&mut self) -> &mut PodSandboxMetadata {
        self.metadata.get_or_insert_with(PodSandboxMetadata::default)
    }
    fn dns(mut self, servers: &[&str], searches: &[&str], options: &[&str]) -> Self {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        self.dns_config = Some(DnsConfig { servers: own(servers), searches: own(searches), options: own(options) });
        self
    }
    fn hostname(mut self, hostname: &str) -> Self {
        self.hostname = hostname.to_string();
        self
    }
    fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }
    fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_string(), value.to_string());
        self
    }
    fn log_directory(mut self, dir: &str) -> Self {
        self.log_directory = dir.to_string();
        self
    }
    fn port_mapping(self, container_port: i32, host_port: i32) -> Self {
        self.port_mapping_on(Protocol::Tcp, container_port, host_port, "")
    }
    fn port_mapping_on(mut self, protocol: Protocol, container_port: i32, host_port: i32, host_ip: &str) -> Self {
        self.port_mappings.push(PortMapping {
            protocol: protocol as i32,
            container_port,
            host_port,
            host_ip: host_ip.to_string(),
        });
        self
    }
    fn without_metadata(mut self) -> Self {
        self.metadata = None;
        self
    }
    fn request(self) -> RunPodSandboxRequest {
        run_request(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_unique_and_builders_apply() {
        let a = pod_config("web");
        let b = pod_config("web");
        assert_ne!(a.metadata.as_ref().unwrap().uid, b.metadata.as_ref().unwrap().uid);
        assert_ne!(a.metadata.as_ref().unwrap().namespace, b.metadata.as_ref().unwrap().namespace);
        let c = pod_config("x")
            .host_network()
            .host_ipc()
            .sysctl("net.ipv4.ip_unprivileged_port_start", "0")
            .label("app", "x")
            .cgroup_parent("/p");
        let linux = c.linux.as_ref().unwrap();
        let ns = linux.security_context.as_ref().unwrap().namespace_options.as_ref().unwrap();
        assert_eq!(ns.network, NamespaceMode::Node as i32);
        assert_eq!(ns.ipc, NamespaceMode::Node as i32);
        assert_eq!(ns.pid, NamespaceMode::Pod as i32);
        assert_eq!(linux.cgroup_parent, "/p");
        assert_eq!(c.labels["app"], "x");
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("a"), unique_name("a"));
    }
}
