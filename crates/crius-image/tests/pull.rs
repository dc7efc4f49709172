//! The store against a real registry (Debian's docker-registry on loopback) with images built
//! by crius-testkit: pulls by tag, digest and both, indexes, compressions, mirrors, insecure,
//! auth, concurrent pulls, the download limit, tampered blobs, hostile layers, removal, usage,
//! restarts, import.
//! Needs root (layers keep owners and device nodes).

mod common;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::fake_registry;
use common::{Store, digest, is_root};
use crius_core::ErrorKind;
use crius_core::image::{ImageService, RegistryAuth};
use crius_image::{ImageError, PullConfig};
use crius_testkit::image_builder::{Blob, Compression, Layer, OCI_INDEX, catalog};
use crius_testkit::registry::TestRegistry;

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pull_by_tag_digest_and_both() {
    need_root!();
    let reg = TestRegistry::start().await.unwrap();
    let img = catalog::full_config().build();
    let reference = reg.push("app", "v1", &img).await.unwrap();
    let s = Store::new("");

    let by_tag = s.pull(&reference).await.unwrap();
    assert_eq!(by_tag.id.as_str(), img.id());
    assert_eq!(by_tag.repo_tags, [format!("{}/app:v1", reg.host())]);
    assert_eq!(by_tag.repo_digests, [format!("{}/app@{}", reg.host(), img.manifest_digest())]);
    assert_eq!(by_tag.config.stop_signal, "SIGUSR1");
    assert_eq!(by_tag.config.working_dir, "/work");
    assert_eq!(by_tag.config.volumes, ["/data"]);
    assert_eq!(by_tag.config.entrypoint, ["/bin/sh", "-c"]);
    assert!(by_tag.config.env.iter().any(|e| e == "GREETING=hello"));
    assert_eq!(by_tag.layers.len(), img.layers.len());
    let base = s.layer_dir(&by_tag.layers[0].chain_id);
    assert!(base.join("bin/busybox").is_file());
    assert_eq!(fs::read_link(base.join("bin/sh")).unwrap().to_str(), Some("busybox"));

    let by_digest = s.pull(&format!("{}/app@{}", reg.host(), img.manifest_digest())).await.unwrap();
    assert_eq!(by_digest.id, by_tag.id);
    let both = s.pull(&format!("{}/app:v1@{}", reg.host(), img.manifest_digest())).await.unwrap();
    assert_eq!(both.id, by_tag.id);
    assert_eq!(both.repo_tags.len(), 1, "a pull by digest records no tag");
    // Nothing was downloaded twice.
    for l in &img.layers {
        assert_eq!(reg.blob_gets("app", &l.digest), 1, "layer {}", l.digest);
    }
    // A wrong digest is refused by the registry (404), never silently accepted.
    let wrong = format!("{}/app@sha256:{}", reg.host(), "0".repeat(64));
    let err = s.pull(&wrong).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(s.entries("tmp").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manifest_lists_and_indexes_pick_this_platform() {
    need_root!();
    let reg = TestRegistry::start().await.unwrap();
    let s = Store::new("");
    for (repo, builder) in [
        ("oci-index", catalog::busybox()),
        ("docker-list", catalog::busybox().docker_schema2().label("kind", "docker")),
    ] {
        let index = builder.build_multi_platform(&[("arm64", Some("v8")), ("s390x", None), ("arm", Some("v7"))]);
        let reference = reg.push_index(repo, "multi", &index).await.unwrap();
        let rec = s.pull(&reference).await.unwrap();
        let host = index.host_image();
        assert_eq!(rec.id.as_str(), host.id(), "{repo}");
        assert_eq!(rec.manifest_digest.as_str(), host.manifest_digest());
        assert_eq!(
            rec.repo_digests,
            [format!("{}/{repo}@{}", reg.host(), index.index.digest)],
            "the repo digest is the index's"
        );
        let top = s.layer_dir(&rec.layers.last().unwrap().chain_id);
        assert_eq!(fs::read_to_string(top.join("platform")).unwrap(), crius_testkit::image_builder::host_arch());
        // Other platforms' layers were never fetched.
        for other in &index.images[..index.images.len() - 1] {
            assert_eq!(reg.blob_gets(repo, &other.layers.last().unwrap().digest), 0);
        }
    }
    // An index without this platform names what it has.
    let multi = catalog::busybox().build_multi_platform(&[("s390x", None)]);
    let foreign = &multi.images[0];
    let mut desc = foreign.manifest.descriptor();
    desc["platform"] = serde_json::json!({"architecture": "s390x", "os": "linux"});
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]});
    let index = Blob::new(OCI_INDEX, serde_json::to_vec(&index).unwrap());
    reg.push("foreign", "x", foreign).await.unwrap();
    reg.push_manifest("foreign", "only", &index).await.unwrap();
    let err = s.pull(&reg.reference("foreign", "only")).await.unwrap_err();
    assert!(matches!(err, ImageError::NoMatchingPlatform { .. }), "{err}");
    assert!(err.to_string().contains("linux/s390x"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gzip_zstd_plain_and_docker_schema2_layers() {
    need_root!();
    let reg = TestRegistry::start().await.unwrap();
    let s = Store::new("");
    for (tag, b) in [
        ("gzip", catalog::user_numeric().compression(Compression::Gzip)),
        ("zstd", catalog::user_name().compression(Compression::Zstd)),
        ("plain", catalog::user_name_group().compression(Compression::None)),
        ("docker", catalog::busybox().docker_schema2().layer(Layer::new().file("docker", b"1", 0o644))),
    ] {
        let img = b.build();
        let r = reg.push("formats", tag, &img).await.unwrap();
        let rec = s.pull(&r).await.unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert_eq!(rec.id.as_str(), img.id(), "{tag}");
        assert!(s.layer_dir(&rec.layers[0].chain_id).join("bin/busybox").is_file(), "{tag}");
    }
    // The shared busybox base layer was downloaded once for the three OCI images of one
    // compression each (different blobs) and unpacked into one directory per chain id.
    let images = s.store().list();
    assert_eq!(images.len(), 4);
    let users: Vec<String> = images.iter().map(|i| i.config.user.clone()).collect();
    assert!(
        users.contains(&"1000".to_string())
            && users.contains(&"app".to_string())
            && users.contains(&"app:app".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whiteouts_links_and_devices_land_in_overlay_form() {
    need_root!();
    let reg = TestRegistry::start().await.unwrap();
    let img = catalog::whiteouts().build();
    let r = reg.push("whiteouts", "v1", &img).await.unwrap();
    let s = Store::new("");
    let rec = s.pull(&r).await.unwrap();
    let mid = s.layer_dir(&rec.layers[1].chain_id);
    let top = s.layer_dir(&rec.layers[2].chain_id);
    let removed = fs::symlink_metadata(top.join("etc/removed")).unwrap();
    assert!(removed.file_type().is_char_device() && removed.rdev() == 0, "whiteout is a 0/0 char device");
    assert_eq!(xattr::get(top.join("etc/conf.d"), "trusted.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]));
    assert!(top.join("etc/conf.d/c").is_file());
    assert!(!top.join("etc/conf.d/.wh..wh..opq").exists());
    assert_eq!(
        fs::metadata(mid.join("data/original")).unwrap().ino(),
        fs::metadata(mid.join("data/hardlink")).unwrap().ino()
    );
    assert_eq!(fs::read_link(mid.join("data/symlink")).unwrap().to_str(), Some("original"));
    assert!(fs::symlink_metadata(mid.join("dev/null")).unwrap().file_type().is_char_device());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_layers_are_refused_and_leave_nothing() {
    need_root!();
    let reg = TestRegistry::start().await.unwrap();
    let s = Store::new("");
    let marker = std::path::Path::new("/etc/crius-escaped");
    for (tag, b) in [
        ("dotdot", catalog::escape_dotdot()),
        ("symlink", catalog::escape_symlink()),
        ("hardlink", catalog::escape_hardlink()),
    ] {
        let r = reg.push("hostile", tag, &b.build()).await.unwrap();
        let err = s.pull(&r).await.unwrap_err();
        assert!(matches!(err, ImageError::Unpack { .. }), "{tag}: {err}");
        assert!(format!("{:#}", crius_core::Error::from(err)).contains("outside the layer"), "{tag}");
        assert!(s.store().list().is_empty(), "{tag}: no image");
        assert!(s.entries("layers").is_empty(), "{tag}: no layer kept: {:?}", s.entries("layers"));
        assert!(s.entries("blobs/sha256").is_empty(), "{tag}");
        assert!(s.entries("tmp").is_empty(), "{tag}: {:?}", s.entries("tmp"));
    }
    assert!(!marker.exists());
    assert!(!s.root().join("escaped-by-layer").exists() && !s.root().join("images/escaped-by-layer").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampered_blob_is_refused_and_nothing_is_kept() {
    need_root!();
    let reg = TestRegistry::start().await.unwrap();
    let img = catalog::user_numeric().build();
    let r = reg.push("tampered", "v1", &img).await.unwrap();
    reg.tamper_blob(&img.layers[1].digest).unwrap();
    let s = Store::new("");
    let err = s.pull(&r).await.unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&img.layers[1].digest) && msg.contains(&reg.host()), "{msg}");
    assert!(s.store().list().is_empty());
    assert!(s.entries("layers").is_empty(), "{:?}", s.entries("layers"));
    assert!(s.entries("tmp").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_pulls_share_one_download() {
    need_root!();
    let reg = TestRegistry::start().await.unwrap();
    let img = catalog::big(24, 3, 11).compression(Compression::Zstd).build();
    let r = reg.push("shared", "v1", &img).await.unwrap();
    let s = Store::new("");
    let (a, b, c) = tokio::join!(s.pull(&r), s.pull(&r), s.pull(&r));
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(a.id, b.id);
    assert_eq!(b.id, c.id);
    for l in &img.layers {
        assert_eq!(reg.blob_gets("shared", &l.digest), 1, "layer {} downloaded once", l.digest);
    }
    assert_eq!(s.store().list().len(), 1);
}

/// `max_concurrent_downloads` bounds the layer downloads in flight: a fake registry holds
/// each layer request a while and records the most it held at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_concurrent_downloads_bounds_the_layer_requests_in_flight() {
    need_root!();
    let img = catalog::big(1, 5, 7).build();
    assert!(img.layers.len() >= 6);
    let content = Arc::new(fake_registry::content("many", "v1", &img));
    let layers: Arc<HashSet<String>> =
        Arc::new(img.layers.iter().map(|l| format!("/v2/many/blobs/{}", l.digest)).collect());
    for limit in [1, 3] {
        let (held, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (content, layers, now, max) = (content.clone(), layers.clone(), held.clone(), most.clone());
        let server = fake_registry::serve(move |req| {
            let (reply, layer) = (req.lookup(&content), layers.contains(&req.path));
            let (now, max) = (now.clone(), max.clone());
            async move {
                if layer {
                    max.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                }
                reply
            }
        })
        .await;
        let s = Store::with_pull("", PullConfig { max_concurrent_downloads: limit, ..Default::default() });
        let rec = s.pull(&format!("127.0.0.1:{}/many:v1", server.port)).await.unwrap();
        assert_eq!(rec.id.as_str(), img.id());
        assert_eq!(
            most.load(Ordering::SeqCst),
            limit,
            "layer downloads at once with max_concurrent_downloads = {limit}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auth_success_and_failure() {
    need_root!();
    let reg = TestRegistry::start_with_auth("puller", "s3cret").await.unwrap();
    let img = catalog::busybox().build();
    let r = reg.push("private", "v1", &img).await.unwrap();
    let s = Store::new("");

    let err = s.pull(&r).await.unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { status: 401, .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&reg.host()) && msg.contains("private:v1") && msg.contains("401"), "{msg}");
    assert_eq!(crius_core::Error::from(err).kind(), ErrorKind::FailedPrecondition);

    let wrong = RegistryAuth { username: "puller".into(), password: "nope".into(), ..Default::default() };
    let err = s.pull_auth(&r, &wrong).await.unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");

    let right = RegistryAuth { username: "puller".into(), password: "s3cret".into(), ..Default::default() };
    assert_eq!(s.pull_auth(&r, &right).await.unwrap().id.as_str(), img.id());

    // The base64 form of Docker's config.json works too.
    use base64::Engine;
    let encoded =
        RegistryAuth { auth: base64::engine::general_purpose::STANDARD.encode("puller:s3cret"), ..Default::default() };
    let s2 = Store::new("");
    assert_eq!(s2.pull_auth(&r, &encoded).await.unwrap().id.as_str(), img.id());

    // Credentials from crius.toml, for the registry itself.
    let s3 = Store::new(&format!("[\"{}\"]\nusername = \"puller\"\npassword = \"s3cret\"\n", reg.host()));
    assert_eq!(s3.pull(&r).await.unwrap().id.as_str(), img.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mirrors_first_then_upstream() {
    need_root!();
    let upstream = TestRegistry::start().await.unwrap();
    let mirror = TestRegistry::start().await.unwrap();
    let on_both = catalog::user_numeric().build();
    let upstream_only = catalog::user_name().build();
    upstream.push("team/app", "both", &on_both).await.unwrap();
    mirror.push("team/app", "both", &on_both).await.unwrap();
    let r_only = upstream.push("team/app", "only-upstream", &upstream_only).await.unwrap();
    // A mirror that is not there at all (nothing listens on that port).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = format!("[\"{}\"]\nmirrors = [\"127.0.0.1:{dead}\", \"{}\"]\n", upstream.host(), mirror.host());
    let s = Store::new(&cfg);

    let rec = s.pull(&upstream.reference("team/app", "both")).await.unwrap();
    assert_eq!(rec.id.as_str(), on_both.id());
    assert_eq!(mirror.blob_gets("team/app", &on_both.layers[0].digest), 1, "served by the mirror");
    assert_eq!(upstream.blob_gets("team/app", &on_both.layers[0].digest), 0);
    assert_eq!(upstream.manifest_gets("team/app"), 0, "the upstream was not asked");
    // The names are the upstream's: mirrors are transparent.
    assert_eq!(rec.repo_tags, [upstream.reference("team/app", "both")]);

    let rec = s.pull(&r_only).await.unwrap();
    assert_eq!(rec.id.as_str(), upstream_only.id(), "the mirror's 404 falls back to the upstream");
    assert!(mirror.manifest_gets("team/app") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_layer_the_mirror_serves_wrong_comes_from_the_next_endpoint() {
    need_root!();
    let upstream = TestRegistry::start().await.unwrap();
    let mirror = TestRegistry::start().await.unwrap();
    let img = catalog::user_numeric().build();
    assert!(img.layers.len() >= 2);
    upstream.push("team/app", "v1", &img).await.unwrap();
    mirror.push("team/app", "v1", &img).await.unwrap();
    // The mirror has the manifest and the config, but one of its layers is corrupt.
    mirror.tamper_blob(&img.layers[1].digest).unwrap();
    let cfg = format!("[\"{}\"]\nmirrors = [\"{}\"]\n", upstream.host(), mirror.host());
    let s = Store::new(&cfg);
    let rec = s.pull(&upstream.reference("team/app", "v1")).await.unwrap();
    assert_eq!(rec.id.as_str(), img.id());
    assert_eq!(upstream.manifest_gets("team/app"), 0, "the manifest came from the mirror");
    assert_eq!(mirror.blob_gets("team/app", &img.layers[0].digest), 1);
    assert_eq!(upstream.blob_gets("team/app", &img.layers[0].digest), 0, "a good layer comes from the mirror only");
    assert_eq!(upstream.blob_gets("team/app", &img.layers[1].digest), 1, "the corrupt one from the upstream");
    assert!(s.entries("tmp").is_empty(), "{:?}", s.entries("tmp"));

    // With no endpoint after the mirror, the corrupt layer fails the pull and nothing is kept.
    let only = format!("[\"{}\"]\nmirrors = [\"{}\"]\nupstream = false\n", upstream.host(), mirror.host());
    let s = Store::new(&only);
    let err = s.pull(&upstream.reference("team/app", "v1")).await.unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(s.store().list().is_empty() && s.entries("layers").is_empty() && s.entries("tmp").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mirrors_only_never_falls_back() {
    need_root!();
    let mirror = TestRegistry::start().await.unwrap();
    let img = catalog::busybox().build();
    mirror.push("library/app", "v1", &img).await.unwrap();
    // The upstream's name cannot resolve: any attempt to reach it would fail differently.
    let cfg = format!("[\"registry.invalid\"]\nmirrors = [\"{}\"]\nupstream = false\n", mirror.host());
    let s = Store::new(&cfg);
    let rec = s.pull("registry.invalid/library/app:v1").await.unwrap();
    assert_eq!(rec.id.as_str(), img.id());
    assert_eq!(rec.repo_tags, ["registry.invalid/library/app:v1"]);

    let err = s.pull("registry.invalid/library/app:missing").await.unwrap_err();
    assert!(matches!(err, ImageError::MirrorsFailed { all_not_found: true, .. }), "{err}");
    let err = crius_core::Error::from(err);
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(&mirror.host()) && err.to_string().contains("404"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn insecure_setting_picks_the_scheme() {
    need_root!();
    let reg = TestRegistry::start().await.unwrap();
    let img = catalog::busybox().build();
    reg.push("app", "v1", &img).await.unwrap();
    let name = format!("localhost:{}/app:v1", reg.port());
    let plain = Store::new(&format!("[\"localhost:{}\"]\ninsecure = true\n", reg.port()));
    assert_eq!(plain.pull(&name).await.unwrap().id.as_str(), img.id());
    let tls = Store::new(&format!("[\"localhost:{}\"]\ninsecure = false\n", reg.port()));
    let err = tls.pull(&name).await.unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "HTTPS to a plain-HTTP registry fails: {err}");
    assert!(err.to_string().contains(&format!("localhost:{}", reg.port())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_registry_fails_with_a_clear_error() {
    need_root!();
    // A registry that answers the manifest's headers, then sends nothing more.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 5000\r\n\r\n{";
                let _ = sock.write_all(head.as_bytes()).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let s = Store::with_pull("", PullConfig { progress_timeout_secs: 1, ..Default::default() });
    let started = std::time::Instant::now();
    let err = s.pull(&format!("127.0.0.1:{port}/stall:v1")).await.unwrap_err();
    assert!(matches!(err, ImageError::NoProgress { seconds: 1, .. }), "{err}");
    assert!(err.to_string().contains("no progress"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remove_by_tag_digest_and_id_through_the_domain() {
    need_root!();
    let reg = TestRegistry::start().await.unwrap();
    let a = catalog::user_numeric().build();
    let b = catalog::user_name().build();
    let ra1 = reg.push("rm", "a1", &a).await.unwrap();
    let ra2 = reg.push("rm", "a2", &a).await.unwrap();
    let rb = reg.push("rm", "b", &b).await.unwrap();
    let s = Store::new("");
    for r in [&ra1, &ra2, &rb] {
        s.pull(r).await.unwrap();
    }
    let svc = ImageService::new(std::sync::Arc::new(s.store().clone()));
    let run = |f: Box<dyn FnOnce() -> crius_core::Result<()> + Send>| tokio::task::spawn_blocking(f);
    let base_chain = s.store().list()[0].layers[0].chain_id.clone();
    let layers_before = s.entries("layers").len();

    // One of two tags: only the tag goes.
    let svc = std::sync::Arc::new(svc);
    let v = svc.clone();
    let ra1c = ra1.clone();
    run(Box::new(move || v.remove(&ra1c))).await.unwrap().unwrap();
    let a_now = s.store().get(&digest(a.id())).unwrap();
    assert_eq!(a_now.repo_tags, std::slice::from_ref(&ra2));
    assert_eq!(s.entries("layers").len(), layers_before);

    // By digest: the image goes; the busybox base layer stays for b.
    let by_digest = format!("{}/rm@{}", reg.host(), a.manifest_digest());
    let v = svc.clone();
    run(Box::new(move || v.remove(&by_digest))).await.unwrap().unwrap();
    assert!(s.store().get(&digest(a.id())).is_none());
    assert!(s.layer_dir(&base_chain).is_dir(), "shared layer kept");
    assert_eq!(s.entries("layers").len(), layers_before - 1);

    // By id, twice (idempotent): everything goes.
    let v = svc.clone();
    let id = b.id().to_string();
    run(Box::new(move || {
        v.remove(&id)?;
        v.remove(&id)
    }))
    .await
    .unwrap()
    .unwrap();
    assert!(s.store().list().is_empty());
    assert!(s.entries("layers").is_empty());
    assert!(s.entries("blobs/sha256").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_changes_by_the_layers_and_holds_keep_layers() {
    need_root!();
    let reg = TestRegistry::start().await.unwrap();
    let img = catalog::big(8, 2, 3).build();
    let r = reg.push("usage", "v1", &img).await.unwrap();
    let s = Store::new("");
    let before = s.store().usage();
    let rec = s.pull(&r).await.unwrap();
    let after = s.store().usage();
    let grown = after.images.used_bytes - before.images.used_bytes;
    // The unpacked layers, plus a few KiB of config, manifest and index.
    assert!(grown >= rec.size && grown <= rec.size + 64 * 1024, "grew {grown}, image size {}", rec.size);
    assert!(rec.size >= 8 * 1024 * 1024);
    assert!(after.images.inodes_used > before.images.inodes_used + 30);
    assert!(after.images.path.ends_with("/images") && after.containers.path.ends_with("/containers"));

    // A container's hold keeps the layers after the image is removed.
    let paths = s.store().hold_layers("ctr1", &rec.id).unwrap();
    assert_eq!(paths.len(), rec.layers.len());
    s.store().remove(&rec.id).unwrap();
    assert!(paths.iter().all(|p| p.is_dir()), "held layers stay");
    let mut s = s;
    s.reopen();
    assert!(paths.iter().all(|p| p.is_dir()), "holds survive a restart");
    let freed = s.store().release_layers("ctr1").unwrap();
    assert_eq!(freed.layers, rec.layers.len());
    assert!(paths.iter().all(|p| !p.exists()));
    let end = s.store().usage();
    assert!(
        end.images.used_bytes <= before.images.used_bytes + 8192,
        "back to the start: {} vs {}",
        end.images.used_bytes,
        before.images.used_bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_keeps_images_and_removes_orphans() {
    need_root!();
    let reg = TestRegistry::start().await.unwrap();
    let img = catalog::busybox().build();
    let r = reg.push("restart", "v1", &img).await.unwrap();
    let mut s = Store::new("");
    s.pull(&r).await.unwrap();
    let layers = s.entries("layers");
    // What a kill -9 mid-pull leaves: a work dir, a layer renamed into place but not recorded,
    // and a blob written but not indexed.
    let images = s.root().join("images");
    fs::create_dir_all(images.join("tmp/pull-deadbeef/abc/usr")).unwrap();
    fs::write(images.join("tmp/pull-deadbeef/abc/usr/x"), vec![0u8; 100_000]).unwrap();
    fs::create_dir(images.join("layers").join("1".repeat(64))).unwrap();
    fs::write(images.join("layers").join("1".repeat(64)).join("f"), vec![1u8; 50_000]).unwrap();
    fs::write(images.join("blobs/sha256").join("2".repeat(64)), b"{}").unwrap();
    let report = s.reopen();
    assert_eq!((report.tmp_entries, report.layers, report.blobs), (1, 1, 1), "{report:?}");
    assert!(report.bytes_freed >= 150_000, "{report:?}");
    assert_eq!(s.store().list().len(), 1, "the image survives");
    assert_eq!(s.entries("layers"), layers);
    // A second open of the same root is refused while the first holds it.
    let err = common::open(s.root(), "", PullConfig::default()).err().expect("locked");
    assert!(matches!(err, ImageError::Locked { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn import_oci_layout_and_docker_archive() {
    need_root!();
    let s = Store::new("");
    let dir = tempfile::tempdir().unwrap();
    let oci = catalog::user_name().compression(Compression::Zstd).build();
    let oci_tar = dir.path().join("oci.tar");
    oci.write_oci_archive(&oci_tar, Some("example.test/team/oci:v1")).unwrap();
    let store = s.store().clone();
    let p = oci_tar.clone();
    let got = tokio::task::spawn_blocking(move || store.import_archive(&p)).await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id.as_str(), oci.id());
    assert_eq!(got[0].repo_tags, ["example.test/team/oci:v1"]);
    assert_eq!(got[0].repo_digests, [format!("example.test/team/oci@{}", oci.manifest_digest())]);

    let docker = catalog::full_config().build();
    let docker_tar = dir.path().join("docker.tar");
    docker.write_docker_archive(&docker_tar, &["example.test/d:1", "d:latest"]).unwrap();
    let store = s.store().clone();
    let got = tokio::task::spawn_blocking(move || store.import_archive(&docker_tar)).await.unwrap().unwrap();
    assert_eq!(got[0].id.as_str(), docker.id());
    let rec = s.store().get(&digest(docker.id())).unwrap();
    assert_eq!(rec.repo_tags, ["example.test/d:1", "docker.io/library/d:latest"]);
    assert!(s.layer_dir(&rec.layers[0].chain_id).join("bin/busybox").is_file());
    assert_eq!(rec.config.stop_signal, "SIGUSR1");

    // Not an image archive.
    let junk = dir.path().join("junk.tar");
    fs::write(&junk, vec![0u8; 4096]).unwrap();
    let store = s.store().clone();
    let err = tokio::task::spawn_blocking(move || store.import_archive(&junk)).await.unwrap().unwrap_err();
    assert!(matches!(err, ImageError::BadArchive { .. }), "{err}");
    assert!(s.entries("tmp").is_empty());
}

/// Pull time of a ~100 MiB image from the loopback registry, cold and with every layer
/// present. `cargo test --release -p crius-image --test pull -- --ignored --nocapture throughput`
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: run by hand in release mode"]
async fn throughput_100mib() {
    need_root!();
    let reg = TestRegistry::start().await.unwrap();
    let builder = catalog::big(100, 4, 42);
    let img = builder.build();
    let same_layers = builder.label("rebuilt", "yes").build();
    let r1 = reg.push("big", "v1", &img).await.unwrap();
    let r2 = reg.push("big", "v2", &same_layers).await.unwrap();
    let s = Store::new("");
    let t = std::time::Instant::now();
    let rec = s.pull(&r1).await.unwrap();
    let cold = t.elapsed();
    let t = std::time::Instant::now();
    let rec2 = s.pull(&r2).await.unwrap();
    let warm = t.elapsed();
    assert_ne!(rec.id, rec2.id);
    let mib = img.layer_bytes() as f64 / 1_048_576.0;
    println!(
        "THROUGHPUT: {mib:.1} MiB in {} layers: cold {:.3} s ({:.0} MiB/s); all layers present {:.3} s",
        img.layers.len(),
        cold.as_secs_f64(),
        mib / cold.as_secs_f64(),
        warm.as_secs_f64()
    );
}
