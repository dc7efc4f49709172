//! The on-disk cache of each pod's CNI ADD: the config, arguments and result it used, so that
//! DEL (and CHECK) after a restart, or after the config changed, get the same ones.
//!
//! The entry is written before ADD runs (with no result yet): a crash in the middle of ADD
//! leaves enough for the next teardown to DEL with the right config.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::args::CapabilityArgs;
use crate::error::NetError;

const KIND: &str = "crius-cni-cache-v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    pub kind: String,
    pub pod_id: String,
    pub network_name: String,
    pub if_name: String,
    /// The network config as read when ADD ran.
    pub config: Value,
    pub cni_args: String,
    pub capability_args: CapabilityArgs,
    pub netns: String,
    /// The final result of ADD; None while ADD is under way (or was when crius stopped).
    #[serde(default)]
    pub result: Option<Value>,
}

impl CacheEntry {
    pub fn new(
        pod_id: &str,
        network_name: &str,
        if_name: &str,
        config: Value,
        cni_args: String,
        caps: CapabilityArgs,
        netns: &str,
    ) -> Self {
        CacheEntry {
            kind: KIND.to_string(),
            pod_id: pod_id.to_string(),
            network_name: network_name.to_string(),
            if_name: if_name.to_string(),
            config,
            cni_args,
            capability_args: caps,
            netns: netns.to_string(),
            result: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ResultCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, pod_id: &str) -> Result<PathBuf, NetError> {
        // The id becomes a file name: nothing that could leave the directory.
        let ok = !pod_id.is_empty()
            && pod_id.len() <= 128
            && pod_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !pod_id.starts_with('.');
        if !ok {
            return Err(NetError::InvalidRequest {
                what: format!("pod sandbox id {pod_id:?}"),
                reason: "must be 1 to 128 letters, digits, '-', '_' or '.'".into(),
            });
        }
        Ok(self.dir.join(format!("{pod_id}.json")))
    }

    pub fn load(&self, pod_id: &str) -> Result<Option<CacheEntry>, NetError> {
        let path = self.path(pod_id)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(NetError::Cache { path, source }),
        };
        let entry: CacheEntry = serde_json::from_slice(&bytes)
            .map_err(|e| NetError::BadCache { path: path.clone(), reason: e.to_string() })?;
        if entry.kind != KIND {
            return Err(NetError::BadCache { path, reason: format!("kind {:?} is not {KIND}", entry.kind) });
        }
        Ok(Some(entry))
    }

    /// Atomically: temp file, fsync, rename, fsync of the directory.
    pub fn store(&self, entry: &CacheEntry) -> Result<(), NetError> {
        let path = self.path(&entry.pod_id)?;
        let err = |source| NetError::Cache { path: path.clone(), source };
        fs::create_dir_all(&self.dir).map_err(err)?;
        let tmp = self.dir.join(format!(".{}.tmp", entry.pod_id));
        let bytes = serde_json::to_vec_pretty(entry).map_err(|e| err(e.into()))?;
        let mut file = File::create(&tmp).map_err(err)?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(err)?;
        fs::rename(&tmp, &path).map_err(err)?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(err)
    }

    /// The pods with a cached entry (a write a crash cut short, `.<id>.tmp`, is none).
    pub fn pod_ids(&self) -> Result<Vec<String>, NetError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(NetError::Cache { path: self.dir.clone(), source }),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
            .filter(|id| self.path(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Idempotent.
    pub fn delete(&self, pod_id: &str) -> Result<(), NetError> {
        let path = self.path(pod_id)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(NetError::Cache { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn store_load_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path().join("cni/results"));
        assert_eq!(cache.load("abc").unwrap(), None);
        let mut entry = CacheEntry::new(
            "abc",
            "net",
            "eth0",
            json!({"name": "net"}),
            "A=1".into(),
            CapabilityArgs::default(),
            "/x",
        );
        cache.store(&entry).unwrap();
        assert_eq!(cache.load("abc").unwrap().unwrap(), entry);
        entry.result = Some(json!({"cniVersion": "1.0.0"}));
        cache.store(&entry).unwrap();
        assert_eq!(cache.load("abc").unwrap().unwrap().result, entry.result);
        cache.delete("abc").unwrap();
        cache.delete("abc").unwrap();
        assert_eq!(cache.load("abc").unwrap(), None);
    }

    #[test]
    fn ids_that_are_not_file_names_are_refused() {
        let cache = ResultCache::new("/nonexistent");
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(matches!(cache.load(bad), Err(NetError::InvalidRequest { .. })), "{bad}");
        }
    }

    #[test]
    fn a_foreign_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.json"), r#"{"kind":"other"}"#).unwrap();
        let err = ResultCache::new(dir.path()).load("p").unwrap_err();
        assert!(matches!(err, NetError::BadCache { .. }), "{err:?}");
    }
}
