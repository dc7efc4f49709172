//! Device nodes and the device cgroup: deny everything, allow the standard set runc creates
//! (null, zero, full, random, urandom, tty, ptmx, pts) and mknod, then each device with its
//! permissions; a privileged container may use every device.

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

use super::HostDevice;

/// The standard allowed devices (runc's `AllowedDevices`, which containerd relies on):
/// (type, major, minor, access); None is a wildcard.
const STANDARD_ALLOWED: &[(LinuxDeviceType, Option<i64>, Option<i64>, &str)] = &[
    // mknod of any device; using one still needs its own rule.
    (LinuxDeviceType::C, None, None, "m"),
    (LinuxDeviceType::B, None, None, "m"),
    (LinuxDeviceType::C, Some(1), Some(3), "rwm"), // /dev/null
    (LinuxDeviceType::C, Some(1), Some(8), "rwm"), // /dev/random
    (LinuxDeviceType::C, Some(1), Some(7), "rwm"), // /dev/full
    (LinuxDeviceType::C, Some(5), Some(0), "rwm"), // /dev/tty
    (LinuxDeviceType::C, Some(1), Some(5), "rwm"), // /dev/zero
    (LinuxDeviceType::C, Some(1), Some(9), "rwm"), // /dev/urandom
    (LinuxDeviceType::C, Some(136), None, "rwm"),  // /dev/pts/*
    (LinuxDeviceType::C, Some(5), Some(2), "rwm"), // /dev/ptmx
];

/// The device nodes to create and the device cgroup rules.
pub fn devices(devices: &[HostDevice], privileged: bool) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>)> {
    let mut rules = Vec::new();
    if privileged {
        rules.push(rule(true, None, None, None, "rwm"));
    } else {
        rules.push(rule(false, None, None, None, "rwm"));
        for (typ, major, minor, access) in STANDARD_ALLOWED {
            rules.push(rule(true, Some(*typ), *major, *minor, access));
        }
    }
    let mut nodes: Vec<LinuxDevice> = Vec::with_capacity(devices.len());
    for (i, d) in devices.iter().enumerate() {
        if !d.container_path.starts_with('/') {
            return Err(Error::invalid(format!(
                "devices[{i}].container_path {:?} must be an absolute path",
                d.container_path
            )));
        }
        let typ = match d.kind {
            'c' | 'u' => LinuxDeviceType::C,
            'b' => LinuxDeviceType::B,
            'p' => LinuxDeviceType::P,
            other => {
                return Err(Error::invalid(format!(
                    "devices[{i}] {}: {other:?} is not a character or block device",
                    d.host_path
                )));
            }
        };
        let access = permissions(i, &d.permissions)?;
        // A later device at the same path wins, so a CRI device can refine a host device of a
        // privileged container.
        nodes.retain(|n| n.path().to_str() != Some(d.container_path.as_str()));
        let mut node = LinuxDevice::default();
        node.set_path(d.container_path.clone().into())
            .set_typ(typ)
            .set_major(d.major)
            .set_minor(d.minor)
            // Permission bits only: the type is in `type`.
            .set_file_mode(Some(d.file_mode & 0o7777))
            .set_uid(Some(d.uid))
            .set_gid(Some(d.gid));
        nodes.push(node);
        if !privileged && typ != LinuxDeviceType::P {
            rules.push(rule(true, Some(typ), Some(d.major), Some(d.minor), &access));
        }
    }
    Ok((nodes, rules))
}

/// Cgroup permissions: any of r, w, m; empty means all, as Docker's `--device` defaults.
fn permissions(i: usize, p: &str) -> Result<String> {
    if p.is_empty() {
        return Ok("rwm".into());
    }
    if p.chars().any(|c| !matches!(c, 'r' | 'w' | 'm')) {
        return Err(Error::invalid(format!(
            "devices[{i}].permissions {p:?}: only r (read), w (write) and m (mknod) are allowed"
        )));
    }
    // Canonical order, each once.
    Ok(['r', 'w', 'm'].iter().filter(|c| p.contains(**c)).collect())
}

fn rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow).set_typ(typ).set_major(major).set_minor(minor).set_access(Some(access.to_string()));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(path: &str, kind: char, major: i64, minor: i64, perms: &str) -> HostDevice {
        HostDevice {
            host_path: path.into(),
            container_path: path.into(),
            kind,
            major,
            minor,
            file_mode: 0o20666,
            uid: 0,
            gid: 6,
            permissions: perms.into(),
        }
    }

    #[test]
    fn standard_rules_then_devices() {
        let (nodes, rules) = devices(&[dev("/dev/fuse", 'c', 10, 229, "mrw")], false).unwrap();
        assert!(!rules[0].allow() && rules[0].typ().is_none() && rules[0].access().as_deref() == Some("rwm"));
        assert_eq!(rules.len(), 1 + STANDARD_ALLOWED.len() + 1);
        let last = rules.last().unwrap();
        assert_eq!(
            (last.allow(), last.typ(), last.major(), last.minor()),
            (true, Some(LinuxDeviceType::C), Some(10), Some(229))
        );
        assert_eq!(last.access().as_deref(), Some("rwm"));
        assert_eq!(nodes.len(), 1);
        assert_eq!((nodes[0].file_mode(), nodes[0].gid()), (Some(0o666), Some(6)));
    }

    #[test]
    fn privileged_allows_all() {
        let host = [dev("/dev/sda", 'b', 8, 0, "rwm"), dev("/dev/fuse", 'c', 10, 229, "rwm")];
        let (nodes, rules) = devices(&host, true).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(rules.len(), 1);
        assert!(rules[0].allow() && rules[0].typ().is_none());
    }

    #[test]
    fn bad_devices_are_invalid() {
        let err = devices(&[dev("/dev/x", 'c', 1, 1, "rx")], false).unwrap_err();
        assert!(err.to_string().contains("devices[0].permissions"), "{err}");
        let err = devices(&[dev("/dev/x", 'd', 1, 1, "r")], false).unwrap_err();
        assert!(err.to_string().contains("not a character or block device"), "{err}");
        let mut d = dev("/dev/x", 'c', 1, 1, "r");
        d.container_path = "dev/x".into();
        assert!(devices(&[d], false).unwrap_err().to_string().contains("container_path"));
    }

    #[test]
    fn permissions_are_canonical() {
        assert_eq!(permissions(0, "").unwrap(), "rwm");
        assert_eq!(permissions(0, "wr").unwrap(), "rw");
        assert_eq!(permissions(0, "m").unwrap(), "m");
    }
}
