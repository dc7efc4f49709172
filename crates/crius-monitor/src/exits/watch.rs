//! Delivers exit records as they appear: one inotify watch on the directory (a record arrives
//! by rename: IN_MOVED_TO; IN_CLOSE_WRITE covers a writer that writes in place), served on the
//! daemon's tokio runtime when there is one, else on a thread. A scan after the watch is set
//! delivers the records written while nobody watched. Each record file (name, inode, change
//! time) is delivered at most once.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crius_core::ports::container::ContainerExit;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::record;

pub type Callback = Box<dyn Fn(ContainerExit) + Send + Sync>;

/// After this many deliveries, forget the files that are gone (removed records).
const PRUNE_EVERY: usize = 64;

/// What identifies one record file: a new record under the same name is a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    ino: u64,
    ctime_ns: i64,
}

pub(crate) struct Watcher {
    dir: PathBuf,
    on_exit: Callback,
    delivered: HashMap<String, FileId>,
    since_prune: usize,
}

struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Starts watching `dir` (created if missing) and delivers what is already there.
pub(crate) fn start(dir: &Path, on_exit: Callback) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    inotify.add_watch(dir, AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE)?;
    // The scan runs where the events are served, after the watch exists (a record written
    // meanwhile is seen by both and delivered once), and never on the caller's stack: a
    // callback that takes a lock the caller holds cannot deadlock.
    let watcher = Watcher { dir: dir.to_path_buf(), on_exit, delivered: HashMap::new(), since_prune: 0 };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            // SAFETY: InotifyFd owns the descriptor and returns the same one for as long as it
            // lives; the AsyncFd owns the InotifyFd.
            let fd = unsafe { AsyncFd::register_with_interest(InotifyFd(inotify), Interest::READABLE) }
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            runtime.spawn(serve_async(fd, watcher));
        }
        Err(_) => {
            let inotify = Arc::new(inotify);
            std::thread::Builder::new()
                .name("crius-exit-records".into())
                .spawn(move || serve_blocking(&inotify, watcher))?;
        }
    }
    Ok(())
}

async fn serve_async(fd: AsyncFd<InotifyFd>, mut watcher: Watcher) {
    watcher.scan();
    loop {
        let mut guard = match fd.readable().await {
            Ok(guard) => guard,
            Err(e) => {
                tracing::error!(dir = %watcher.dir.display(), error = %e, "exit record watch failed; no more exits are delivered");
                return;
            }
        };
        match fd.get_ref().0.read_events() {
            Ok(events) => {
                for event in events {
                    watcher.on_event(event.name.as_deref().and_then(|n| n.to_str()), event.mask);
                }
            }
            Err(Errno::EAGAIN) => guard.clear_ready(),
            Err(e) => {
                tracing::error!(dir = %watcher.dir.display(), error = %e, "reading inotify events failed; no more exits are delivered");
                return;
            }
        }
    }
}

fn serve_blocking(inotify: &Inotify, mut watcher: Watcher) {
    watcher.scan();
    loop {
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::error!(error = %e, "polling the exit record watch failed");
                return;
            }
        }
        match inotify.read_events() {
            Ok(events) => {
                for event in events {
                    watcher.on_event(event.name.as_deref().and_then(|n| n.to_str()), event.mask);
                }
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => {
                tracing::error!(error = %e, "reading inotify events failed");
                return;
            }
        }
    }
}

impl Watcher {
    fn on_event(&mut self, name: Option<&str>, mask: AddWatchFlags) {
        if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            // Events were lost: look at everything.
            tracing::warn!(dir = %self.dir.display(), "inotify queue overflowed; rescanning exit records");
            return self.scan();
        }
        if let Some(name) = name {
            self.deliver(name);
        }
    }

    fn scan(&mut self) {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => return tracing::warn!(dir = %self.dir.display(), error = %e, "scanning exit records"),
        };
        let mut names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
        names.sort();
        for name in names {
            self.deliver(&name);
        }
    }

    fn deliver(&mut self, name: &str) {
        if name.starts_with(record::TEMP_PREFIX) {
            return;
        }
        let path = self.dir.join(name);
        // Read first, then identify: a file replaced in between is delivered again, never lost.
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // Removed already (the daemon handled it), or not a file.
            Err(_) => return,
        };
        let Ok(meta) = std::fs::metadata(&path) else { return };
        let id = FileId { ino: meta.ino(), ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec() };
        if self.delivered.get(name) == Some(&id) {
            return;
        }
        let exit = match record::decode(&bytes) {
            Ok(exit) if exit.container_id == name => exit,
            Ok(exit) => {
                return tracing::warn!(file = %path.display(), container_id = %exit.container_id, "an exit record under another container's name; ignored");
            }
            // Written in place and not complete yet: its IN_CLOSE_WRITE comes later.
            Err(e) => {
                return tracing::debug!(file = %path.display(), error = %e, "an exit record that does not parse (yet)");
            }
        };
        self.delivered.insert(name.to_string(), id);
        self.since_prune += 1;
        if self.since_prune >= PRUNE_EVERY {
            self.since_prune = 0;
            let dir = self.dir.clone();
            self.delivered.retain(|name, _| dir.join(name).exists());
        }
        (self.on_exit)(exit);
    }
}
