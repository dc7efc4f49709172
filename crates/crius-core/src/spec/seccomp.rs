//! Which seccomp filter a container gets, following containerd's `generateSeccompSpecOpts`:
//! none for a privileged container; with seccomp unavailable, an error for any profile but
//! Unconfined; Unset and Unconfined get none (containerd's `unset_seccomp_profile` defaults to
//! empty; the kubelet sends RuntimeDefault explicitly where `seccompDefault` is on);
//! RuntimeDefault the built-in profile; Localhost the profile file the caller read.

use std::collections::BTreeSet;

use oci_spec::runtime::LinuxSeccomp;

use crate::container::model::{ProfileKind, SecurityProfile};
use crate::error::{Error, ErrorKind, Result};

use super::HostCaps;
use super::seccomp_default::default_profile;

/// The filter for a container, or None for none.
pub fn seccomp(
    profile: &SecurityProfile,
    privileged: bool,
    capabilities: &BTreeSet<String>,
    localhost_json: Option<&str>,
    host: &HostCaps,
    arch: &str,
) -> Result<Option<LinuxSeccomp>> {
    if privileged {
        return Ok(None);
    }
    if profile.kind != ProfileKind::Localhost && !profile.localhost_ref.is_empty() {
        return Err(Error::invalid(format!(
            "seccomp: localhost_ref {:?} is only allowed with the Localhost profile type",
            profile.localhost_ref
        )));
    }
    if !host.seccomp {
        return match profile.kind {
            ProfileKind::Unset | ProfileKind::Unconfined => Ok(None),
            kind => Err(Error::precondition(format!(
                "seccomp profile {kind:?} was asked for, but this host's kernel has no seccomp support; \
                 use Unconfined or enable seccomp"
            ))),
        };
    }
    match profile.kind {
        ProfileKind::Unset | ProfileKind::Unconfined => Ok(None),
        ProfileKind::RuntimeDefault => default_profile(capabilities, arch).map(Some),
        ProfileKind::Localhost => {
            let path = profile.localhost_ref.trim_start_matches("localhost/");
            if path.is_empty() {
                return Err(Error::invalid("seccomp: the Localhost profile type needs localhost_ref (a profile file)"));
            }
            let json = localhost_json.ok_or_else(|| {
                Error::new(
                    ErrorKind::Internal,
                    format!("seccomp profile {path}: its contents were not passed to the spec builder"),
                )
            })?;
            parse_profile(path, json).map(Some)
        }
    }
}

/// A Localhost profile is an OCI `LinuxSeccomp` in JSON, as containerd's `seccomp.WithProfile`
/// reads it.
pub fn parse_profile(path: &str, json: &str) -> Result<LinuxSeccomp> {
    serde_json::from_str::<LinuxSeccomp>(json).map_err(|e| {
        Error::invalid(format!(
            "seccomp profile {path} is not a valid OCI seccomp profile (defaultAction, architectures, syscalls): {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSeccompAction;

    fn host(seccomp: bool) -> HostCaps {
        HostCaps { seccomp, ..Default::default() }
    }

    fn profile(kind: ProfileKind, r: &str) -> SecurityProfile {
        SecurityProfile { kind, localhost_ref: r.into() }
    }

    const JSON: &str = r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
        "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#;

    #[test]
    fn selection() {
        let caps = BTreeSet::new();
        let run = |p: SecurityProfile, privileged: bool, json: Option<&str>, available: bool| {
            seccomp(&p, privileged, &caps, json, &host(available), "x86_64")
        };
        assert!(run(profile(ProfileKind::Unset, ""), false, None, true).unwrap().is_none());
        assert!(run(profile(ProfileKind::Unconfined, ""), false, None, true).unwrap().is_none());
        assert!(run(profile(ProfileKind::RuntimeDefault, ""), true, None, true).unwrap().is_none());
        let d = run(profile(ProfileKind::RuntimeDefault, ""), false, None, true).unwrap().unwrap();
        assert_eq!(d.default_action(), LinuxSeccompAction::ScmpActErrno);
        let l = run(profile(ProfileKind::Localhost, "/p.json"), false, Some(JSON), true).unwrap().unwrap();
        assert_eq!(l.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(l.syscalls().as_ref().unwrap()[0].errno_ret(), Some(1));
    }

    #[test]
    fn errors() {
        let caps = BTreeSet::new();
        let run = |p: SecurityProfile, json: Option<&str>, available: bool| {
            seccomp(&p, false, &caps, json, &host(available), "x86_64")
        };
        let err = run(profile(ProfileKind::RuntimeDefault, ""), None, false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert!(err.to_string().contains("no seccomp support"), "{err}");
        assert!(run(profile(ProfileKind::Unconfined, ""), None, false).unwrap().is_none());
        let err = run(profile(ProfileKind::Localhost, "/bad.json"), Some("{nope"), true).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("/bad.json"), "{err}");
        let err = run(profile(ProfileKind::Localhost, ""), Some(JSON), true).unwrap_err();
        assert!(err.to_string().contains("localhost_ref"), "{err}");
        let err = run(profile(ProfileKind::RuntimeDefault, "/x"), None, true).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(run(profile(ProfileKind::Localhost, "/p"), None, true).unwrap_err().kind(), ErrorKind::Internal);
    }
}
