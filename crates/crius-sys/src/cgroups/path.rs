//! A cgroup's path (relative to each hierarchy's root) from a parent and a name, the way runc and
//! the kubelet name them for each driver.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

/// How cgroup parents are named (the kubelet's `cgroupDriver`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CgroupDriver {
    /// Plain paths: parent "/kubepods/besteffort/podX", the pod's cgroup "<parent>/<name>".
    #[default]
    Cgroupfs,
    /// systemd slices: parent "kubepods-besteffort-podX.slice", the pod's cgroup
    /// "<expanded slice path>/crius-<name>.scope".
    Systemd,
}

impl CgroupDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupDriver::Cgroupfs => "cgroupfs",
            CgroupDriver::Systemd => "systemd",
        }
    }
}

impl fmt::Display for CgroupDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CgroupDriver {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cgroupfs" => Ok(CgroupDriver::Cgroupfs),
            "systemd" => Ok(CgroupDriver::Systemd),
            other => Err(Error::UnknownCgroupDriver(other.to_string())),
        }
    }
}

/// Whether systemd is the init system here (what sd_booted(3) checks).
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The path of the cgroup `name` under `parent`, relative to each hierarchy's root (starts with
/// '/'). `systemd_running` is passed in (see [`systemd_running`]) so this stays a pure function.
pub fn cgroup_path(driver: CgroupDriver, parent: &str, name: &str, systemd_running: bool) -> Result<String> {
    validate_name(name)?;
    match driver {
        CgroupDriver::Cgroupfs => {
            validate_cgroup_path(parent)?;
            let parent = parent.trim_end_matches('/');
            Ok(format!("{parent}/{name}"))
        }
        CgroupDriver::Systemd => {
            if !systemd_running {
                return Err(Error::SystemdNotRunning);
            }
            let parent = expand_slice(parent)?;
            let parent = parent.trim_end_matches('/');
            Ok(format!("{parent}/crius-{name}.scope"))
        }
    }
}

/// Checks a cgroupfs path: absolute, no '.' or '..' component, no empty component inside, no
/// control characters.
pub fn validate_cgroup_path(path: &str) -> Result<()> {
    let invalid = |reason: &str| Error::InvalidCgroupParent { parent: path.to_string(), reason: reason.to_string() };
    if !path.starts_with('/') {
        return Err(invalid("a cgroupfs parent must be an absolute path such as /kubepods/besteffort/podX"));
    }
    let inner = path.trim_start_matches('/').trim_end_matches('/');
    if inner.is_empty() {
        return Ok(());
    }
    for component in inner.split('/') {
        match component {
            "" => return Err(invalid("empty path component")),
            "." | ".." => return Err(invalid("'.' and '..' are not allowed")),
            c if c.chars().any(char::is_control) => return Err(invalid("control characters are not allowed")),
            _ => {}
        }
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidCgroupName { name: name.to_string(), reason };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name == "." || name == ".." || name.contains('/') || name.chars().any(char::is_control) {
        return Err(invalid("must be one path component"));
    }
    Ok(())
}

/// Expands a systemd slice name into its path: "a-b-c.slice" is
/// "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" is the root. Same rules as runc's ExpandSlice.
pub fn expand_slice(slice: &str) -> Result<String> {
    let invalid = |reason: &str| Error::InvalidCgroupParent {
        parent: slice.to_string(),
        reason: format!("{reason} (the systemd driver wants a slice name such as kubepods-besteffort-podX.slice)"),
    };
    const SUFFIX: &str = ".slice";
    let Some(stem) = slice.strip_suffix(SUFFIX) else {
        return Err(invalid("does not end in .slice"));
    };
    if stem.is_empty() {
        return Err(invalid("empty slice name"));
    }
    if slice.contains('/') {
        return Err(invalid("a slice name cannot contain '/'"));
    }
    if stem == "-" {
        return Ok("/".to_string());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for component in stem.split('-') {
        if component.is_empty() {
            return Err(invalid("empty component between dashes"));
        }
        if component.chars().any(char::is_control) || component == "." || component == ".." {
            return Err(invalid("invalid characters"));
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(component);
        path.push_str(SUFFIX);
        prefix.push_str(component);
        prefix.push('-');
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroupfs_paths() {
        let p = cgroup_path(CgroupDriver::Cgroupfs, "/kubepods/besteffort/podX", "ID", false).unwrap();
        assert_eq!(p, "/kubepods/besteffort/podX/ID");
        assert_eq!(cgroup_path(CgroupDriver::Cgroupfs, "/kubepods/", "ID", false).unwrap(), "/kubepods/ID");
        assert_eq!(cgroup_path(CgroupDriver::Cgroupfs, "/", "ID", false).unwrap(), "/ID");
    }

    #[test]
    fn cgroupfs_rejects_relative_and_dotdot() {
        for bad in ["kubepods", "/kubepods/../x", "/a//b", "/./a", "", "/a/\n"] {
            let err = cgroup_path(CgroupDriver::Cgroupfs, bad, "ID", false).unwrap_err();
            assert!(matches!(err, Error::InvalidCgroupParent { .. }), "{bad:?}: {err}");
        }
        for bad_name in ["", "..", "a/b"] {
            assert!(matches!(
                cgroup_path(CgroupDriver::Cgroupfs, "/k", bad_name, false),
                Err(Error::InvalidCgroupName { .. })
            ));
        }
    }

    #[test]
    fn systemd_paths() {
        let p = cgroup_path(CgroupDriver::Systemd, "kubepods-besteffort-podX.slice", "ID", true).unwrap();
        assert_eq!(p, "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podX.slice/crius-ID.scope");
        assert_eq!(cgroup_path(CgroupDriver::Systemd, "-.slice", "ID", true).unwrap(), "/crius-ID.scope");
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
    }

    #[test]
    fn systemd_rejects_bad_slices() {
        for bad in ["kubepods", ".slice", "a--b.slice", "-a.slice", "a-.slice", "/kubepods.slice", "a/b.slice"] {
            let err = expand_slice(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidCgroupParent { .. }), "{bad:?}: {err}");
        }
    }

    #[test]
    fn systemd_driver_needs_systemd() {
        let err = cgroup_path(CgroupDriver::Systemd, "kubepods.slice", "ID", false).unwrap_err();
        assert!(matches!(err, Error::SystemdNotRunning));
        let msg = err.to_string();
        assert!(msg.contains("not running") && msg.contains("cgroup_driver = \"cgroupfs\""), "{msg}");
    }

    #[test]
    fn driver_names_round_trip() {
        for d in [CgroupDriver::Cgroupfs, CgroupDriver::Systemd] {
            assert_eq!(d.to_string().parse::<CgroupDriver>().unwrap(), d);
        }
        assert!("cgroupv1".parse::<CgroupDriver>().is_err());
    }
}
