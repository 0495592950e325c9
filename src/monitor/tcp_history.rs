//! The recent `TCP_INFO` samples of each connection, for the inspector's
//! sparklines and for lints that look at a trend (a peer window stuck at
//! zero, an RTT climbing). Fed from counters; bounded per connection and
//! forgotten with the connection's row.

use crate::protocol::{ConnId, TcpInfo};
use std::collections::{HashMap, VecDeque};

/// Samples kept per connection: 12 s of a watched one (ten a second),
/// two minutes of the others.
pub const HISTORY_LEN: usize = 120;

/// One connection's recent samples, oldest first, each taken at a
/// different time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TcpHistory {
    samples: VecDeque<TcpInfo>,
}

impl TcpHistory {
    /// Oldest first, at most [`HISTORY_LEN`].
    pub fn samples(&self) -> &VecDeque<TcpInfo> {
        &self.samples
    }

    pub fn latest(&self) -> Option<&TcpInfo> {
        self.samples.back()
    }

    /// Add `info` unless it was already seen: counters carry the last
    /// sample until a new one is taken, so the same one arrives again with
    /// every other change of the row. An older one (a reordered batch) is
    /// dropped too.
    pub fn push(&mut self, info: &TcpInfo) {
        if self.samples.back().is_some_and(|last| info.at <= last.at) {
            return;
        }
        if self.samples.len() == HISTORY_LEN {
            self.samples.pop_front();
        }
        self.samples.push_back(info.clone());
    }
}

/// Every connection's history.
#[derive(Debug, Default)]
pub struct TcpHistories {
    by_conn: HashMap<ConnId, TcpHistory>,
}

impl TcpHistories {
    pub fn record(&mut self, id: ConnId, info: &TcpInfo) {
        self.by_conn.entry(id).or_default().push(info);
    }

    pub fn get(&self, id: ConnId) -> Option<&TcpHistory> {
        self.by_conn.get(&id)
    }

    /// Keep only the connections `keep` says are still rows.
    pub fn retain(&mut self, mut keep: impl FnMut(ConnId) -> bool) {
        self.by_conn.retain(|id, _| keep(*id));
    }

    pub fn len(&self) -> usize {
        self.by_conn.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_conn.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at: u64, rtt_us: u32) -> TcpInfo {
        TcpInfo {
            at,
            rtt_us,
            ..TcpInfo::default()
        }
    }

    #[test]
    fn repeats_and_older_samples_are_not_kept_twice() {
        let mut h = TcpHistory::default();
        h.push(&at(10, 1));
        h.push(&at(10, 1));
        h.push(&at(5, 9));
        h.push(&at(20, 2));
        let ats: Vec<u64> = h.samples().iter().map(|s| s.at).collect();
        assert_eq!(ats, [10, 20]);
        assert_eq!(h.latest().map(|s| s.rtt_us), Some(2));
    }

    #[test]
    fn the_ring_keeps_the_newest() {
        let mut h = TcpHistory::default();
        for i in 1..=(HISTORY_LEN as u64 + 30) {
            h.push(&at(i, i as u32));
        }
        assert_eq!(h.samples().len(), HISTORY_LEN);
        assert_eq!(h.samples().front().map(|s| s.at), Some(31));
        assert_eq!(
            h.samples().back().map(|s| s.at),
            Some(HISTORY_LEN as u64 + 30)
        );
    }

    #[test]
    fn histories_go_with_their_rows() {
        let mut all = TcpHistories::default();
        all.record(ConnId(1), &at(1, 1));
        all.record(ConnId(2), &at(1, 1));
        all.retain(|id| id == ConnId(2));
        assert!(all.get(ConnId(1)).is_none());
        assert_eq!(all.get(ConnId(2)).map(|h| h.samples().len()), Some(1));
    }
}
