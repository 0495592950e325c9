//! Sampling the kernel's view of each connection (`TCP_INFO`) on the
//! engine thread, without sleeping: the loop calls [`EventLoop::sample_tcp`]
//! when [`TcpSampler::next_at`] is due, every [`SLICE`].
//!
//! - The connections any viewer watches (`Command::Watch`: the inspected
//!   one and the visible rows; each viewer its own set) are sampled every
//!   slice, ten times a second.
//! - All the others once a second, spread over it: a cursor walks the
//!   slab, a tenth of the connections per slice, so 10,000 connections
//!   cost a thousand `getsockopt`s every 100 ms rather than ten thousand
//!   at once.
//!
//! A sample always replaces the connection's last one, but marks it dirty
//! (so its counters go out) only when it changed in a way that matters
//! ([`crate::protocol::TcpInfo::differs_from`]): idle connections cause no
//! traffic.

use super::connection::Connection;
use super::event_loop::EventLoop;
use crate::protocol::{ConnId, MAX_WATCHED, Micros, Targets, ViewerId};
use std::time::{Duration, Instant};

/// How often the sampler runs: the watched connections' period, and a
/// tenth of the others' round.
pub const SLICE: Duration = Duration::from_millis(100);
/// Slices per round over all connections (one round a second).
const SLICES_PER_ROUND: usize = 10;
/// Viewers whose watch is kept; past it, the one that spoke longest ago is
/// forgotten (a viewer that went away without saying so, say).
const MAX_WATCHERS: usize = 16;
/// The most connections sampled every slice, whatever the viewers ask:
/// about 2 % of a core at ten times a second.
const MAX_WATCHED_IN_ALL: usize = 4 * MAX_WATCHED;

#[derive(Debug)]
pub struct TcpSampler {
    /// Each viewer's watched connections as (id, slab key), resolved when
    /// its watch arrived; the latest-heard viewer last.
    watchers: Vec<(ViewerId, Vec<(ConnId, usize)>)>,
    /// All of them once (by slab key); a key that no longer holds its id
    /// is skipped.
    watched: Vec<(ConnId, usize)>,
    /// The next slab key of the round over all connections.
    cursor: usize,
    /// Which slice of the round is next (0 to `SLICES_PER_ROUND - 1`).
    slice: usize,
    /// When the next slice is due.
    pub next_at: Instant,
    /// The platform has `TCP_INFO` at all.
    pub available: bool,
}

impl TcpSampler {
    pub fn new(start: Instant) -> Self {
        TcpSampler {
            watchers: Vec::new(),
            watched: Vec::new(),
            cursor: 0,
            slice: 0,
            next_at: start,
            available: super::sys::TCP_INFO_UNAVAILABLE.is_none(),
        }
    }

    /// `viewer` now watches `conns` (resolved); the viewer heard from
    /// longest ago is forgotten past [`MAX_WATCHERS`].
    fn set_watch(&mut self, viewer: ViewerId, conns: Vec<(ConnId, usize)>) {
        self.watchers.retain(|(v, _)| *v != viewer);
        if !conns.is_empty() {
            self.watchers.push((viewer, conns));
        }
        if self.watchers.len() > MAX_WATCHERS {
            self.watchers.remove(0);
        }
        // Past the cap, the viewers heard from most recently come first.
        let mut all: Vec<(ConnId, usize)> = self
            .watchers
            .iter()
            .rev()
            .flat_map(|(_, set)| set.iter().copied())
            .take(MAX_WATCHED_IN_ALL)
            .collect();
        all.sort_unstable_by_key(|&(id, key)| (key, id));
        all.dedup();
        self.watched = all;
    }

    /// When the loop must wake for the sampler, if it has anything to do.
    pub fn deadline(&self, conns: usize) -> Option<Instant> {
        (self.available && conns > 0).then_some(self.next_at)
    }
}

/// Sample `conn` at `now`; whether the sample changed in a way that
/// matters (the first one always does).
pub fn sample(conn: &mut Connection, now: Micros) -> bool {
    let Ok(info) = super::sys::tcp_info(&conn.stream, now) else {
        // A socket that cannot answer (not connected yet, or already
        // reset) keeps its last sample.
        return false;
    };
    match &mut conn.tcp {
        Some(last) => {
            let changed = info.differs_from(last);
            // Reuse the allocation: 10,000 connections sampled every second.
            **last = info;
            changed
        }
        None => {
            conn.tcp = Some(Box::new(info));
            true
        }
    }
}

/// How many of `conns` connections slice `slice` of a round samples: the
/// slices' shares add up to `conns`, so each connection is sampled once a
/// round, also when there are fewer connections than slices.
fn slice_share(conns: usize, slice: usize) -> usize {
    conns * (slice + 1) / SLICES_PER_ROUND - conns * slice / SLICES_PER_ROUND
}

impl EventLoop {
    /// Replace `viewer`'s watched set (`Command::Watch`; empty ends its
    /// watch); at most [`MAX_WATCHED`] ids are taken.
    pub(super) fn watch(&mut self, viewer: ViewerId, mut conns: Vec<ConnId>) {
        conns.truncate(MAX_WATCHED);
        let resolved = self.targets(&Targets::Conns(conns));
        self.sampler.set_watch(viewer, resolved);
    }

    /// One slice, if due: the watched connections, then the next tenth of
    /// all of them.
    pub(super) fn sample_tcp(&mut self, clock: Instant) {
        if !self.sampler.available || clock < self.sampler.next_at {
            return;
        }
        // Not `next_at + SLICE`: after a stall, do not run slices back to
        // back to catch up.
        self.sampler.next_at = clock + SLICE;
        let now = self.now;
        // Taken out so marking dirty may borrow the loop.
        let watched = std::mem::take(&mut self.sampler.watched);
        for &(id, key) in &watched {
            if let Some(conn) = self.conns.get_mut(key)
                && conn.id == id
                && sample(conn, now)
            {
                self.mark_dirty(key);
            }
        }
        self.sampler.watched = watched;
        let want = slice_share(self.conns.len(), self.sampler.slice);
        self.sampler.slice = (self.sampler.slice + 1) % SLICES_PER_ROUND;
        let capacity = self.conns.capacity();
        let (mut key, mut done, mut visited) = (self.sampler.cursor, 0, 0);
        while done < want && visited < capacity {
            if key >= capacity {
                key = 0;
            }
            if let Some(conn) = self.conns.get_mut(key) {
                done += 1;
                if sample(conn, now) {
                    self.mark_dirty(key);
                }
            }
            key += 1;
            visited += 1;
        }
        self.sampler.cursor = key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(s: &TcpSampler) -> Vec<u64> {
        s.watched.iter().map(|(id, _)| id.0).collect()
    }

    #[test]
    fn each_viewer_keeps_its_watch_until_it_ends_it_or_is_crowded_out() {
        let mut s = TcpSampler::new(Instant::now());
        let set = |ids: &[u64]| ids.iter().map(|&i| (ConnId(i), i as usize)).collect();
        s.set_watch(1, set(&[1, 2]));
        s.set_watch(2, set(&[2, 3]));
        assert_eq!(watched(&s), [1, 2, 3], "the union, each once");
        s.set_watch(1, set(&[4]));
        assert_eq!(
            watched(&s),
            [2, 3, 4],
            "a viewer's new set replaces its old"
        );
        s.set_watch(2, Vec::new());
        assert_eq!(watched(&s), [4], "an empty set ends a watch");
        // Viewers 100.. each watch one connection; past MAX_WATCHERS the
        // one heard from longest ago (viewer 1) goes.
        for v in 0..MAX_WATCHERS as u64 {
            s.set_watch(100 + v, set(&[100 + v]));
        }
        assert!(!watched(&s).contains(&4), "{:?}", watched(&s));
        assert_eq!(s.watchers.len(), MAX_WATCHERS);
    }

    #[test]
    fn past_the_cap_the_latest_viewers_are_watched() {
        let mut s = TcpSampler::new(Instant::now());
        let range = |from: u64| {
            (from..from + MAX_WATCHED as u64)
                .map(|i| (ConnId(i), i as usize))
                .collect()
        };
        for v in 0..5u64 {
            s.set_watch(v, range(v * 10_000));
        }
        assert_eq!(s.watched.len(), MAX_WATCHED_IN_ALL);
        // The first viewer's set (0..) is the one left out.
        assert!(s.watched.iter().all(|(id, _)| id.0 >= 10_000));
    }

    #[test]
    fn a_round_samples_each_connection_once() {
        for conns in [0, 1, 2, 9, 10, 11, 999, 10_000] {
            let shares: Vec<usize> = (0..SLICES_PER_ROUND)
                .map(|s| slice_share(conns, s))
                .collect();
            assert_eq!(shares.iter().sum::<usize>(), conns, "{conns}: {shares:?}");
            // Spread: no slice takes more than its tenth (rounded up).
            assert!(
                shares
                    .iter()
                    .all(|&n| n <= conns.div_ceil(SLICES_PER_ROUND))
            );
        }
    }
}
