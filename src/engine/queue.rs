//! A client's outgoing queue: bytes waiting for the socket to take them.
//!
//! Messages keep their boundaries (one per read or inject) so the inspector
//! can show what is pending and how old it is. The queue's size drives
//! backpressure: at `limit` the engine stops reading the client, and below
//! `low_water` it reads again, so a client that never reads cannot make the
//! server's memory grow.

use super::shaper::WriteBudget;
use crate::protocol::{Micros, Origin, QueuedMessage};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// Small messages are appended to the tail message (of the same origin) up
/// to this size, so a client that writes one byte at a time, or a stream of
/// one-byte injects, costs a byte per byte queued, not an allocation each.
const COALESCE_MAX: usize = 64 * 1024;
/// Injects up to this size are copied (and coalesced); larger ones share
/// one buffer among all their targets.
pub const COPY_INJECT_MAX: usize = 4 * 1024;
/// Messages handed to one `writev`: enough to drain a queue of small
/// messages in one system call.
const WRITEV_SLICES: usize = 64;
/// Bytes gathered for one write under faults.
const SHAPED_WRITE_MAX: usize = 64 * 1024;

/// A message's bytes: its own, or a prefix of a buffer shared with the
/// other targets of the same inject (one copy for 10,000 clients).
#[derive(Debug)]
enum Bytes {
    Own(Vec<u8>),
    Shared(Arc<[u8]>, usize),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Own(v) => v,
            Bytes::Shared(buf, len) => &buf[..*len],
        }
    }
}

#[derive(Debug)]
struct Message {
    bytes: Bytes,
    queued_at: Micros,
    origin: Origin,
    /// Not written before this (a latency fault); 0 without one.
    release_at: Micros,
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

impl Inner {
    /// Drop `n` written bytes from the front, showing each piece to `each`.
    fn advance(&mut self, n: usize, mut each: impl FnMut(&[u8])) {
        self.len -= n as u64;
        let mut left = n;
        while left > 0 {
            let front = self.messages.front().expect("written bytes were queued");
            let pending = &front.bytes.as_slice()[self.front_offset..];
            let took = left.min(pending.len());
            each(&pending[..took]);
            left -= took;
            self.front_offset += took;
            if took == pending.len() {
                self.messages.pop_front();
                self.front_offset = 0;
            }
        }
    }
    fn grew(&mut self, n: usize) {
        self.len += n as u64;
        self.high_water = self.high_water.max(self.len);
    }
}

/// What one `write_to` call achieved.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flush {
    pub written: u64,
    /// Each successful `write` call's size, for the event stream.
    pub writes: Vec<u32>,
    pub would_block: bool,
}

/// What one write call came to, for the write loops.
enum Wrote {
    Bytes(usize),
    Retry,
    Blocked,
}

impl Flush {
    /// Count one write call's result: bytes taken, a retry (`Interrupted`),
    /// or the socket full; a socket that takes nothing is an error.
    fn record(&mut self, result: io::Result<usize>) -> io::Result<Wrote> {
        match result {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "socket accepted no bytes",
            )),
            Ok(n) => {
                self.written += n as u64;
                self.writes.push(n as u32);
                Ok(Wrote::Bytes(n))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Wrote::Retry),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.would_block = true;
                Ok(Wrote::Blocked)
            }
            Err(e) => Err(e),
        }
    }

    /// Add what a later call achieved.
    pub fn absorb(&mut self, later: Flush) {
        self.written += later.written;
        self.writes.extend(later.writes);
        self.would_block |= later.would_block;
    }
}

impl ByteQueue {
    /// Queue a copy of `data`, not to be written before `release_at` (0:
    /// at once), appending it to the tail message when that has the same
    /// origin and release time and is still small.
    pub fn push_copy(
        &mut self,
        data: &[u8],
        queued_at: Micros,
        origin: Origin,
        release_at: Micros,
    ) {
        if data.is_empty() {
            return;
        }
        let q = self.inner.get_or_insert_with(Box::default);
        q.grew(data.len());
        if let Some(Message {
            bytes: Bytes::Own(tail),
            origin: tail_origin,
            release_at: tail_release,
            ..
        }) = q.messages.back_mut()
            && *tail_origin == origin
            && *tail_release == release_at
            && tail.len() + data.len() <= COALESCE_MAX
        {
            tail.extend_from_slice(data);
            return;
        }
        q.messages.push_back(Message {
            bytes: Bytes::Own(data.to_vec()),
            queued_at,
            origin,
            release_at,
        });
    }

    /// Queue the first `len` bytes of `shared` as one message, not to be
    /// written before `release_at`.
    pub fn push_shared(
        &mut self,
        shared: &Arc<[u8]>,
        len: usize,
        queued_at: Micros,
        origin: Origin,
        release_at: Micros,
    ) {
        let len = len.min(shared.len());
        if len == 0 {
            return;
        }
        let q = self.inner.get_or_insert_with(Box::default);
        q.grew(len);
        q.messages.push_back(Message {
            bytes: Bytes::Shared(shared.clone(), len),
            queued_at,
            origin,
            release_at,
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

    /// When the front bytes may be written (0: now), if any are queued.
    /// Later messages never release earlier than the front.
    pub fn head_release(&self) -> Option<Micros> {
        self.inner
            .as_ref()
            .and_then(|q| q.messages.front())
            .map(|m| m.release_at)
    }

    /// Bytes queued that may not be written before some time after `now`.
    pub fn held_after(&self, now: Micros) -> u64 {
        let Some(q) = &self.inner else {
            return 0;
        };
        q.messages
            .iter()
            .enumerate()
            .rev()
            .take_while(|(_, m)| m.release_at > now)
            .map(|(i, m)| {
                (m.bytes.as_slice().len() - if i == 0 { q.front_offset } else { 0 }) as u64
            })
            .sum()
    }

    pub fn snapshot(&self) -> Vec<QueuedMessage> {
        let Some(q) = &self.inner else {
            return Vec::new();
        };
        q.messages
            .iter()
            .enumerate()
            .map(|(i, m)| QueuedMessage {
                len: (m.bytes.as_slice().len() - if i == 0 { q.front_offset } else { 0 }) as u32,
                queued_at: m.queued_at,
                origin: m.origin,
            })
            .collect()
    }

    /// Write queued bytes until the queue is empty or the writer would block.
    /// `on_write` sees every chunk the writer accepted, in order.
    pub fn write_to<W: Write>(
        &mut self,
        writer: &mut W,
        on_write: impl FnMut(&[u8]),
    ) -> io::Result<Flush> {
        self.write_released(writer, Micros::MAX, on_write)
    }

    /// Write the bytes released by `now` (all of them without a latency
    /// fault) until none is left or the writer would block.
    ///
    /// Up to [`WRITEV_SLICES`] messages go out per `writev`, so a queue of
    /// many small messages costs one system call, not one per message.
    /// Partial writes advance within the messages; `Interrupted` is
    /// retried. Any other error is returned with the queue left consistent
    /// (what was written is gone, the rest stays).
    pub fn write_released<W: Write>(
        &mut self,
        writer: &mut W,
        now: Micros,
        mut on_write: impl FnMut(&[u8]),
    ) -> io::Result<Flush> {
        let mut flush = Flush::default();
        let Some(q) = &mut self.inner else {
            return Ok(flush);
        };
        loop {
            let result = {
                let mut slices: [IoSlice<'_>; WRITEV_SLICES] = [IoSlice::new(&[]); WRITEV_SLICES];
                let mut count = 0;
                let released = q.messages.iter().take_while(|m| m.release_at <= now);
                for (i, m) in released.take(WRITEV_SLICES).enumerate() {
                    let skip = if i == 0 { q.front_offset } else { 0 };
                    slices[i] = IoSlice::new(&m.bytes.as_slice()[skip..]);
                    count += 1;
                }
                if count == 0 {
                    break;
                }
                writer.write_vectored(&slices[..count])
            };
            match flush.record(result)? {
                Wrote::Bytes(n) => q.advance(n, &mut on_write),
                Wrote::Retry => continue,
                Wrote::Blocked => break,
            }
        }
        if q.messages.is_empty() && q.messages.capacity() > 64 {
            // A burst that is over should not pin its memory per client.
            q.messages.shrink_to(8);
        }
        Ok(flush)
    }

    /// Write under faults: only bytes released by `now`, at most
    /// `budget.bytes` in all, one `write` call only with `budget.one_write`
    /// (a slice is its own segment). The bytes are gathered into `scratch`, where `alter` may
    /// change them (the corrupt fault); `on_write` sees what was sent.
    pub fn write_shaped<W: Write>(
        &mut self,
        writer: &mut W,
        now: Micros,
        budget: WriteBudget,
        scratch: &mut Vec<u8>,
        mut alter: impl FnMut(&mut [u8]),
        mut on_write: impl FnMut(&[u8]),
    ) -> io::Result<Flush> {
        let (max, one_write) = (budget.bytes, budget.one_write);
        let mut flush = Flush::default();
        let Some(q) = &mut self.inner else {
            return Ok(flush);
        };
        while (flush.written as usize) < max {
            let want = (max - flush.written as usize).min(SHAPED_WRITE_MAX);
            scratch.clear();
            for (i, m) in q.messages.iter().enumerate() {
                if m.release_at > now || scratch.len() >= want {
                    break;
                }
                let skip = if i == 0 { q.front_offset } else { 0 };
                let bytes = &m.bytes.as_slice()[skip..];
                scratch.extend_from_slice(&bytes[..bytes.len().min(want - scratch.len())]);
            }
            if scratch.is_empty() {
                break;
            }
            alter(scratch);
            match flush.record(writer.write(scratch))? {
                Wrote::Bytes(n) => {
                    on_write(&scratch[..n]);
                    q.advance(n, |_| {});
                    if one_write {
                        break;
                    }
                }
                Wrote::Retry => continue,
                Wrote::Blocked => break,
            }
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
        q.push_copy(b"hello ", 1, Origin::Echo, 0);
        q.push_shared(&Arc::from(&b"world!"[..]), 5, 2, Origin::Inject, 0);
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
        q.push_copy(&[], 0, Origin::Echo, 0);
        q.push_shared(&Arc::from(&b"x"[..]), 0, 0, Origin::Inject, 0);
        assert_eq!(q.message_count(), 0);
    }

    #[test]
    fn byte_sized_echoes_share_one_message() {
        let mut q = ByteQueue::default();
        for i in 0..10_000u32 {
            q.push_copy(&[i as u8], i as u64, Origin::Echo, 0);
        }
        assert_eq!((q.len(), q.message_count()), (10_000, 1));
        assert_eq!(q.snapshot()[0].queued_at, 0, "the age of its oldest byte");
        // An inject in between starts a new message, as does a full tail.
        q.push_shared(&Arc::from(&b"!"[..]), 1, 1, Origin::Inject, 0);
        q.push_copy(&vec![0; COALESCE_MAX], 2, Origin::Echo, 0);
        q.push_copy(b"x", 3, Origin::Echo, 0);
        assert_eq!(q.message_count(), 4);
    }

    #[test]
    fn many_small_messages_go_out_in_one_writev() {
        struct Counting(Vec<u8>, usize);
        impl Write for Counting {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.write_vectored(&[IoSlice::new(buf)])
            }
            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                self.1 += 1;
                let before = self.0.len();
                for b in bufs {
                    self.0.extend_from_slice(b);
                }
                Ok(self.0.len() - before)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let shared: Arc<[u8]> = Arc::from(&b"abc"[..]);
        let mut q = ByteQueue::default();
        for i in 0..50 {
            q.push_shared(&shared, 1 + i % 3, i as u64, Origin::Inject, 0);
        }
        let mut w = Counting(Vec::new(), 0);
        let mut seen = Vec::new();
        let f = q.write_to(&mut w, |b| seen.extend_from_slice(b)).unwrap();
        assert_eq!(w.1, 1, "one system call for 50 messages");
        assert_eq!(f.written, w.0.len() as u64);
        assert_eq!(seen, w.0);
        assert!(q.is_empty());
    }
}
