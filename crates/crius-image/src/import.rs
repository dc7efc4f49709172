//! `crius image import FILE`: an OCI image layout or a docker-archive (`docker save`) tarball,
//! plain or gzip/zstd compressed, loaded into the store without any network. Layers are
//! verified and unpacked exactly as pulled ones are.

use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crius_core::image::{Digest, ImageRecord, ImageRef, LayerInfo};
use serde::Deserialize;

use crate::digest::{HashingReader, chain_ids, sha256_of};
use crate::error::{ImageError, UnpackError};
use crate::manifest::{self, ConfigFile, Descriptor, Manifest, Parsed};
use crate::platform;
use crate::pull::PinGuard;
use crate::store::ImageStoreImpl;
use crate::store::usage::du;
use crate::unpack::{Compression, paths::clean_name, unpack_layer};

/// One image of a docker-archive's manifest.json.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl ImageStoreImpl {
    /// Imports every image of the archive at `path`; returns them as recorded.
    pub fn import_archive(&self, path: &Path) -> Result<Vec<ImageRecord>, ImageError> {
        let result = self.import_uncollected(path);
        if result.is_err() {
            self.inner.collect_garbage();
        }
        result
    }

    fn import_uncollected(&self, path: &Path) -> Result<Vec<ImageRecord>, ImageError> {
        let bad = |why: String| ImageError::BadArchive { path: path.to_path_buf(), why };
        let work = self.inner.layout.work_dir("import")?;
        let root = work.path().join("archive");
        fs::create_dir(&root).map_err(ImageError::io("creating", &root))?;
        extract(path, &root).map_err(|e| bad(e.to_string()))?;
        let images = if root.join("oci-layout").is_file() {
            self.import_oci(&root, work.path(), path)?
        } else if root.join("manifest.json").is_file() {
            self.import_docker(&root, work.path(), path)?
        } else {
            return Err(bad("it has neither oci-layout nor manifest.json at its top".into()));
        };
        for img in &images {
            tracing::info!(id = %img.id, tags = ?img.repo_tags, archive = %path.display(), "image imported");
        }
        Ok(images)
    }

    fn import_oci(&self, root: &Path, work: &Path, archive: &Path) -> Result<Vec<ImageRecord>, ImageError> {
        let bad = |why: String| ImageError::BadArchive { path: archive.to_path_buf(), why };
        let read_blob = |d: &Digest| -> Result<Vec<u8>, ImageError> {
            let p = root.join("blobs/sha256").join(d.hex());
            let bytes = fs::read(&p).map_err(|e| bad(format!("blob {d}: {e}")))?;
            if &sha256_of(&bytes) != d {
                return Err(ImageError::DigestMismatch {
                    what: format!("blob {d} in {}", archive.display()),
                    expected: d.to_string(),
                    actual: sha256_of(&bytes).to_string(),
                });
            }
            Ok(bytes)
        };
        let index_bytes = fs::read(root.join("index.json")).map_err(|e| bad(format!("index.json: {e}")))?;
        let index = match manifest::parse(&index_bytes, Some(manifest::OCI_INDEX))
            .map_err(|e| bad(format!("index.json: {e}")))?
        {
            Parsed::Index(i) => i,
            Parsed::Manifest(_) => return Err(bad("index.json is a manifest, not an index".into())),
        };
        let mut out = Vec::new();
        for desc in &index.manifests {
            let name = desc
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| {
                    desc.annotations
                        .get("org.opencontainers.image.ref.name")
                        .filter(|n| n.contains('/') || n.contains('.'))
                })
                .and_then(|n| ImageRef::parse(n).ok());
            let digest = Digest::parse(&desc.digest).map_err(|e| bad(e.to_string()))?;
            let bytes = read_blob(&digest)?;
            let (manifest, manifest_bytes, manifest_digest) =
                match manifest::parse(&bytes, Some(&desc.media_type)).map_err(&bad)? {
                    Parsed::Manifest(m) => (m, bytes, digest.clone()),
                    Parsed::Index(ix) => {
                        let host = platform::host();
                        let entry =
                            platform::select(&ix.manifests, &host).ok_or_else(|| ImageError::NoMatchingPlatform {
                                reference: archive.display().to_string(),
                                platform: platform::name(&host),
                                available: platform::describe(&ix.manifests),
                            })?;
                        let d = Digest::parse(&entry.digest).map_err(|e| bad(e.to_string()))?;
                        let b = read_blob(&d)?;
                        match manifest::parse(&b, Some(&entry.media_type)).map_err(&bad)? {
                            Parsed::Manifest(m) => (m, b, d),
                            Parsed::Index(_) => return Err(bad("nested index".into())),
                        }
                    }
                };
            let config_digest = Digest::parse(&manifest.config.digest).map_err(|e| bad(e.to_string()))?;
            let config_bytes = read_blob(&config_digest)?;
            let layer_files: Vec<(PathBuf, Option<Digest>)> = manifest
                .layers
                .iter()
                .map(|l| {
                    let d = Digest::parse(&l.digest).map_err(|e| bad(e.to_string()))?;
                    Ok((root.join("blobs/sha256").join(d.hex()), Some(d)))
                })
                .collect::<Result<_, ImageError>>()?;
            let repo_digest = name.as_ref().map(|n| n.digested_name(&digest));
            let tag = name.as_ref().and_then(ImageRef::tagged_name);
            let record = self.import_image(
                archive,
                work,
                &config_digest,
                &config_bytes,
                &layer_files,
                (&manifest_digest, &manifest_bytes),
                tag.as_deref(),
                repo_digest.as_deref(),
            )?;
            out.push(record);
        }
        Ok(out)
    }

    fn import_docker(&self, root: &Path, work: &Path, archive: &Path) -> Result<Vec<ImageRecord>, ImageError> {
        let bad = |why: String| ImageError::BadArchive { path: archive.to_path_buf(), why };
        let text = fs::read(root.join("manifest.json")).map_err(|e| bad(format!("manifest.json: {e}")))?;
        let entries: Vec<DockerEntry> =
            serde_json::from_slice(&text).map_err(|e| bad(format!("manifest.json: {e}")))?;
        let mut out = Vec::new();
        for entry in entries {
            let inside = |p: &str| clean_name(p.as_bytes()).map(|rel| root.join(rel)).map_err(|e| bad(e.to_string()));
            let config_bytes = fs::read(inside(&entry.config)?).map_err(|e| bad(format!("{}: {e}", entry.config)))?;
            let config_digest = sha256_of(&config_bytes);
            let layer_files: Vec<(PathBuf, Option<Digest>)> =
                entry.layers.iter().map(|l| Ok((inside(l)?, None))).collect::<Result<_, ImageError>>()?;
            // docker-archive has no manifest: make the OCI one it would have had, so the image
            // has a manifest digest like every other.
            let mut descriptors = Vec::new();
            for (file, _) in &layer_files {
                let (digest, size, compression) = describe_file(file)?;
                let media_type = match compression {
                    Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                    Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
                    Compression::None => "application/vnd.oci.image.layer.v1.tar",
                };
                descriptors.push(Descriptor {
                    media_type: media_type.into(),
                    digest: digest.to_string(),
                    size,
                    platform: None,
                    annotations: Default::default(),
                });
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(manifest::OCI_MANIFEST.into()),
                config: Descriptor {
                    media_type: manifest::OCI_CONFIG.into(),
                    digest: config_digest.to_string(),
                    size: config_bytes.len() as u64,
                    platform: None,
                    annotations: Default::default(),
                },
                layers: descriptors,
            };
            let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| bad(e.to_string()))?;
            let manifest_digest = sha256_of(&manifest_bytes);
            let tags: Vec<String> = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .filter_map(|t| ImageRef::parse(t).ok()?.tagged_name())
                .collect();
            let mut record = self.import_image(
                archive,
                work,
                &config_digest,
                &config_bytes,
                &layer_files,
                (&manifest_digest, &manifest_bytes),
                tags.first().map(String::as_str),
                None,
            )?;
            for t in tags.iter().skip(1) {
                record = self.inner.commit(record, &[], Some(t), None)?;
            }
            out.push(record);
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn import_image(
        &self,
        archive: &Path,
        work: &Path,
        config_digest: &Digest,
        config_bytes: &[u8],
        layer_files: &[(PathBuf, Option<Digest>)],
        manifest: (&Digest, &[u8]),
        tag: Option<&str>,
        repo_digest: Option<&str>,
    ) -> Result<ImageRecord, ImageError> {
        let shown = archive.display().to_string();
        let bad_config =
            |why: String| ImageError::BadConfig { reference: shown.clone(), digest: config_digest.to_string(), why };
        let config = ConfigFile::parse(config_bytes).map_err(bad_config)?;
        let diff_ids = config.diff_ids().map_err(bad_config)?;
        if diff_ids.len() != layer_files.len() {
            return Err(bad_config(format!("{} diff_ids for {} layers", diff_ids.len(), layer_files.len())));
        }
        let chains = chain_ids(&diff_ids);
        let _pins = PinGuard::new(&self.inner, &chains);
        let mut layers = Vec::new();
        for (i, (file, expected)) in layer_files.iter().enumerate() {
            let target = self.inner.layout.layer(&chains[i]);
            let (digest, blob_size) = if target.is_dir() {
                match expected {
                    Some(d) => (d.clone(), fs::metadata(file).map(|m| m.len()).unwrap_or_default()),
                    None => {
                        let (d, n, _) = describe_file(file)?;
                        (d, n)
                    }
                }
            } else {
                self.unpack_local_layer(&shown, file, expected.as_ref(), &diff_ids[i], &chains[i], work)?
            };
            layers.push(LayerInfo {
                chain_id: chains[i].clone(),
                diff_id: diff_ids[i].clone(),
                digest,
                blob_size,
                unpacked_size: du(&target).bytes,
            });
        }
        let record = ImageRecord {
            id: config_digest.clone(),
            repo_tags: vec![],
            repo_digests: vec![],
            manifest_digest: manifest.0.clone(),
            size: layers.iter().map(|l| l.unpacked_size).sum(),
            pinned: false,
            config: config.info(),
            layers,
        };
        let blobs = [(config_digest, config_bytes), manifest];
        self.inner.commit(record, &blobs, tag, repo_digest)
    }

    fn unpack_local_layer(
        &self,
        shown: &str,
        file: &Path,
        expected: Option<&Digest>,
        diff_id: &Digest,
        chain: &Digest,
        work: &Path,
    ) -> Result<(Digest, u64), ImageError> {
        let dest = work.join(chain.hex());
        fs::create_dir(&dest).map_err(ImageError::io("creating", &dest))?;
        let f = fs::File::open(file).map_err(ImageError::io("opening", file))?;
        let mut hashing = HashingReader::new(BufReader::with_capacity(256 * 1024, f));
        let unpacked = unpack_layer(&mut hashing, &dest, Some(diff_id));
        let (digest, size) = hashing.finish().map_err(ImageError::io("reading", file))?;
        if let Some(want) = expected
            && &digest != want
        {
            return Err(ImageError::DigestMismatch {
                what: format!("layer {} in {shown}", file.display()),
                expected: want.to_string(),
                actual: digest.to_string(),
            });
        }
        unpacked.map_err(|source| ImageError::Unpack {
            reference: shown.to_string(),
            digest: digest.to_string(),
            source,
        })?;
        let target = self.inner.layout.layer(chain);
        if let Err(e) = fs::rename(&dest, &target)
            && !target.is_dir()
        {
            return Err(ImageError::io("renaming into place", &target)(e));
        }
        Ok((digest, size))
    }
}

/// A file's digest, size and compression.
fn describe_file(path: &Path) -> Result<(Digest, u64, Compression), ImageError> {
    let mut f = fs::File::open(path).map_err(ImageError::io("opening", path))?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head).map_err(ImageError::io("reading", path))?;
    let compression = crate::unpack::sniff(&head[..n]);
    let f = fs::File::open(path).map_err(ImageError::io("opening", path))?;
    let (digest, size) = HashingReader::new(BufReader::new(f)).finish().map_err(ImageError::io("reading", path))?;
    Ok((digest, size, compression))
}

/// Extracts regular files and directories of the archive (plain or compressed) under `dest`;
/// any other kind of entry, or a name that climbs out, is refused.
fn extract(archive: &Path, dest: &Path) -> Result<(), UnpackError> {
    let f = fs::File::open(archive).map_err(UnpackError::io("opening", archive))?;
    let (_, reader) = crate::unpack::decompress_reader(BufReader::new(f)).map_err(UnpackError::Tar)?;
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(UnpackError::Tar)? {
        let mut entry = entry.map_err(UnpackError::Tar)?;
        let raw = entry.path_bytes().into_owned();
        let rel = clean_name(&raw)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let path = dest.join(&rel);
        crate::unpack::paths::prepare_parents(dest, &rel, &String::from_utf8_lossy(&raw))?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                if !path.is_dir() {
                    fs::create_dir(&path).map_err(UnpackError::io("creating", &path))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut out = fs::File::create_new(&path).map_err(UnpackError::io("creating", &path))?;
                std::io::copy(&mut entry, &mut out).map_err(UnpackError::Tar)?;
            }
            // docker save writes layer.tar symlinks between images sharing a layer.
            tar::EntryType::Symlink => {
                let target = entry.link_name().map_err(UnpackError::Tar)?.map(|t| t.into_owned()).unwrap_or_default();
                let resolved = rel.parent().unwrap_or(Path::new("")).join(&target);
                let clean = clean_relative(&resolved).ok_or(UnpackError::Escape {
                    entry: String::from_utf8_lossy(&raw).into(),
                    why: "symlink out of the archive",
                })?;
                let from = dest.join(clean);
                fs::copy(&from, &path).map_err(UnpackError::io("copying", &from))?;
            }
            other => {
                return Err(UnpackError::BadEntry {
                    entry: String::from_utf8_lossy(&raw).into(),
                    why: format!("unexpected {other:?} entry in an image archive"),
                });
            }
        }
    }
    Ok(())
}

/// Resolves `..` lexically; None when it climbs above the start.
fn clean_relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(out)
}
