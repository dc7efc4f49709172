//! A tiny OCI image builder: a ustar writer, and an OCI image layout (oci-layout, index.json,
//! blobs/sha256/...) holding single-layer images made of a few files. Enough to build the pause
//! and bench images without docker or buildah, import them with `ctr images import`, or serve
//! them from the loopback registry (`registry.rs`).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// containerd's annotation for the full image name on an index entry (`ctr images import`).
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

const BLOCK: usize = 512;

/// "sha256:<hex>" of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Writes a POSIX ustar archive in memory. Entries are owned by 0:0 with a fixed mtime, so the
/// same input always gives the same bytes (and digest).
#[derive(Debug, Default)]
pub struct TarWriter {
    buf: Vec<u8>,
    dirs: BTreeSet<String>,
}

/// A fixed mtime (2024-01-01T00:00:00Z): reproducible archives.
const MTIME: u64 = 1_704_067_200;

impl TarWriter {
    pub fn new() -> TarWriter {
        TarWriter::default()
    }

    /// A directory entry (`path` without a trailing slash; it is added). Parents are added
    /// first when missing; adding one twice is a no-op.
    pub fn add_dir(&mut self, path: &str, mode: u32) -> anyhow::Result<()> {
        let path = clean(path)?;
        self.add_parents(&path)?;
        if self.dirs.insert(path.clone()) {
            self.header(&format!("{path}/"), 0, mode, b'5')?;
        }
        Ok(())
    }

    /// A regular file; missing parent directories are added (mode 0755).
    pub fn add_file(&mut self, path: &str, data: &[u8], mode: u32) -> anyhow::Result<()> {
        let path = clean(path)?;
        self.add_parents(&path)?;
        self.header(&path, data.len() as u64, mode, b'0')?;
        self.buf.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        Ok(())
    }

    /// The archive, closed by two zero blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend(std::iter::repeat_n(0u8, 2 * BLOCK));
        self.buf
    }

    fn add_parents(&mut self, path: &str) -> anyhow::Result<()> {
        let mut parent = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            if self.dirs.insert(parent.clone()) {
                self.header(&format!("{parent}/"), 0, 0o755, b'5')?;
            }
        }
        Ok(())
    }

    fn header(&mut self, name: &str, size: u64, mode: u32, typeflag: u8) -> anyhow::Result<()> {
        if name.len() > 100 {
            bail!("tar entry name {name:?} is longer than 100 bytes (no prefix/pax support here)");
        }
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], u64::from(mode & 0o7777));
        octal(&mut h[108..116], 0); // uid
        octal(&mut h[116..124], 0); // gid
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], MTIME);
        h[148..156].fill(b' '); // checksum counts as spaces while summing
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let chk = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(chk.as_bytes());
        self.buf.extend_from_slice(&h);
        Ok(())
    }
}

/// Zero-padded octal, NUL-terminated, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    field[..width].copy_from_slice(&s.as_bytes()[s.len() - width..]);
    field[width] = 0;
}

/// A relative, normalised entry path: no leading '/', no '.', '..' or empty components.
fn clean(path: &str) -> anyhow::Result<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.is_empty() || parts.contains(&"..") {
        bail!("bad path {path:?} for a tar entry");
    }
    Ok(parts.join("/"))
}

/// One file of an image: where it goes and what it holds.
#[derive(Debug, Clone)]
pub struct ImageFile {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// An image: a base layer of `files` and `dirs`, then one layer per entry of `layers`.
#[derive(Debug, Clone)]
pub struct ImageDef {
    /// Full name, e.g. `crius-bench.local/pause:1`: its tag (after the last ':' past the last
    /// '/') becomes the index entry's ref name.
    pub name: String,
    pub files: Vec<ImageFile>,
    /// Files that are each a layer of their own (a multi-layer image, as real ones are).
    pub layers: Vec<ImageFile>,
    pub dirs: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
}

/// The tag of an image name (`latest` when none).
pub fn tag_of(name: &str) -> &str {
    let last = name.rsplit('/').next().unwrap_or(name);
    last.rsplit_once(':').map_or("latest", |(_, t)| t)
}

/// The OCI name of this machine's architecture.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The blobs of one image.
pub struct BuiltImage {
    pub layers: Vec<Vec<u8>>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl BuiltImage {
    pub fn manifest_digest(&self) -> String {
        sha256_digest(&self.manifest)
    }
}

pub fn build_image(def: &ImageDef) -> anyhow::Result<BuiltImage> {
    let mut tar = TarWriter::new();
    for dir in &def.dirs {
        tar.add_dir(dir, 0o755)?;
    }
    for f in &def.files {
        tar.add_file(&f.path, &f.data, f.mode)?;
    }
    let mut layers = vec![tar.finish()];
    for f in &def.layers {
        let mut tar = TarWriter::new();
        tar.add_file(&f.path, &f.data, f.mode)?;
        layers.push(tar.finish());
    }
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
    let mut exec = serde_json::Map::new();
    if !def.entrypoint.is_empty() {
        exec.insert("Entrypoint".into(), json!(def.entrypoint));
    }
    if !def.cmd.is_empty() {
        exec.insert("Cmd".into(), json!(def.cmd));
    }
    if !def.env.is_empty() {
        exec.insert("Env".into(), json!(def.env));
    }
    exec.insert("WorkingDir".into(), json!("/"));
    let config = serde_json::to_vec(&json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": oci_arch(),
        "os": "linux",
        "config": Value::Object(exec),
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": [ { "created": "2024-01-01T00:00:00Z", "created_by": "crius-bench oci-image" } ],
    }))?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": { "mediaType": MEDIA_CONFIG, "digest": sha256_digest(&config), "size": config.len() },
        "layers": layers
            .iter()
            .zip(&diff_ids)
            .map(|(l, d)| json!({ "mediaType": MEDIA_LAYER_TAR, "digest": d, "size": l.len() }))
            .collect::<Vec<_>>(),
    }))?;
    Ok(BuiltImage { layers, config, manifest })
}

/// Adds `def` to the OCI layout at `dir` (created when missing; an index entry with the same
/// name is replaced). Returns the manifest digest.
pub fn add_to_layout(dir: &Path, def: &ImageDef) -> anyhow::Result<String> {
    let image = build_image(def)?;
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
    for blob in image.layers.iter().chain([&image.config, &image.manifest]) {
        let digest = sha256_digest(blob);
        let path = blobs.join(&digest["sha256:".len()..]);
        fs::write(&path, blob).with_context(|| format!("writing {}", path.display()))?;
    }
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index_path = dir.join("index.json");
    let mut index: Value = match fs::read(&index_path) {
        Ok(raw) => serde_json::from_slice(&raw).with_context(|| format!("parsing {}", index_path.display()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => json!({ "schemaVersion": 2, "manifests": [] }),
        Err(e) => return Err(e).with_context(|| format!("reading {}", index_path.display())),
    };
    let manifests = index["manifests"].as_array_mut().context("index.json has no manifests array")?;
    manifests.retain(|m| m["annotations"][ANNOTATION_CONTAINERD_NAME] != json!(def.name));
    let digest = image.manifest_digest();
    manifests.push(json!({
        "mediaType": MEDIA_MANIFEST,
        "digest": digest,
        "size": image.manifest.len(),
        "platform": { "architecture": oci_arch(), "os": "linux" },
        "annotations": { ANNOTATION_CONTAINERD_NAME: def.name, ANNOTATION_REF_NAME: tag_of(&def.name) },
    }));
    fs::write(&index_path, serde_json::to_vec_pretty(&index)?)?;
    Ok(digest)
}

/// A tar of the whole layout at `dir` (what `ctr images import` reads).
pub fn tar_layout(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut tar = TarWriter::new();
    for name in ["oci-layout", "index.json"] {
        let data = fs::read(dir.join(name)).with_context(|| format!("reading {}/{name}", dir.display()))?;
        tar.add_file(name, &data, 0o644)?;
    }
    tar.add_dir("blobs/sha256", 0o755)?;
    let mut entries: Vec<_> = fs::read_dir(dir.join("blobs/sha256"))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        tar.add_file(&format!("blobs/sha256/{name}"), &fs::read(e.path())?, 0o644)?;
    }
    Ok(tar.finish())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// (name, typeflag, mode, size, data) of each entry, checking each header's checksum, magic
    /// and the closing zero blocks.
    pub(crate) fn read_tar(buf: &[u8]) -> Vec<(String, u8, u32, usize, Vec<u8>)> {
        assert_eq!(buf.len() % BLOCK, 0, "whole blocks");
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let h = &buf[at..at + BLOCK];
            if h.iter().all(|b| *b == 0) {
                assert!(buf[at..].iter().all(|b| *b == 0), "only zeros after the end marker");
                assert!(buf.len() - at >= 2 * BLOCK, "two zero blocks at the end");
                break;
            }
            let field = |r: std::ops::Range<usize>| {
                let s = std::str::from_utf8(&h[r]).unwrap();
                s.trim_end_matches(['\0', ' ']).to_string()
            };
            let mut sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
            sum -= h[148..156].iter().map(|b| u32::from(*b)).sum::<u32>();
            sum += 8 * u32::from(b' ');
            assert_eq!(u32::from_str_radix(&field(148..154), 8).unwrap(), sum, "checksum");
            assert_eq!(&h[257..263], b"ustar\0");
            let name = field(0..100);
            let mode = u32::from_str_radix(&field(100..107), 8).unwrap();
            let size = usize::from_str_radix(&field(124..135), 8).unwrap();
            assert_eq!(field(108..115), "0000000");
            let data = buf[at + BLOCK..at + BLOCK + size].to_vec();
            out.push((name, h[156], mode, size, data));
            at += BLOCK + size.div_ceil(BLOCK) * BLOCK;
        }
        out
    }

    #[test]
    fn sha256_of_known_vectors() {
        assert_eq!(sha256_digest(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_digest(b"abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn tar_entries_parents_padding_and_end() {
        let mut t = TarWriter::new();
        t.add_file("/bin/true", b"hello", 0o755).unwrap();
        t.add_dir("bin", 0o755).unwrap(); // already there: no second entry
        t.add_file("pause", &[7u8; 512], 0o700).unwrap();
        t.add_dir("/etc/./x", 0o750).unwrap();
        let buf = t.finish();
        let entries = read_tar(&buf);
        let summary: Vec<(&str, u8, u32, usize)> =
            entries.iter().map(|(n, ty, m, s, _)| (n.as_str(), *ty, *m, *s)).collect();
        assert_eq!(
            summary,
            vec![
                ("bin/", b'5', 0o755, 0),
                ("bin/true", b'0', 0o755, 5),
                ("pause", b'0', 0o700, 512),
                ("etc/", b'5', 0o755, 0),
                ("etc/x/", b'5', 0o750, 0),
            ]
        );
        assert_eq!(entries[1].4, b"hello");
        assert_eq!(entries[2].4, vec![7u8; 512]);
        // 5 headers + 1 block for "hello" + 1 block for the 512 bytes + 2 end blocks.
        assert_eq!(buf.len(), (5 + 1 + 1 + 2) * BLOCK);
    }

    #[test]
    fn tar_refuses_bad_paths() {
        let mut t = TarWriter::new();
        assert!(t.add_file("../x", b"", 0o644).is_err());
        assert!(t.add_file("/", b"", 0o644).is_err());
        assert!(t.add_file(&"a".repeat(101), b"", 0o644).is_err());
    }

    #[test]
    fn tar_is_reproducible() {
        let make = || {
            let mut t = TarWriter::new();
            t.add_file("a/b", b"x", 0o644).unwrap();
            t.finish()
        };
        assert_eq!(make(), make());
    }

    #[test]
    fn tag_and_arch() {
        assert_eq!(tag_of("crius-bench.local/pause:1"), "1");
        assert_eq!(tag_of("127.0.0.1:5000/bench/pause"), "latest");
        assert_eq!(tag_of("127.0.0.1:5000/bench/pause:v2"), "v2");
        assert!(!oci_arch().is_empty());
    }

    fn def(name: &str) -> ImageDef {
        ImageDef {
            name: name.into(),
            files: vec![ImageFile { path: "/pause".into(), data: b"\x7fELF...".to_vec(), mode: 0o755 }],
            layers: vec![ImageFile { path: "/bulk".into(), data: vec![7; 100], mode: 0o644 }],
            dirs: vec!["dev".into(), "proc".into()],
            entrypoint: vec!["/pause".into()],
            cmd: vec![],
            env: vec!["PATH=/bin".into()],
        }
    }

    #[test]
    fn layout_blobs_match_their_digests_and_index_names_images() {
        let dir = tempfile::tempdir().unwrap();
        let d1 = add_to_layout(dir.path(), &def("crius-bench.local/pause:1")).unwrap();
        let d2 = add_to_layout(dir.path(), &def("crius-bench.local/pause:1")).unwrap();
        assert_eq!(d1, d2, "same input, same manifest");
        let mut other = def("127.0.0.1:5000/crius-bench/bench:2");
        other.files.push(ImageFile { path: "/bin/true".into(), data: b"t".to_vec(), mode: 0o755 });
        add_to_layout(dir.path(), &other).unwrap();

        let index: Value = serde_json::from_slice(&fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        let manifests = index["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 2, "re-adding a name replaces its entry");
        assert_eq!(manifests[0]["annotations"][ANNOTATION_REF_NAME], "1");
        assert_eq!(manifests[1]["annotations"][ANNOTATION_REF_NAME], "2");
        for blob in fs::read_dir(dir.path().join("blobs/sha256")).unwrap() {
            let blob = blob.unwrap();
            let hex = blob.file_name().to_string_lossy().into_owned();
            assert_eq!(sha256_digest(&fs::read(blob.path()).unwrap()), format!("sha256:{hex}"));
        }

        // The manifest points at the config and the layer; the config's diff_id is the layer's
        // digest (uncompressed); the layer holds the files.
        let m_hex = d1.trim_start_matches("sha256:");
        let manifest: Value =
            serde_json::from_slice(&fs::read(dir.path().join("blobs/sha256").join(m_hex)).unwrap()).unwrap();
        assert_eq!(manifest["mediaType"], MEDIA_MANIFEST);
        let cfg_hex = manifest["config"]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
        let config: Value =
            serde_json::from_slice(&fs::read(dir.path().join("blobs/sha256").join(cfg_hex)).unwrap()).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], manifest["layers"][0]["digest"]);
        assert_eq!(config["config"]["Entrypoint"][0], "/pause");
        assert_eq!(config["os"], "linux");
        let l_hex = manifest["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
        let layer = fs::read(dir.path().join("blobs/sha256").join(l_hex)).unwrap();
        let names: Vec<String> = read_tar(&layer).into_iter().map(|e| e.0).collect();
        assert_eq!(names, vec!["dev/", "proc/", "pause"]);

        let tar = tar_layout(dir.path()).unwrap();
        let names: Vec<String> = read_tar(&tar).into_iter().map(|e| e.0).collect();
        assert_eq!(&names[..4], &["oci-layout", "index.json", "blobs/", "blobs/sha256/"]);
        // Two images of a base layer, the shared bulk layer, a config and a manifest each.
        assert_eq!(names.len(), 4 + 7, "{names:?}");
        assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(2));
        assert_eq!(config["rootfs"]["diff_ids"][1], manifest["layers"][1]["digest"]);
        let bulk_hex = manifest["layers"][1]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
        let bulk = fs::read(dir.path().join("blobs/sha256").join(bulk_hex)).unwrap();
        assert_eq!(read_tar(&bulk).into_iter().map(|e| e.0).collect::<Vec<_>>(), vec!["bulk"]);
    }
}
