//! The session as of one instant, folded from records: the writer keeps one
//! to snapshot into keyframes, and a reader starts one from a keyframe to
//! answer what a pane asks about a past instant (a connection's queue, its
//! byte offsets). Plain data: no files, no threads.

use super::{DataChunk, Keyframe, Record};
use crate::protocol::{
    Batch, ConnCounters, ConnId, ConnState, Direction, EngineStats, Event, EventKind, Micros,
    QueuedMessage,
};
use std::collections::{HashMap, VecDeque};

/// Events a keyframe carries, so the event log is not empty after a seek.
pub const RECENT_EVENTS: usize = 256;
/// Closed connections stay in keyframes this long, as they stay in the
/// table.
const CLOSED_KEPT: Micros = 60_000_000;
/// A queue model longer than this is cut (from the front): it only feeds
/// the inspector, which shows the head.
const MAX_QUEUE_MODEL: usize = 4096;

#[derive(Debug, Default, Clone)]
pub struct SessionState {
    pub at: Micros,
    pub stats: Option<EngineStats>,
    pub counters: HashMap<ConnId, ConnCounters>,
    pub recent: VecDeque<Event>,
    pub queues: HashMap<ConnId, VecDeque<QueuedMessage>>,
    /// Bytes seen per connection (rx, tx).
    pub totals: HashMap<ConnId, (u64, u64)>,
}

impl SessionState {
    pub fn from_keyframe(k: &Keyframe) -> SessionState {
        SessionState {
            at: k.at,
            stats: k.stats.clone(),
            counters: k.counters.iter().map(|c| (c.id, c.clone())).collect(),
            recent: k.events.iter().cloned().collect(),
            queues: k
                .queues
                .iter()
                .map(|(id, q)| (*id, q.iter().cloned().collect()))
                .collect(),
            totals: k
                .totals
                .iter()
                .map(|&(id, rx, tx)| (id, (rx, tx)))
                .collect(),
        }
    }

    /// Snapshot, dropping connections closed more than a minute ago.
    pub fn keyframe(&mut self) -> Keyframe {
        let at = self.at;
        let gone: Vec<ConnId> = self
            .counters
            .values()
            .filter(|c| {
                matches!(c.state, ConnState::Closed(_))
                    && c.last_activity.saturating_add(CLOSED_KEPT) < at
            })
            .map(|c| c.id)
            .collect();
        for id in gone {
            self.counters.remove(&id);
            self.queues.remove(&id);
            self.totals.remove(&id);
        }
        let mut counters: Vec<ConnCounters> = self.counters.values().cloned().collect();
        counters.sort_by_key(|c| c.id);
        let mut queues: Vec<_> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(id, q)| (*id, q.iter().cloned().collect()))
            .collect();
        queues.sort_by_key(|(id, _)| *id);
        let mut totals: Vec<_> = self
            .totals
            .iter()
            .map(|(&id, &(rx, tx))| (id, rx, tx))
            .collect();
        totals.sort_by_key(|t| t.0);
        Keyframe {
            at,
            stats: self.stats.clone(),
            counters,
            events: self.recent.iter().cloned().collect(),
            queues,
            totals,
        }
    }

    /// The keyframe as a batch a viewer's model absorbs: it resynchronises
    /// (lists what is open), so a fresh monitor shows the session as of it.
    pub fn keyframe_batch(k: &Keyframe) -> Batch {
        let open = k
            .counters
            .iter()
            .filter(|c| !matches!(c.state, ConnState::Closed(_)))
            .map(|c| c.id)
            .collect();
        Batch {
            events: k.events.clone(),
            counters: k.counters.clone(),
            stats: k.stats.clone(),
            open_conns: Some(open),
            ..Batch::default()
        }
    }

    pub fn absorb(&mut self, record: &Record) {
        match record {
            Record::Batch(b) => self.absorb_batch(b),
            Record::Data(d) => self.absorb_data(d),
            Record::Lost(l) => self.at = self.at.max(l.to),
        }
    }

    pub fn absorb_stats(&mut self, stats: &EngineStats) {
        self.at = self.at.max(stats.at);
        self.stats = Some(stats.clone());
    }

    pub fn absorb_data(&mut self, d: &DataChunk) {
        self.at = self.at.max(d.at);
        let t = self.totals.entry(d.conn).or_default();
        match d.dir {
            Direction::Rx => t.0 += d.bytes.len() as u64,
            Direction::Tx => t.1 += d.bytes.len() as u64,
        }
    }

    pub fn absorb_batch(&mut self, b: &Batch) {
        for e in &b.events {
            self.at = self.at.max(e.at);
            if let Some(conn) = e.conn {
                self.queue_event(conn, e);
            }
            if self.recent.len() == RECENT_EVENTS {
                self.recent.pop_front();
            }
            self.recent.push_back(e.clone());
        }
        for c in &b.counters {
            if matches!(c.state, ConnState::Closed(_)) {
                self.queues.remove(&c.id);
            }
            self.counters.insert(c.id, c.clone());
        }
        if let Some(s) = &b.stats {
            self.absorb_stats(s);
        }
    }

    /// Follow a connection's queue from its events: queued bytes join the
    /// tail, written ones leave the head.
    fn queue_event(&mut self, conn: ConnId, e: &Event) {
        match &e.kind {
            EventKind::Queued { n, origin } => {
                let q = self.queues.entry(conn).or_default();
                if q.len() == MAX_QUEUE_MODEL {
                    q.pop_front();
                }
                q.push_back(QueuedMessage {
                    len: *n,
                    queued_at: e.at,
                    origin: *origin,
                });
            }
            EventKind::Wrote { n } => {
                let Some(q) = self.queues.get_mut(&conn) else {
                    return;
                };
                let mut left = *n;
                while left > 0 {
                    let Some(head) = q.front_mut() else { break };
                    if head.len <= left {
                        left -= head.len;
                        q.pop_front();
                    } else {
                        head.len -= left;
                        left = 0;
                    }
                }
            }
            EventKind::Closed { .. } => {
                self.queues.remove(&conn);
            }
            _ => {}
        }
    }

    pub fn queue(&self, conn: ConnId) -> Vec<QueuedMessage> {
        self.queues
            .get(&conn)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CloseReason, Origin};

    fn ev(at: Micros, conn: u64, kind: EventKind) -> Event {
        Event {
            at,
            conn: Some(ConnId(conn)),
            kind,
        }
    }

    #[test]
    fn queues_follow_queued_and_wrote_and_a_keyframe_restores_the_state() {
        let mut s = SessionState::default();
        let peer = "127.0.0.1:9".parse().unwrap();
        let batch = Batch {
            events: vec![
                ev(
                    1,
                    1,
                    EventKind::Queued {
                        n: 5,
                        origin: Origin::Echo,
                    },
                ),
                ev(
                    2,
                    1,
                    EventKind::Queued {
                        n: 3,
                        origin: Origin::Inject,
                    },
                ),
                ev(3, 1, EventKind::Wrote { n: 6 }),
            ],
            counters: vec![ConnCounters::opened(ConnId(1), peer, 0)],
            ..Batch::default()
        };
        s.absorb(&Record::Batch(Box::new(batch)));
        s.absorb(&Record::Data(DataChunk {
            at: 4,
            conn: ConnId(1),
            dir: Direction::Rx,
            bytes: b"hello".to_vec(),
        }));
        let q = s.queue(ConnId(1));
        assert_eq!(q.len(), 1);
        assert_eq!((q[0].len, q[0].origin), (2, Origin::Inject));
        let k = s.keyframe();
        assert_eq!(k.at, 4);
        assert_eq!(k.totals, vec![(ConnId(1), 5, 0)]);
        let back = SessionState::from_keyframe(&k);
        assert_eq!(back.queue(ConnId(1)), q);
        assert_eq!(back.recent.len(), 3);
        let batch = SessionState::keyframe_batch(&k);
        assert_eq!(batch.open_conns, Some(vec![ConnId(1)]));
    }

    #[test]
    fn closed_connections_leave_keyframes_after_a_minute() {
        let mut s = SessionState::default();
        let peer = "127.0.0.1:9".parse().unwrap();
        let mut c = ConnCounters::opened(ConnId(7), peer, 0);
        c.state = ConnState::Closed(CloseReason::PeerClosed);
        c.last_activity = 10;
        s.absorb_batch(&Batch {
            counters: vec![c],
            ..Batch::default()
        });
        s.at = 30_000_000;
        assert_eq!(s.keyframe().counters.len(), 1, "closed 30 s ago: kept");
        s.at = 61_000_000;
        assert!(s.keyframe().counters.is_empty(), "closed 61 s ago: gone");
    }
}
