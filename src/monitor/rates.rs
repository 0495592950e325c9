//! Per-second throughput series for the plot, derived from cumulative
//! totals: the engine's, and those of a few watched connections.

use super::ConnectionTable;
use crate::protocol::{ConnId, EngineStats, Micros};
use std::collections::{HashMap, VecDeque};

/// Five minutes at the engine's four stats per second.
const MAX_POINTS: usize = 1200;
/// Connections whose throughput is followed at once (the plot draws the
/// selection's first few).
pub const MAX_WATCHED: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatePoint {
    /// Seconds since engine start.
    pub t: f64,
    pub rx_per_sec: f64,
    pub tx_per_sec: f64,
    pub events_per_sec: f64,
}

/// A rate series built from samples of two cumulative byte counters.
#[derive(Debug, Default)]
pub struct Series {
    points: VecDeque<RatePoint>,
    last: Option<(Micros, u64, u64)>,
}

impl Series {
    fn sample(&mut self, at: Micros, rx: u64, tx: u64, events_per_sec: f64) {
        if let Some((last_at, last_rx, last_tx)) = self.last {
            let dt = at.saturating_sub(last_at) as f64 / 1e6;
            if dt <= 0.0 {
                return;
            }
            if self.points.len() == MAX_POINTS {
                self.points.pop_front();
            }
            self.points.push_back(RatePoint {
                t: at as f64 / 1e6,
                rx_per_sec: rx.saturating_sub(last_rx) as f64 / dt,
                tx_per_sec: tx.saturating_sub(last_tx) as f64 / dt,
                events_per_sec,
            });
        }
        self.last = Some((at, rx, tx));
    }

    pub fn points(&self) -> &VecDeque<RatePoint> {
        &self.points
    }
}

#[derive(Debug, Default)]
pub struct Rates {
    /// The whole engine.
    total: Series,
    /// Watched connections, sampled at the same instants as the total
    /// from the table's latest counters, from when they were first watched.
    conns: HashMap<ConnId, Series>,
}

impl Rates {
    /// Take a sample at the engine's stats; `table` has the counters that
    /// came with (or before) them.
    pub fn observe(&mut self, s: &EngineStats, table: &ConnectionTable) {
        self.total
            .sample(s.at, s.rx_bytes, s.tx_bytes, s.events_per_sec);
        for (id, series) in &mut self.conns {
            if let Some(c) = table.get(*id) {
                series.sample(s.at, c.rx_bytes, c.tx_bytes, 0.0);
            }
        }
    }

    /// Follow these connections (at most [`MAX_WATCHED`]) and forget others.
    pub fn watch(&mut self, ids: &[ConnId]) {
        let ids = &ids[..ids.len().min(MAX_WATCHED)];
        self.conns.retain(|id, _| ids.contains(id));
        for id in ids {
            self.conns.entry(*id).or_default();
        }
    }

    pub fn points(&self) -> &VecDeque<RatePoint> {
        self.total.points()
    }

    /// A watched connection's series.
    pub fn conn(&self, id: ConnId) -> Option<&Series> {
        self.conns.get(&id)
    }

    pub fn latest(&self) -> Option<&RatePoint> {
        self.total.points.back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::connections::tests::row;

    fn stats(at_s: u64, rx: u64, tx: u64) -> EngineStats {
        EngineStats {
            at: at_s * 1_000_000,
            rx_bytes: rx,
            tx_bytes: tx,
            ..EngineStats::default()
        }
    }

    #[test]
    fn watched_connections_get_their_own_rates_from_when_watched() {
        let mut table = ConnectionTable::default();
        let mut rates = Rates::default();
        table.upsert(row(1, 5000, 100));
        rates.observe(&stats(1, 100, 100), &table);
        rates.watch(&[ConnId(1), ConnId(2)]);
        rates.observe(&stats(2, 300, 300), &table);
        table.upsert(row(1, 5000, 400));
        rates.observe(&stats(4, 700, 700), &table);
        let total: Vec<f64> = rates.points().iter().map(|p| p.rx_per_sec).collect();
        assert_eq!(total, [200.0, 200.0]);
        let one: Vec<(f64, f64)> = rates
            .conn(ConnId(1))
            .unwrap()
            .points()
            .iter()
            .map(|p| (p.t, p.rx_per_sec))
            .collect();
        assert_eq!(one, [(4.0, 150.0)], "one sample after watching began");
        assert!(rates.conn(ConnId(2)).unwrap().points().is_empty());
        rates.watch(&[ConnId(2)]);
        assert!(rates.conn(ConnId(1)).is_none(), "unwatched is forgotten");
    }
}
