//! The domain over an in-memory store: lookup by every spelling, removal semantics, nil status.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::*;
use crate::error::{Error, Result};
use crate::ports::image::ImageStore;

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:abbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const M: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

#[derive(Default)]
struct MemStore {
    images: Mutex<Vec<ImageRecord>>,
    log: Mutex<Vec<String>>,
}

fn record(id: &str, tags: &[&str]) -> ImageRecord {
    ImageRecord {
        id: Digest::parse(id).unwrap(),
        repo_tags: tags.iter().map(|s| s.to_string()).collect(),
        repo_digests: vec![format!("docker.io/library/busybox@{M}")],
        manifest_digest: Digest::parse(M).unwrap(),
        size: 1,
        pinned: false,
        config: ImageConfigInfo { user: "1000:1000".into(), ..Default::default() },
        layers: vec![],
    }
}

impl ImageStore for MemStore {
    fn pull(&self, reference: &ImageRef, _auth: &RegistryAuth) -> Result<ImageRecord> {
        self.log.lock().unwrap().push(format!("pull {reference}"));
        if reference.repository == "library/missing" {
            return Err(Error::not_found("no such image"));
        }
        Ok(record(A, &[]))
    }
    fn list(&self) -> Result<Vec<ImageRecord>> {
        Ok(self.images.lock().unwrap().clone())
    }
    fn config_json(&self, _id: &Digest) -> Result<Vec<u8>> {
        Ok(b"{\"config\":{\"User\":\"1000\"}}".to_vec())
    }
    fn untag(&self, id: &Digest, name: &str) -> Result<()> {
        self.log.lock().unwrap().push(format!("untag {} {name}", &id.hex()[..4]));
        for img in self.images.lock().unwrap().iter_mut().filter(|i| &i.id == id) {
            img.repo_tags.retain(|t| t != name);
        }
        Ok(())
    }
    fn remove(&self, id: &Digest) -> Result<()> {
        self.log.lock().unwrap().push(format!("remove {}", &id.hex()[..4]));
        self.images.lock().unwrap().retain(|i| &i.id != id);
        Ok(())
    }
    fn usage(&self) -> Result<FsUsage> {
        Ok(FsUsage::default())
    }
    fn hold_layers(&self, _holder: &str, _id: &Digest) -> Result<Vec<PathBuf>> {
        Ok(vec![])
    }
    fn release_layers(&self, _holder: &str) -> Result<()> {
        Ok(())
    }
    fn import_archive(&self, archive: &std::path::Path) -> Result<Vec<ImageRecord>> {
        self.log.lock().unwrap().push(format!("import {}", archive.display()));
        Ok(vec![record(B, &["example.test/imported:v1"])])
    }
}

fn service() -> (ImageService, Arc<MemStore>) {
    let store = Arc::new(MemStore::default());
    store.images.lock().unwrap().push(record(A, &["docker.io/library/busybox:latest", "docker.io/library/busybox:1"]));
    store.images.lock().unwrap().push(record(B, &["127.0.0.1:5000/app:v1"]));
    (ImageService::new(store.clone()), store)
}

#[test]
fn status_finds_every_spelling_and_unknown_is_none() {
    let (svc, _) = service();
    for spec in [
        A,
        &A[7..],
        &A[7..20],
        "busybox",
        "busybox:1",
        "docker.io/library/busybox",
        &format!("busybox@{M}"),
        &format!("busybox:9@{M}"),
    ] {
        let v = svc.status(spec).unwrap().unwrap_or_else(|| panic!("{spec} not found"));
        assert_eq!(v.record.id.as_str(), A, "{spec}");
        assert_eq!(v.user, ImageUser::Uid(1000));
    }
    assert!(svc.status("busybox:2").unwrap().is_none());
    assert!(svc.status("nothing-here").unwrap().is_none());
    assert!(svc.status("").is_err());
    // A short hex name is a repository name, not an id prefix.
    assert!(svc.status("aaaa").unwrap().is_none());
}

#[test]
fn ambiguous_id_prefix_is_refused() {
    let (svc, _) = service();
    assert!(svc.status("sha256:a").is_ok(), "a 1-character prefix is no id prefix at all");
    let store = Arc::new(MemStore::default());
    store.images.lock().unwrap().push(record(A, &[]));
    store.images.lock().unwrap().push(record(&format!("sha256:{}b", &A[7..70]), &[]));
    let svc = ImageService::new(store);
    let err = svc.status(&A[7..30]).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
}

#[test]
fn removing_one_of_several_tags_removes_only_the_tag() {
    let (svc, store) = service();
    svc.remove("busybox:1").unwrap();
    assert_eq!(store.log.lock().unwrap().as_slice(), ["untag aaaa docker.io/library/busybox:1"]);
    // The last tag takes the image with it.
    svc.remove("busybox").unwrap();
    assert_eq!(store.log.lock().unwrap().last().unwrap(), "remove aaaa");
    // Idempotent.
    svc.remove("busybox").unwrap();
    svc.remove(A).unwrap();
    assert_eq!(store.log.lock().unwrap().len(), 2);
}

#[test]
fn removing_by_id_or_digest_removes_the_image() {
    let (svc, store) = service();
    svc.remove(&format!("docker.io/library/busybox@{M}")).unwrap();
    assert_eq!(store.log.lock().unwrap().as_slice(), ["remove aaaa"]);
    svc.remove(&B[7..]).unwrap();
    assert_eq!(store.log.lock().unwrap().last().unwrap(), "remove abbb");
    assert!(svc.list(None).unwrap().is_empty());
}

#[test]
fn list_filters_by_reference() {
    let (svc, _) = service();
    assert_eq!(svc.list(None).unwrap().len(), 2);
    assert_eq!(svc.list(Some("")).unwrap().len(), 2);
    let only = svc.list(Some("127.0.0.1:5000/app:v1")).unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].id.as_str(), B);
    assert!(svc.list(Some("127.0.0.1:5000/app:v2")).unwrap().is_empty());
}

#[test]
fn pull_normalises_and_keeps_the_error_kind() {
    let (svc, store) = service();
    svc.pull("busybox", &RegistryAuth::default()).unwrap();
    assert_eq!(store.log.lock().unwrap().as_slice(), ["pull docker.io/library/busybox:latest"]);
    let err = svc.pull("missing", &RegistryAuth::default()).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::NotFound);
    assert!(err.to_string().contains("docker.io/library/missing:latest"), "{err}");
    assert_eq!(svc.pull("Bad Name", &RegistryAuth::default()).unwrap_err().kind(), crate::ErrorKind::InvalidArgument);
}

#[test]
fn verbose_info_has_the_config() {
    let (svc, _) = service();
    let v = svc.status("busybox").unwrap().unwrap();
    let info: serde_json::Value = serde_json::from_str(&svc.verbose_info(&v).unwrap()).unwrap();
    assert_eq!(info["config"]["config"]["User"], "1000");
    assert_eq!(info["id"], A);
}

#[test]
fn import_wants_an_absolute_path_to_a_file() {
    let (svc, store) = service();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let archive = dir.join("image.tar");
    std::fs::write(&archive, b"not checked by the domain").unwrap();

    let err = svc.import(std::path::Path::new("image.tar")).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("absolute"), "{err}");
    let err = svc.import(&dir.join("missing.tar")).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::NotFound, "{err}");
    let err = svc.import(&dir).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(store.log.lock().unwrap().is_empty(), "nothing reached the store");

    let got = svc.import(&archive).unwrap();
    assert_eq!(got[0].repo_tags, ["example.test/imported:v1"]);
    assert_eq!(store.log.lock().unwrap().as_slice(), [format!("import {}", archive.display())]);
}
