//! index.json: every image (names, digests, config summary, layers) and every layer hold, kept
//! in memory and rewritten atomically on each change.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use crius_core::image::{Digest, ImageRecord};
use serde::{Deserialize, Serialize};

use crate::error::ImageError;

const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    pub version: u32,
    /// By image id.
    pub images: BTreeMap<Digest, ImageRecord>,
    /// By holder (a container id): layers kept for it. Kept in `holds/` (one file each), not
    /// in index.json; an index.json of an older crius may still hold them (read, then moved).
    #[serde(default, skip_serializing)]
    pub holds: BTreeMap<String, Hold>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub image: Digest,
    pub layers: Vec<Digest>,
}

impl Index {
    pub fn load(path: &Path) -> Result<Index, ImageError> {
        match fs::read(path) {
            Ok(bytes) => {
                let index: Index = serde_json::from_slice(&bytes)
                    .map_err(|source| ImageError::IndexCorrupt { path: path.into(), source })?;
                Ok(index)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index { version: VERSION, ..Default::default() }),
            Err(e) => Err(ImageError::io("reading", path)(e)),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut copy = self.clone();
        copy.version = VERSION;
        // Plain data of owned types: serialising cannot fail.
        serde_json::to_vec_pretty(&copy).unwrap_or_default()
    }

    /// Every layer an image or a hold uses.
    pub fn referenced_layers(&self) -> BTreeSet<Digest> {
        let mut out: BTreeSet<Digest> =
            self.images.values().flat_map(|i| i.layers.iter().map(|l| l.chain_id.clone())).collect();
        out.extend(self.holds.values().flat_map(|h| h.layers.iter().cloned()));
        out
    }

    /// Every blob an image uses (its config and manifest).
    pub fn referenced_blobs(&self) -> BTreeSet<Digest> {
        self.images.values().flat_map(|i| [i.id.clone(), i.manifest_digest.clone()]).collect()
    }

    pub fn by_manifest(&self, manifest: &Digest) -> Option<&ImageRecord> {
        self.images.values().find(|i| &i.manifest_digest == manifest)
    }

    /// Adds `record` (or merges names into the one there), moving `tag` off any other image.
    pub fn put(&mut self, mut record: ImageRecord, tag: Option<&str>, repo_digest: Option<&str>) -> ImageRecord {
        if let Some(tag) = tag {
            for other in self.images.values_mut().filter(|i| i.id != record.id) {
                other.repo_tags.retain(|t| t != tag);
            }
        }
        if let Some(existing) = self.images.get(&record.id) {
            let mut merged = existing.clone();
            merged.repo_tags.append(&mut record.repo_tags);
            merged.repo_digests.append(&mut record.repo_digests);
            record = merged;
        }
        if let Some(tag) = tag {
            record.repo_tags.push(tag.to_string());
        }
        if let Some(d) = repo_digest {
            record.repo_digests.push(d.to_string());
        }
        dedup(&mut record.repo_tags);
        dedup(&mut record.repo_digests);
        self.images.insert(record.id.clone(), record.clone());
        record
    }
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crius_core::image::{ImageConfigInfo, LayerInfo};

    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn rec(id: char, layers: &[char]) -> ImageRecord {
        ImageRecord {
            id: d(id),
            repo_tags: vec![],
            repo_digests: vec![],
            manifest_digest: d('f'),
            size: 0,
            pinned: false,
            config: ImageConfigInfo::default(),
            layers: layers
                .iter()
                .map(|c| LayerInfo { chain_id: d(*c), diff_id: d(*c), digest: d(*c), blob_size: 1, unpacked_size: 1 })
                .collect(),
        }
    }

    #[test]
    fn tags_move_and_names_merge() {
        let mut ix = Index::default();
        ix.put(rec('a', &['1']), Some("r/x:latest"), Some("r/x@sha256:1"));
        ix.put(rec('a', &['1']), Some("r/x:v1"), Some("r/x@sha256:1"));
        assert_eq!(ix.images[&d('a')].repo_tags, ["r/x:latest", "r/x:v1"]);
        assert_eq!(ix.images[&d('a')].repo_digests.len(), 1);
        ix.put(rec('b', &['1', '2']), Some("r/x:latest"), None);
        assert_eq!(ix.images[&d('a')].repo_tags, ["r/x:v1"], "the tag moved to the new image");
        assert_eq!(ix.images[&d('b')].repo_tags, ["r/x:latest"]);
        assert_eq!(ix.referenced_layers().len(), 2);
    }

    #[test]
    fn holds_keep_layers_referenced_and_round_trip() {
        let mut ix = Index::default();
        ix.put(rec('a', &['1', '2']), None, None);
        ix.holds.insert("ctr".into(), Hold { image: d('a'), layers: vec![d('1'), d('2')] });
        ix.images.clear();
        assert_eq!(ix.referenced_layers().len(), 2);
        assert!(ix.referenced_blobs().is_empty());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.json");
        fs::write(&p, ix.to_bytes()).unwrap();
        assert!(Index::load(&p).unwrap().holds.is_empty(), "holds live in holds/, not in index.json");
        // An index.json of an older crius with holds in it is still read.
        let old = serde_json::json!({ "version": 1, "images": {}, "holds": { "ctr": ix.holds["ctr"] } });
        fs::write(&p, serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(Index::load(&p).unwrap().holds, ix.holds);
        assert!(Index::load(&dir.path().join("none")).unwrap().images.is_empty());
        fs::write(&p, b"{").unwrap();
        assert!(matches!(Index::load(&p), Err(ImageError::IndexCorrupt { .. })));
    }
}
