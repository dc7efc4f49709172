//! Exit records: the monitor writes one per container exit to `<run_dir>/exits/<container-id>`;
//! the daemon reads, removes and watches them ([`ExitDir`], crius-core's `ExitRecords` port).

pub mod record;
mod watch;

use std::io;
use std::path::{Path, PathBuf};

use crius_core::Error;
use crius_core::ports::container::{ContainerExit, ExitRecords};

use crate::paths::validate_id;

/// The exit record directory, `<run_dir>/exits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitDir {
    dir: PathBuf,
}

impl ExitDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ExitDir { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, container_id: &str) -> crius_core::Result<PathBuf> {
        validate_id("container", container_id).map_err(|e| Error::invalid(e.to_string()))?;
        Ok(record::path(&self.dir, container_id))
    }
}

impl ExitRecords for ExitDir {
    fn read(&self, container_id: &str) -> crius_core::Result<Option<ContainerExit>> {
        let path = self.path(container_id)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::internal(format!("reading the exit record {}", path.display()), e)),
        };
        record::decode(&bytes)
            .map(Some)
            .map_err(|e| Error::internal(format!("the exit record {} is not valid", path.display()), e))
    }

    fn remove(&self, container_id: &str) -> crius_core::Result<()> {
        let path = self.path(container_id)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::internal(format!("removing the exit record {}", path.display()), e)),
        }
    }

    fn watch(&self, on_exit: Box<dyn Fn(ContainerExit) + Send + Sync>) -> crius_core::Result<()> {
        watch::start(&self.dir, on_exit)
            .map_err(|e| Error::internal(format!("watching exit records in {}", self.dir.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use crius_core::ErrorKind;

    use super::*;

    fn exit(id: &str, code: i32) -> ContainerExit {
        ContainerExit { container_id: id.into(), pid: 1, exit_code: code, ..Default::default() }
    }

    #[test]
    fn read_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ExitDir::new(tmp.path().join("exits"));
        assert_eq!(dir.read("c1").unwrap(), None);
        record::write(dir.dir(), &exit("c1", 3)).unwrap();
        assert_eq!(dir.read("c1").unwrap(), Some(exit("c1", 3)));
        dir.remove("c1").unwrap();
        dir.remove("c1").unwrap();
        assert_eq!(dir.read("c1").unwrap(), None);
        assert_eq!(dir.read("../etc").unwrap_err().kind(), ErrorKind::InvalidArgument);
        std::fs::write(dir.dir().join("bad"), "{").unwrap();
        assert_eq!(dir.read("bad").unwrap_err().kind(), ErrorKind::Internal);
    }

    fn watch_delivers_old_and_new_records(runtime: Option<&tokio::runtime::Runtime>) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ExitDir::new(tmp.path().join("exits"));
        record::write(dir.dir(), &exit("before", 1)).unwrap();
        // A temp file of a writer that died is never delivered.
        std::fs::write(dir.dir().join(".half.tmp"), "{").unwrap();
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let on_exit: Box<dyn Fn(ContainerExit) + Send + Sync> = Box::new(move |e| {
            let _ = tx.lock().unwrap().send(e);
        });
        let _entered = runtime.map(|r| r.enter());
        dir.watch(on_exit).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), exit("before", 1));
        record::write(dir.dir(), &exit("after", 2)).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), exit("after", 2));
        // Written in place: delivered once when complete, whatever the number of closes.
        let in_place = dir.dir().join("inplace");
        std::fs::write(&in_place, &record::encode(&exit("inplace", 4))[..10]).unwrap();
        std::fs::write(&in_place, record::encode(&exit("inplace", 4))).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), exit("inplace", 4));
        // A new record under a delivered name (the file was replaced) is delivered again.
        record::write(dir.dir(), &exit("after", 5)).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), exit("after", 5));
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "a record was delivered twice");
    }

    #[test]
    fn watch_on_a_thread() {
        watch_delivers_old_and_new_records(None);
    }

    #[test]
    fn watch_on_tokio() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        watch_delivers_old_and_new_records(Some(&runtime));
    }
}
