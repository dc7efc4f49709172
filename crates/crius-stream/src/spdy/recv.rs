//! A stream's inbound buffer: DATA the connection reader has received and the stream's consumer
//! has not taken yet, bounded in bytes. When it is full the reader waits, which stops reading the
//! socket: backpressure for peers that ignore the windows (moby/spdystream sends regardless). A
//! peer that honours our window never fills it, since the bound is that window.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::sync::lock;

#[derive(Default)]
struct State {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    /// The peer sent FIN: no more data after what is buffered.
    fin: bool,
    /// The stream was reset (by the peer, by us, or with the connection): Some(status).
    reset: Option<u32>,
}

pub struct RecvBuffer {
    state: Mutex<State>,
    readable: Notify,
    writable: Notify,
    limit: usize,
}

/// What the consumer gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Data(Bytes),
    /// The peer finished the stream.
    Fin,
    /// The stream was reset (after the data that had arrived before it).
    Reset(u32),
}

impl RecvBuffer {
    pub fn new(limit: usize) -> Self {
        RecvBuffer { state: Mutex::new(State::default()), readable: Notify::new(), writable: Notify::new(), limit }
    }

    /// Adds a chunk, waiting while the buffer is over its bound. False: the stream is finished
    /// or reset, and the chunk was dropped.
    pub async fn push(&self, data: Bytes) -> bool {
        loop {
            {
                let mut s = lock(&self.state);
                if s.reset.is_some() || s.fin {
                    return false;
                }
                // An empty buffer always takes the chunk, however large: it cannot wait for room.
                if s.buffered == 0 || s.buffered + data.len() <= self.limit {
                    s.buffered += data.len();
                    s.chunks.push_back(data);
                    drop(s);
                    self.readable.notify_one();
                    return true;
                }
            }
            // notify_one keeps a permit when nobody waits: a wakeup between the check and here
            // is not lost.
            self.writable.notified().await;
        }
    }

    pub fn finish(&self) {
        lock(&self.state).fin = true;
        self.readable.notify_one();
    }

    /// Ends the stream: no more data is taken, and the consumer gets the reset once it has read
    /// what arrived before it. Peers reset streams right after their last data (the kubelet's
    /// streaming server sends an exec's status and resets as it closes): dropping that data would
    /// lose the exit code.
    pub fn reset(&self, status: u32) {
        {
            let mut s = lock(&self.state);
            if s.reset.is_none() {
                s.reset = Some(status);
            }
        }
        self.readable.notify_one();
        self.writable.notify_one();
    }

    pub fn is_reset(&self) -> bool {
        lock(&self.state).reset.is_some()
    }

    /// The next chunk, or how the stream ended. One consumer at a time.
    pub async fn pop(&self) -> Received {
        loop {
            {
                let mut s = lock(&self.state);
                if let Some(chunk) = s.chunks.pop_front() {
                    s.buffered -= chunk.len();
                    drop(s);
                    self.writable.notify_one();
                    return Received::Data(chunk);
                }
                if let Some(status) = s.reset {
                    return Received::Reset(status);
                }
                if s.fin {
                    return Received::Fin;
                }
            }
            self.readable.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn data_then_fin() {
        let b = RecvBuffer::new(10);
        assert!(b.push(Bytes::from_static(b"abc")).await);
        b.finish();
        assert!(!b.push(Bytes::from_static(b"late")).await);
        assert_eq!(b.pop().await, Received::Data(Bytes::from_static(b"abc")));
        assert_eq!(b.pop().await, Received::Fin);
    }

    #[tokio::test]
    async fn a_full_buffer_holds_the_producer_until_consumed() {
        let b = Arc::new(RecvBuffer::new(4));
        assert!(b.push(Bytes::from_static(b"1234")).await);
        let producer = {
            let b = b.clone();
            tokio::spawn(async move { b.push(Bytes::from_static(b"5")).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!producer.is_finished());
        assert_eq!(b.pop().await, Received::Data(Bytes::from_static(b"1234")));
        assert!(producer.await.unwrap());
        assert_eq!(b.pop().await, Received::Data(Bytes::from_static(b"5")));
    }

    #[tokio::test]
    async fn reset_wakes_both_sides_and_keeps_what_arrived_before_it() {
        let b = Arc::new(RecvBuffer::new(1));
        assert!(b.push(Bytes::from_static(b"xx")).await);
        let producer = {
            let b = b.clone();
            tokio::spawn(async move { b.push(Bytes::from_static(b"y")).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        b.reset(5);
        assert!(!producer.await.unwrap(), "nothing is taken after the reset");
        assert_eq!(b.pop().await, Received::Data(Bytes::from_static(b"xx")));
        assert_eq!(b.pop().await, Received::Reset(5));
        assert!(!b.push(Bytes::from_static(b"z")).await);
    }
}
