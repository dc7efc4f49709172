//! The CRI ImageService of a real daemon against a real registry on loopback (test images built
//! by crius-testkit): pulls and their error codes, ImageStatus as CRI defines it, list filters,
//! removal, ImageFsInfo, auth, and a kill -9 in the middle of a pull. Needs root.

use std::path::Path;
use std::time::{Duration, Instant};

use crius_testkit::cri;
use crius_testkit::image_builder::{Compression, catalog};
use crius_testkit::registry::TestRegistry;
use crius_testkit::tonic::Code;
use crius_testkit::{TestDaemon, tokio};

const BIN: &str = env!("CARGO_BIN_EXE_crius");

fn spec(image: &str) -> Option<cri::ImageSpec> {
    Some(cri::ImageSpec { image: image.to_string(), ..Default::default() })
}

async fn pull(
    d: &TestDaemon,
    image: &str,
    auth: Option<cri::AuthConfig>,
) -> Result<String, crius_testkit::tonic::Status> {
    let req = cri::PullImageRequest { image: spec(image), auth, sandbox_config: None };
    Ok(d.image().pull_image(req).await?.into_inner().image_ref)
}

async fn status(d: &TestDaemon, image: &str, verbose: bool) -> cri::ImageStatusResponse {
    d.image().image_status(cri::ImageStatusRequest { image: spec(image), verbose }).await.unwrap().into_inner()
}

async fn list(d: &TestDaemon, filter: Option<&str>) -> Vec<cri::Image> {
    let filter = filter.map(|f| cri::ImageFilter { image: spec(f) });
    d.image().list_images(cri::ListImagesRequest { filter }).await.unwrap().into_inner().images
}

async fn remove(d: &TestDaemon, image: &str) {
    d.image().remove_image(cri::RemoveImageRequest { image: spec(image) }).await.unwrap();
}

async fn fs_used(d: &TestDaemon) -> (u64, u64) {
    let r = d.image().image_fs_info(cri::ImageFsInfoRequest {}).await.unwrap().into_inner();
    let fs = &r.image_filesystems[0];
    assert!(fs.fs_id.as_ref().unwrap().mountpoint.ends_with("/images"));
    assert!(r.container_filesystems[0].fs_id.as_ref().unwrap().mountpoint.ends_with("/containers"));
    (fs.used_bytes.unwrap().value, fs.inodes_used.unwrap().value)
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_status_list_remove_and_fs_info() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let reg = TestRegistry::start().await.unwrap();
    let numeric = catalog::user_numeric().build();
    let named = catalog::user_name().build();
    let grouped = catalog::user_name_group().build();
    let full = catalog::full_config().build();
    let r_numeric = reg.push("users", "numeric", &numeric).await.unwrap();
    let r_numeric2 = reg.push("users", "numeric-too", &numeric).await.unwrap();
    let r_named = reg.push("users", "named", &named).await.unwrap();
    let r_grouped = reg.push("users", "grouped", &grouped).await.unwrap();
    let r_full = reg.push("full", "v1", &full).await.unwrap();
    let d = TestDaemon::start(BIN).await.unwrap();

    let (bytes0, inodes0) = fs_used(&d).await;
    assert_eq!(pull(&d, &r_numeric, None).await.unwrap(), numeric.id(), "PullImage answers the image id");
    let (bytes1, inodes1) = fs_used(&d).await;
    let img = status(&d, &r_numeric, false).await.image.expect("pulled image has a status");
    assert!(
        bytes1 - bytes0 >= img.size && bytes1 - bytes0 <= img.size + 64 * 1024,
        "fs grew {} for size {}",
        bytes1 - bytes0,
        img.size
    );
    assert!(inodes1 > inodes0 + 30);

    for r in [&r_numeric2, &r_named, &r_grouped, &r_full] {
        pull(&d, r, None).await.unwrap();
    }
    // USER as CRI defines it: a numeric uid, or a name (the group dropped).
    let s = status(&d, &r_numeric, false).await.image.unwrap();
    assert_eq!((s.uid.map(|u| u.value), s.username.as_str()), (Some(1000), ""));
    assert_eq!(s.id, numeric.id());
    assert_eq!(s.repo_tags.len(), 2);
    assert_eq!(s.repo_digests, [format!("{}/users@{}", reg.host(), numeric.manifest_digest())]);
    assert!(!s.pinned);
    let s = status(&d, &r_named, false).await.image.unwrap();
    assert_eq!((s.uid, s.username.as_str()), (None, "app"));
    let s = status(&d, &r_grouped, false).await.image.unwrap();
    assert_eq!(s.username, "app");
    // By id, short id and digest too; verbose info has the config.
    let v = status(&d, &full.id()[7..19], true).await;
    assert_eq!(v.image.unwrap().id, full.id());
    let info: crius_testkit::serde_json::Value = crius_testkit::serde_json::from_str(&v.info["info"]).unwrap();
    assert_eq!(info["config"]["config"]["StopSignal"], "SIGUSR1");
    assert_eq!(info["layers"].as_array().unwrap().len(), full.layers.len());
    assert!(status(&d, &format!("{}/full@{}", reg.host(), full.manifest_digest()), false).await.image.is_some());
    // Unknown: no image, no error.
    let none = status(&d, &reg.reference("users", "nope"), false).await;
    assert!(none.image.is_none() && none.info.is_empty());

    assert_eq!(list(&d, None).await.len(), 4);
    let only = list(&d, Some(&r_named)).await;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].id, named.id());
    assert!(list(&d, Some("nothing-here:v9")).await.is_empty());

    // One of two tags: the image stays. The last name: it goes. Again: still fine.
    remove(&d, &r_numeric).await;
    assert_eq!(status(&d, &r_numeric2, false).await.image.unwrap().repo_tags, std::slice::from_ref(&r_numeric2));
    remove(&d, &r_numeric2).await;
    assert!(status(&d, numeric.id(), false).await.image.is_none());
    remove(&d, &r_numeric2).await;
    remove(&d, &format!("{}/users@{}", reg.host(), named.manifest_digest())).await;
    remove(&d, grouped.id()).await;
    remove(&d, &full.id()[7..]).await;
    assert!(list(&d, None).await.is_empty());
    let (bytes_end, _) = fs_used(&d).await;
    assert!(bytes_end <= bytes0 + 8192, "everything freed: {bytes_end} vs {bytes0}");
    assert!(entries(&d.root().join("images/layers")).is_empty());

    // A restart keeps images.
    pull(&d, &r_full, None).await.unwrap();
    let mut d = d;
    d.restart().await.unwrap();
    assert_eq!(list(&d, None).await.len(), 1);
    assert_eq!(status(&d, &r_full, false).await.image.unwrap().id, full.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_errors_have_codes_and_say_what_failed() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let reg = TestRegistry::start_with_auth("kube", "letmein").await.unwrap();
    let img = catalog::busybox().build();
    let r = reg.push("private", "v1", &img).await.unwrap();
    let d = TestDaemon::start(BIN).await.unwrap();

    let err = pull(&d, &r, None).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains(&reg.host()) && err.message().contains("401"), "{}", err.message());
    let auth = cri::AuthConfig { username: "kube".into(), password: "letmein".into(), ..Default::default() };
    assert_eq!(pull(&d, &r, Some(auth.clone())).await.unwrap(), img.id());

    let err = pull(&d, &reg.reference("private", "missing"), Some(auth)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("private:missing") && err.message().contains("404"), "{}", err.message());

    let err = pull(&d, "Not A Reference", None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = d.image().pull_image(cri::PullImageRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Nothing listens here.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = pull(&d, &format!("127.0.0.1:{port}/x:y"), None).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains(&format!("127.0.0.1:{port}")), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_pull_leaves_no_image_and_no_orphans() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let reg = TestRegistry::start().await.unwrap();
    // Plain layers: random data does not compress, and a debug-built gzip of 96 MiB is slow.
    let img = catalog::big(96, 4, 99).compression(Compression::None).build();
    let r = reg.push("big", "v1", &img).await.unwrap();
    let mut d = TestDaemon::start(BIN).await.unwrap();
    let images = d.root().join("images");

    let client = d.image();
    let r2 = r.clone();
    let pulling = tokio::spawn(async move {
        let mut c = client;
        c.pull_image(cri::PullImageRequest { image: spec(&r2), ..Default::default() }).await
    });
    // Kill as soon as a layer is being unpacked in the work area (or once one is in place).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let work: Vec<_> = entries(&images.join("tmp")).into_iter().filter(|e| e.starts_with("pull-")).collect();
        let busy = work.iter().any(|w| {
            entries(&images.join("tmp").join(w))
                .iter()
                .any(|l| !entries(&images.join("tmp").join(w).join(l)).is_empty())
        });
        if busy {
            break;
        }
        assert!(Instant::now() < deadline, "the pull never started unpacking\n{}", d.log_tail(30));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    d.kill9();
    assert!(pulling.await.unwrap().is_err(), "the pull was cut");
    assert!(!entries(&images.join("tmp")).is_empty(), "the kill left work behind to clean");

    d.restart().await.unwrap();
    assert!(list(&d, None).await.is_empty(), "no image is visible");
    assert!(entries(&images.join("tmp")).is_empty(), "tmp emptied: {:?}", entries(&images.join("tmp")));
    assert!(entries(&images.join("layers")).is_empty(), "no orphan layer: {:?}", entries(&images.join("layers")));
    assert!(entries(&images.join("blobs/sha256")).is_empty(), "no orphan blob");
    let log = std::fs::read_to_string(d.log_path()).unwrap();
    assert!(
        log.contains("removed what interrupted pulls left"),
        "the start-up pass reports what it freed\n{}",
        d.log_tail(30)
    );

    // The same pull then succeeds, and survives a restart.
    assert_eq!(pull(&d, &r, None).await.unwrap(), img.id());
    d.restart().await.unwrap();
    assert_eq!(list(&d, None).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_import_ls_rm() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (root, state) = (dir.path().join("root"), dir.path().join("state"));
    let img = catalog::full_config().build();
    let archive = dir.path().join("image.tar");
    img.write_docker_archive(&archive, &["example.test/cli:v1", "example.test/cli:v2"]).unwrap();
    let crius = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .arg("--root")
            .arg(&root)
            .arg("--state")
            .arg(&state)
            .arg("--listen")
            .arg(dir.path().join("none.sock"))
            .args(args)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "crius {args:?}: {text}");
        text
    };
    let out = crius(&["image", "import", archive.to_str().unwrap()]);
    assert!(out.contains(img.id()), "{out}");
    let out = crius(&["image", "ls"]);
    assert!(out.contains(&img.id()[7..19]) && out.contains("example.test/cli:v1, example.test/cli:v2"), "{out}");
    crius(&["image", "rm", "example.test/cli:v1"]);
    let out = crius(&["image", "ls"]);
    assert!(!out.contains("cli:v1") && out.contains("cli:v2"), "{out}");
    crius(&["image", "rm", "example.test/cli:v2"]);
    let out = crius(&["image", "ls"]);
    assert_eq!(out.lines().count(), 1, "only the header: {out}");
    assert!(entries(&root.join("images/layers")).is_empty());

    // With the daemon running, every command goes through its socket: import through crius's
    // admin API (a relative path works: the CLI sends it absolute), ls and rm through CRI.
    let d = TestDaemon::start(BIN).await.unwrap();
    let via = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .arg("--config")
            .arg(d.config_path())
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, out) = via(&["image", "import", "image.tar"]);
    assert!(ok && out.contains(img.id()), "{out}");
    let names: Vec<String> = list(&d, None).await.into_iter().flat_map(|i| i.repo_tags).collect();
    assert_eq!(names, ["example.test/cli:v1", "example.test/cli:v2"], "the daemon serves the imported image");
    let (ok, out) = via(&["image", "ls"]);
    assert!(ok && out.contains("example.test/cli:v1, example.test/cli:v2"), "{out}");
    let (ok, out) = via(&["image", "rm", "example.test/cli:v1"]);
    assert!(ok, "{out}");
    assert_eq!(status(&d, "example.test/cli:v2", false).await.image.unwrap().repo_tags, ["example.test/cli:v2"]);
    let (ok, out) = via(&["image", "rm", img.id()]);
    assert!(ok, "{out}");
    assert!(list(&d, None).await.is_empty());

    // A bad archive is refused with the reason, and leaves nothing behind.
    std::fs::write(dir.path().join("junk.tar"), b"this is no tarball").unwrap();
    let (ok, out) = via(&["image", "import", "junk.tar"]);
    assert!(!ok && out.contains("junk.tar") && out.contains("not an OCI image layout"), "{out}");
    let (ok, out) = via(&["image", "import", "missing.tar"]);
    assert!(!ok && out.contains("missing.tar"), "{out}");
    assert!(list(&d, None).await.is_empty());
    assert!(entries(&d.root().join("images/layers")).is_empty(), "no layer kept from the failed import");
}
