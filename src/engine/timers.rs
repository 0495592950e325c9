//! Deadlines of connections, grouped by the millisecond they fall due in;
//! the poll timeout is the nearest one.
//!
//! A deadline is rounded *up* to a whole millisecond (a fault never
//! releases early) and joins that millisecond's bucket. Under a latency
//! fault thousands of held messages a second fall due within a few dozen
//! distinct milliseconds, so arming costs a lookup among those few buckets
//! and a `Vec` push, and a due bucket is taken whole: no per-entry heap
//! sifting. epoll's timeout has millisecond resolution anyway.
//!
//! Entries are never removed early: a connection that closed, or whose
//! deadline moved, leaves a stale entry that the loop recognises when it
//! takes the bucket (the id is gone, or the connection no longer holds
//! that deadline). That keeps cancelling free.

use crate::protocol::{ConnId, Micros};
use std::collections::BTreeMap;

/// What a deadline is for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// A graceful kick has run out of time: reset the connection.
    KickDeadline,
    /// A fault holds something of this connection until now (see
    /// `Shaper::next_wake`).
    Fault,
    /// A scenario's delayed reply or idle rule is due (see
    /// `Script::next_wake`).
    Script,
    /// A replayed write is due at its recorded time, or a replayed reset
    /// looks again whether its bytes have left (see `Io::replay_wake`).
    Replay,
}

/// One armed deadline: the connection `conn` at slab key `key`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub conn: ConnId,
    pub key: usize,
    pub timer: Timer,
}

const MICROS_PER_MS: Micros = 1_000;

#[derive(Debug, Default)]
pub struct Timers {
    /// Engine milliseconds → what falls due in them.
    buckets: BTreeMap<Micros, Vec<Due>>,
    /// Emptied buckets, reused so arming seldom allocates.
    spare: Vec<Vec<Due>>,
}

impl Timers {
    /// Arm `timer` for `conn` at engine time `at` (rounded up to a whole
    /// millisecond).
    pub fn arm(&mut self, at: Micros, conn: ConnId, key: usize, timer: Timer) {
        let ms = at.div_ceil(MICROS_PER_MS);
        let spare = &mut self.spare;
        self.buckets
            .entry(ms)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push(Due { conn, key, timer });
    }

    /// The engine time of the nearest deadline.
    pub fn next(&self) -> Option<Micros> {
        self.buckets
            .first_key_value()
            .map(|(ms, _)| ms * MICROS_PER_MS)
    }

    /// Everything due at `now` in the earliest due bucket, in the order it
    /// was armed; hand the `Vec` back with [`Timers::recycle`].
    pub fn take_due(&mut self, now: Micros) -> Option<Vec<Due>> {
        let entry = self.buckets.first_entry()?;
        (*entry.key() * MICROS_PER_MS <= now).then(|| entry.remove())
    }

    /// Return a bucket taken with [`Timers::take_due`] for reuse.
    pub fn recycle(&mut self, mut bucket: Vec<Due>) {
        // A few dozen spares cover a latency fault's spread of deadlines;
        // a burst's huge bucket is not kept.
        if self.spare.len() < 64 && bucket.capacity() <= 4096 {
            bucket.clear();
            self.spare.push(bucket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(conn: u64, key: usize) -> Due {
        Due {
            conn: ConnId(conn),
            key,
            timer: Timer::KickDeadline,
        }
    }

    #[test]
    fn takes_buckets_in_deadline_order_and_only_when_due() {
        let mut timers = Timers::default();
        timers.arm(2_000_000, ConnId(1), 0, Timer::KickDeadline);
        timers.arm(1_000_000, ConnId(2), 1, Timer::KickDeadline);
        assert_eq!(timers.next(), Some(1_000_000));
        assert_eq!(timers.take_due(999_999), None);
        assert_eq!(timers.take_due(3_000_000), Some(vec![due(2, 1)]));
        assert_eq!(timers.take_due(3_000_000), Some(vec![due(1, 0)]));
        assert_eq!(timers.take_due(3_000_000), None);
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn deadlines_round_up_to_the_millisecond_and_share_its_bucket() {
        let mut timers = Timers::default();
        timers.arm(5_001, ConnId(1), 0, Timer::Fault);
        timers.arm(5_999, ConnId(2), 1, Timer::Fault);
        timers.arm(6_000, ConnId(3), 2, Timer::Fault);
        // Never early: 5.001 ms is due at 6 ms, not 5.
        assert_eq!(timers.next(), Some(6_000));
        assert_eq!(timers.take_due(5_999), None);
        let bucket = timers.take_due(6_000).expect("due at 6 ms");
        assert_eq!(bucket.len(), 3);
        assert_eq!(bucket[0].conn, ConnId(1));
        timers.recycle(bucket);
        assert_eq!(timers.next(), None);
        // The recycled bucket is reused, empty.
        timers.arm(7_000, ConnId(4), 3, Timer::Fault);
        assert_eq!(timers.take_due(7_000).map(|b| b.len()), Some(1));
    }
}
