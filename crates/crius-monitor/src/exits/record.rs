//! One exit record on disk: `<dir>/<container-id>`, the `ContainerExit` as JSON, written to a
//! dot-named temp file, synced and renamed into place, so a reader sees all of it or nothing.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crius_core::ports::container::ContainerExit;

/// Readers skip names starting with this (temp files being written).
pub const TEMP_PREFIX: char = '.';

pub fn path(dir: &Path, container_id: &str) -> PathBuf {
    dir.join(container_id)
}

pub fn encode(exit: &ContainerExit) -> Vec<u8> {
    // Serializing this plain struct cannot fail.
    let mut json = serde_json::to_vec(exit).unwrap_or_default();
    json.push(b'\n');
    json
}

pub fn decode(bytes: &[u8]) -> Result<ContainerExit, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Writes the record atomically (temp file, fsync, rename). Creates `dir` if needed.
pub fn write(dir: &Path, exit: &ContainerExit) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let target = path(dir, &exit.container_id);
    let temp = dir.join(format!("{TEMP_PREFIX}{}.tmp", exit.container_id));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(&temp)?;
        file.write_all(&encode(exit))?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, &target)?;
        // The rename is durable once the directory is (cheap on tmpfs, right on disk).
        File::open(dir).and_then(|d| d.sync_all())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map(|()| target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ContainerExit {
        ContainerExit {
            container_id: "c1".into(),
            pid: 42,
            exit_code: 143,
            signal: Some(15),
            finished_at_ns: 1_700_000_000_123_456_789,
            oom_killed: false,
            message: String::new(),
        }
    }

    #[test]
    fn encoding() {
        let bytes = encode(&sample());
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "{\"container_id\":\"c1\",\"pid\":42,\"exit_code\":143,\"signal\":15,\
             \"finished_at_ns\":1700000000123456789,\"oom_killed\":false}\n"
        );
        assert_eq!(decode(&bytes).unwrap(), sample());
        let oom = ContainerExit { signal: None, exit_code: 137, oom_killed: true, message: "m".into(), ..sample() };
        assert_eq!(decode(&encode(&oom)).unwrap(), oom);
        assert!(decode(b"{\"container_id\":").is_err());
    }

    #[test]
    fn written_atomically_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let exits = dir.path().join("exits");
        let written = write(&exits, &sample()).unwrap();
        assert_eq!(written, exits.join("c1"));
        assert_eq!(decode(&std::fs::read(&written).unwrap()).unwrap(), sample());
        let names: Vec<_> = std::fs::read_dir(&exits).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, ["c1"]);
        // Overwriting replaces.
        let again = ContainerExit { exit_code: 0, signal: None, ..sample() };
        write(&exits, &again).unwrap();
        assert_eq!(decode(&std::fs::read(&written).unwrap()).unwrap(), again);
    }
}
