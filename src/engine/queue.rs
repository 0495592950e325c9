//! A client's outgoing queue: bytes waiting for the socket to take them.
//!
//! Messages keep their boundaries (one per read or inject) so the inspector
//! can show what is pending and how old it is. The queue's size drives
//! backpressure: at `limit` the engine stops reading the client, and below
//! `low_water` it reads again, so a client that never reads cannot make the
//! server's memory grow.

use crate::protocol::{Micros, Origin, QueuedMessage};
use std::collections::VecDeque;
use std::io::{self, Write};

#[derive(Debug)]
struct Message {
    bytes: Vec<u8>,
    queued_at: Micros,
    origin: Origin,
}

/// Eight bytes until first used: most clients of an echo server never
/// queue anything, because the loop writes straight from the read buffer.
#[derive(Debug, Default)]
pub struct ByteQueue {
    inner: Option<Box<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    messages: VecDeque<Message>,
    /// How much of the front message was already written.
    front_offset: usize,
    len: u64,
    high_water: u64,
}

/// What one `write_to` call achieved.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flush {
    pub written: u64,
    /// Each successful `write` call's size, for the event stream.
    pub writes: Vec<u32>,
    pub would_block: bool,
}

impl ByteQueue {
    pub fn push(&mut self, bytes: Vec<u8>, queued_at: Micros, origin: Origin) {
        if bytes.is_empty() {
            return;
        }
        let q = self.inner.get_or_insert_with(Box::default);
        q.len += bytes.len() as u64;
        q.high_water = q.high_water.max(q.len);
        q.messages.push_back(Message {
            bytes,
            queued_at,
            origin,
        });
    }

    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |q| q.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn message_count(&self) -> u32 {
        self.inner.as_ref().map_or(0, |q| q.messages.len() as u32)
    }

    pub fn high_water(&self) -> u64 {
        self.inner.as_ref().map_or(0, |q| q.high_water)
    }

    pub fn snapshot(&self) -> Vec<QueuedMessage> {
        let Some(q) = &self.inner else {
            return Vec::new();
        };
        q.messages
            .iter()
            .enumerate()
            .map(|(i, m)| QueuedMessage {
                len: (m.bytes.len() - if i == 0 { q.front_offset } else { 0 }) as u32,
                queued_at: m.queued_at,
                origin: m.origin,
            })
            .collect()
    }

    /// Write queued bytes until the queue is empty or the writer would block.
    /// `on_write` sees every chunk the writer accepted, in order.
    ///
    /// Partial writes advance within the front message; `Interrupted` is
    /// retried. Any other error is returned with the queue left consistent
    /// (what was written is gone, the rest stays).
    pub fn write_to<W: Write>(
        &mut self,
        writer: &mut W,
        mut on_write: impl FnMut(&[u8]),
    ) -> io::Result<Flush> {
        let mut flush = Flush::default();
        let Some(q) = &mut self.inner else {
            return Ok(flush);
        };
        while let Some(front) = q.messages.front() {
            let pending = &front.bytes[q.front_offset..];
            match writer.write(pending) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "socket accepted no bytes",
                    ));
                }
                Ok(n) => {
                    on_write(&pending[..n]);
                    flush.written += n as u64;
                    flush.writes.push(n as u32);
                    q.len -= n as u64;
                    q.front_offset += n;
                    if q.front_offset == front.bytes.len() {
                        q.messages.pop_front();
                        q.front_offset = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    flush.would_block = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if q.messages.is_empty() && q.messages.capacity() > 64 {
            // A burst that is over should not pin its memory per client.
            q.messages.shrink_to(8);
        }
        Ok(flush)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `chunk` bytes per call and blocks after
    /// `budget` bytes, to exercise partial writes.
    struct Trickle {
        out: Vec<u8>,
        chunk: usize,
        budget: usize,
        interrupt_next: bool,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.interrupt_next {
                self.interrupt_next = false;
                return Err(io::ErrorKind::Interrupted.into());
            }
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.chunk).min(self.budget);
            self.out.extend_from_slice(&buf[..n]);
            self.budget -= n;
            self.interrupt_next = true;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order_and_counts() {
        let mut q = ByteQueue::default();
        q.push(b"hello ".to_vec(), 1, Origin::Echo);
        q.push(b"world".to_vec(), 2, Origin::Inject);
        assert_eq!((q.len(), q.message_count(), q.high_water()), (11, 2, 11));

        let mut w = Trickle {
            out: vec![],
            chunk: 4,
            budget: 7,
            interrupt_next: false,
        };
        let mut seen = vec![];
        let f = q.write_to(&mut w, |b| seen.extend_from_slice(b)).unwrap();
        assert_eq!(f.written, 7);
        assert!(f.would_block);
        assert_eq!(w.out, b"hello w");
        assert_eq!(seen, b"hello w");
        assert_eq!(q.len(), 4);
        let snap = q.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].len, 4);
        assert_eq!(snap[0].origin, Origin::Inject);

        w.budget = 100;
        let f = q.write_to(&mut w, |_| {}).unwrap();
        assert_eq!(f.written, 4);
        assert!(!f.would_block);
        assert_eq!(w.out, b"hello world");
        assert!(q.is_empty());
        assert_eq!(q.high_water(), 11);
    }

    #[test]
    fn empty_pushes_are_ignored() {
        let mut q = ByteQueue::default();
        q.push(vec![], 0, Origin::Echo);
        assert_eq!(q.message_count(), 0);
    }
}
