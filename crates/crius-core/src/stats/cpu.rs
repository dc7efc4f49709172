//! usage_nano_cores from two samples of a cumulative cpu counter, kept per object in memory.

use std::collections::HashMap;
use std::sync::Mutex;

/// Samples closer than this are too noisy to divide (two callers asking within milliseconds):
/// they get the rate of the last full window and leave the baseline where it is.
pub const MIN_WINDOW_NS: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Sample {
    usage_ns: u64,
    at_ns: i64,
    rate: Option<u64>,
}

/// The previous sample of each object (container id, or "pod/<id>").
#[derive(Debug, Default)]
pub struct CpuRates {
    last: Mutex<HashMap<String, Sample>>,
}

impl CpuRates {
    /// Records `usage_ns` read at `at_ns` and returns the average nano-cores since the previous
    /// sample of `key`.
    pub fn observe(&self, key: &str, usage_ns: u64, at_ns: i64) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = Sample { usage_ns, at_ns, rate: None };
        let Some(prev) = last.get_mut(key) else {
            last.insert(key.to_string(), fresh);
            return None;
        };
        // A counter that went backwards was reset (its cgroup made anew, or a pod's sum lost an
        // exited container): start over rather than report a wrapped difference.
        if usage_ns < prev.usage_ns {
            *prev = fresh;
            return None;
        }
        let window = at_ns.saturating_sub(prev.at_ns);
        if window < MIN_WINDOW_NS {
            return prev.rate;
        }
        let rate = nano_cores(usage_ns - prev.usage_ns, window);
        *prev = Sample { usage_ns, at_ns, rate: Some(rate) };
        Some(rate)
    }

    /// Forgets every key `keep` rejects (objects that are gone).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).retain(|k, _| keep(k));
    }

    pub fn len(&self) -> usize {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// cpu-ns used per wall-ns, scaled to nano-cores; `window_ns` > 0.
pub fn nano_cores(used_ns: u64, window_ns: i64) -> u64 {
    let window = u128::try_from(window_ns.max(1)).unwrap_or(1);
    u64::try_from(u128::from(used_ns) * 1_000_000_000 / window).unwrap_or(u64::MAX)
}
