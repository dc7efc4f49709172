//! Privilege, masked and read-only /proc and /sys paths (AppArmor and SELinux have modules of
//! their own).

use crate::container::model::SecurityContext;
use crate::error::{Error, Result};
use crate::sandbox::model::PodRecord;

/// Paths hidden from non-privileged containers (runc's, containerd's and the kubelet's default
/// ProcMount list).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths read-only in non-privileged containers.
pub const DEFAULT_READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// A privileged container needs a privileged pod (containerd: "no privileged container allowed
/// in sandbox").
pub fn check_privileged(security: &SecurityContext, pod: &PodRecord) -> Result<()> {
    if security.privileged && !pod.config.privileged {
        return Err(Error::invalid(format!(
            "a privileged container needs a privileged pod: pod {} was not created with \
             security_context.privileged",
            pod.name()
        )));
    }
    Ok(())
}

/// Masked and read-only paths: none for a privileged container, else the config's or the
/// defaults.
pub fn masked_and_readonly(security: &SecurityContext) -> Result<(Vec<String>, Vec<String>)> {
    if security.privileged {
        return Ok((vec![], vec![]));
    }
    let pick = |field: &str, given: &Option<Vec<String>>, default: &[&str]| -> Result<Vec<String>> {
        let paths = given.clone().unwrap_or_else(|| default.iter().map(|p| p.to_string()).collect());
        if let Some(bad) = paths.iter().find(|p| !p.starts_with('/')) {
            return Err(Error::invalid(format!("{field}: {bad:?} is not an absolute path")));
        }
        Ok(paths)
    };
    Ok((
        pick("masked_paths", &security.masked_paths, DEFAULT_MASKED_PATHS)?,
        pick("readonly_paths", &security.readonly_paths, DEFAULT_READONLY_PATHS)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_paths_defaults_and_overrides() {
        let (m, r) = masked_and_readonly(&SecurityContext::default()).unwrap();
        assert_eq!(m.len(), 11);
        assert_eq!(r.len(), 5);
        let sc = SecurityContext {
            masked_paths: Some(vec![]),
            readonly_paths: Some(vec!["/x".into()]),
            ..Default::default()
        };
        assert_eq!(masked_and_readonly(&sc).unwrap(), (vec![], vec!["/x".to_string()]));
        let sc = SecurityContext { privileged: true, ..Default::default() };
        assert_eq!(masked_and_readonly(&sc).unwrap(), (vec![], vec![]));
        let sc = SecurityContext { masked_paths: Some(vec!["proc".into()]), ..Default::default() };
        assert!(masked_and_readonly(&sc).unwrap_err().to_string().contains("masked_paths"));
    }
}
