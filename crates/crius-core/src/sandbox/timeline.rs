//! Per-step timing of RunPodSandbox: cheap (one clock read per step) and kept with the pod.

use std::time::Instant;

use super::StepHook;
use super::model::StepTiming;

pub(crate) struct Timeline<'a> {
    origin: Instant,
    hook: Option<&'a StepHook>,
    steps: Vec<StepTiming>,
}

impl<'a> Timeline<'a> {
    pub fn start(hook: Option<&'a StepHook>) -> Self {
        Timeline { origin: Instant::now(), hook, steps: Vec::with_capacity(8) }
    }

    /// Runs one named step and records how long it took.
    pub fn step<T>(&mut self, name: &'static str, f: impl FnOnce() -> T) -> T {
        if let Some(hook) = self.hook {
            hook(name);
        }
        let begin = Instant::now();
        let out = f();
        self.steps.push(StepTiming {
            step: name.to_string(),
            start_us: micros(begin.duration_since(self.origin)),
            duration_us: micros(begin.elapsed()),
        });
        out
    }

    pub fn steps(&self) -> &[StepTiming] {
        &self.steps
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
