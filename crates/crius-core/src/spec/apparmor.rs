//! AppArmor: which profile a container runs under (containerd's `GenerateApparmorSpecOpts`), and
//! the text of crius's default profile, `crius-default` (what containerd loads as
//! `cri-containerd.apparmor.d` and CRI-O as `crio-default`).

use crate::container::model::{ProfileKind, SecurityProfile};
use crate::error::{Error, Result};

/// The name crius's default profile is loaded under.
pub const DEFAULT_PROFILE: &str = "crius-default";

/// The profile a container is to run under; none means unconfined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppArmorProfile {
    /// crius's own (RuntimeDefault), which the daemon loads.
    Default,
    /// One the node's administrator loaded (Localhost).
    Localhost(String),
}

impl AppArmorProfile {
    pub fn name(&self) -> &str {
        match self {
            AppArmorProfile::Default => DEFAULT_PROFILE,
            AppArmorProfile::Localhost(name) => name,
        }
    }
}

/// The profile for a container's security context, on a host where AppArmor is `enabled` or not.
///
/// As containerd: with AppArmor, an unset profile is RuntimeDefault (kubernetes#51746), and
/// RuntimeDefault is no profile for a privileged container; Localhost applies even to a
/// privileged one, since it was asked for by name. Without AppArmor, only Localhost is refused
/// (it names a profile that cannot be enforced); RuntimeDefault is then no profile, which is
/// what "the runtime's default" is on such a host (CRI-O does the same; containerd refuses it,
/// though the kubelet does not send it to a node without AppArmor).
pub fn select(profile: &SecurityProfile, privileged: bool, enabled: bool) -> Result<Option<AppArmorProfile>> {
    if profile.kind != ProfileKind::Localhost && !profile.localhost_ref.is_empty() {
        return Err(Error::invalid(format!(
            "apparmor: localhost_ref {:?} is only allowed with the Localhost profile type",
            profile.localhost_ref
        )));
    }
    match profile.kind {
        ProfileKind::Unconfined => Ok(None),
        ProfileKind::Unset | ProfileKind::RuntimeDefault if !enabled || privileged => Ok(None),
        ProfileKind::Unset | ProfileKind::RuntimeDefault => Ok(Some(AppArmorProfile::Default)),
        ProfileKind::Localhost => {
            let name = profile.localhost_ref.trim_start_matches("localhost/");
            if name.is_empty() {
                return Err(Error::invalid(
                    "apparmor: the Localhost profile type needs localhost_ref (a profile name)",
                ));
            }
            if !enabled {
                return Err(Error::precondition(format!(
                    "AppArmor profile {name:?} (Localhost) was asked for, but AppArmor is not enabled on this host \
                     (/sys/module/apparmor/parameters/enabled is not Y): enable AppArmor on the node, or use \
                     RuntimeDefault or Unconfined"
                )));
            }
            Ok(Some(AppArmorProfile::Localhost(name.to_string())))
        }
    }
}

/// What the node's AppArmor policy offers a generated profile (looked up by the adapter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEnv {
    /// `abi/3.0` is there: pinned, because from ABI 4.0 on a bare `network,` no longer covers
    /// unix sockets and containers would lose them (containerd#12726).
    pub abi_3: bool,
    /// `tunables/global` is there (it defines `@{PROC}` and the other variables).
    pub tunables_global: bool,
    /// `abstractions/base` is there (what nearly every program reads: libc, locales, /dev/null).
    pub abstractions_base: bool,
    /// The daemon's own profile: it, and the monitors it spawns, signal the containers.
    pub daemon_profile: String,
}

impl Default for PolicyEnv {
    fn default() -> Self {
        PolicyEnv {
            abi_3: false,
            tunables_global: false,
            abstractions_base: false,
            daemon_profile: "unconfined".into(),
        }
    }
}

/// Everything is allowed but what lets a container reach past itself into the host: writes to
/// the kernel's knobs under /proc and /sys, mounting, and the firmware and LSM interfaces.
/// The same rules as Docker's, containerd's and CRI-O's default profiles, so workloads that run
/// under those run under this one.
const RULES: &[(&str, &str)] = &[
    ("network,", ""),
    ("capability,", "capabilities are bounded by the OCI spec, not here"),
    ("file,", ""),
    ("umount,", ""),
    ("deny @{PROC}/* w,", "no writes to files at the top of /proc"),
    (
        "deny @{PROC}/{[^1-9/],[^1-9/][^0-9/],[^1-9s/][^0-9y/][^0-9s/],[^1-9/][^0-9/][^0-9/][^0-9/]*}/** w,",
        "nor below it, but in /proc/<pid>/ and /proc/sys/",
    ),
    ("deny @{PROC}/sys/[^k]** w,", "of /proc/sys, only kernel/ is writable"),
    ("deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,", "and of that only the (namespaced) shm* knobs"),
    ("deny @{PROC}/sysrq-trigger rwklx,", "magic SysRq: reboot or crash the host"),
    ("deny @{PROC}/kcore rwklx,", "the kernel's memory, as a core file"),
    ("deny mount,", ""),
    ("deny /sys/[^f]*/** wklx,", "/sys is read-only except /sys/fs/cgroup"),
    ("deny /sys/f[^s]*/** wklx,", ""),
    ("deny /sys/fs/[^c]*/** wklx,", ""),
    ("deny /sys/fs/c[^g]*/** wklx,", ""),
    ("deny /sys/fs/cg[^r]*/** wklx,", ""),
    ("deny /sys/firmware/** rwklx,", "EFI variables, ACPI tables"),
    ("deny /sys/devices/virtual/powercap/** rwklx,", "energy counters leak other tenants' activity"),
    ("deny /sys/kernel/security/** rwklx,", "the LSMs' own interfaces, this profile's included"),
];

/// The text of the default profile named `name`, for `apparmor_parser`.
pub fn default_profile(name: &str, env: &PolicyEnv) -> String {
    let mut out = String::new();
    let mut line = |text: &str, why: &str| {
        out.push_str(text);
        if !why.is_empty() {
            out.push_str("  # ");
            out.push_str(why);
        }
        out.push('\n');
    };
    line("# Generated by crius for RuntimeDefault containers; do not edit (crius reloads it).", "");
    if env.abi_3 {
        line("abi <abi/3.0>,", "");
    }
    if env.tunables_global {
        line("#include <tunables/global>", "");
    } else {
        line("@{PROC}=/proc/", "");
    }
    line("", "");
    line(&format!("profile {name} flags=(attach_disconnected,mediate_deleted) {{"), "");
    if env.abstractions_base {
        line("  #include <abstractions/base>", "");
    }
    for (rule, why) in RULES {
        line(&format!("  {rule}"), why);
    }
    // Who may signal the container's processes: the host's unconfined processes, the OCI
    // runtimes (which have profiles of their own on some distributions), crius itself, and
    // the container's other processes.
    let mut peers = vec!["unconfined", "runc", "crun"];
    let daemon = env.daemon_profile.trim();
    if !daemon.is_empty() && !peers.contains(&daemon) {
        peers.push(daemon);
    }
    for peer in peers {
        line(&format!("  signal (receive) peer={},", quoted(peer)), "");
    }
    line(&format!("  signal (send,receive) peer={name},"), "");
    line(&format!("  ptrace (trace,read,tracedby,readby) peer={name},"), "processes of the container see each other");
    line("}", "");
    out
}

/// A profile name as a rule's value: quoted where it has white space.
fn quoted(name: &str) -> String {
    if name.chars().any(char::is_whitespace) { format!("{name:?}") } else { name.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn p(kind: ProfileKind, r: &str) -> SecurityProfile {
        SecurityProfile { kind, localhost_ref: r.into() }
    }

    fn name(profile: &SecurityProfile, privileged: bool, enabled: bool) -> Option<String> {
        select(profile, privileged, enabled).unwrap().map(|p| p.name().to_string())
    }

    #[test]
    fn with_apparmor_runtime_default_and_unset_are_crius_default() {
        for kind in [ProfileKind::Unset, ProfileKind::RuntimeDefault] {
            assert_eq!(name(&p(kind, ""), false, true).as_deref(), Some(DEFAULT_PROFILE), "{kind:?}");
            assert_eq!(name(&p(kind, ""), true, true), None, "privileged, {kind:?}");
        }
        assert_eq!(name(&p(ProfileKind::Unconfined, ""), false, true), None);
    }

    #[test]
    fn with_apparmor_localhost_is_the_named_profile_even_privileged() {
        let k8s = p(ProfileKind::Localhost, "localhost/k8s-nginx");
        assert_eq!(name(&k8s, false, true).as_deref(), Some("k8s-nginx"));
        assert_eq!(name(&k8s, true, true).as_deref(), Some("k8s-nginx"));
        let err = select(&p(ProfileKind::Localhost, ""), false, true).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let err = select(&p(ProfileKind::Unconfined, "x"), false, true).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn without_apparmor_only_localhost_is_refused() {
        for kind in [ProfileKind::Unset, ProfileKind::RuntimeDefault, ProfileKind::Unconfined] {
            assert_eq!(name(&p(kind, ""), false, false), None, "{kind:?}");
        }
        let err = select(&p(ProfileKind::Localhost, "k8s-nginx"), false, false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        let msg = err.to_string();
        assert!(msg.contains("\"k8s-nginx\"") && msg.contains("not enabled"), "{msg}");
    }

    #[test]
    fn the_default_profile_denies_what_reaches_the_host() {
        let text = default_profile("crius-test", &PolicyEnv::default());
        assert!(text.contains("profile crius-test flags=(attach_disconnected,mediate_deleted) {\n"), "{text}");
        for rule in [
            "  deny @{PROC}/sysrq-trigger rwklx,",
            "  deny @{PROC}/kcore rwklx,",
            "  deny mount,",
            "  deny /sys/firmware/** rwklx,",
            "  deny /sys/kernel/security/** rwklx,",
            "  deny @{PROC}/sys/[^k]** w,",
            "  signal (send,receive) peer=crius-test,",
            "  ptrace (trace,read,tracedby,readby) peer=crius-test,",
            "  signal (receive) peer=runc,",
        ] {
            assert!(text.lines().any(|l| l.starts_with(rule)), "missing {rule:?} in\n{text}");
        }
        // Without the distribution's tunables the profile defines @{PROC} itself.
        assert!(text.contains("@{PROC}=/proc/\n") && !text.contains("#include"), "{text}");
        assert!(text.trim_end().ends_with("\n}"));
    }

    #[test]
    fn the_default_profile_uses_the_node_policy_where_it_has_it() {
        let env = PolicyEnv {
            abi_3: true,
            tunables_global: true,
            abstractions_base: true,
            daemon_profile: "crius daemon".into(),
        };
        let text = default_profile(DEFAULT_PROFILE, &env);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"abi <abi/3.0>,"));
        assert!(lines.contains(&"#include <tunables/global>"));
        assert!(lines.contains(&"  #include <abstractions/base>"));
        assert!(lines.contains(&"  signal (receive) peer=\"crius daemon\","), "{text}");
        assert!(!text.contains("@{PROC}=/proc/"));
        // An unconfined daemon adds no second rule for itself.
        let plain = default_profile(DEFAULT_PROFILE, &PolicyEnv::default());
        assert_eq!(plain.matches("peer=unconfined").count(), 1);
    }
}
