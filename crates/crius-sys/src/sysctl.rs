//! Writing sysctls. Namespaced sysctls (net.*, the IPC ones, kernel.hostname) act on the
//! namespaces of the process that opens the file, so the pod init writes them for its pod.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use crate::error::{Error, Result};

pub const PROC_SYS: &str = "/proc/sys";

/// The file for a sysctl given as a path under /proc/sys ("net/ipv4/ip_forward"; dots stay part
/// of a component, as in "net/ipv4/conf/eth0.100/forwarding").
pub fn sysctl_file(path: &str) -> Result<PathBuf> {
    let invalid = |reason| Error::InvalidSysctl { path: path.to_string(), reason };
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return Err(invalid("empty"));
    }
    for component in rel.split('/') {
        match component {
            "" => return Err(invalid("empty path component")),
            "." | ".." => return Err(invalid("'.' and '..' are not allowed")),
            c if c.chars().any(|ch| ch.is_whitespace() || ch.is_control()) => {
                return Err(invalid("whitespace or control characters"));
            }
            _ => {}
        }
    }
    Ok(PathBuf::from(PROC_SYS).join(rel))
}

/// Writes `value` to the sysctl at `path` (under /proc/sys).
pub fn write_sysctl(path: &str, value: &str) -> Result<()> {
    let file = sysctl_file(path)?;
    let mut f = OpenOptions::new().write(true).open(&file).map_err(|e| Error::io("opening sysctl", &file, e))?;
    // One write: procfs parses each write separately.
    f.write_all(value.as_bytes()).map_err(|e| Error::io("writing sysctl", &file, e))
}

/// Reads the sysctl at `path`, without the trailing newline.
pub fn read_sysctl(path: &str) -> Result<String> {
    let file = sysctl_file(path)?;
    let text = std::fs::read_to_string(&file).map_err(|e| Error::io("reading sysctl", &file, e))?;
    Ok(text.trim_end_matches('\n').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_proc_sys() {
        assert_eq!(sysctl_file("net/ipv4/ip_forward").unwrap(), PathBuf::from("/proc/sys/net/ipv4/ip_forward"));
        assert_eq!(
            sysctl_file("/net/ipv4/conf/eth0.100/forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
        for bad in ["", "/", "net//x", "net/../x", "./net", "net/ipv4 /x", "net/\n"] {
            assert!(sysctl_file(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_a_sysctl() {
        assert!(!read_sysctl("kernel/ostype").unwrap().is_empty());
        assert!(read_sysctl("kernel/no_such_sysctl").unwrap_err().is_not_found());
    }
}
