//! Which sysctls a pod may set: only namespaced ones, in a namespace the pod does not share with
//! the node (what runc and the kubelet enforce).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::sandbox::model::NamespaceOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlNamespace {
    Net,
    Ipc,
    Uts,
}

const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The dotted form of a sysctl name. Kubernetes allows '/' as the separator, in which case dots
/// are part of a component (an interface name like "eth0.100").
pub fn dotted_name(name: &str) -> String {
    if name.contains('/') {
        name.chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect()
    } else {
        name.to_string()
    }
}

/// The path under /proc/sys.
pub fn proc_path(name: &str) -> String {
    if name.contains('/') { name.trim_start_matches('/').to_string() } else { name.replace('.', "/") }
}

pub fn namespace_of(name: &str) -> Option<SysctlNamespace> {
    let dotted = dotted_name(name);
    if dotted.starts_with("net.") {
        Some(SysctlNamespace::Net)
    } else if IPC_SYSCTLS.contains(&dotted.as_str()) || dotted.starts_with("fs.mqueue.") {
        Some(SysctlNamespace::Ipc)
    } else if dotted == "kernel.hostname" || dotted == "kernel.domainname" {
        Some(SysctlNamespace::Uts)
    } else {
        None
    }
}

pub fn validate_sysctls(sysctls: &BTreeMap<String, String>, ns: &NamespaceOptions) -> Result<()> {
    for (name, value) in sysctls {
        if name.is_empty() || name.contains("..") || name.chars().any(|c| c.is_whitespace()) {
            return Err(Error::invalid(format!("pod sandbox config: sysctl name {name:?} is malformed")));
        }
        if value.contains('\n') {
            return Err(Error::invalid(format!("pod sandbox config: sysctl {name} value contains a newline")));
        }
        let shared_with_node = match namespace_of(name) {
            None => {
                return Err(Error::invalid(format!(
                    "pod sandbox config: sysctl {name} is not namespaced: setting it would change the whole node; set it on the node instead"
                )));
            }
            Some(SysctlNamespace::Net) | Some(SysctlNamespace::Uts) => ns.host_network().then_some("network"),
            Some(SysctlNamespace::Ipc) => ns.host_ipc().then_some("IPC"),
        };
        if let Some(kind) = shared_with_node {
            return Err(Error::invalid(format!(
                "pod sandbox config: sysctl {name} is in the {kind} namespace, which this pod shares with the node (host {kind}); setting it would change the node"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::model::NamespaceMode;

    fn one(name: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(name.to_string(), "1".to_string())])
    }

    #[test]
    fn classification() {
        assert_eq!(namespace_of("net.ipv4.ip_forward"), Some(SysctlNamespace::Net));
        assert_eq!(namespace_of("net/ipv4/conf/eth0.100/forwarding"), Some(SysctlNamespace::Net));
        assert_eq!(namespace_of("kernel.shmmax"), Some(SysctlNamespace::Ipc));
        assert_eq!(namespace_of("fs.mqueue.msg_max"), Some(SysctlNamespace::Ipc));
        assert_eq!(namespace_of("kernel.domainname"), Some(SysctlNamespace::Uts));
        assert_eq!(namespace_of("kernel.panic"), None);
        assert_eq!(namespace_of("vm.swappiness"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(proc_path("net.ipv4.ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(proc_path("net/ipv4/conf/eth0.100/forwarding"), "net/ipv4/conf/eth0.100/forwarding");
        assert_eq!(dotted_name("net/ipv4/conf/eth0.100/forwarding"), "net.ipv4.conf.eth0/100.forwarding");
    }

    #[test]
    fn not_namespaced_is_refused() {
        let err = validate_sysctls(&one("kernel.panic"), &NamespaceOptions::default()).unwrap_err();
        assert!(err.to_string().contains("not namespaced"), "{err}");
    }

    #[test]
    fn shared_namespace_is_refused() {
        let host_net = NamespaceOptions { network: NamespaceMode::Node, ..Default::default() };
        let err = validate_sysctls(&one("net.ipv4.ip_forward"), &host_net).unwrap_err();
        assert!(err.to_string().contains("host network"), "{err}");
        validate_sysctls(&one("kernel.shmmax"), &host_net).unwrap();

        let host_ipc = NamespaceOptions { ipc: NamespaceMode::Node, ..Default::default() };
        let err = validate_sysctls(&one("kernel.shmmax"), &host_ipc).unwrap_err();
        assert!(err.to_string().contains("host IPC"), "{err}");
        validate_sysctls(&one("net.ipv4.ip_forward"), &host_ipc).unwrap();
    }

    #[test]
    fn malformed_names() {
        assert!(validate_sysctls(&one("net..x"), &NamespaceOptions::default()).is_err());
        assert!(validate_sysctls(&one(""), &NamespaceOptions::default()).is_err());
    }
}
