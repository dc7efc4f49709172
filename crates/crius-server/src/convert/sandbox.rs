//! Pod sandbox conversions.

use std::collections::{BTreeMap, HashMap};

use crius_core::sandbox::PodView;
use crius_core::sandbox::model::{
    DnsConfig, NamespaceMode, NamespaceOptions, PodConfig, PodMetadata, PortMapping, Protocol,
};
use crius_core::{Error, Result};
use k8s_cri::v1 as cri;

pub fn pod_config(config: Option<cri::PodSandboxConfig>, runtime_handler: String) -> Result<PodConfig> {
    let config = config.ok_or_else(|| Error::invalid("RunPodSandbox: config is required"))?;
    let md = config
        .metadata
        .ok_or_else(|| Error::invalid("pod sandbox config: metadata (name, namespace, uid, attempt) is required"))?;
    let linux = config.linux.unwrap_or_default();
    let security = linux.security_context.unwrap_or_default();
    let ns = security.namespace_options.unwrap_or_default();
    if let Some(userns) = &ns.userns_options
        && userns.mode != cri::NamespaceMode::Node as i32
    {
        return Err(Error::invalid(
            "pod sandbox config: user namespaces (userns_options mode POD) are not supported by crius; use mode NODE",
        ));
    }
    Ok(PodConfig {
        metadata: PodMetadata { name: md.name, uid: md.uid, namespace: md.namespace, attempt: md.attempt },
        hostname: config.hostname,
        log_directory: config.log_directory,
        dns: config.dns_config.map(|d| DnsConfig { servers: d.servers, searches: d.searches, options: d.options }),
        port_mappings: config.port_mappings.into_iter().map(port_mapping).collect::<Result<_>>()?,
        labels: sorted(config.labels),
        annotations: sorted(config.annotations),
        cgroup_parent: linux.cgroup_parent,
        sysctls: sorted(linux.sysctls),
        namespaces: NamespaceOptions {
            network: namespace_mode("network", ns.network)?,
            pid: namespace_mode("pid", ns.pid)?,
            ipc: namespace_mode("ipc", ns.ipc)?,
            target_id: ns.target_id,
        },
        runtime_handler,
        privileged: security.privileged,
        selinux: security.selinux_options.map(super::container::selinux_options),
    })
}

fn port_mapping(m: cri::PortMapping) -> Result<PortMapping> {
    let protocol = match cri::Protocol::try_from(m.protocol) {
        Ok(cri::Protocol::Tcp) => Protocol::Tcp,
        Ok(cri::Protocol::Udp) => Protocol::Udp,
        Ok(cri::Protocol::Sctp) => Protocol::Sctp,
        Err(_) => return Err(Error::invalid(format!("port mapping: unknown protocol {}", m.protocol))),
    };
    Ok(PortMapping { protocol, container_port: m.container_port, host_port: m.host_port, host_ip: m.host_ip })
}

fn namespace_mode(kind: &str, mode: i32) -> Result<NamespaceMode> {
    match cri::NamespaceMode::try_from(mode) {
        Ok(cri::NamespaceMode::Pod) => Ok(NamespaceMode::Pod),
        Ok(cri::NamespaceMode::Container) => Ok(NamespaceMode::Container),
        Ok(cri::NamespaceMode::Node) => Ok(NamespaceMode::Node),
        Ok(cri::NamespaceMode::Target) => Ok(NamespaceMode::Target),
        Err(_) => Err(Error::invalid(format!("namespace_options.{kind}: unknown mode {mode}"))),
    }
}

fn cri_namespace_mode(mode: NamespaceMode) -> i32 {
    match mode {
        NamespaceMode::Pod => cri::NamespaceMode::Pod as i32,
        NamespaceMode::Container => cri::NamespaceMode::Container as i32,
        NamespaceMode::Node => cri::NamespaceMode::Node as i32,
        NamespaceMode::Target => cri::NamespaceMode::Target as i32,
    }
}

fn sorted(map: HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

fn unsorted(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn metadata(md: &PodMetadata) -> cri::PodSandboxMetadata {
    cri::PodSandboxMetadata {
        name: md.name.clone(),
        uid: md.uid.clone(),
        namespace: md.namespace.clone(),
        attempt: md.attempt,
    }
}

fn state(ready: bool) -> i32 {
    if ready { cri::PodSandboxState::SandboxReady as i32 } else { cri::PodSandboxState::SandboxNotready as i32 }
}

pub fn pod_sandbox(view: &PodView) -> cri::PodSandbox {
    let r = &view.record;
    cri::PodSandbox {
        id: r.id.clone(),
        metadata: Some(metadata(&r.config.metadata)),
        state: state(view.ready),
        created_at: r.created_at_ns,
        labels: unsorted(&r.config.labels),
        annotations: unsorted(&r.config.annotations),
        runtime_handler: r.config.runtime_handler.clone(),
    }
}

pub fn pod_sandbox_status(view: &PodView) -> cri::PodSandboxStatus {
    let r = &view.record;
    let ns = &r.config.namespaces;
    cri::PodSandboxStatus {
        id: r.id.clone(),
        metadata: Some(metadata(&r.config.metadata)),
        state: state(view.ready),
        created_at: r.created_at_ns,
        network: Some(network_status(r.network.as_ref())),
        linux: Some(cri::LinuxPodSandboxStatus {
            namespaces: Some(cri::Namespace {
                options: Some(cri::NamespaceOption {
                    network: cri_namespace_mode(ns.network),
                    pid: cri_namespace_mode(ns.pid),
                    ipc: cri_namespace_mode(ns.ipc),
                    target_id: ns.target_id.clone(),
                    userns_options: None,
                }),
            }),
        }),
        labels: unsorted(&r.config.labels),
        annotations: unsorted(&r.config.annotations),
        runtime_handler: r.config.runtime_handler.clone(),
    }
}

fn network_status(network: Option<&crius_core::ports::network::NetworkStatus>) -> cri::PodSandboxNetworkStatus {
    let ips = network.map(|n| n.ips.as_slice()).unwrap_or_default();
    cri::PodSandboxNetworkStatus {
        ip: ips.first().map(|ip| ip.to_string()).unwrap_or_default(),
        additional_ips: ips.iter().skip(1).map(|ip| cri::PodIp { ip: ip.to_string() }).collect(),
    }
}

pub fn pod_filter(filter: Option<cri::PodSandboxFilter>) -> crius_core::sandbox::PodFilter {
    let Some(f) = filter else { return Default::default() };
    crius_core::sandbox::PodFilter {
        id: (!f.id.is_empty()).then_some(f.id),
        ready: f.state.map(|s| s.state == cri::PodSandboxState::SandboxReady as i32),
        labels: sorted(f.label_selector),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cri_config() -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "web".into(),
                uid: "u".into(),
                namespace: "default".into(),
                attempt: 2,
            }),
            hostname: "web-0".into(),
            port_mappings: vec![cri::PortMapping {
                protocol: cri::Protocol::Udp as i32,
                container_port: 53,
                host_port: 5353,
                host_ip: "127.0.0.1".into(),
            }],
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: "/kubepods/pod-u".into(),
                sysctls: HashMap::from([("net.ipv4.ip_forward".into(), "1".into())]),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Node as i32,
                        pid: cri::NamespaceMode::Container as i32,
                        ..Default::default()
                    }),
                    selinux_options: Some(cri::SeLinuxOption {
                        r#type: "spc_t".into(),
                        level: "s0:c1,c2".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn converts_a_full_config() {
        let c = pod_config(Some(cri_config()), "runc".into()).unwrap();
        assert_eq!(c.metadata.sandbox_name(), "web_default_u_2");
        assert_eq!(c.namespaces.network, NamespaceMode::Node);
        assert_eq!(c.namespaces.pid, NamespaceMode::Container);
        assert_eq!(c.namespaces.ipc, NamespaceMode::Pod);
        assert_eq!(c.port_mappings[0].protocol, Protocol::Udp);
        assert_eq!(c.cgroup_parent, "/kubepods/pod-u");
        assert_eq!(c.sysctls["net.ipv4.ip_forward"], "1");
        assert_eq!(c.runtime_handler, "runc");
        let selinux = c.selinux.unwrap();
        assert_eq!((selinux.r#type.as_str(), selinux.level.as_str()), ("spc_t", "s0:c1,c2"));
    }

    #[test]
    fn missing_config_or_metadata_is_invalid() {
        assert_eq!(pod_config(None, String::new()).unwrap_err().kind(), crius_core::ErrorKind::InvalidArgument);
        let mut c = cri_config();
        c.metadata = None;
        let err = pod_config(Some(c), String::new()).unwrap_err();
        assert!(err.to_string().contains("metadata"), "{err}");
    }

    #[test]
    fn bad_enums_are_invalid() {
        let mut c = cri_config();
        c.port_mappings[0].protocol = 9;
        assert!(pod_config(Some(c), String::new()).unwrap_err().to_string().contains("protocol"));
        let mut c = cri_config();
        if let Some(ns) =
            c.linux.as_mut().and_then(|l| l.security_context.as_mut()).and_then(|s| s.namespace_options.as_mut())
        {
            ns.ipc = 7;
        }
        assert!(pod_config(Some(c), String::new()).unwrap_err().to_string().contains("ipc"));
    }

    #[test]
    fn user_namespaces_are_refused() {
        let mut c = cri_config();
        if let Some(ns) =
            c.linux.as_mut().and_then(|l| l.security_context.as_mut()).and_then(|s| s.namespace_options.as_mut())
        {
            ns.userns_options = Some(cri::UserNamespace { mode: cri::NamespaceMode::Pod as i32, ..Default::default() });
        }
        assert!(pod_config(Some(c), String::new()).unwrap_err().to_string().contains("user namespaces"));
    }

    #[test]
    fn filter_conversion() {
        let f = pod_filter(Some(cri::PodSandboxFilter {
            id: "ab".into(),
            state: Some(cri::PodSandboxStateValue { state: cri::PodSandboxState::SandboxNotready as i32 }),
            label_selector: HashMap::from([("a".into(), "b".into())]),
        }));
        assert_eq!(f.id.as_deref(), Some("ab"));
        assert_eq!(f.ready, Some(false));
        assert_eq!(f.labels["a"], "b");
        assert!(pod_filter(None).id.is_none());
    }
}
