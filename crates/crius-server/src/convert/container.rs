//! Container conversions: CRI `ContainerConfig` -> domain `ContainerConfig` (CreateContainer),
//! and resources both ways (UpdateContainerResources, ContainerStatus).
//!
//! The pod's config that CreateContainer also carries is not read: crius trusts the pod record
//! it stored at RunPodSandbox (the kubelet sends the same one), so a request cannot grant itself,
//! say, a privileged pod.

use std::collections::{BTreeMap, HashMap};

use crius_core::container::model::{
    ContainerConfig, ContainerMetadata, Device, Mount, ProfileKind, Propagation, SecurityContext, SecurityProfile,
    SelinuxOptions,
};
use crius_core::ports::container::Resources;
use crius_core::sandbox::model::NamespaceMode;
use crius_core::{Error, Result};
use k8s_cri::v1 as cri;

/// The prefix of the deprecated string form of a Localhost profile ("localhost/<ref>").
const LOCALHOST_PREFIX: &str = "localhost/";

pub fn container_config(config: Option<cri::ContainerConfig>) -> Result<ContainerConfig> {
    let config = config.ok_or_else(|| Error::invalid("CreateContainer: config is required"))?;
    let md = config
        .metadata
        .filter(|m| !m.name.is_empty())
        .ok_or_else(|| Error::invalid("container config: metadata with a name is required"))?;
    let image = config
        .image
        .map(|i| i.image)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Error::invalid("container config: image (image.image) is required"))?;
    if !config.cdi_devices.is_empty() {
        return Err(Error::invalid(
            "container config: cdi_devices are not supported by crius; pass devices by host path instead",
        ));
    }
    let envs = config
        .envs
        .into_iter()
        .enumerate()
        .map(|(i, kv)| {
            if kv.key.is_empty() {
                return Err(Error::invalid(format!("container config: envs[{i}] has an empty key")));
            }
            Ok((kv.key, kv.value))
        })
        .collect::<Result<Vec<_>>>()?;
    let mounts = config.mounts.into_iter().enumerate().map(|(i, m)| mount(i, m)).collect::<Result<Vec<_>>>()?;
    let devices = config
        .devices
        .into_iter()
        .map(|d| Device { container_path: d.container_path, host_path: d.host_path, permissions: d.permissions })
        .collect();
    let linux = config.linux.unwrap_or_default();
    Ok(ContainerConfig {
        metadata: ContainerMetadata { name: md.name, attempt: md.attempt },
        image,
        command: config.command,
        args: config.args,
        working_dir: config.working_dir,
        envs,
        mounts,
        devices,
        labels: sorted(config.labels),
        annotations: sorted(config.annotations),
        log_path: config.log_path,
        stdin: config.stdin,
        stdin_once: config.stdin_once,
        tty: config.tty,
        resources: linux.resources.as_ref().map(resources),
        security: security_context(linux.security_context.unwrap_or_default())?,
    })
}

fn mount(i: usize, m: cri::Mount) -> Result<Mount> {
    let propagation = match cri::MountPropagation::try_from(m.propagation) {
        Ok(cri::MountPropagation::PropagationPrivate) => Propagation::Private,
        Ok(cri::MountPropagation::PropagationHostToContainer) => Propagation::HostToContainer,
        Ok(cri::MountPropagation::PropagationBidirectional) => Propagation::Bidirectional,
        Err(_) => {
            return Err(Error::invalid(format!(
                "mounts[{i}].propagation: unknown value {} (PRIVATE, HOST_TO_CONTAINER or BIDIRECTIONAL)",
                m.propagation
            )));
        }
    };
    // The kubelet sends these only to runtimes that advertise them; crius does not.
    if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
        return Err(Error::invalid(format!("mounts[{i}] ({}): idmapped mounts are not supported", m.container_path)));
    }
    if m.recursive_read_only {
        return Err(Error::invalid(format!(
            "mounts[{i}] ({}): recursive_read_only is not supported; use readonly",
            m.container_path
        )));
    }
    if m.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
        return Err(Error::invalid(format!("mounts[{i}] ({}): image volumes are not supported", m.container_path)));
    }
    Ok(Mount {
        container_path: m.container_path,
        host_path: m.host_path,
        readonly: m.readonly,
        selinux_relabel: m.selinux_relabel,
        propagation,
    })
}

#[allow(deprecated)] // apparmor_profile and seccomp_profile_path: still sent by older kubelets.
fn security_context(sc: cri::LinuxContainerSecurityContext) -> Result<SecurityContext> {
    let caps = sc.capabilities.unwrap_or_default();
    if !caps.add_ambient_capabilities.is_empty() {
        return Err(Error::invalid("security context: add_ambient_capabilities is not supported by crius"));
    }
    if let Ok(cri::SupplementalGroupsPolicy::Strict) =
        cri::SupplementalGroupsPolicy::try_from(sc.supplemental_groups_policy)
    {
        return Err(Error::invalid(
            "security context: supplemental_groups_policy Strict is not supported by crius; use Merge",
        ));
    }
    if cri::SupplementalGroupsPolicy::try_from(sc.supplemental_groups_policy).is_err() {
        return Err(Error::invalid(format!(
            "security context: unknown supplemental_groups_policy {} (Merge or Strict)",
            sc.supplemental_groups_policy
        )));
    }
    let ns = sc.namespace_options.unwrap_or_default();
    if let Some(userns) = &ns.userns_options
        && userns.mode != cri::NamespaceMode::Node as i32
    {
        return Err(Error::invalid(
            "security context: user namespaces (userns_options mode POD) are not supported by crius; use mode NODE",
        ));
    }
    // The container's network and IPC follow its pod's; only the PID mode is its own. The
    // others are still checked so that garbage is not silently accepted.
    namespace_mode("network", ns.network)?;
    namespace_mode("ipc", ns.ipc)?;
    let pid_mode = namespace_mode("pid", ns.pid)?;
    if pid_mode == NamespaceMode::Target && ns.target_id.is_empty() {
        return Err(Error::invalid("security context: pid mode TARGET needs namespace_options.target_id"));
    }
    Ok(SecurityContext {
        capabilities_add: caps.add_capabilities,
        capabilities_drop: caps.drop_capabilities,
        privileged: sc.privileged,
        pid_mode,
        target_id: ns.target_id,
        run_as_user: sc.run_as_user.map(|v| v.value),
        run_as_group: sc.run_as_group.map(|v| v.value),
        run_as_username: sc.run_as_username,
        readonly_rootfs: sc.readonly_rootfs,
        supplemental_groups: sc.supplemental_groups,
        no_new_privs: sc.no_new_privs,
        // Proto3 cannot tell an empty list from none: empty means the defaults, the safe reading
        // (the kubelet sends empty lists only for procMount Unmasked, which needs user namespaces).
        masked_paths: (!sc.masked_paths.is_empty()).then_some(sc.masked_paths),
        readonly_paths: (!sc.readonly_paths.is_empty()).then_some(sc.readonly_paths),
        seccomp: security_profile("seccomp", sc.seccomp, &sc.seccomp_profile_path)?,
        apparmor: security_profile("apparmor", sc.apparmor, &sc.apparmor_profile)?,
        selinux: sc.selinux_options.map(selinux_options),
    })
}

/// A pod's or a container's SELinux options.
pub fn selinux_options(o: cri::SeLinuxOption) -> SelinuxOptions {
    SelinuxOptions { user: o.user, role: o.role, r#type: o.r#type, level: o.level }
}

/// A seccomp or AppArmor profile: the SecurityProfile message when given, else the deprecated
/// string folded in as containerd does ("runtime/default", "docker/default", "unconfined",
/// "localhost/<ref>"; empty is unset; anything else is an error).
pub fn security_profile(
    field: &str,
    profile: Option<cri::SecurityProfile>,
    deprecated: &str,
) -> Result<SecurityProfile> {
    if let Some(p) = profile {
        let kind = match cri::security_profile::ProfileType::try_from(p.profile_type) {
            Ok(cri::security_profile::ProfileType::RuntimeDefault) => ProfileKind::RuntimeDefault,
            Ok(cri::security_profile::ProfileType::Unconfined) => ProfileKind::Unconfined,
            Ok(cri::security_profile::ProfileType::Localhost) => ProfileKind::Localhost,
            Err(_) => {
                return Err(Error::invalid(format!(
                    "security context: {field}.profile_type: unknown value {} (RuntimeDefault, Unconfined or Localhost)",
                    p.profile_type
                )));
            }
        };
        // containerd: "LocalhostRef must only be set if ProfileType is Localhost".
        if kind != ProfileKind::Localhost && !p.localhost_ref.is_empty() {
            return Err(Error::invalid(format!(
                "security context: {field}.localhost_ref is only allowed with profile_type Localhost"
            )));
        }
        let localhost_ref = p.localhost_ref.strip_prefix(LOCALHOST_PREFIX).unwrap_or(&p.localhost_ref).to_string();
        if kind == ProfileKind::Localhost && localhost_ref.is_empty() {
            return Err(Error::invalid(format!(
                "security context: {field}.profile_type Localhost needs localhost_ref"
            )));
        }
        return Ok(SecurityProfile { kind, localhost_ref });
    }
    let kind = match deprecated {
        "" => ProfileKind::Unset,
        "runtime/default" | "docker/default" => ProfileKind::RuntimeDefault,
        "unconfined" => ProfileKind::Unconfined,
        other => match other.strip_prefix(LOCALHOST_PREFIX) {
            Some(r) if !r.is_empty() => {
                return Ok(SecurityProfile { kind: ProfileKind::Localhost, localhost_ref: r.to_string() });
            }
            _ => {
                return Err(Error::invalid(format!(
                    "security context: {field} profile {other:?} is invalid; use runtime/default, docker/default, \
                     unconfined or localhost/<name>"
                )));
            }
        },
    };
    Ok(SecurityProfile { kind, localhost_ref: String::new() })
}

fn namespace_mode(kind: &str, mode: i32) -> Result<NamespaceMode> {
    match cri::NamespaceMode::try_from(mode) {
        Ok(cri::NamespaceMode::Pod) => Ok(NamespaceMode::Pod),
        Ok(cri::NamespaceMode::Container) => Ok(NamespaceMode::Container),
        Ok(cri::NamespaceMode::Node) => Ok(NamespaceMode::Node),
        Ok(cri::NamespaceMode::Target) => Ok(NamespaceMode::Target),
        Err(_) => Err(Error::invalid(format!(
            "security context: namespace_options.{kind}: unknown mode {mode} (POD, CONTAINER, NODE or TARGET)"
        ))),
    }
}

/// CRI resources (CreateContainer, UpdateContainerResources) as the domain's. Values are
/// checked where they are applied (the spec builder), against the host's facts.
pub fn resources(r: &cri::LinuxContainerResources) -> Resources {
    Resources {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_bytes: r.memory_limit_in_bytes,
        memory_swap_limit_bytes: r.memory_swap_limit_in_bytes,
        oom_score_adj: r.oom_score_adj,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        hugepage_limits: r.hugepage_limits.iter().map(|h| (h.page_size.clone(), h.limit)).collect(),
        unified: r.unified.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// The domain's resources as ContainerStatus reports them.
pub fn cri_resources(r: &Resources) -> cri::LinuxContainerResources {
    cri::LinuxContainerResources {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_in_bytes: r.memory_limit_bytes,
        oom_score_adj: r.oom_score_adj,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        hugepage_limits: r
            .hugepage_limits
            .iter()
            .map(|(size, limit)| cri::HugepageLimit { page_size: size.clone(), limit: *limit })
            .collect(),
        unified: r.unified.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        memory_swap_limit_in_bytes: r.memory_swap_limit_bytes,
    }
}

fn sorted(map: HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crius_core::ErrorKind;

    fn cri_config() -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: "nginx".into(), attempt: 1 }),
            image: Some(cri::ImageSpec { image: "registry.local/nginx:1".into(), ..Default::default() }),
            command: vec!["/bin/sh".into()],
            args: vec!["-c".into(), "sleep 1".into()],
            working_dir: "/srv".into(),
            envs: vec![cri::KeyValue { key: "A".into(), value: "1".into() }],
            mounts: vec![cri::Mount {
                container_path: "/data".into(),
                host_path: "/host/data".into(),
                readonly: true,
                propagation: cri::MountPropagation::PropagationHostToContainer as i32,
                ..Default::default()
            }],
            devices: vec![cri::Device {
                container_path: "/dev/fuse".into(),
                host_path: "/dev/fuse".into(),
                permissions: "rwm".into(),
            }],
            labels: HashMap::from([("app".into(), "web".into())]),
            log_path: "nginx/1.log".into(),
            tty: true,
            linux: Some(cri::LinuxContainerConfig {
                resources: Some(cri::LinuxContainerResources {
                    cpu_shares: 512,
                    memory_limit_in_bytes: 1 << 30,
                    hugepage_limits: vec![cri::HugepageLimit { page_size: "2MB".into(), limit: 4 << 20 }],
                    unified: HashMap::from([("memory.high".into(), "1000".into())]),
                    ..Default::default()
                }),
                security_context: Some(cri::LinuxContainerSecurityContext {
                    capabilities: Some(cri::Capability {
                        add_capabilities: vec!["NET_ADMIN".into()],
                        drop_capabilities: vec!["ALL".into()],
                        ..Default::default()
                    }),
                    namespace_options: Some(cri::NamespaceOption {
                        pid: cri::NamespaceMode::Container as i32,
                        ..Default::default()
                    }),
                    run_as_user: Some(cri::Int64Value { value: 1000 }),
                    run_as_group: Some(cri::Int64Value { value: 3000 }),
                    supplemental_groups: vec![4000],
                    masked_paths: vec!["/proc/kcore".into()],
                    seccomp: Some(cri::SecurityProfile {
                        profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                        localhost_ref: String::new(),
                    }),
                    selinux_options: Some(cri::SeLinuxOption { level: "s0:c1".into(), ..Default::default() }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    fn security(c: &mut cri::ContainerConfig) -> &mut cri::LinuxContainerSecurityContext {
        c.linux.get_or_insert_with(Default::default).security_context.get_or_insert_with(Default::default)
    }

    fn invalid(c: cri::ContainerConfig, needle: &str) {
        let err = container_config(Some(c)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(err.to_string().contains(needle), "{needle:?} not in {err}");
    }

    #[test]
    fn converts_a_full_config() {
        let c = container_config(Some(cri_config())).unwrap();
        assert_eq!(c.metadata, ContainerMetadata { name: "nginx".into(), attempt: 1 });
        assert_eq!(c.image, "registry.local/nginx:1");
        assert_eq!(c.command, ["/bin/sh"]);
        assert_eq!(c.envs, [("A".to_string(), "1".to_string())]);
        assert_eq!(c.mounts[0].propagation, Propagation::HostToContainer);
        assert!(c.mounts[0].readonly);
        assert_eq!(c.devices[0].permissions, "rwm");
        assert_eq!(c.labels["app"], "web");
        assert!(c.tty);
        let r = c.resources.as_ref().unwrap();
        assert_eq!((r.cpu_shares, r.memory_limit_bytes, r.hugepage_limits["2MB"]), (512, 1 << 30, 4 << 20));
        let s = &c.security;
        assert_eq!(s.capabilities_add, ["NET_ADMIN"]);
        assert_eq!(s.capabilities_drop, ["ALL"]);
        assert_eq!(s.pid_mode, NamespaceMode::Container);
        assert_eq!((s.run_as_user, s.run_as_group), (Some(1000), Some(3000)));
        assert_eq!(s.supplemental_groups, [4000]);
        assert_eq!(s.masked_paths.as_deref(), Some(&["/proc/kcore".to_string()][..]));
        assert_eq!(s.readonly_paths, None);
        assert_eq!(s.seccomp.kind, ProfileKind::RuntimeDefault);
        assert_eq!(s.apparmor.kind, ProfileKind::Unset);
        assert_eq!(s.selinux.as_ref().map(|o| o.level.as_str()), Some("s0:c1"));
    }

    #[test]
    fn missing_config_metadata_or_image_is_invalid() {
        assert_eq!(container_config(None).unwrap_err().kind(), ErrorKind::InvalidArgument);
        let mut c = cri_config();
        c.metadata = None;
        invalid(c, "metadata");
        let mut c = cri_config();
        c.metadata = Some(cri::ContainerMetadata::default());
        invalid(c, "metadata");
        let mut c = cri_config();
        c.image = None;
        invalid(c, "image");
        let mut c = cri_config();
        c.image = Some(cri::ImageSpec::default());
        invalid(c, "image");
    }

    #[test]
    fn bad_enums_are_invalid() {
        let mut c = cri_config();
        c.mounts[0].propagation = 7;
        invalid(c, "mounts[0].propagation");
        let mut c = cri_config();
        security(&mut c).namespace_options.as_mut().unwrap().pid = 9;
        invalid(c, "namespace_options.pid");
        let mut c = cri_config();
        security(&mut c).seccomp.as_mut().unwrap().profile_type = 5;
        invalid(c, "seccomp.profile_type");
        let mut c = cri_config();
        security(&mut c).supplemental_groups_policy = 3;
        invalid(c, "supplemental_groups_policy");
    }

    #[test]
    fn unsupported_features_are_refused() {
        let mut c = cri_config();
        c.mounts[0].recursive_read_only = true;
        invalid(c, "recursive_read_only");
        let mut c = cri_config();
        c.mounts[0].uid_mappings = vec![cri::IdMapping { host_id: 1, container_id: 0, length: 1 }];
        invalid(c, "idmapped");
        let mut c = cri_config();
        c.cdi_devices = vec![cri::CdiDevice { name: "vendor.com/gpu=0".into() }];
        invalid(c, "cdi_devices");
        let mut c = cri_config();
        security(&mut c).supplemental_groups_policy = cri::SupplementalGroupsPolicy::Strict as i32;
        invalid(c, "Strict");
        let mut c = cri_config();
        security(&mut c).capabilities.as_mut().unwrap().add_ambient_capabilities = vec!["NET_RAW".into()];
        invalid(c, "ambient");
        let mut c = cri_config();
        security(&mut c).namespace_options.as_mut().unwrap().userns_options =
            Some(cri::UserNamespace { mode: cri::NamespaceMode::Pod as i32, ..Default::default() });
        invalid(c, "user namespaces");
        let mut c = cri_config();
        c.envs.push(cri::KeyValue { key: String::new(), value: "x".into() });
        invalid(c, "envs[1]");
    }

    #[test]
    fn target_pid_mode_needs_a_target() {
        let mut c = cri_config();
        security(&mut c).namespace_options.as_mut().unwrap().pid = cri::NamespaceMode::Target as i32;
        invalid(c.clone(), "target_id");
        security(&mut c).namespace_options.as_mut().unwrap().target_id = "c0".into();
        let s = container_config(Some(c)).unwrap().security;
        assert_eq!((s.pid_mode, s.target_id.as_str()), (NamespaceMode::Target, "c0"));
    }

    #[test]
    #[allow(deprecated)]
    fn deprecated_profile_strings_are_folded_in() {
        let cases = [
            ("", ProfileKind::Unset, ""),
            ("runtime/default", ProfileKind::RuntimeDefault, ""),
            ("docker/default", ProfileKind::RuntimeDefault, ""),
            ("unconfined", ProfileKind::Unconfined, ""),
            ("localhost/profiles/audit.json", ProfileKind::Localhost, "profiles/audit.json"),
        ];
        for (path, kind, r) in cases {
            let mut c = cri_config();
            let sc = security(&mut c);
            sc.seccomp = None;
            sc.seccomp_profile_path = path.into();
            sc.apparmor_profile = path.into();
            let s = container_config(Some(c)).unwrap().security;
            assert_eq!((s.seccomp.kind, s.seccomp.localhost_ref.as_str()), (kind, r), "{path}");
            assert_eq!((s.apparmor.kind, s.apparmor.localhost_ref.as_str()), (kind, r), "{path}");
        }
        for bad in ["default", "localhost/", "/abs/path.json"] {
            let mut c = cri_config();
            let sc = security(&mut c);
            sc.seccomp = None;
            sc.seccomp_profile_path = bad.into();
            invalid(c, "seccomp profile");
        }
        // The message wins over the deprecated string.
        let mut c = cri_config();
        security(&mut c).seccomp_profile_path = "unconfined".into();
        assert_eq!(container_config(Some(c)).unwrap().security.seccomp.kind, ProfileKind::RuntimeDefault);
    }

    #[test]
    fn security_profile_message_rules() {
        let p = |t: cri::security_profile::ProfileType, r: &str| {
            Some(cri::SecurityProfile { profile_type: t as i32, localhost_ref: r.into() })
        };
        use cri::security_profile::ProfileType as T;
        let got = security_profile("apparmor", p(T::Localhost, "localhost/k8s-x"), "").unwrap();
        assert_eq!((got.kind, got.localhost_ref.as_str()), (ProfileKind::Localhost, "k8s-x"));
        let err = security_profile("seccomp", p(T::Localhost, ""), "").unwrap_err();
        assert!(err.to_string().contains("needs localhost_ref"), "{err}");
        let err = security_profile("seccomp", p(T::Unconfined, "/x"), "").unwrap_err();
        assert!(err.to_string().contains("only allowed"), "{err}");
    }

    #[test]
    fn resources_round_trip() {
        let cri_r = cri::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 20_000,
            cpu_shares: 2,
            memory_limit_in_bytes: 1 << 20,
            oom_score_adj: -997,
            cpuset_cpus: "0".into(),
            cpuset_mems: "0".into(),
            hugepage_limits: vec![cri::HugepageLimit { page_size: "1GB".into(), limit: 1 << 30 }],
            unified: HashMap::from([("pids.max".into(), "10".into())]),
            memory_swap_limit_in_bytes: 2 << 20,
        };
        let r = resources(&cri_r);
        assert_eq!(r.memory_swap_limit_bytes, 2 << 20);
        assert_eq!(cri_resources(&r), cri_r);
    }
}
