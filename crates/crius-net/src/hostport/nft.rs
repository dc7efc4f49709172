//! Running `nft`: scripts in through stdin (one transaction each), tables read back as JSON.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::plan::Family;
use super::render::POD_CHAIN_PREFIX;
use crate::error::NetError;

#[derive(Debug, Clone)]
pub struct Nft {
    program: PathBuf,
}

impl Default for Nft {
    fn default() -> Self {
        Nft { program: "nft".into() }
    }
}

fn is_missing(stderr: &str) -> bool {
    stderr.contains("No such file or directory")
}

impl Nft {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Nft { program: program.into() }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Result<Vec<u8>, String>, NetError> {
        let tool = |source| NetError::Tool { program: self.program.display().to_string(), source };
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(tool)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // Scripts are small (a few rules per pod): written whole before reading.
            pipe.write_all(text.as_bytes()).map_err(tool)?;
        }
        let out = child.wait_with_output().map_err(tool)?;
        if out.status.success() {
            Ok(Ok(out.stdout))
        } else {
            Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_string()))
        }
    }

    /// Applies `script` atomically: all of it or none.
    pub fn apply(&self, action: &str, script: &str) -> Result<(), NetError> {
        tracing::trace!(action, script, "nft -f -");
        self.run(&["-f", "-"], Some(script))?.map(|_| ()).map_err(|stderr| NetError::Nft {
            action: action.to_string(),
            stderr: format!("{stderr}\nscript:\n{script}"),
        })
    }

    /// The ids of pods that have a chain in the table; none when the table does not exist.
    pub fn pod_chains(&self, table: &str, family: Family) -> Result<Vec<String>, NetError> {
        let out = match self.run(&["-j", "list", "table", family.nft(), table], None)? {
            Ok(out) => out,
            Err(stderr) if is_missing(&stderr) => return Ok(Vec::new()),
            Err(stderr) => {
                return Err(NetError::Nft { action: format!("list table {} {table}", family.nft()), stderr });
            }
        };
        parse_pod_chains(&out)
    }

    /// Deletes the table of each family; a missing one is fine.
    pub fn delete_tables(&self, table: &str) -> Result<(), NetError> {
        for family in Family::ALL {
            match self.run(&["delete", "table", family.nft(), table], None)? {
                Ok(_) => {}
                Err(stderr) if is_missing(&stderr) => {}
                Err(stderr) => {
                    return Err(NetError::Nft { action: format!("delete table {} {table}", family.nft()), stderr });
                }
            }
        }
        Ok(())
    }

    /// `nft -j list table` of a family, for tests and diagnostics.
    pub fn list_json(&self, table: &str, family: Family) -> Result<Option<Value>, NetError> {
        match self.run(&["-j", "list", "table", family.nft(), table], None)? {
            Ok(out) => {
                serde_json::from_slice(&out).map(Some).map_err(|e| NetError::NftOutput { reason: e.to_string() })
            }
            Err(stderr) if is_missing(&stderr) => Ok(None),
            Err(stderr) => Err(NetError::Nft { action: format!("list table {} {table}", family.nft()), stderr }),
        }
    }
}

/// Chain names `pod-<id>` from `nft -j list table` output.
pub fn parse_pod_chains(json: &[u8]) -> Result<Vec<String>, NetError> {
    let value: Value = serde_json::from_slice(json).map_err(|e| NetError::NftOutput { reason: e.to_string() })?;
    let items =
        value["nftables"].as_array().ok_or_else(|| NetError::NftOutput { reason: "no \"nftables\" list".into() })?;
    let mut pods: Vec<String> = items
        .iter()
        .filter_map(|item| item.get("chain")?.get("name")?.as_str())
        .filter_map(|name| name.strip_prefix(POD_CHAIN_PREFIX))
        .map(str::to_string)
        .collect();
    pods.sort();
    pods.dedup();
    Ok(pods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_chains_from_json() {
        let json = br#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "ip", "name": "crius", "handle": 1}},
            {"chain": {"family": "ip", "table": "crius", "name": "prerouting", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
            {"chain": {"family": "ip", "table": "crius", "name": "hostports", "handle": 2}},
            {"chain": {"family": "ip", "table": "crius", "name": "pod-bbb", "handle": 3}},
            {"chain": {"family": "ip", "table": "crius", "name": "pod-aaa", "handle": 4}},
            {"rule": {"family": "ip", "table": "crius", "chain": "hostports", "handle": 5, "expr": [{"jump": {"target": "pod-aaa"}}]}}]}"#;
        assert_eq!(parse_pod_chains(json).unwrap(), ["aaa", "bbb"]);
        assert!(parse_pod_chains(b"{}").is_err());
        assert!(parse_pod_chains(b"nope").is_err());
    }
}
