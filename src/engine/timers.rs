//! Deadlines of connections, in one min-heap; the poll timeout is the
//! nearest one.
//!
//! Entries are never removed early: a connection that closed, or whose
//! deadline moved, leaves a stale entry that the loop recognises when it
//! pops (the id is gone, or the connection no longer holds that deadline).
//! That keeps arming a deadline O(log n) and cancelling it free.

use crate::protocol::ConnId;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What a deadline is for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// A graceful kick has run out of time: reset the connection.
    KickDeadline,
    /// A fault holds something of this connection until now (see
    /// `Shaper::next_wake`).
    Fault,
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, ConnId, usize, Timer)>>,
}

impl Timers {
    /// Arm `timer` for the connection `conn` at slab key `key`.
    pub fn arm(&mut self, at: Instant, conn: ConnId, key: usize, timer: Timer) {
        self.heap.push(Reverse((at, conn, key, timer)));
    }

    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, ..))| *at)
    }

    /// The next entry due at `now`, if any: (id, slab key, timer).
    pub fn pop_due(&mut self, now: Instant) -> Option<(ConnId, usize, Timer)> {
        match self.heap.peek() {
            Some(Reverse((at, ..))) if *at <= now => {
                self.heap.pop().map(|Reverse((_, id, key, t))| (id, key, t))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.arm(
            t0 + Duration::from_secs(2),
            ConnId(1),
            0,
            Timer::KickDeadline,
        );
        timers.arm(
            t0 + Duration::from_secs(1),
            ConnId(2),
            1,
            Timer::KickDeadline,
        );
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0), None);
        let later = t0 + Duration::from_secs(3);
        assert_eq!(
            timers.pop_due(later),
            Some((ConnId(2), 1, Timer::KickDeadline))
        );
        assert_eq!(
            timers.pop_due(later),
            Some((ConnId(1), 0, Timer::KickDeadline))
        );
        assert_eq!(timers.pop_due(later), None);
        assert_eq!(timers.next(), None);
    }
}
