//! The verbose PodSandboxStatus info (key "info", a JSON document).

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::error::{Error, Result};

/// Where a pod's namespaces are pinned; None where the pod uses the host's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodNamespaces {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    pub pid: Option<PathBuf>,
}

/// What the daemon reports of a pod in verbose status.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// The pod init's pid (None when absent, null or 0, as for a stopped pod).
    pub pid: Option<i32>,
    pub monitor_pid: Option<i32>,
    pub namespaces: PodNamespaces,
    /// The whole document, for fields the harness does not model.
    pub raw: Value,
}

fn pid_field(v: &Value, key: &str) -> Option<i32> {
    v.get(key).and_then(Value::as_i64).filter(|p| *p > 0).and_then(|p| i32::try_from(p).ok())
}

fn path_field(v: Option<&Value>, key: &str) -> Option<PathBuf> {
    v?.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(PathBuf::from)
}

impl PodInfo {
    pub fn parse(json: &str) -> Result<PodInfo> {
        let raw: Value =
            serde_json::from_str(json).map_err(|e| Error::context(format!("verbose info is not JSON: {json}"), e))?;
        let ns = raw.get("namespaces");
        Ok(PodInfo {
            pid: pid_field(&raw, "pid"),
            monitor_pid: pid_field(&raw, "monitorPid"),
            namespaces: PodNamespaces {
                net: path_field(ns, "net"),
                ipc: path_field(ns, "ipc"),
                uts: path_field(ns, "uts"),
                pid: path_field(ns, "pid"),
            },
            raw,
        })
    }

    /// From the `info` map of a verbose PodSandboxStatusResponse.
    pub fn from_info_map(info: &HashMap<String, String>) -> Result<PodInfo> {
        let json = info.get("info").ok_or_else(|| {
            Error::msg(format!("verbose status has no \"info\" key (keys: {:?})", info.keys().collect::<Vec<_>>()))
        })?;
        PodInfo::parse(json)
    }

    /// The init's pid, or a panic that says the info had none.
    pub fn init_pid(&self) -> i32 {
        self.pid.unwrap_or_else(|| panic!("verbose info has no pod init pid: {}", self.raw))
    }

    pub fn monitor(&self) -> i32 {
        self.monitor_pid.unwrap_or_else(|| panic!("verbose info has no monitorPid: {}", self.raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info() {
        let i = PodInfo::parse(
            r#"{"pid": 42, "monitorPid": 41, "namespaces": {"net": "/run/crius/ns/net/x", "ipc": null, "uts": "/u", "pid": ""}, "config": {}, "timeline": []}"#,
        )
        .unwrap();
        assert_eq!(i.pid, Some(42));
        assert_eq!(i.monitor_pid, Some(41));
        assert_eq!(i.namespaces.net, Some(PathBuf::from("/run/crius/ns/net/x")));
        assert_eq!(i.namespaces.ipc, None);
        assert_eq!(i.namespaces.pid, None);
        assert_eq!(PodInfo::parse(r#"{"pid": 0}"#).unwrap().pid, None);
    }
}
