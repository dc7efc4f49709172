//! Interface counters of a network namespace, from its /proc/net/dev.

use std::fs::File;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

use crate::error::{Error, Result};

/// The counters of one interface (cumulative since the interface was made).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Parses /proc/net/dev: two header lines, then "name: 16 numbers" (8 receive, 8 transmit).
/// Lines that do not parse are skipped.
pub fn parse_net_dev(text: &str) -> Vec<InterfaceCounters> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let v: Vec<u64> = rest.split_whitespace().map(|f| f.parse().ok()).collect::<Option<_>>()?;
            if v.len() < 16 {
                return None;
            }
            Some(InterfaceCounters {
                name: name.trim().to_string(),
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_dropped: v[11],
            })
        })
        .collect()
}

/// The interface counters of the network namespace pinned at `netns`.
///
/// Read on a short-lived thread that joins the namespace: setns changes only the calling
/// thread, and a thread that never returns to a pool cannot carry the pod's namespace into
/// other work. It reads /proc/thread-self/net/dev, since /proc/self/net follows the main
/// thread's namespace, not this one's.
pub fn read_net_dev_in_netns(netns: &Path) -> Result<Vec<InterfaceCounters>> {
    let file = File::open(netns).map_err(|e| Error::Io {
        op: "opening the network namespace",
        path: netns.into(),
        source: e,
    })?;
    let thread = std::thread::Builder::new()
        .name("crius-netstat".into())
        .spawn(move || -> Result<String> {
            setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|errno| Error::Syscall { op: "setns into a pod network namespace", errno })?;
            let path = Path::new("/proc/thread-self/net/dev");
            std::fs::read_to_string(path).map_err(|e| Error::Io { op: "reading", path: path.into(), source: e })
        })
        .map_err(|e| Error::Io { op: "starting a thread to read", path: netns.into(), source: e })?;
    let text = thread.join().map_err(|_| Error::Syscall {
        op: "reading interface counters (the reader thread panicked)",
        errno: nix::errno::Errno::EIO,
    })??;
    Ok(parse_net_dev(&text))
}
