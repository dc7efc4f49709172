//! Per-step timing of an RPC (RunPodSandbox, CreateContainer, StartContainer): cheap (one clock
//! read per step) and kept with the object's record.
//!
//! Steps are contiguous: each begins where the one before ended (the first where the timeline
//! started), so the glue between two steps is charged to the second and the durations add up
//! exactly to the time from the start to the end of the last step.

use std::time::Instant;

use super::StepHook;
use super::model::StepTiming;

pub(crate) struct Timeline<'a> {
    origin: Instant,
    /// The wall clock at `origin` (ns since the epoch), to place a later call's steps after
    /// these ones.
    origin_ns: i64,
    /// Where the next step begins (µs from `origin`).
    end_us: u64,
    hook: Option<&'a StepHook>,
    steps: Vec<StepTiming>,
}

impl<'a> Timeline<'a> {
    pub fn start(hook: Option<&'a StepHook>) -> Self {
        Timeline { origin: Instant::now(), origin_ns: super::now_ns(), end_us: 0, hook, steps: Vec::with_capacity(12) }
    }

    /// Runs one named step and records how long it took.
    pub fn step<T>(&mut self, name: &'static str, f: impl FnOnce() -> T) -> T {
        if let Some(hook) = self.hook {
            hook(name);
        }
        let out = f();
        let end_us = micros(self.origin.elapsed());
        self.steps.push(StepTiming {
            step: name.to_string(),
            start_us: self.end_us,
            duration_us: end_us.saturating_sub(self.end_us),
        });
        self.end_us = end_us;
        out
    }

    pub fn steps(&self) -> &[StepTiming] {
        &self.steps
    }

    /// When the timeline started, on the wall clock (ns since the epoch).
    pub fn origin_ns(&self) -> i64 {
        self.origin_ns
    }

    /// The steps appended to `earlier`, the timeline of an earlier call that started at
    /// `earlier_origin_ns`: placed by the wall clock, and never before the earlier steps end
    /// (the wall clock may have been set back in between).
    pub fn append_to(&self, earlier: &[StepTiming], earlier_origin_ns: i64) -> Vec<StepTiming> {
        let earlier_end = earlier.iter().map(|s| s.start_us.saturating_add(s.duration_us)).max().unwrap_or(0);
        let since_earlier = u64::try_from(self.origin_ns.saturating_sub(earlier_origin_ns) / 1000).unwrap_or(0);
        let offset = since_earlier.max(earlier_end);
        let mut out = earlier.to_vec();
        out.extend(self.steps.iter().map(|s| StepTiming { start_us: s.start_us.saturating_add(offset), ..s.clone() }));
        out
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(t: &[StepTiming]) -> Vec<(&str, u64)> {
        t.iter().map(|s| (s.step.as_str(), s.start_us)).collect()
    }

    #[test]
    fn steps_are_contiguous_and_add_up_to_the_elapsed_time() {
        let mut t = Timeline::start(None);
        t.step("a", || std::thread::sleep(std::time::Duration::from_millis(2)));
        // Glue between steps is charged to the next one.
        std::thread::sleep(std::time::Duration::from_millis(2));
        t.step("b", || ());
        let s = t.steps();
        assert_eq!(s[0].start_us, 0);
        assert!(s[0].duration_us >= 2000, "{s:?}");
        assert_eq!(s[1].start_us, s[0].duration_us);
        assert!(s[1].duration_us >= 2000, "{s:?}");
        let total: u64 = s.iter().map(|s| s.duration_us).sum();
        assert!(total <= micros(t.origin.elapsed()));
    }

    #[test]
    fn the_hook_sees_each_step_before_it_runs() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let hook: StepHook = std::sync::Arc::new(move |s: &str| log.lock().unwrap().push(s.to_string()));
        let mut t = Timeline::start(Some(&hook));
        let ran = t.step("one", || seen.lock().unwrap().clone());
        assert_eq!(ran, ["one"]);
    }

    #[test]
    fn a_later_call_is_placed_after_the_earlier_steps() {
        let earlier = vec![
            StepTiming { step: "x".into(), start_us: 0, duration_us: 10 },
            StepTiming { step: "y".into(), start_us: 10, duration_us: 5 },
        ];
        let mut t = Timeline::start(None);
        t.step("z", || ());
        // 1 s later by the wall clock.
        let placed = t.append_to(&earlier, t.origin_ns() - 1_000_000_000);
        assert_eq!(steps(&placed)[..2], [("x", 0), ("y", 10)]);
        assert_eq!(placed[2].step, "z");
        assert_eq!(placed[2].start_us, 1_000_000);
        // A wall clock set back: right after the earlier steps.
        let placed = t.append_to(&earlier, t.origin_ns() + 1_000_000_000);
        assert_eq!(placed[2].start_us, 15);
    }
}
