//! The monitor's log: a few lines per pod on stderr, which the monitor points at
//! <run_dir>/pods/<id>/monitor.log. Deliberately tiny: no tracing subscriber in a process that
//! lives as long as the pod.

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn write(args: fmt::Arguments<'_>) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let _ = writeln!(
        std::io::stderr().lock(),
        "{}.{:03} crius-monitor[{}]: {args}",
        now.as_secs(),
        now.subsec_millis(),
        std::process::id()
    );
}

macro_rules! log {
    ($($arg:tt)*) => {
        $crate::monitor::log::write(format_args!($($arg)*))
    };
}

pub(crate) use log;
