//! Spec tests: one baseline container, then one change per test.

use std::collections::BTreeMap;

use oci_spec::runtime::{Capability, LinuxNamespaceType, LinuxSeccompAction, Mount as OciMount, Spec};

use super::*;
use crate::ErrorKind;
use crate::container::model::{
    ContainerMetadata, Device, Mount, ProfileKind, Propagation, SecurityProfile, SelinuxOptions,
};
use crate::ports::container::Resources;
use crate::sandbox::model::{
    NamespaceMode, NamespacePaths, POD_RECORD_VERSION, PodConfig, PodMetadata, PodResources, PodState,
};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101::/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnginx:x:101:\nwww:x:33:nginx\n";

struct Fx {
    config: ContainerConfig,
    pod: PodRecord,
    image: ImageConfigInfo,
    devices: Vec<HostDevice>,
    extra: BTreeMap<String, String>,
    host: HostCaps,
    shm: Option<String>,
    target: Option<String>,
    seccomp_json: Option<String>,
    volumes: Vec<Mount>,
}

fn host_v1() -> HostCaps {
    let mut caps: Vec<String> = capabilities::DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    caps.extend(["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME"].map(String::from));
    HostCaps {
        cgroup_v2: false,
        bounding_capabilities: caps,
        seccomp: true,
        apparmor: false,
        selinux: false,
        swap: true,
        hugepage_sizes: vec!["2MB".into(), "1GB".into()],
        min_oom_score_adj: -998,
        systemd_cgroup: false,
    }
}

fn host_v2() -> HostCaps {
    HostCaps { cgroup_v2: true, ..host_v1() }
}

impl Fx {
    fn new() -> Fx {
        let pod = PodRecord {
            version: POD_RECORD_VERSION,
            id: "pod1".into(),
            config: PodConfig {
                metadata: PodMetadata { name: "web".into(), uid: "u1".into(), namespace: "default".into(), attempt: 0 },
                hostname: "web-0".into(),
                cgroup_parent: "/kubepods/besteffort/podu1".into(),
                ..Default::default()
            },
            created_at_ns: 0,
            state: PodState::Ready,
            resources: PodResources {
                namespaces: NamespacePaths {
                    net: Some("/run/crius/ns/net/pod1".into()),
                    ipc: Some("/run/crius/ns/ipc/pod1".into()),
                    uts: Some("/run/crius/ns/uts/pod1".into()),
                    pid: Some("/run/crius/ns/pid/pod1".into()),
                    net_alias: None,
                },
                ..Default::default()
            },
            timeline: vec![],
            network: None,
            stopping: false,
            selinux_level: None,
        };
        let image = ImageConfigInfo {
            env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into(), "NGINX_VERSION=1.25".into()],
            entrypoint: vec!["/docker-entrypoint.sh".into()],
            cmd: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
            working_dir: "/srv".into(),
            stop_signal: "SIGQUIT".into(),
            ..Default::default()
        };
        let config = ContainerConfig {
            metadata: ContainerMetadata { name: "nginx".into(), attempt: 0 },
            image: "registry.local/nginx:1".into(),
            envs: vec![("MODE".into(), "prod".into())],
            annotations: BTreeMap::from([("team".to_string(), "web".to_string())]),
            resources: Some(Resources {
                cpu_period: 100_000,
                cpu_quota: 50_000,
                cpu_shares: 512,
                memory_limit_bytes: 256 << 20,
                oom_score_adj: 1000,
                ..Default::default()
            }),
            ..Default::default()
        };
        Fx {
            config,
            pod,
            image,
            devices: vec![],
            extra: BTreeMap::new(),
            host: host_v1(),
            shm: Some("/run/crius/pods/pod1/shm".into()),
            target: None,
            seccomp_json: None,
            volumes: vec![],
        }
    }

    fn build(&self) -> Result<BuiltSpec> {
        build_spec(&SpecInput {
            container_id: "c1",
            config: &self.config,
            pod: &self.pod,
            image: &self.image,
            image_name: "registry.local/nginx:1",
            rootfs: "/run/crius/containers/c1/bundle/rootfs",
            passwd: PASSWD,
            group: GROUP,
            pod_hostname_file: "/var/lib/crius/pods/pod1/hostname",
            pod_hosts_file: "/var/lib/crius/pods/pod1/hosts",
            pod_resolv_file: "/var/lib/crius/pods/pod1/resolv.conf",
            pod_shm: self.shm.as_deref(),
            image_volumes: &self.volumes,
            devices: &self.devices,
            target_pid_ns: self.target.as_deref(),
            extra_annotations: &self.extra,
            host: &self.host,
            seccomp_localhost_json: self.seccomp_json.as_deref(),
        })
    }

    fn spec(&self) -> Spec {
        self.build().unwrap().spec
    }

    fn err(&self) -> Error {
        self.build().unwrap_err()
    }
}

fn process(s: &Spec) -> &Process {
    s.process().as_ref().unwrap()
}

fn linux(s: &Spec) -> &Linux {
    s.linux().as_ref().unwrap()
}

fn mount<'a>(s: &'a Spec, dest: &str) -> Option<&'a OciMount> {
    s.mounts().as_ref().unwrap().iter().find(|m| m.destination().to_str() == Some(dest))
}

fn options(s: &Spec, dest: &str) -> Vec<String> {
    mount(s, dest).and_then(|m| m.options().clone()).unwrap_or_default()
}

fn bounding(s: &Spec) -> Vec<Capability> {
    let mut v: Vec<Capability> =
        process(s).capabilities().as_ref().unwrap().bounding().clone().unwrap_or_default().into_iter().collect();
    v.sort_by_key(|c| c.to_string());
    v
}

fn namespace(s: &Spec, typ: LinuxNamespaceType) -> Option<Option<String>> {
    linux(s)
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .find(|n| n.typ() == typ)
        .map(|n| n.path().as_ref().map(|p| p.display().to_string()))
}

fn invalid(err: &Error, needle: &str) {
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains(needle), "{needle:?} not in {err}");
}

#[test]
fn baseline() {
    let built = Fx::new().build().unwrap();
    let s = &built.spec;
    assert_eq!(s.version(), OCI_VERSION);
    assert_eq!(s.root().as_ref().unwrap().path().to_str(), Some("/run/crius/containers/c1/bundle/rootfs"));
    assert_eq!(s.root().as_ref().unwrap().readonly(), Some(false));
    assert!(s.hostname().is_none());

    let p = process(s);
    assert_eq!(p.args().as_deref().unwrap(), ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]);
    assert_eq!(
        p.env().as_deref().unwrap(),
        ["PATH=/usr/local/bin:/usr/bin:/bin", "HOSTNAME=web-0", "NGINX_VERSION=1.25", "MODE=prod"]
    );
    assert_eq!(p.cwd().to_str(), Some("/srv"));
    assert_eq!(p.terminal(), Some(false));
    assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
    assert_eq!(p.user().additional_gids().as_deref(), Some(&[0][..]));
    assert_eq!(p.no_new_privileges(), Some(false));
    assert_eq!(p.oom_score_adj(), Some(1000));
    assert!(p.rlimits().is_none() && p.apparmor_profile().is_none() && p.selinux_label().is_none());
    assert_eq!(bounding(s).len(), 14);
    let caps = p.capabilities().as_ref().unwrap();
    assert_eq!(caps.effective(), caps.permitted());
    assert!(caps.ambient().is_none() && caps.inheritable().is_none());

    assert_eq!(built.user, ResolvedUser { uid: 0, gid: 0, additional_gids: vec![0], username: Some("root".into()) });
    assert_eq!(built.stop_signal, 3);

    let l = linux(s);
    assert_eq!(l.cgroups_path().as_ref().and_then(|p| p.to_str()), Some("/kubepods/besteffort/podu1/c1"));
    assert_eq!(namespace(s, LinuxNamespaceType::Mount), Some(None));
    assert_eq!(namespace(s, LinuxNamespaceType::Network), Some(Some("/run/crius/ns/net/pod1".into())));
    assert_eq!(namespace(s, LinuxNamespaceType::Pid), Some(Some("/run/crius/ns/pid/pod1".into())));
    assert_eq!(namespace(s, LinuxNamespaceType::Cgroup), None);
    assert_eq!(l.masked_paths().as_ref().map(Vec::len), Some(11));
    assert_eq!(l.readonly_paths().as_ref().map(Vec::len), Some(5));
    // Unset seccomp: no filter, as containerd with its default `unset_seccomp_profile`.
    assert!(l.seccomp().is_none());
    assert!(l.rootfs_propagation().is_none() && l.mount_label().is_none());
    let r = l.resources().as_ref().unwrap();
    let cpu = r.cpu().as_ref().unwrap();
    assert_eq!((cpu.shares(), cpu.quota(), cpu.period()), (Some(512), Some(50_000), Some(100_000)));
    assert_eq!((r.memory().unwrap().limit(), r.memory().unwrap().swap()), (Some(256 << 20), Some(256 << 20)));
    let rules = r.devices().as_ref().unwrap();
    assert!(!rules[0].allow() && rules.len() == 11);
    assert!(l.devices().as_ref().unwrap().is_empty());

    let dests: Vec<_> = s.mounts().as_ref().unwrap().iter().map(|m| m.destination().display().to_string()).collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/etc/hostname",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/dev/shm"
        ]
    );
    assert!(options(s, "/sys").contains(&"ro".into()) && options(s, "/sys/fs/cgroup").contains(&"ro".into()));
    assert_eq!(options(s, "/etc/hosts"), ["rbind", "rprivate", "rw"]);

    let a = s.annotations().as_ref().unwrap();
    assert_eq!(a["io.kubernetes.cri.container-type"], "container");
    assert_eq!(a["io.kubernetes.cri.sandbox-id"], "pod1");
    assert_eq!(a["io.kubernetes.cri.container-name"], "nginx");
    assert_eq!(a["io.kubernetes.cri.image-name"], "registry.local/nginx:1");
    assert_eq!(a["io.kubernetes.cri.sandbox-name"], "web");
    assert_eq!(a["io.kubernetes.cri.sandbox-namespace"], "default");
    assert_eq!(a["io.kubernetes.cri.sandbox-uid"], "u1");
    assert_eq!(a["team"], "web");
}

#[test]
fn json_round_trip_runc_would_accept() {
    let spec = Fx::new().spec();
    let json = to_json(&spec).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["ociVersion"], OCI_VERSION);
    assert_eq!(value["root"]["path"], "/run/crius/containers/c1/bundle/rootfs");
    assert_eq!(value["process"]["cwd"], "/srv");
    assert!(value["process"]["capabilities"]["bounding"].as_array().unwrap().contains(&"CAP_CHOWN".into()));
    assert_eq!(value["linux"]["namespaces"][0]["type"], "mount");
    assert_eq!(value["linux"]["resources"]["devices"][0]["allow"], false);
    assert_eq!(value["linux"]["cgroupsPath"], "/kubepods/besteffort/podu1/c1");
    assert!(value.get("hostname").is_none());
    let back: Spec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec);

    // The same with a seccomp filter and devices, whose JSON shapes runc is strict about.
    let mut fx = Fx::new();
    fx.config.security.seccomp.kind = ProfileKind::RuntimeDefault;
    fx.devices = vec![fuse()];
    let spec = fx.spec();
    let json = to_json(&spec).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(value["linux"]["devices"][0]["type"], "c");
    assert_eq!(serde_json::from_str::<Spec>(&json).unwrap(), spec);
}

#[test]
fn tty() {
    let mut fx = Fx::new();
    fx.config.tty = true;
    assert_eq!(process(&fx.spec()).terminal(), Some(true));
}

#[test]
fn command_replaces_entrypoint_and_drops_cmd() {
    let mut fx = Fx::new();
    fx.config.command = vec!["/bin/sh".into()];
    assert_eq!(process(&fx.spec()).args().as_deref().unwrap(), ["/bin/sh"]);
    fx.config.args = vec!["-c".into(), "true".into()];
    assert_eq!(process(&fx.spec()).args().as_deref().unwrap(), ["/bin/sh", "-c", "true"]);
}

#[test]
fn args_replace_cmd() {
    let mut fx = Fx::new();
    fx.config.args = vec!["-t".into()];
    assert_eq!(process(&fx.spec()).args().as_deref().unwrap(), ["/docker-entrypoint.sh", "-t"]);
}

#[test]
fn nothing_to_run_is_invalid() {
    let mut fx = Fx::new();
    fx.image.entrypoint.clear();
    fx.image.cmd.clear();
    invalid(&fx.err(), "nothing to run");
}

#[test]
fn config_env_replaces_image_env_in_place() {
    let mut fx = Fx::new();
    fx.config.envs = vec![("NGINX_VERSION".into(), "2".into()), ("HOSTNAME".into(), "x".into())];
    assert_eq!(
        process(&fx.spec()).env().as_deref().unwrap(),
        ["PATH=/usr/local/bin:/usr/bin:/bin", "HOSTNAME=x", "NGINX_VERSION=2"]
    );
}

#[test]
fn default_path_when_none() {
    let mut fx = Fx::new();
    fx.image.env.clear();
    let env = process(&fx.spec()).env().clone().unwrap();
    assert_eq!(env[0], format!("PATH={}", process::DEFAULT_PATH));
}

#[test]
fn working_dir_from_config() {
    let mut fx = Fx::new();
    fx.config.working_dir = "/app".into();
    assert_eq!(process(&fx.spec()).cwd().to_str(), Some("/app"));
    fx.config.working_dir.clear();
    fx.image.working_dir.clear();
    assert_eq!(process(&fx.spec()).cwd().to_str(), Some("/"));
}

#[test]
fn run_as_user_group_and_supplemental_groups() {
    let mut fx = Fx::new();
    fx.config.security.run_as_user = Some(101);
    fx.config.security.run_as_group = Some(2000);
    fx.config.security.supplemental_groups = vec![3000];
    let built = fx.build().unwrap();
    let u = process(&built.spec).user();
    assert_eq!((u.uid(), u.gid()), (101, 2000));
    // Primary, /etc/group membership of "nginx" (www), then the config's.
    assert_eq!(u.additional_gids().as_deref(), Some(&[2000, 33, 3000][..]));
    assert_eq!(built.user.username.as_deref(), Some("nginx"));
}

#[test]
fn image_user_by_name() {
    let mut fx = Fx::new();
    fx.image.user = "nginx".into();
    let u = fx.build().unwrap().user;
    assert_eq!((u.uid, u.gid, u.additional_gids), (101, 101, vec![101, 33]));
}

#[test]
fn unknown_user_name_is_invalid() {
    let mut fx = Fx::new();
    fx.config.security.run_as_username = "ghost".into();
    let err = fx.err();
    invalid(&err, "ghost");
    assert!(err.to_string().contains("registry.local/nginx:1"), "{err}");
}

#[test]
fn group_without_user_is_invalid() {
    let mut fx = Fx::new();
    fx.config.security.run_as_group = Some(5);
    invalid(&fx.err(), "run_as_group");
}

#[test]
fn cri_mounts_with_propagation() {
    let mut fx = Fx::new();
    fx.config.mounts = vec![
        Mount {
            container_path: "/var/lib/kubelet/pods".into(),
            host_path: "/var/lib/kubelet/pods".into(),
            propagation: Propagation::HostToContainer,
            readonly: true,
            ..Default::default()
        },
        Mount { container_path: "/var".into(), host_path: "/data/var".into(), ..Default::default() },
    ];
    let s = fx.spec();
    assert_eq!(options(&s, "/var/lib/kubelet/pods"), ["rbind", "rslave", "ro"]);
    assert_eq!(options(&s, "/var"), ["rbind", "rprivate", "rw"]);
    let dests: Vec<_> = s.mounts().as_ref().unwrap().iter().map(|m| m.destination().display().to_string()).collect();
    let pos = |d: &str| dests.iter().position(|x| x == d).unwrap();
    assert!(pos("/var") < pos("/var/lib/kubelet/pods"));
    assert_eq!(linux(&s).rootfs_propagation().as_deref(), Some("rslave"));
}

#[test]
fn image_volumes_are_writable_binds_under_a_readonly_rootfs() {
    let mut fx = Fx::new();
    fx.config.security.readonly_rootfs = true;
    fx.config.mounts = vec![Mount { container_path: "/srv".into(), host_path: "/h/srv".into(), ..Default::default() }];
    fx.volumes = vec![Mount {
        container_path: "/srv/data".into(),
        host_path: "/var/lib/crius/containers/c1/volumes/0".into(),
        ..Default::default()
    }];
    let s = fx.spec();
    assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
    let volume = mount(&s, "/srv/data").unwrap();
    assert_eq!(volume.source().as_ref().and_then(|p| p.to_str()), Some("/var/lib/crius/containers/c1/volumes/0"));
    assert_eq!(options(&s, "/srv/data"), ["rbind", "rprivate", "rw"]);
    let dests: Vec<_> = s.mounts().as_ref().unwrap().iter().map(|m| m.destination().display().to_string()).collect();
    let pos = |d: &str| dests.iter().position(|x| x == d).unwrap();
    assert!(pos("/srv") < pos("/srv/data"), "a CRI mount that holds the volume comes first: {dests:?}");
}

#[test]
fn a_cri_mount_replaces_the_pods_file() {
    let mut fx = Fx::new();
    fx.config.mounts =
        vec![Mount { container_path: "/etc/resolv.conf".into(), host_path: "/my/resolv".into(), ..Default::default() }];
    let s = fx.spec();
    let m: Vec<_> =
        s.mounts().as_ref().unwrap().iter().filter(|m| m.destination().to_str() == Some("/etc/resolv.conf")).collect();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].source().as_ref().and_then(|p| p.to_str()), Some("/my/resolv"));
}

#[test]
fn relative_mount_destination_is_invalid() {
    let mut fx = Fx::new();
    fx.config.mounts = vec![Mount { container_path: "data".into(), host_path: "/data".into(), ..Default::default() }];
    invalid(&fx.err(), "container_path");
}

#[test]
fn host_ipc_binds_the_hosts_shm() {
    let mut fx = Fx::new();
    fx.shm = None;
    fx.pod.resources.namespaces.ipc = None;
    let s = fx.spec();
    assert_eq!(mount(&s, "/dev/shm").unwrap().source().as_ref().and_then(|p| p.to_str()), Some("/dev/shm"));
    assert_eq!(namespace(&s, LinuxNamespaceType::Ipc), None);
}

#[test]
fn host_network_has_no_net_or_uts_entry() {
    let mut fx = Fx::new();
    fx.pod.config.namespaces.network = NamespaceMode::Node;
    fx.pod.resources.namespaces.net = None;
    fx.pod.resources.namespaces.uts = None;
    let s = fx.spec();
    assert_eq!(namespace(&s, LinuxNamespaceType::Network), None);
    assert_eq!(namespace(&s, LinuxNamespaceType::Uts), None);
}

#[test]
fn pid_mode_container() {
    let mut fx = Fx::new();
    fx.config.security.pid_mode = NamespaceMode::Container;
    assert_eq!(namespace(&fx.spec(), LinuxNamespaceType::Pid), Some(None));
}

#[test]
fn pid_mode_target() {
    let mut fx = Fx::new();
    fx.config.security.pid_mode = NamespaceMode::Target;
    fx.config.security.target_id = "c0".into();
    invalid(&fx.err(), "\"c0\"");
    fx.target = Some("/proc/77/ns/pid".into());
    assert_eq!(namespace(&fx.spec(), LinuxNamespaceType::Pid), Some(Some("/proc/77/ns/pid".into())));
}

#[test]
fn pid_mode_pod_without_a_pod_pid_namespace_is_invalid() {
    let mut fx = Fx::new();
    fx.pod.config.namespaces.pid = NamespaceMode::Container;
    fx.pod.resources.namespaces.pid = None;
    invalid(&fx.err(), "no shared PID namespace");
}

#[test]
fn cgroup_v2_adds_a_cgroup_namespace_and_allows_unified() {
    let mut fx = Fx::new();
    fx.host = host_v2();
    if let Some(r) = fx.config.resources.as_mut() {
        r.unified.insert("memory.high".into(), "200000000".into());
    }
    let s = fx.spec();
    assert_eq!(namespace(&s, LinuxNamespaceType::Cgroup), Some(None));
    assert_eq!(linux(&s).resources().as_ref().unwrap().unified().as_ref().unwrap()["memory.high"], "200000000");
}

#[test]
fn unified_on_cgroup_v1_is_invalid() {
    let mut fx = Fx::new();
    if let Some(r) = fx.config.resources.as_mut() {
        r.unified.insert("memory.high".into(), "1".into());
    }
    invalid(&fx.err(), "cgroup v1");
}

#[test]
fn privileged_needs_a_privileged_pod() {
    let mut fx = Fx::new();
    fx.config.security.privileged = true;
    invalid(&fx.err(), "privileged pod");
}

fn fuse() -> HostDevice {
    HostDevice {
        host_path: "/dev/fuse".into(),
        container_path: "/dev/fuse".into(),
        kind: 'c',
        major: 10,
        minor: 229,
        file_mode: 0o20666,
        uid: 0,
        gid: 0,
        permissions: "rwm".into(),
    }
}

#[test]
fn privileged() {
    let mut fx = Fx::new();
    fx.host = host_v2();
    fx.pod.config.privileged = true;
    fx.config.security.privileged = true;
    fx.config.security.seccomp.kind = ProfileKind::RuntimeDefault;
    fx.config.security.capabilities_drop = vec!["ALL".into()];
    fx.devices = vec![fuse(), HostDevice { kind: 'b', major: 8, minor: 0, ..fuse() }];
    fx.devices[1].container_path = "/dev/sda".into();
    let s = fx.spec();
    assert_eq!(bounding(&s).len(), 18);
    let l = linux(&s);
    assert!(l.masked_paths().is_none() && l.readonly_paths().is_none());
    assert!(l.seccomp().is_none());
    assert_eq!(l.devices().as_ref().unwrap().len(), 2);
    let rules = l.resources().as_ref().unwrap().devices().clone().unwrap();
    assert_eq!(rules.len(), 1);
    assert!(rules[0].allow());
    assert!(options(&s, "/sys").contains(&"rw".into()) && !options(&s, "/sys").contains(&"ro".into()));
    assert!(!options(&s, "/sys/fs/cgroup").contains(&"ro".into()));
    assert_eq!(namespace(&s, LinuxNamespaceType::Cgroup), None);
}

#[test]
fn capabilities_add_and_drop() {
    let mut fx = Fx::new();
    fx.config.security.capabilities_add = vec!["NET_ADMIN".into(), "cap_sys_ptrace".into()];
    fx.config.security.capabilities_drop = vec!["NET_RAW".into()];
    let caps = bounding(&fx.spec());
    assert!(caps.contains(&Capability::NetAdmin) && caps.contains(&Capability::SysPtrace));
    assert!(!caps.contains(&Capability::NetRaw));
    assert_eq!(caps.len(), 15);
}

#[test]
fn capabilities_all() {
    let mut fx = Fx::new();
    fx.config.security.capabilities_add = vec!["ALL".into()];
    fx.config.security.capabilities_drop = vec!["SYS_ADMIN".into()];
    let caps = bounding(&fx.spec());
    assert_eq!(caps.len(), 17);
    assert!(!caps.contains(&Capability::SysAdmin));
    fx.config.security.capabilities_add = vec!["KILL".into()];
    fx.config.security.capabilities_drop = vec!["ALL".into()];
    assert_eq!(bounding(&fx.spec()), [Capability::Kill]);
}

#[test]
fn unknown_capability_is_invalid() {
    let mut fx = Fx::new();
    fx.config.security.capabilities_add = vec!["TELEPORT".into()];
    invalid(&fx.err(), "TELEPORT");
}

#[test]
fn masked_and_readonly_paths_from_config() {
    let mut fx = Fx::new();
    fx.config.security.masked_paths = Some(vec!["/proc/kcore".into()]);
    fx.config.security.readonly_paths = Some(vec![]);
    let s = fx.spec();
    assert_eq!(linux(&s).masked_paths().as_deref(), Some(&["/proc/kcore".to_string()][..]));
    assert!(linux(&s).readonly_paths().is_none());
}

#[test]
fn no_new_privs() {
    let mut fx = Fx::new();
    fx.config.security.no_new_privs = true;
    assert_eq!(process(&fx.spec()).no_new_privileges(), Some(true));
}

#[test]
fn readonly_rootfs() {
    let mut fx = Fx::new();
    fx.config.security.readonly_rootfs = true;
    let s = fx.spec();
    assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
    assert_eq!(options(&s, "/etc/hosts"), ["rbind", "rprivate", "ro"]);
    assert_eq!(options(&s, "/dev/shm"), ["rbind", "rprivate", "rw"]);
}

#[test]
fn seccomp_runtime_default() {
    let mut fx = Fx::new();
    fx.config.security.seccomp.kind = ProfileKind::RuntimeDefault;
    let s = fx.spec();
    let sc = linux(&s).seccomp().as_ref().unwrap();
    assert_eq!(sc.default_action(), LinuxSeccompAction::ScmpActErrno);
    let names: Vec<&String> = sc.syscalls().iter().flatten().flat_map(|r| r.names()).collect();
    assert!(names.iter().any(|n| *n == "read") && !names.iter().any(|n| *n == "mount"));
    // CAP_SYS_ADMIN opens its syscall group, as containerd's profile does.
    fx.config.security.capabilities_add = vec!["SYS_ADMIN".into()];
    let s = fx.spec();
    let names: Vec<String> =
        linux(&s).seccomp().as_ref().unwrap().syscalls().iter().flatten().flat_map(|r| r.names().clone()).collect();
    assert!(names.iter().any(|n| n == "mount"));
}

#[test]
fn seccomp_unconfined() {
    let mut fx = Fx::new();
    fx.config.security.seccomp.kind = ProfileKind::Unconfined;
    assert!(linux(&fx.spec()).seccomp().is_none());
}

#[test]
fn seccomp_localhost() {
    let mut fx = Fx::new();
    fx.config.security.seccomp =
        SecurityProfile { kind: ProfileKind::Localhost, localhost_ref: "/var/lib/kubelet/seccomp/audit.json".into() };
    fx.seccomp_json = Some(r#"{"defaultAction":"SCMP_ACT_LOG"}"#.into());
    assert_eq!(linux(&fx.spec()).seccomp().as_ref().unwrap().default_action(), LinuxSeccompAction::ScmpActLog);
    fx.seccomp_json = Some("not json".into());
    invalid(&fx.err(), "/var/lib/kubelet/seccomp/audit.json");
}

#[test]
fn seccomp_on_a_host_without_it() {
    let mut fx = Fx::new();
    fx.host.seccomp = false;
    fx.config.security.seccomp.kind = ProfileKind::RuntimeDefault;
    assert_eq!(fx.err().kind(), ErrorKind::FailedPrecondition);
    fx.config.security.seccomp.kind = ProfileKind::Unset;
    assert!(linux(&fx.spec()).seccomp().is_none());
}

#[test]
fn apparmor_localhost() {
    let mut fx = Fx::new();
    fx.host.apparmor = true;
    fx.config.security.apparmor = SecurityProfile { kind: ProfileKind::Localhost, localhost_ref: "k8s-nginx".into() };
    assert_eq!(process(&fx.spec()).apparmor_profile().as_deref(), Some("k8s-nginx"));
}

#[test]
fn apparmor_runtime_default_is_crius_default() {
    let mut fx = Fx::new();
    fx.host.apparmor = true;
    assert_eq!(process(&fx.spec()).apparmor_profile().as_deref(), Some(apparmor::DEFAULT_PROFILE));
    fx.config.security.apparmor.kind = ProfileKind::Unconfined;
    assert!(process(&fx.spec()).apparmor_profile().is_none());
}

#[test]
fn apparmor_on_a_host_without_it() {
    let mut fx = Fx::new();
    fx.config.security.apparmor.kind = ProfileKind::RuntimeDefault;
    assert!(process(&fx.spec()).apparmor_profile().is_none());
    fx.config.security.apparmor = SecurityProfile { kind: ProfileKind::Localhost, localhost_ref: "k8s-nginx".into() };
    let err = fx.err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert!(err.to_string().contains("AppArmor"), "{err}");
}

#[test]
fn selinux_label() {
    let mut fx = Fx::new();
    fx.host.selinux = true;
    fx.pod.selinux_level = Some("s0:c1,c2".into());
    let s = fx.spec();
    assert_eq!(process(&s).selinux_label().as_deref(), Some("system_u:system_r:container_t:s0:c1,c2"));
    fx.config.security.selinux = Some(SelinuxOptions { level: "s0:c4,c9".into(), ..Default::default() });
    let s = fx.spec();
    assert_eq!(process(&s).selinux_label().as_deref(), Some("system_u:system_r:container_t:s0:c4,c9"));
    assert_eq!(linux(&s).mount_label().as_deref(), Some("system_u:object_r:container_file_t:s0:c4,c9"));
    // Without SELinux the options are ignored, as containerd does.
    fx.host.selinux = false;
    let s = fx.spec();
    assert!(process(&s).selinux_label().is_none() && linux(&s).mount_label().is_none());
}

#[test]
fn devices() {
    let mut fx = Fx::new();
    // The CRI config names it; the caller resolved it into `devices`.
    fx.config.devices =
        vec![Device { container_path: "/dev/fuse".into(), host_path: "/dev/fuse".into(), permissions: "rw".into() }];
    fx.devices = vec![HostDevice { permissions: "rw".into(), ..fuse() }];
    let s = fx.spec();
    let d = &linux(&s).devices().as_ref().unwrap()[0];
    assert_eq!((d.path().to_str(), d.major(), d.minor(), d.file_mode()), (Some("/dev/fuse"), 10, 229, Some(0o666)));
    let rules = linux(&s).resources().as_ref().unwrap().devices().clone().unwrap();
    let last = rules.last().unwrap();
    assert_eq!(
        (last.allow(), last.major(), last.minor(), last.access().as_deref()),
        (true, Some(10), Some(229), Some("rw"))
    );
}

#[test]
fn swap_limit_as_given_and_none_without_swap() {
    let mut fx = Fx::new();
    if let Some(r) = fx.config.resources.as_mut() {
        r.memory_swap_limit_bytes = 512 << 20;
    }
    let mem = |s: &Spec| linux(s).resources().as_ref().unwrap().memory().unwrap();
    assert_eq!(mem(&fx.spec()).swap(), Some(512 << 20));
    fx.host.swap = false;
    assert_eq!(mem(&fx.spec()).swap(), None);
}

#[test]
fn hugepages_only_in_offered_sizes() {
    let mut fx = Fx::new();
    if let Some(r) = fx.config.resources.as_mut() {
        r.hugepage_limits.insert("2MB".into(), 8 << 20);
    }
    let s = fx.spec();
    assert_eq!(linux(&s).resources().as_ref().unwrap().hugepage_limits().as_ref().unwrap()[0].limit(), 8 << 20);
    if let Some(r) = fx.config.resources.as_mut() {
        r.hugepage_limits.insert("16GB".into(), 1);
    }
    invalid(&fx.err(), "16GB");
}

#[test]
fn oom_score_adj_is_clamped_to_the_daemons() {
    let mut fx = Fx::new();
    if let Some(r) = fx.config.resources.as_mut() {
        r.oom_score_adj = -1000;
    }
    assert_eq!(process(&fx.spec()).oom_score_adj(), Some(-998));
    fx.config.resources = None;
    let s = fx.spec();
    assert_eq!(process(&s).oom_score_adj(), None);
    assert!(linux(&s).resources().as_ref().unwrap().cpu().is_none());
}

#[test]
fn systemd_cgroup_path() {
    let mut fx = Fx::new();
    fx.host.systemd_cgroup = true;
    fx.pod.config.cgroup_parent = "kubepods-besteffort-podu1.slice".into();
    assert_eq!(
        linux(&fx.spec()).cgroups_path().as_ref().and_then(|p| p.to_str()),
        Some("kubepods-besteffort-podu1.slice:crius:c1")
    );
}

#[test]
fn no_cgroup_parent() {
    let mut fx = Fx::new();
    fx.pod.config.cgroup_parent.clear();
    assert_eq!(linux(&fx.spec()).cgroups_path().as_ref().and_then(|p| p.to_str()), Some("/crius/c1"));
}

#[test]
fn annotations_standard_win_over_config_and_extras_are_added() {
    let mut fx = Fx::new();
    fx.config.annotations.insert("io.kubernetes.cri.sandbox-id".into(), "spoofed".into());
    fx.extra.insert("io.crius.monitor".into(), "m1".into());
    let s = fx.spec();
    let a = s.annotations().as_ref().unwrap();
    assert_eq!(a["io.kubernetes.cri.sandbox-id"], "pod1");
    assert_eq!(a["io.crius.monitor"], "m1");
}

#[test]
fn unknown_stop_signal_is_invalid() {
    let mut fx = Fx::new();
    fx.image.stop_signal = "SIGNOPE".into();
    invalid(&fx.err(), "STOPSIGNAL");
    fx.image.stop_signal.clear();
    assert_eq!(fx.build().unwrap().stop_signal, signal::SIGTERM);
}
