//! LIFO undo of the steps of a multi-step operation: each step that makes something pushes its
//! undo; on failure every undo runs in reverse, past failures of its own.

use crate::error::Error;

type Undo<'a> = Box<dyn FnOnce() -> Result<(), Error> + Send + 'a>;

#[must_use = "a Rollback undoes its steps unless disarmed"]
pub struct Rollback<'a> {
    steps: Vec<(&'static str, Undo<'a>)>,
}

impl Default for Rollback<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Rollback<'a> {
    pub fn new() -> Self {
        Rollback { steps: Vec::new() }
    }

    pub fn push(&mut self, what: &'static str, undo: impl FnOnce() -> Result<(), Error> + Send + 'a) {
        self.steps.push((what, Box::new(undo)));
    }

    /// The operation succeeded: keep everything.
    pub fn disarm(mut self) {
        self.steps.clear();
    }

    /// Undoes every step in reverse; returns the undos that failed, for the error report.
    pub fn run(mut self) -> Vec<String> {
        let mut failures = Vec::new();
        while let Some((what, undo)) = self.steps.pop() {
            if let Err(err) = undo() {
                tracing::warn!(step = what, error = %err, "undo failed");
                failures.push(format!("undo {what}: {err}"));
            }
        }
        failures
    }

    /// Undoes everything and returns `err`, with any failed undo added to its message.
    pub fn fail(self, err: Error) -> Error {
        let failures = self.run();
        if failures.is_empty() { err } else { err.context(format!("(cleanup also failed: {})", failures.join("; "))) }
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        // A panic or early return between steps must not leak what was made.
        while let Some((what, undo)) = self.steps.pop() {
            if let Err(err) = undo() {
                tracing::warn!(step = what, error = %err, "undo failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn undoes_in_reverse_and_continues_past_failures() {
        let log = Mutex::new(Vec::new());
        let mut rb = Rollback::new();
        rb.push("a", || {
            log.lock().unwrap().push("a");
            Ok(())
        });
        rb.push("b", || {
            log.lock().unwrap().push("b");
            Err(Error::invalid("b broke"))
        });
        rb.push("c", || {
            log.lock().unwrap().push("c");
            Ok(())
        });
        let err = rb.fail(Error::not_found("original"));
        assert_eq!(*log.lock().unwrap(), vec!["c", "b", "a"]);
        assert_eq!(err.kind(), crate::error::ErrorKind::NotFound);
        assert!(err.to_string().contains("undo b: b broke"), "{err}");
    }

    #[test]
    fn disarm_keeps_everything() {
        let log = Mutex::new(Vec::<&str>::new());
        let mut rb = Rollback::new();
        rb.push("a", || {
            log.lock().unwrap().push("a");
            Ok(())
        });
        rb.disarm();
        assert!(log.lock().unwrap().is_empty());
    }

    #[test]
    fn dropping_undoes() {
        let log = Mutex::new(Vec::<&str>::new());
        {
            let mut rb = Rollback::new();
            rb.push("a", || {
                log.lock().unwrap().push("a");
                Ok(())
            });
        }
        assert_eq!(*log.lock().unwrap(), vec!["a"]);
    }
}
