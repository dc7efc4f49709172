//! One daemon per state directory: an exclusive flock held for the daemon's lifetime.

use std::fs::{File, OpenOptions};
use std::path::Path;

use anyhow::{Context, bail};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

pub fn lock_state_dir(state: &Path) -> anyhow::Result<Flock<File>> {
    let path = state.join("crius.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, Errno::EWOULDBLOCK)) => bail!(
            "another crius daemon is running with state directory {} (it holds {}); stop it first",
            state.display(),
            path.display()
        ),
        Err((_, errno)) => Err(errno).with_context(|| format!("locking {}", path.display())),
    }
}
