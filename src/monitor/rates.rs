//! Per-second throughput series for the plot, derived from the engine's
//! cumulative totals.

use crate::protocol::{EngineStats, Micros};
use std::collections::VecDeque;

/// Five minutes at the engine's four stats per second.
const MAX_POINTS: usize = 1200;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatePoint {
    /// Seconds since engine start.
    pub t: f64,
    pub rx_per_sec: f64,
    pub tx_per_sec: f64,
    pub events_per_sec: f64,
}

#[derive(Debug, Default)]
pub struct Rates {
    points: VecDeque<RatePoint>,
    last: Option<(Micros, u64, u64)>,
}

impl Rates {
    pub fn observe(&mut self, s: &EngineStats) {
        if let Some((at, rx, tx)) = self.last {
            let dt = s.at.saturating_sub(at) as f64 / 1e6;
            if dt <= 0.0 {
                return;
            }
            if self.points.len() == MAX_POINTS {
                self.points.pop_front();
            }
            self.points.push_back(RatePoint {
                t: s.at as f64 / 1e6,
                rx_per_sec: s.rx_bytes.saturating_sub(rx) as f64 / dt,
                tx_per_sec: s.tx_bytes.saturating_sub(tx) as f64 / dt,
                events_per_sec: s.events_per_sec,
            });
        }
        self.last = Some((s.at, s.rx_bytes, s.tx_bytes));
    }

    pub fn points(&self) -> &VecDeque<RatePoint> {
        &self.points
    }

    pub fn latest(&self) -> Option<&RatePoint> {
        self.points.back()
    }
}
