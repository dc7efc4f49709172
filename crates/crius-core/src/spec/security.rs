//! Privilege, masked and read-only /proc and /sys paths, AppArmor and SELinux.

use crate::container::model::{ProfileKind, SecurityContext, SecurityProfile, SelinuxOptions};
use crate::error::{Error, Result};
use crate::sandbox::model::PodRecord;

use super::HostCaps;

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

/// The AppArmor profile of the process, following containerd's `generateApparmorSpecOpts` except
/// that crius does not load profiles itself (it has no apparmor_parser step): RuntimeDefault on
/// an AppArmor host is refused clearly rather than run unconfined, and a container that asks for
/// nothing gets no profile (containerd would load and apply its own default).
pub fn apparmor(profile: &SecurityProfile, privileged: bool, host: &HostCaps) -> Result<Option<String>> {
    if profile.kind != ProfileKind::Localhost && !profile.localhost_ref.is_empty() {
        return Err(Error::invalid(format!(
            "apparmor: localhost_ref {:?} is only allowed with the Localhost profile type",
            profile.localhost_ref
        )));
    }
    if !host.apparmor {
        return match profile.kind {
            ProfileKind::Unset | ProfileKind::Unconfined => Ok(None),
            kind => Err(Error::precondition(format!(
                "AppArmor profile {kind:?} was asked for, but AppArmor is not enabled on this host; use Unconfined"
            ))),
        };
    }
    match profile.kind {
        ProfileKind::Unset | ProfileKind::Unconfined => Ok(None),
        ProfileKind::RuntimeDefault if privileged => Ok(None),
        ProfileKind::RuntimeDefault => Err(Error::precondition(
            "AppArmor RuntimeDefault: crius does not load AppArmor profiles; load one on the node and ask for it \
             as Localhost, or use Unconfined",
        )),
        ProfileKind::Localhost => {
            let name = profile.localhost_ref.trim_start_matches("localhost/");
            if name.is_empty() {
                return Err(Error::invalid(
                    "apparmor: the Localhost profile type needs localhost_ref (a profile name)",
                ));
            }
            Ok(Some(name.to_string()))
        }
    }
}

/// Defaults for the parts of an SELinux label the request leaves empty: the container domain of
/// the standard container-selinux policy.
const SELINUX_USER: &str = "system_u";
const SELINUX_ROLE: &str = "system_r";
const SELINUX_TYPE: &str = "container_t";
const SELINUX_FILE_TYPE: &str = "container_file_t";
const SELINUX_LEVEL: &str = "s0";

/// The process and mount labels: (process label, mount label). A privileged container keeps its
/// mount label but runs with no process label, as in containerd.
pub fn selinux(
    options: Option<&SelinuxOptions>,
    privileged: bool,
    host: &HostCaps,
) -> Result<(Option<String>, Option<String>)> {
    let Some(o) =
        options.filter(|o| !(o.user.is_empty() && o.role.is_empty() && o.r#type.is_empty() && o.level.is_empty()))
    else {
        return Ok((None, None));
    };
    if !host.selinux {
        return Err(Error::precondition(
            "selinux_options were given, but SELinux is not enabled on this host; leave them out",
        ));
    }
    let or = |v: &str, d: &'static str| if v.is_empty() { d.to_string() } else { v.to_string() };
    let (user, level) = (or(&o.user, SELINUX_USER), or(&o.level, SELINUX_LEVEL));
    let process = format!("{user}:{}:{}:{level}", or(&o.role, SELINUX_ROLE), or(&o.r#type, SELINUX_TYPE));
    let mount = format!("{user}:object_r:{SELINUX_FILE_TYPE}:{level}");
    Ok(((!privileged).then_some(process), Some(mount)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn p(kind: ProfileKind, r: &str) -> SecurityProfile {
        SecurityProfile { kind, localhost_ref: r.into() }
    }

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

    #[test]
    fn apparmor_rules() {
        let on = HostCaps { apparmor: true, ..Default::default() };
        let off = HostCaps::default();
        assert_eq!(apparmor(&p(ProfileKind::Unset, ""), false, &on).unwrap(), None);
        assert_eq!(apparmor(&p(ProfileKind::Unconfined, ""), false, &on).unwrap(), None);
        assert_eq!(apparmor(&p(ProfileKind::RuntimeDefault, ""), true, &on).unwrap(), None);
        let err = apparmor(&p(ProfileKind::RuntimeDefault, ""), false, &on).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert!(err.to_string().contains("Localhost"), "{err}");
        assert_eq!(
            apparmor(&p(ProfileKind::Localhost, "localhost/k8s-nginx"), false, &on).unwrap().as_deref(),
            Some("k8s-nginx")
        );
        assert_eq!(
            apparmor(&p(ProfileKind::Localhost, ""), false, &on).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(apparmor(&p(ProfileKind::Unset, ""), false, &off).unwrap(), None);
        let err = apparmor(&p(ProfileKind::Localhost, "x"), false, &off).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert!(err.to_string().contains("not enabled"), "{err}");
    }

    #[test]
    fn selinux_labels() {
        let on = HostCaps { selinux: true, ..Default::default() };
        let o = SelinuxOptions { level: "s0:c1,c2".into(), ..Default::default() };
        let (proc_label, mount) = selinux(Some(&o), false, &on).unwrap();
        assert_eq!(proc_label.as_deref(), Some("system_u:system_r:container_t:s0:c1,c2"));
        assert_eq!(mount.as_deref(), Some("system_u:object_r:container_file_t:s0:c1,c2"));
        let (proc_label, mount) = selinux(Some(&o), true, &on).unwrap();
        assert!(proc_label.is_none() && mount.is_some());
        assert_eq!(selinux(None, false, &HostCaps::default()).unwrap(), (None, None));
        assert_eq!(selinux(Some(&SelinuxOptions::default()), false, &HostCaps::default()).unwrap(), (None, None));
        let err = selinux(Some(&o), false, &HostCaps::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    }
}
