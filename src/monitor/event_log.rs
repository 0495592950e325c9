//! `EventLog`: the most recent events in a bounded ring, with a count of what
//! fell out, and an incrementally maintained filtered view.

use crate::protocol::{ConnId, Event};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};

pub const DEFAULT_CAPACITY: usize = 200_000;

/// Which events to show. Empty sets mean "no restriction".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Only events of these connections (engine-wide events are kept out).
    pub conns: BTreeSet<ConnId>,
    /// Event kind names (see `EventKind::name`) to hide.
    pub hidden_kinds: BTreeSet<String>,
}

impl EventFilter {
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty() && self.hidden_kinds.is_empty()
    }

    pub fn matches(&self, e: &Event) -> bool {
        if !self.conns.is_empty() && !e.conn.is_some_and(|c| self.conns.contains(&c)) {
            return false;
        }
        !self.hidden_kinds.contains(e.kind.name())
    }
}

#[derive(Debug)]
pub struct EventLog {
    ring: VecDeque<Event>,
    capacity: usize,
    /// Sequence number of `ring[0]`; sequence numbers count every event ever
    /// pushed.
    first_seq: u64,
    /// Events evicted because the ring was full.
    fell_out: u64,
    cache: FilterCache,
}

#[derive(Debug, Default)]
struct FilterCache {
    filter: Option<EventFilter>,
    seqs: VecDeque<u64>,
    /// Next sequence number to examine.
    scanned_to: u64,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::with_capacity(DEFAULT_CAPACITY)
    }
}

impl EventLog {
    pub fn with_capacity(capacity: usize) -> Self {
        EventLog {
            ring: VecDeque::new(),
            capacity: capacity.max(1),
            first_seq: 0,
            fell_out: 0,
            cache: FilterCache::default(),
        }
    }

    pub fn push(&mut self, event: Event) {
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
            self.first_seq += 1;
            self.fell_out += 1;
        }
        self.ring.push_back(event);
    }

    pub fn extend(&mut self, events: impl IntoIterator<Item = Event>) {
        for e in events {
            self.push(e);
        }
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Events pushed ever (held + fell out).
    pub fn total(&self) -> u64 {
        self.first_seq + self.ring.len() as u64
    }

    pub fn fell_out(&self) -> u64 {
        self.fell_out
    }

    pub fn get_seq(&self, seq: u64) -> Option<&Event> {
        seq.checked_sub(self.first_seq)
            .and_then(|i| self.ring.get(i as usize))
    }

    /// Refresh the filtered view and return how many events it holds.
    /// Only events that arrived since the last call are examined.
    pub fn refresh(&mut self, filter: &EventFilter) -> usize {
        if filter.is_empty() {
            return self.ring.len();
        }
        let cache = &mut self.cache;
        if cache.filter.as_ref() != Some(filter) {
            cache.filter = Some(filter.clone());
            cache.seqs.clear();
            cache.scanned_to = self.first_seq;
        }
        while cache.seqs.front().is_some_and(|&s| s < self.first_seq) {
            cache.seqs.pop_front();
        }
        let from = cache.scanned_to.max(self.first_seq);
        for (i, e) in self
            .ring
            .iter()
            .enumerate()
            .skip((from - self.first_seq) as usize)
        {
            if filter.matches(e) {
                cache.seqs.push_back(self.first_seq + i as u64);
            }
        }
        cache.scanned_to = self.first_seq + self.ring.len() as u64;
        cache.seqs.len()
    }

    /// The `i`-th event of the view last refreshed with `filter`.
    pub fn nth(&self, filter: &EventFilter, i: usize) -> Option<&Event> {
        if filter.is_empty() {
            self.ring.get(i)
        } else {
            self.cache.seqs.get(i).and_then(|&s| self.get_seq(s))
        }
    }

    /// Copy of the current view, for a paused log that must not shift.
    pub fn snapshot(&mut self, filter: &EventFilter) -> Vec<Event> {
        let n = self.refresh(filter);
        (0..n)
            .filter_map(|i| self.nth(filter, i).cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::EventKind;

    fn ev(at: u64, conn: u64) -> Event {
        Event {
            at,
            conn: Some(ConnId(conn)),
            kind: EventKind::Read { n: at as u32 },
        }
    }

    #[test]
    fn bounded_and_counts_what_fell_out() {
        let mut log = EventLog::with_capacity(3);
        log.extend((0..5).map(|i| ev(i, 1)));
        assert_eq!(log.len(), 3);
        assert_eq!(log.fell_out(), 2);
        assert_eq!(log.total(), 5);
        assert_eq!(log.nth(&EventFilter::default(), 0).unwrap().at, 2);
    }

    #[test]
    fn filtered_view_is_incremental_and_follows_eviction() {
        let mut log = EventLog::with_capacity(4);
        let mut f = EventFilter::default();
        f.conns.insert(ConnId(2));
        log.extend([ev(0, 1), ev(1, 2), ev(2, 1)]);
        assert_eq!(log.refresh(&f), 1);
        assert_eq!(log.nth(&f, 0).unwrap().at, 1);
        log.extend([ev(3, 2), ev(4, 2)]); // evicts ev(0)
        assert_eq!(log.refresh(&f), 3);
        log.extend([ev(5, 1), ev(6, 1)]); // evicts ev(1) and ev(2)
        assert_eq!(log.refresh(&f), 2);
        assert_eq!(log.nth(&f, 0).unwrap().at, 3);

        f.hidden_kinds.insert("read".into());
        assert_eq!(log.refresh(&f), 0, "a changed filter rescans");
    }
}
