//! [`SharedRegistry`]: one [`TestRegistry`] for every test of a test binary, with its images
//! pushed once. Tests hold it in a `LazyLock`; each test's daemon pulls what it needs.
//!
//! A static is never dropped, so the registry is stopped by a small watchdog (`sh`) that waits
//! for end-of-file on a pipe only this process holds: when the test process ends, however it
//! ends (normal exit, panic, SIGKILL on a time-out), the watchdog kills the registry and removes
//! its storage.
//!
//! ```no_run
//! use std::sync::LazyLock;
//! use crius_testkit::image_builder::catalog;
//! use crius_testkit::shared_registry::SharedRegistry;
//! static REG: LazyLock<SharedRegistry> =
//!     LazyLock::new(|| SharedRegistry::start(vec![("busybox", catalog::busybox())]).expect("registry"));
//! let image = REG.reference("busybox");
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::host;
use crate::image_builder::{BuiltImage, ImageBuilder};
use crate::registry::TestRegistry;

/// The registry and its watchdog's pipe, kept for the life of the process.
struct Kept {
    _registry: TestRegistry,
    _watchdog: Child,
    _pipe: ChildStdin,
}

static KEPT: Mutex<Vec<Kept>> = Mutex::new(Vec::new());

/// A registry on loopback with images pushed, alive until the test process exits.
#[derive(Debug, Clone)]
pub struct SharedRegistry {
    host: String,
    images: BTreeMap<String, (String, BuiltImage)>,
}

impl SharedRegistry {
    /// Builds the images, starts a registry and pushes each image as `<key>:v1` (the key is the
    /// repository name). Blocking: it runs on a thread of its own with its own runtime, so it
    /// can be called from a `LazyLock` inside any test's runtime.
    pub fn start(images: Vec<(&str, ImageBuilder)>) -> Result<SharedRegistry> {
        let images: Vec<(String, ImageBuilder)> = images.into_iter().map(|(k, b)| (k.to_string(), b)).collect();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::context("building a runtime for the shared registry", e))?;
            rt.block_on(async move {
                let registry = TestRegistry::start().await?;
                let mut pushed = BTreeMap::new();
                for (key, builder) in images {
                    let image = builder.build();
                    let reference = registry.push(&key, "v1", &image).await?;
                    pushed.insert(key, (reference, image));
                }
                let shared = SharedRegistry { host: registry.host(), images: pushed };
                keep(registry)?;
                Ok(shared)
            })
        })
        .join()
        .map_err(|_| Error::msg("the shared registry's set-up thread panicked"))?
    }

    /// "127.0.0.1:PORT".
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The pullable reference of the image pushed under `key`. Panics for an unknown key.
    pub fn reference(&self, key: &str) -> String {
        self.get(key).0.clone()
    }

    /// The image id (config digest) of the image pushed under `key`.
    pub fn image_id(&self, key: &str) -> String {
        self.get(key).1.id().to_string()
    }

    pub fn image(&self, key: &str) -> &BuiltImage {
        &self.get(key).1
    }

    fn get(&self, key: &str) -> &(String, BuiltImage) {
        self.images.get(key).unwrap_or_else(|| panic!("no image {key:?} in the shared registry"))
    }
}

/// Starts the watchdog of `registry` and keeps both for the life of the process.
fn keep(registry: TestRegistry) -> Result<()> {
    let dir = registry
        .storage()
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::msg("the registry's storage has no parent dir"))?;
    let pid = registry_pid(&dir).ok_or_else(|| Error::msg(format!("no registry process serving {}", dir.display())))?;
    // `read` returns at end-of-file: when the last holder of the pipe's write end, this
    // process, is gone. The pid is checked against the registry's command line before each kill.
    let script = r#"read _ignored
owns() { tr '\0' ' ' < /proc/$1/cmdline 2>/dev/null | grep -qF "$2"; }
owns "$1" "$2" && kill "$1" 2>/dev/null
i=0
while owns "$1" "$2" && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
owns "$1" "$2" && kill -9 "$1" 2>/dev/null
rm -rf "$2"
"#;
    let mut watchdog = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg("crius-registry-watchdog")
        .arg(pid.to_string())
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::context("starting the shared registry's watchdog", e))?;
    let pipe = watchdog.stdin.take().ok_or_else(|| Error::msg("the watchdog has no stdin"))?;
    KEPT.lock().unwrap_or_else(|e| e.into_inner()).push(Kept { _registry: registry, _watchdog: watchdog, _pipe: pipe });
    Ok(())
}

/// The registry process: the one whose command line names its directory.
fn registry_pid(dir: &Path) -> Option<i32> {
    let needle = format!("{}/", dir.to_string_lossy());
    host::pids().into_iter().find(|pid| host::cmdline(*pid).contains(&needle) && *pid != std::process::id() as i32)
}
