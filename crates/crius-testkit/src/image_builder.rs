//! OCI images built in Rust, for tests: layers from a list of entries (busybox from Debian's
//! busybox-static, files, links, devices, whiteouts, raw hostile names), gzip, zstd or plain,
//! a config with USER, ENTRYPOINT, CMD, env, workdir, volumes, STOPSIGNAL and labels, an OCI or
//! Docker schema2 manifest, multi-platform indexes, and OCI-layout or docker-archive tarballs.
//!
//! ```no_run
//! use crius_testkit::image_builder::{ImageBuilder, Layer, Compression};
//! let img = ImageBuilder::new()
//!     .layer(Layer::busybox())
//!     .layer(Layer::new().file("etc/motd", b"hello\n", 0o644))
//!     .user("1000:1000")
//!     .cmd(["/bin/sh", "-c", "cat /etc/motd"])
//!     .compression(Compression::Zstd)
//!     .build();
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// Where the test images' busybox comes from (`apt-get install busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

pub fn sha256_digest(data: &[u8]) -> String {
    let sum = Sha256::digest(data);
    format!("sha256:{}", sum.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One tar entry of a layer.
#[derive(Debug, Clone)]
enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        data: Arc<Vec<u8>>,
        mode: u32,
        uid: u64,
        gid: u64,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    CharDev {
        path: String,
        major: u32,
        minor: u32,
    },
    /// A regular file whose name is written into the header as is (`../x`, `/etc/x`).
    RawName {
        name: String,
    },
    /// A link whose name and target are written as is.
    RawLink {
        name: String,
        target: String,
        hard: bool,
    },
}

impl Entry {
    /// The path of an entry that has one (raw entries are written as they are).
    fn path(&self) -> Option<&str> {
        match self {
            Entry::Dir { path, .. }
            | Entry::File { path, .. }
            | Entry::Symlink { path, .. }
            | Entry::Hardlink { path, .. }
            | Entry::CharDev { path, .. } => Some(path),
            Entry::RawName { .. } | Entry::RawLink { .. } => None,
        }
    }
}

/// A layer, as a list of entries in tar order.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    entries: Vec<Entry>,
    /// What some entries have beyond the defaults, by path.
    extras: BTreeMap<String, Extra>,
}

/// An entry's mtime other than the fixed default, and its xattrs (as PAX `SCHILY.xattr.*`
/// records, the way Docker and BuildKit write them).
#[derive(Debug, Clone, Default)]
struct Extra {
    mtime: Option<u64>,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Layer {
    pub fn new() -> Self {
        Self::default()
    }

    /// busybox (statically linked, from the host) with the applets a test uses as symlinks, a
    /// passwd and group with root, nobody and app (1000), and the usual empty directories.
    pub fn busybox() -> Self {
        let bin = std::fs::read(BUSYBOX).unwrap_or_else(|e| {
            panic!("reading {BUSYBOX}: {e}; install Debian's busybox-static (apt-get install -y busybox-static)")
        });
        let mut l = Layer::new();
        for d in ["bin", "dev", "etc", "proc", "sys", "tmp", "var", "root", "home"] {
            l = l.dir(d, if d == "tmp" { 0o1777 } else { 0o755 });
        }
        l = l.file("bin/busybox", &bin, 0o755);
        for applet in [
            "sh", "ls", "cat", "echo", "sleep", "id", "env", "pwd", "true", "false", "ps", "kill", "mkdir", "rm",
            "touch", "wc", "head", "grep", "hostname", "stat", "readlink", "mount", "top", "nc", "wget", "whoami",
            "date", "du",
        ] {
            l = l.symlink(&format!("bin/{applet}"), "busybox");
        }
        l.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", 0o644)
            .file("etc/group", b"root:x:0:\napp:x:1000:\nnogroup:x:65534:\n", 0o644)
            .dir("home/app", 0o755)
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.entries.push(Entry::Dir { path: path.into(), mode });
        self
    }

    pub fn file(self, path: &str, data: &[u8], mode: u32) -> Self {
        self.file_owned(path, data, mode, 0, 0)
    }

    pub fn file_owned(mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        self.entries.push(Entry::File { path: path.into(), data: Arc::new(data.to_vec()), mode, uid, gid });
        self
    }

    /// `size` bytes of incompressible pseudo-random data from `seed` (fast, reproducible).
    pub fn random_file(mut self, path: &str, size: usize, seed: u64) -> Self {
        self.entries.push(Entry::File {
            path: path.into(),
            data: Arc::new(random_bytes(size, seed)),
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Symlink { path: path.into(), target: target.into() });
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Hardlink { path: path.into(), target: target.into() });
        self
    }

    pub fn char_device(mut self, path: &str, major: u32, minor: u32) -> Self {
        self.entries.push(Entry::CharDev { path: path.into(), major, minor });
        self
    }

    /// Removes `path` of the layers below (OCI: an empty `.wh.<name>` file next to it).
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
        let wh = if dir.is_empty() { format!(".wh.{name}") } else { format!("{dir}/.wh.{name}") };
        self.file(&wh, b"", 0o644)
    }

    /// Hides everything the layers below have in `dir` (OCI: `.wh..wh..opq` inside it).
    pub fn opaque(self, dir: &str) -> Self {
        self.dir(dir, 0o755).file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }

    /// A file entry whose name is not cleaned in any way (for escape tests).
    pub fn raw_name(mut self, name: &str) -> Self {
        self.entries.push(Entry::RawName { name: name.into() });
        self
    }

    /// A symlink or hardlink whose name and target are written as is (for escape tests).
    pub fn raw_link(mut self, name: &str, target: &str, hard: bool) -> Self {
        self.entries.push(Entry::RawLink { name: name.into(), target: target.into(), hard });
        self
    }

    /// Gives the entry at `path` (of any kind, added before or after) this mtime instead of
    /// the fixed default.
    pub fn mtime(mut self, path: &str, mtime: u64) -> Self {
        self.extras.entry(path.into()).or_default().mtime = Some(mtime);
        self
    }

    /// Gives the entry at `path` (of any kind, added before or after) the xattr `name`.
    pub fn xattr(mut self, path: &str, name: &str, value: &[u8]) -> Self {
        self.extras.entry(path.into()).or_default().xattrs.push((name.into(), value.to_vec()));
        self
    }

    /// The uncompressed tar.
    pub fn tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        // Fixed times: the same entries make the same tar, so digests are stable across runs.
        let header = |kind: tar::EntryType, mode: u32| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_mtime(1_700_000_000);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(0);
            h
        };
        let raw = |b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, target: Option<&str>| {
            let mut h = header(kind, 0o777);
            if let Some(gnu) = h.as_gnu_mut() {
                let n = name.len().min(gnu.name.len());
                gnu.name[..n].copy_from_slice(&name.as_bytes()[..n]);
                if let Some(t) = target {
                    let n = t.len().min(gnu.linkname.len());
                    gnu.linkname[..n].copy_from_slice(&t.as_bytes()[..n]);
                }
            }
            h.set_cksum();
            b.append(&h, &[][..]).expect("appending to an in-memory tar");
        };
        for e in &self.entries {
            let extra = e.path().and_then(|p| self.extras.get(p));
            if let Some(extra) = extra.filter(|x| !x.xattrs.is_empty()) {
                let records: Vec<(String, &[u8])> =
                    extra.xattrs.iter().map(|(k, v)| (format!("SCHILY.xattr.{k}"), &v[..])).collect();
                b.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
                    .expect("appending to an in-memory tar");
            }
            let header = |kind: tar::EntryType, mode: u32| {
                let mut h = header(kind, mode);
                if let Some(mtime) = extra.and_then(|x| x.mtime) {
                    h.set_mtime(mtime);
                }
                h
            };
            let r = match e {
                Entry::Dir { path, mode } => {
                    b.append_data(&mut header(tar::EntryType::Directory, *mode), path, &[][..])
                }
                Entry::File { path, data, mode, uid, gid } => {
                    let mut h = header(tar::EntryType::Regular, *mode);
                    h.set_uid(*uid);
                    h.set_gid(*gid);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, &data[..])
                }
                Entry::Symlink { path, target } => {
                    b.append_link(&mut header(tar::EntryType::Symlink, 0o777), path, target)
                }
                Entry::Hardlink { path, target } => {
                    b.append_link(&mut header(tar::EntryType::Link, 0o644), path, target)
                }
                Entry::CharDev { path, major, minor } => {
                    let mut h = header(tar::EntryType::Char, 0o666);
                    let _ = h.set_device_major(*major);
                    let _ = h.set_device_minor(*minor);
                    b.append_data(&mut h, path, &[][..])
                }
                Entry::RawName { name } => {
                    raw(&mut b, tar::EntryType::Regular, name, None);
                    Ok(())
                }
                Entry::RawLink { name, target, hard } => {
                    let kind = if *hard { tar::EntryType::Link } else { tar::EntryType::Symlink };
                    raw(&mut b, kind, name, Some(target));
                    Ok(())
                }
            };
            r.expect("appending to an in-memory tar");
        }
        b.into_inner().expect("finishing an in-memory tar")
    }
}

/// Fast reproducible pseudo-random bytes (xorshift64*): incompressible, like real binaries at worst.
pub fn random_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Content with its digest and media type.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub data: Arc<Vec<u8>>,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Blob {
        Blob { media_type: media_type.into(), digest: sha256_digest(&data), data: Arc::new(data) }
    }
    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size()})
    }
}

/// A built image: config, layers (as served and as plain tars) and manifest.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// The uncompressed tars, for docker-archive.
    pub layer_tars: Vec<Arc<Vec<u8>>>,
    pub diff_ids: Vec<String>,
    pub manifest: Blob,
}

impl BuiltImage {
    /// The image id crius reports: the config digest.
    pub fn id(&self) -> &str {
        &self.config.digest
    }
    pub fn manifest_digest(&self) -> &str {
        &self.manifest.digest
    }
    /// Bytes of the layers as served.
    pub fn layer_bytes(&self) -> u64 {
        self.layers.iter().map(Blob::size).sum()
    }
    /// Bytes of the uncompressed layers.
    pub fn tar_bytes(&self) -> u64 {
        self.layer_tars.iter().map(|t| t.len() as u64).sum()
    }

    /// Writes an OCI image layout as a tarball, naming the image `name` (a full reference).
    pub fn write_oci_archive(&self, path: &Path, name: Option<&str>) -> Result<()> {
        let mut desc = self.manifest.descriptor();
        if let Some(n) = name {
            let tag = n.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
            desc["annotations"] = json!({"io.containerd.image.name": n, "org.opencontainers.image.ref.name": tag});
        }
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]});
        let mut files: Vec<(String, Arc<Vec<u8>>)> = vec![
            ("oci-layout".into(), Arc::new(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec())),
            ("index.json".into(), Arc::new(serde_json::to_vec(&index)?)),
        ];
        for b in std::iter::once(&self.manifest).chain(std::iter::once(&self.config)).chain(self.layers.iter()) {
            files.push((format!("blobs/sha256/{}", b.hex()), b.data.clone()));
        }
        write_tar(path, &files)
    }

    /// Writes a docker-archive (`docker save`) tarball with the given repo tags.
    pub fn write_docker_archive(&self, path: &Path, repo_tags: &[&str]) -> Result<()> {
        let layer_paths: Vec<String> =
            self.layer_tars.iter().enumerate().map(|(i, _)| format!("layer{i}/layer.tar")).collect();
        let config_path = format!("{}.json", self.config.hex());
        let manifest = json!([{"Config": config_path, "RepoTags": repo_tags, "Layers": layer_paths}]);
        let mut files: Vec<(String, Arc<Vec<u8>>)> = vec![
            ("manifest.json".into(), Arc::new(serde_json::to_vec(&manifest)?)),
            (config_path, self.config.data.clone()),
        ];
        for (p, t) in layer_paths.iter().zip(&self.layer_tars) {
            files.push((p.clone(), t.clone()));
        }
        write_tar(path, &files)
    }
}

fn write_tar(path: &Path, files: &[(String, Arc<Vec<u8>>)]) -> Result<()> {
    let f = std::fs::File::create(path).map_err(|e| Error::context(format!("creating {}", path.display()), e))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(f));
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, &data[..]).map_err(|e| Error::context(format!("writing {name}"), e))?;
    }
    b.into_inner().and_then(|mut w| w.flush()).map_err(|e| Error::context(format!("finishing {}", path.display()), e))
}

/// Builds an image.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    layers: Vec<Layer>,
    compression: Compression,
    docker: bool,
    architecture: String,
    variant: Option<String>,
    config: BTreeMap<&'static str, Value>,
    labels: BTreeMap<String, String>,
    env: Vec<String>,
    volumes: Vec<String>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// This host's architecture in OCI terms.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

impl ImageBuilder {
    pub fn new() -> Self {
        ImageBuilder {
            layers: Vec::new(),
            compression: Compression::Gzip,
            docker: false,
            architecture: host_arch().into(),
            variant: None,
            config: BTreeMap::new(),
            labels: BTreeMap::new(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            volumes: Vec::new(),
        }
    }
    pub fn layer(mut self, l: Layer) -> Self {
        self.layers.push(l);
        self
    }
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }
    /// Docker schema2 media types instead of OCI ones.
    pub fn docker_schema2(mut self) -> Self {
        self.docker = true;
        self
    }
    pub fn architecture(mut self, arch: &str, variant: Option<&str>) -> Self {
        self.architecture = arch.into();
        self.variant = variant.map(str::to_string);
        self
    }
    pub fn user(mut self, u: &str) -> Self {
        self.config.insert("User", json!(u));
        self
    }
    pub fn entrypoint<const N: usize>(mut self, e: [&str; N]) -> Self {
        self.config.insert("Entrypoint", json!(e.as_slice()));
        self
    }
    pub fn cmd<const N: usize>(mut self, c: [&str; N]) -> Self {
        self.config.insert("Cmd", json!(c.as_slice()));
        self
    }
    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.into());
        self
    }
    pub fn workdir(mut self, w: &str) -> Self {
        self.config.insert("WorkingDir", json!(w));
        self
    }
    pub fn volume(mut self, v: &str) -> Self {
        self.volumes.push(v.into());
        self
    }
    pub fn stop_signal(mut self, s: &str) -> Self {
        self.config.insert("StopSignal", json!(s));
        self
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    pub fn build(&self) -> BuiltImage {
        let layer_type = |c: Compression| match (self.docker, c) {
            (true, Compression::Gzip) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            (true, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
            (true, Compression::Zstd) => "application/vnd.docker.image.rootfs.diff.tar.zstd",
            (false, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (false, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (false, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
        };
        let mut layers = Vec::new();
        let mut tars = Vec::new();
        let mut diff_ids = Vec::new();
        for l in &self.layers {
            let tar = l.tar();
            diff_ids.push(sha256_digest(&tar));
            let data = compress(&tar, self.compression);
            layers.push(Blob::new(layer_type(self.compression), data));
            tars.push(Arc::new(tar));
        }
        let mut container: serde_json::Map<String, Value> =
            self.config.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        container.insert("Env".into(), json!(self.env));
        if !self.labels.is_empty() {
            container.insert("Labels".into(), json!(self.labels));
        }
        if !self.volumes.is_empty() {
            let v: serde_json::Map<String, Value> = self.volumes.iter().map(|p| (p.clone(), json!({}))).collect();
            container.insert("Volumes".into(), Value::Object(v));
        }
        let mut config = json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": self.architecture,
            "os": "linux",
            "config": container,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [],
        });
        if let Some(v) = &self.variant {
            config["variant"] = json!(v);
        }
        let config_type = if self.docker { DOCKER_CONFIG } else { OCI_CONFIG };
        let config = Blob::new(config_type, serde_json::to_vec(&config).expect("serialising a JSON value"));
        let manifest_type = if self.docker { DOCKER_MANIFEST } else { OCI_MANIFEST };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(manifest_type, serde_json::to_vec(&manifest).expect("serialising a JSON value"));
        BuiltImage { config, layers, layer_tars: tars, diff_ids, manifest }
    }

    /// This image for this host plus the same build for other platforms, under one index
    /// (OCI) or manifest list (Docker). The host's entry is placed last, so a puller that
    /// takes the first entry gets it wrong.
    pub fn build_multi_platform(&self, others: &[(&str, Option<&str>)]) -> BuiltIndex {
        let mut images = Vec::new();
        for (arch, variant) in others {
            // A marker file makes each platform's image distinct.
            let img = self
                .clone()
                .architecture(arch, *variant)
                .layer(Layer::new().file("platform", arch.as_bytes(), 0o644))
                .build();
            images.push((arch.to_string(), variant.map(str::to_string), img));
        }
        let host = self.clone().layer(Layer::new().file("platform", host_arch().as_bytes(), 0o644)).build();
        images.push((host_arch().to_string(), None, host));
        let entries: Vec<Value> = images
            .iter()
            .map(|(arch, variant, img)| {
                let mut d = img.manifest.descriptor();
                d["platform"] = json!({"architecture": arch, "os": "linux"});
                if let Some(v) = variant {
                    d["platform"]["variant"] = json!(v);
                }
                d
            })
            .collect();
        let index_type = if self.docker { DOCKER_LIST } else { OCI_INDEX };
        let index = json!({"schemaVersion": 2, "mediaType": index_type, "manifests": entries});
        let index = Blob::new(index_type, serde_json::to_vec(&index).expect("serialising a JSON value"));
        BuiltIndex { index, images: images.into_iter().map(|(_, _, i)| i).collect() }
    }
}

/// A multi-platform image: the index and every platform's image (this host's is last).
#[derive(Debug, Clone)]
pub struct BuiltIndex {
    pub index: Blob,
    pub images: Vec<BuiltImage>,
}

impl BuiltIndex {
    pub fn host_image(&self) -> &BuiltImage {
        self.images.last().expect("an index has the host's image")
    }
}

pub fn compress(tar: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).expect("gzip into memory");
            gz.finish().expect("gzip into memory")
        }
        Compression::Zstd => zstd::encode_all(tar, 1).expect("zstd into memory"),
    }
}

/// The test images every suite uses, by name.
pub mod catalog {
    use super::*;

    /// busybox, `sh` as CMD: the smallest runnable image.
    pub fn busybox() -> ImageBuilder {
        ImageBuilder::new().layer(Layer::busybox()).cmd(["/bin/sh"])
    }

    /// Runs as uid 1000 (numeric USER).
    pub fn user_numeric() -> ImageBuilder {
        busybox().user("1000").layer(Layer::new().file("etc/image", b"user-numeric\n", 0o644))
    }

    /// Runs as the user named app (USER by name).
    pub fn user_name() -> ImageBuilder {
        busybox().user("app").layer(Layer::new().file("etc/image", b"user-name\n", 0o644))
    }

    /// USER app:app (name and group).
    pub fn user_name_group() -> ImageBuilder {
        busybox().user("app:app").layer(Layer::new().file("etc/image", b"user-name-group\n", 0o644))
    }

    /// ENTRYPOINT, CMD, env, workdir, a volume, STOPSIGNAL and labels.
    pub fn full_config() -> ImageBuilder {
        busybox()
            .entrypoint(["/bin/sh", "-c"])
            .cmd(["echo $GREETING from $(pwd); sleep 3600"])
            .env("GREETING=hello")
            .workdir("/work")
            .volume("/data")
            .stop_signal("SIGUSR1")
            .label("org.example.test", "crius")
            .layer(Layer::new().dir("work", 0o755).dir("data", 0o755))
    }

    /// Whiteouts, an opaque directory, hardlinks, symlinks and a device node over busybox.
    pub fn whiteouts() -> ImageBuilder {
        busybox()
            .layer(
                Layer::new()
                    .dir("etc/conf.d", 0o755)
                    .file("etc/conf.d/a", b"a\n", 0o644)
                    .file("etc/conf.d/b", b"b\n", 0o644)
                    .file("etc/removed", b"gone soon\n", 0o644)
                    .file("data/original", b"linked\n", 0o644)
                    .hardlink("data/hardlink", "data/original")
                    .symlink("data/symlink", "original")
                    .char_device("dev/null", 1, 3),
            )
            .layer(Layer::new().whiteout("etc/removed").opaque("etc/conf.d").file("etc/conf.d/c", b"c\n", 0o644))
    }

    /// A layer with an entry that climbs out with `..`.
    pub fn escape_dotdot() -> ImageBuilder {
        busybox().layer(Layer::new().raw_name("../../escaped-by-layer"))
    }

    /// A layer that writes through a symlink to /etc.
    pub fn escape_symlink() -> ImageBuilder {
        busybox().layer(Layer::new().symlink("hostetc", "/etc").file("hostetc/crius-escaped", b"pwned\n", 0o644))
    }

    /// A layer whose hardlink points at an absolute host path.
    pub fn escape_hardlink() -> ImageBuilder {
        busybox().layer(Layer::new().raw_link("passwd-link", "/etc/passwd", true))
    }

    /// About `mib` MiB of incompressible data over `layers` layers (plus busybox).
    pub fn big(mib: usize, layers: usize, seed: u64) -> ImageBuilder {
        let mut b = busybox();
        let per = mib * 1024 * 1024 / layers.max(1);
        for i in 0..layers {
            b = b.layer(Layer::new().random_file(&format!("data/blob{i}"), per, seed + i as u64));
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_reproducible_and_configs_complete() {
        let a = catalog::full_config().compression(Compression::Zstd).build();
        let b = catalog::full_config().compression(Compression::Zstd).build();
        assert_eq!(a.manifest.digest, b.manifest.digest);
        let cfg: Value = serde_json::from_slice(&a.config.data).unwrap();
        assert_eq!(cfg["config"]["StopSignal"], "SIGUSR1");
        assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), a.layers.len());
        assert_eq!(a.layers[0].media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
        assert_eq!(&a.layers[0].data[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    }

    #[test]
    fn entries_can_have_an_mtime_and_xattrs() {
        let tar = Layer::new()
            .dir("data", 0o755)
            .mtime("data", 1_000)
            .file("data/seed", b"x", 0o644)
            .xattr("data/seed", "user.a", b"1")
            .xattr("data/seed", "trusted.b", b"2")
            .mtime("data/seed", 2_000)
            .file("other", b"", 0o644)
            .tar();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
            let mut xattrs = Vec::new();
            if let Some(exts) = entry.pax_extensions().unwrap() {
                for ext in exts {
                    let ext = ext.unwrap();
                    xattrs.push(format!("{}={}", ext.key().unwrap(), ext.value().unwrap()));
                }
            }
            seen.push((path, entry.header().mtime().unwrap(), xattrs));
        }
        let none = Vec::<String>::new;
        assert_eq!(
            seen,
            [
                ("data".to_string(), 1_000, none()),
                (
                    "data/seed".to_string(),
                    2_000,
                    vec!["SCHILY.xattr.user.a=1".to_string(), "SCHILY.xattr.trusted.b=2".to_string()]
                ),
                ("other".to_string(), 1_700_000_000, none()),
            ]
        );
    }

    #[test]
    fn random_data_is_incompressible() {
        let data = random_bytes(1 << 20, 7);
        let gz = compress(&data, Compression::Gzip);
        assert!(gz.len() as f64 > data.len() as f64 * 0.99);
        assert_ne!(random_bytes(64, 1), random_bytes(64, 2));
    }
}
