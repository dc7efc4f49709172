//! SPDY/3.1 flow control arithmetic (draft 3.1, 2.6.8): a sender may have at most `window` bytes
//! of DATA outstanding per stream *and* per connection; the receiver returns credit with
//! WINDOW_UPDATE as it consumes. Windows start at 64 KiB; SETTINGS INITIAL_WINDOW_SIZE changes
//! every stream's window by the difference (which may make one negative); the connection window
//! only grows by WINDOW_UPDATE on stream 0.

use std::time::Duration;

use crate::error::SpdyError;

/// The initial window of streams and of the connection.
pub const DEFAULT_WINDOW: u32 = 64 * 1024;
/// The largest window the 31-bit delta can reach.
pub const MAX_WINDOW: i64 = 0x7fff_ffff;

/// How the sender treats the peer's windows.
///
/// moby/spdystream (the kubelet's and kubectl's SPDY) neither sends WINDOW_UPDATE nor honours it
/// (moby/spdystream#2): a sender that waits for credit from it stalls forever after 64 KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowControl {
    /// Never send past the peer's windows.
    Strict,
    /// Honour the peer's windows once it has shown it manages them (a WINDOW_UPDATE or an
    /// INITIAL_WINDOW_SIZE setting). A peer that has shown nothing, and leaves a window
    /// exhausted for `grace`, is taken not to do flow control, and the windows are ignored for
    /// the rest of the connection.
    Adaptive { grace: Duration },
}

/// One send window (a stream's or the connection's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow(i64);

impl SendWindow {
    pub fn new(size: u32) -> Self {
        SendWindow(i64::from(size))
    }

    /// Bytes that may be sent now (0 when exhausted or negative).
    pub fn available(&self) -> usize {
        usize::try_from(self.0.max(0)).unwrap_or(0)
    }

    pub fn value(&self) -> i64 {
        self.0
    }

    pub fn consume(&mut self, n: usize) {
        self.0 -= n as i64;
    }

    /// A WINDOW_UPDATE's delta; a window pushed past 2^31-1 is the peer's flow-control error.
    pub fn grow(&mut self, delta: u32) -> Result<(), SpdyError> {
        let next = self.0 + i64::from(delta);
        if next > MAX_WINDOW {
            return Err(SpdyError::FlowControl("a WINDOW_UPDATE pushed a window past 2^31-1"));
        }
        self.0 = next;
        Ok(())
    }

    /// A change of the initial window size applies its difference to every open stream.
    pub fn adjust(&mut self, old_initial: u32, new_initial: u32) {
        self.0 += i64::from(new_initial) - i64::from(old_initial);
    }
}

/// One receive window: counts consumed bytes and says when to return credit. Credit goes back
/// once half the window has been consumed, so a steady sender never waits a round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvWindow {
    size: u32,
    unacked: u32,
}

impl RecvWindow {
    pub fn new(size: u32) -> Self {
        RecvWindow { size, unacked: 0 }
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Records `n` consumed bytes; Some(delta) when a WINDOW_UPDATE of `delta` is due.
    pub fn consume(&mut self, n: usize) -> Option<u32> {
        self.unacked = self.unacked.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        if self.unacked >= self.size / 2 {
            let delta = self.unacked.min(MAX_WINDOW as u32);
            self.unacked -= delta;
            Some(delta)
        } else {
            None
        }
    }

    /// A due update could not be queued: keep its credit for the next one.
    pub fn restore(&mut self, delta: u32) {
        self.unacked = self.unacked.saturating_add(delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhaustion_and_update() {
        let mut w = SendWindow::new(DEFAULT_WINDOW);
        assert_eq!(w.available(), 65536);
        w.consume(65536);
        assert_eq!(w.available(), 0);
        w.grow(1000).unwrap();
        assert_eq!(w.available(), 1000);
        assert!(w.grow(u32::MAX >> 1).is_err());
    }

    #[test]
    fn settings_can_make_a_window_negative() {
        let mut w = SendWindow::new(DEFAULT_WINDOW);
        w.consume(60_000);
        w.adjust(DEFAULT_WINDOW, 16 * 1024);
        assert!(w.value() < 0);
        assert_eq!(w.available(), 0);
        w.grow(50_000).unwrap();
        assert_eq!(w.available(), 16384 + 50000 - 60000);
    }

    #[test]
    fn credit_returns_at_half_the_window() {
        let mut r = RecvWindow::new(1000);
        assert_eq!(r.consume(400), None);
        assert_eq!(r.consume(100), Some(500));
        assert_eq!(r.consume(499), None);
        r.restore(10);
        assert_eq!(r.consume(1), Some(510));
    }
}
