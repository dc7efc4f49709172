//! SELinux labels of a container: the process label (`process.selinuxLabel`) and the label its
//! files are mounted with (`linux.mountLabel`).

use crate::container::model::SelinuxOptions;
use crate::error::{Error, Result};
use crate::sandbox::model::PodRecord;

use super::HostCaps;

/// The parts of a label nobody gave: the container domain of the standard container-selinux
/// policy, as containerd and CRI-O use it.
const USER: &str = "system_u";
const ROLE: &str = "system_r";
const TYPE: &str = "container_t";
const FILE_ROLE: &str = "object_r";
const FILE_TYPE: &str = "container_file_t";
/// For a pod that has no level of its own (made while SELinux was off).
const LEVEL: &str = "s0";

/// (process label, mount label) of a container of `pod`. Without SELinux: none, whatever was
/// asked (containerd's label.InitLabels does the same; the caller logs it). With it: the pod's
/// level (its own or the one crius gave it, so every container of the pod shares it), and the
/// container's options over the pod's over the defaults, part by part. A privileged container
/// keeps the mount label but runs with no process label, as in containerd.
pub fn labels(
    pod: &PodRecord,
    container: Option<&SelinuxOptions>,
    privileged: bool,
    host: &HostCaps,
) -> Result<(Option<String>, Option<String>)> {
    if !host.selinux {
        return Ok((None, None));
    }
    let pod_options = pod.config.selinux.clone().unwrap_or_default();
    let container = container.cloned().unwrap_or_default();
    let pick = |field: &str, ours: &str, pods: &str, default: &str| -> Result<String> {
        let value = [ours, pods, default].into_iter().find(|v| !v.is_empty()).unwrap_or(default);
        if field != "level" && value.contains([':', ' ', '\t', '\n']) {
            return Err(Error::invalid(format!(
                "selinux_options.{field} {value:?} must be one word without ':' (the label is user:role:type:level)"
            )));
        }
        Ok(value.to_string())
    };
    let pod_level = pod.selinux_level.as_deref().unwrap_or(&pod_options.level);
    let user = pick("user", &container.user, &pod_options.user, USER)?;
    let role = pick("role", &container.role, &pod_options.role, ROLE)?;
    let kind = pick("type", &container.r#type, &pod_options.r#type, TYPE)?;
    let level = pick("level", &container.level, pod_level, LEVEL)?;
    let process = format!("{user}:{role}:{kind}:{level}");
    let mount = format!("{user}:{FILE_ROLE}:{FILE_TYPE}:{level}");
    Ok(((!privileged).then_some(process), Some(mount)))
}

/// Whether any part was given (an options message of empty strings asks for nothing).
pub fn asks_for_something(options: Option<&SelinuxOptions>) -> bool {
    options.is_some_and(|o| !(o.user.is_empty() && o.role.is_empty() && o.r#type.is_empty() && o.level.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::sandbox::model::{POD_RECORD_VERSION, PodConfig, PodResources, PodState};

    fn on() -> HostCaps {
        HostCaps { selinux: true, ..Default::default() }
    }

    fn pod(options: Option<SelinuxOptions>, level: Option<&str>) -> PodRecord {
        PodRecord {
            version: POD_RECORD_VERSION,
            id: "p".into(),
            config: PodConfig { selinux: options, ..Default::default() },
            created_at_ns: 0,
            state: PodState::Ready,
            resources: PodResources::default(),
            timeline: vec![],
            network: None,
            stopping: false,
            selinux_level: level.map(String::from),
        }
    }

    fn opts(user: &str, role: &str, kind: &str, level: &str) -> SelinuxOptions {
        SelinuxOptions { user: user.into(), role: role.into(), r#type: kind.into(), level: level.into() }
    }

    #[test]
    fn containers_share_their_pods_level() {
        let pod = pod(None, Some("s0:c12,c345"));
        let (process, mount) = labels(&pod, None, false, &on()).unwrap();
        assert_eq!(process.as_deref(), Some("system_u:system_r:container_t:s0:c12,c345"));
        assert_eq!(mount.as_deref(), Some("system_u:object_r:container_file_t:s0:c12,c345"));
        let empty = SelinuxOptions::default();
        assert_eq!(labels(&pod, Some(&empty), false, &on()).unwrap().0, process);
    }

    #[test]
    fn given_parts_override_the_pods_and_the_defaults() {
        let pod = pod(Some(opts("", "", "spc_t", "")), Some("s0:c1,c2"));
        let (process, _) = labels(&pod, None, false, &on()).unwrap();
        assert_eq!(process.as_deref(), Some("system_u:system_r:spc_t:s0:c1,c2"));
        let ours = opts("user_u", "user_r", "", "s0:c7,c8");
        let (process, mount) = labels(&pod, Some(&ours), false, &on()).unwrap();
        assert_eq!(process.as_deref(), Some("user_u:user_r:spc_t:s0:c7,c8"));
        assert_eq!(mount.as_deref(), Some("user_u:object_r:container_file_t:s0:c7,c8"));
        let bad = opts("a:b", "", "", "");
        assert_eq!(labels(&pod, Some(&bad), false, &on()).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn a_pod_without_a_level_falls_back_to_its_options_then_s0() {
        let (process, _) = labels(&pod(Some(opts("", "", "", "s0:c3,c4")), None), None, false, &on()).unwrap();
        assert_eq!(process.as_deref(), Some("system_u:system_r:container_t:s0:c3,c4"));
        let (process, _) = labels(&pod(None, None), None, false, &on()).unwrap();
        assert_eq!(process.as_deref(), Some("system_u:system_r:container_t:s0"));
    }

    #[test]
    fn privileged_keeps_only_the_mount_label() {
        let (process, mount) = labels(&pod(None, Some("s0:c1,c2")), None, true, &on()).unwrap();
        assert!(process.is_none());
        assert_eq!(mount.as_deref(), Some("system_u:object_r:container_file_t:s0:c1,c2"));
    }

    #[test]
    fn no_labels_without_selinux() {
        let pod = pod(Some(opts("u", "r", "t", "s0:c1,c2")), Some("s0:c1,c2"));
        let ours = opts("", "", "", "s0:c5,c6");
        assert_eq!(labels(&pod, Some(&ours), false, &HostCaps::default()).unwrap(), (None, None));
        assert!(asks_for_something(Some(&ours)));
        assert!(!asks_for_something(Some(&SelinuxOptions::default())) && !asks_for_something(None));
    }
}
