//! The viewer-side model: what the UI knows about the engine, folded from
//! batches. Plain Rust with no egui and no channels, so it is unit-tested
//! directly and runs the same over a local or a remote backend.

pub mod clock;
pub mod connections;
pub mod event_log;
pub mod lints;
pub mod messages;
pub mod rates;
pub mod tcp_history;
pub mod transcript;

pub use connections::{Column, ConnectionTable, Sort};
pub use event_log::{EventFilter, EventLog};
pub use rates::Rates;
pub use tcp_history::TcpHistory;

use crate::protocol::{Batch, ConnDetail, ConnId, EngineStats, Micros};
use std::collections::HashMap;
use web_time::Instant;

/// Inspector snapshots kept; only the selected connections need one.
const MAX_DETAILS: usize = 32;

#[derive(Debug, Default)]
pub struct Monitor {
    pub connections: ConnectionTable,
    pub events: EventLog,
    pub rates: Rates,
    pub stats: Option<EngineStats>,
    details: HashMap<ConnId, ConnDetail>,
    /// Inspector snapshots received so far, so a view of one can tell
    /// whether it changed without comparing it.
    details_received: u64,
    /// Events the engine dropped for this viewer (cumulative).
    pub engine_dropped: u64,
    /// Engine time of the newest data, and when it arrived here.
    engine_clock: clock::EngineClock,
    pub batches: u64,
    /// The engine's answer to the latest `TryScenario`.
    pub last_try: Option<Result<crate::scenario::TryReport, String>>,
    /// A recording played back says what "now" is; time does not run on
    /// its own.
    fixed_clock: Option<Micros>,
    /// What the clients do wrong, from the same batches.
    pub lints: lints::Lints,
    lints_run_at: Option<Instant>,
    /// Recent `TCP_INFO` samples per connection.
    tcp: tcp_history::TcpHistories,
}

/// Lints run at most this often (each run looks at every connection).
const LINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Monitor {
    pub fn absorb(&mut self, batch: Batch) {
        self.batches += 1;
        self.lints.observe(&batch);
        self.engine_dropped = self.engine_dropped.max(batch.dropped_events);
        self.engine_clock.observe(&batch);
        self.events.extend(batch.events);
        for c in batch.counters {
            if let Some(info) = &c.tcp {
                self.tcp.record(c.id, info);
            }
            self.connections.upsert(c);
        }
        if let Some(open) = &batch.open_conns {
            let now = self.engine_now();
            self.connections.close_unlisted(open, now);
        }
        for d in batch.details {
            if self.details.len() >= MAX_DETAILS && !self.details.contains_key(&d.counters.id) {
                self.details.clear();
            }
            self.details.insert(d.counters.id, d);
            self.details_received += 1;
        }
        if let Some(answer) = batch.tries.into_iter().last() {
            self.last_try = Some(answer);
        }
        if let Some(s) = batch.stats {
            self.rates.observe(&s, &self.connections);
            self.engine_dropped = self.engine_dropped.max(s.dropped_events);
            self.stats = Some(s);
        }
    }

    /// The engine's clock now, estimated from the newest data and the time
    /// elapsed since it arrived.
    pub fn engine_now(&self) -> Micros {
        if let Some(t) = self.fixed_clock {
            return t;
        }
        self.engine_clock.now()
    }

    /// An empty model with this one's viewer settings (which lints run):
    /// for a new source of data, or the same one from another point.
    pub fn fresh(&self) -> Monitor {
        let mut m = Monitor::default();
        m.lints.settings = self.lints.settings.clone();
        m
    }

    /// Freeze "now" at `at` (a recording's playback position).
    pub fn set_fixed_clock(&mut self, at: Micros) {
        self.fixed_clock = Some(at);
    }

    /// The recent `TCP_INFO` samples of connection `id`, once it has any.
    pub fn tcp_history(&self, id: ConnId) -> Option<&TcpHistory> {
        self.tcp.get(id)
    }

    pub fn detail(&self, id: ConnId) -> Option<&ConnDetail> {
        self.details.get(&id)
    }

    /// Changes whenever a new inspector snapshot arrives.
    pub fn details_received(&self) -> u64 {
        self.details_received
    }

    /// Housekeeping once per frame: old rows go, lints run (at most every
    /// [`LINT_EVERY`]) and what fired joins the event log.
    pub fn prune(&mut self) {
        let now = self.engine_now();
        self.connections.prune(now);
        if self.tcp.len() > self.connections.len() {
            let rows = &self.connections;
            self.tcp.retain(|id| rows.get(id).is_some());
        }
        if self.lints_run_at.is_none_or(|t| t.elapsed() >= LINT_EVERY) {
            self.lints_run_at = Some(Instant::now());
            self.run_lints(now);
        }
    }

    /// Run the lints as of `now`; each finding that fired becomes a `lint`
    /// event.
    pub fn run_lints(&mut self, now: Micros) {
        for f in self.lints.evaluate(now) {
            self.events.push(crate::protocol::Event {
                at: f.fired_at,
                conn: f.conn,
                kind: crate::protocol::EventKind::Lint {
                    lint: f.lint.name().to_owned(),
                    message: f.message,
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Event, EventKind};

    #[test]
    fn absorbs_counters_events_and_drop_counts() {
        let mut m = Monitor::default();
        let batch = Batch {
            seq: 1,
            events: vec![Event {
                at: 5,
                conn: Some(ConnId(1)),
                kind: EventKind::Read { n: 3 },
            }],
            counters: vec![connections::tests::row(1, 4000, 3)],
            dropped_events: 7,
            ..Batch::default()
        };
        m.absorb(batch);
        assert_eq!(m.connections.get(ConnId(1)).unwrap().rx_bytes, 3);
        assert_eq!(m.events.len(), 1);
        assert_eq!(m.engine_dropped, 7);
        assert!(m.engine_now() >= 5);
    }

    #[test]
    fn tcp_samples_are_kept_per_connection_and_pruned_with_the_rows() {
        use crate::protocol::{CloseReason, ConnState, TcpInfo};
        let mut m = Monitor::default();
        let sampled = |id, at, closed: bool| {
            let mut c = connections::tests::row(id, 4000, 0);
            c.tcp = Some(Box::new(TcpInfo {
                at,
                rtt_us: 100,
                ..TcpInfo::default()
            }));
            if closed {
                c.state = ConnState::Closed(CloseReason::PeerClosed);
            }
            c
        };
        for (at, counters) in [
            (1, vec![sampled(1, 1, false), sampled(2, 1, false)]),
            // The same sample again (another counter changed): kept once.
            (2, vec![sampled(1, 1, false)]),
            (3, vec![sampled(1, 2, false), sampled(2, 2, true)]),
        ] {
            m.absorb(Batch {
                seq: at,
                counters,
                ..Batch::default()
            });
        }
        assert_eq!(m.tcp_history(ConnId(1)).map(|h| h.samples().len()), Some(2));
        assert_eq!(m.tcp_history(ConnId(2)).map(|h| h.samples().len()), Some(2));
        // The closed row last moved at 20 (`row` opens connection n at 10n).
        m.set_fixed_clock(20 + connections::CLOSED_RETENTION);
        m.prune();
        assert!(m.connections.get(ConnId(2)).is_none());
        assert!(m.tcp_history(ConnId(2)).is_none(), "pruned with its row");
        assert!(m.tcp_history(ConnId(1)).is_some());
    }
}
