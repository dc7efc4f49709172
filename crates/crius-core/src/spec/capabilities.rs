//! The container's capabilities: containerd's default set with the CRI add/drop lists applied in
//! containerd's order (add ALL, drop ALL, add each, drop each), limited to what the daemon's own
//! bounding set holds.

use std::collections::BTreeSet;

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::container::model::SecurityContext;
use crate::error::{Error, Result};

use super::HostCaps;

/// containerd's (and Docker's) default capability set.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" as "CAP_NET_ADMIN"; None for a name the OCI
/// runtime would not know.
pub fn canonical(name: &str) -> Option<String> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    bare.parse::<Capability>().ok().map(|_| format!("CAP_{bare}"))
}

/// The daemon's bounding set, as canonical names (names this build does not know are left out:
/// they cannot be written into a spec anyway).
pub fn host_set(host: &HostCaps) -> BTreeSet<String> {
    host.bounding_capabilities.iter().filter_map(|c| canonical(c)).collect()
}

/// The capability set of a container, as canonical names.
pub fn container_set(security: &SecurityContext, host: &HostCaps) -> Result<BTreeSet<String>> {
    let all = host_set(host);
    if security.privileged {
        return Ok(all);
    }
    let is_all = |c: &String| c.trim().eq_ignore_ascii_case("ALL");
    let mut caps: BTreeSet<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    if security.capabilities_add.iter().any(is_all) {
        caps = all.clone();
    }
    if security.capabilities_drop.iter().any(is_all) {
        caps.clear();
    }
    for name in security.capabilities_add.iter().filter(|c| !is_all(c)) {
        let cap = parse("capabilities_add", name)?;
        // runc fails on a capability outside its own bounding set; say which one, here.
        if !all.is_empty() && !all.contains(&cap) {
            return Err(Error::precondition(format!(
                "capabilities_add: {cap} is not in crius's own bounding set, so no container can have it on this host"
            )));
        }
        caps.insert(cap);
    }
    for name in security.capabilities_drop.iter().filter(|c| !is_all(c)) {
        caps.remove(&parse("capabilities_drop", name)?);
    }
    // A default the daemon itself lacks cannot be granted either; leaving it out keeps ordinary
    // containers runnable on hosts with a reduced bounding set.
    if !all.is_empty() {
        caps.retain(|c| all.contains(c));
    }
    Ok(caps)
}

fn parse(field: &str, name: &str) -> Result<String> {
    canonical(name).ok_or_else(|| {
        Error::invalid(format!(
            "{field}: unknown capability {name:?}; use names such as NET_ADMIN or CAP_NET_ADMIN, or ALL"
        ))
    })
}

/// The OCI capabilities: the set in bounding, effective and permitted. Inheritable and ambient
/// stay empty as in containerd, so a non-root process gets none of them across execve (Docker's
/// behaviour, kubernetes#56374).
pub fn to_oci(caps: &BTreeSet<String>) -> LinuxCapabilities {
    let set: Capabilities =
        caps.iter().filter_map(|c| c.strip_prefix("CAP_").and_then(|b| b.parse::<Capability>().ok())).collect();
    let mut oci = LinuxCapabilities::default();
    oci.set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set))
        .set_inheritable(None)
        .set_ambient(None);
    oci
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn host() -> HostCaps {
        let mut caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        caps.extend(["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE", "CAP_FUTURE_THING"].map(String::from));
        HostCaps { bounding_capabilities: caps, ..Default::default() }
    }

    fn sc(add: &[&str], drop: &[&str]) -> SecurityContext {
        SecurityContext {
            capabilities_add: add.iter().map(|s| s.to_string()).collect(),
            capabilities_drop: drop.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical("net_admin").as_deref(), Some("CAP_NET_ADMIN"));
        assert_eq!(canonical("CAP_SYS_ADMIN").as_deref(), Some("CAP_SYS_ADMIN"));
        assert_eq!(canonical("cap_chown").as_deref(), Some("CAP_CHOWN"));
        assert_eq!(canonical("BOGUS"), None);
    }

    #[test]
    fn default_set() {
        let caps = container_set(&SecurityContext::default(), &host()).unwrap();
        assert_eq!(caps.len(), 14);
        assert!(caps.contains("CAP_AUDIT_WRITE") && !caps.contains("CAP_SYS_ADMIN"));
    }

    #[test]
    fn add_and_drop() {
        let caps = container_set(&sc(&["sys_admin"], &["CAP_NET_RAW", "kill"]), &host()).unwrap();
        assert!(caps.contains("CAP_SYS_ADMIN"));
        assert!(!caps.contains("CAP_NET_RAW") && !caps.contains("CAP_KILL"));
        assert_eq!(caps.len(), 13);
    }

    #[test]
    fn all_means_the_host_set() {
        let caps = container_set(&sc(&["ALL"], &["CHOWN"]), &host()).unwrap();
        assert_eq!(caps.len(), 16, "{caps:?}");
        assert!(!caps.contains("CAP_CHOWN") && caps.contains("CAP_SYS_PTRACE"));
        let caps = container_set(&sc(&["NET_BIND_SERVICE"], &["all"]), &host()).unwrap();
        assert_eq!(caps.into_iter().collect::<Vec<_>>(), ["CAP_NET_BIND_SERVICE"]);
    }

    #[test]
    fn unknown_names_are_invalid() {
        let err = container_set(&sc(&["FLY"], &[]), &host()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("capabilities_add") && err.to_string().contains("FLY"), "{err}");
        let err = container_set(&sc(&[], &["nope"]), &host()).unwrap_err();
        assert!(err.to_string().contains("capabilities_drop"), "{err}");
    }

    #[test]
    fn a_capability_the_host_lacks_is_refused_or_left_out() {
        let err = container_set(&sc(&["SYS_TIME"], &[]), &host()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert!(err.to_string().contains("CAP_SYS_TIME"), "{err}");
        let mut h = host();
        h.bounding_capabilities.retain(|c| c != "CAP_AUDIT_WRITE");
        let caps = container_set(&SecurityContext::default(), &h).unwrap();
        assert!(!caps.contains("CAP_AUDIT_WRITE") && caps.len() == 13);
    }

    #[test]
    fn privileged_is_the_whole_host_set() {
        let s = SecurityContext { privileged: true, capabilities_drop: vec!["ALL".into()], ..Default::default() };
        assert_eq!(container_set(&s, &host()).unwrap().len(), 17);
    }

    #[test]
    fn oci_sets() {
        let caps = container_set(&SecurityContext::default(), &host()).unwrap();
        let oci = to_oci(&caps);
        assert_eq!(oci.bounding().as_ref().map(|s| s.len()), Some(14));
        assert_eq!(oci.effective(), oci.permitted());
        assert!(oci.inheritable().is_none() && oci.ambient().is_none());
    }
}
