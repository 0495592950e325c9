//! What the lints remember of each connection and host: bounded, and only
//! what some lint reads.

use crate::protocol::{ConnCounters, ConnId, ConnState, Event, EventKind, Micros};
use std::collections::VecDeque;
use std::net::SocketAddr;

/// Reads kept per connection (the nagle and tiny-writes lints look at the
/// last second or two).
const READS: usize = 512;

/// One read from the client.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReadAt {
    pub at: Micros,
    pub n: u32,
    /// The server wrote to the client between the previous read and this
    /// one (a write carries an ACK, which releases Nagle's hold).
    pub after_write: bool,
}

#[derive(Clone, Debug)]
pub struct ConnHistory {
    pub id: ConnId,
    pub peer: SocketAddr,
    /// The latest counters.
    pub counters: ConnCounters,
    /// When the client last sent a byte (its open, before it sent any).
    pub last_rx_at: Micros,
    pub reads: VecDeque<ReadAt>,
    /// The server wrote since the last read.
    pub wrote_since_read: bool,
    /// Since when the client's window is zero or its queue at the bound.
    pub not_reading_since: Option<Micros>,
    /// Since when muxscope's FIN is out (closing, nothing queued) and the
    /// client has neither closed nor read.
    pub fin_unanswered_since: Option<Micros>,
    pub samples: crate::monitor::TcpHistory,
    /// When it closed.
    pub closed_at: Option<Micros>,
    /// The newest time this history heard of.
    pub last_seen: Micros,
}

impl ConnHistory {
    pub fn new(id: ConnId, peer: SocketAddr, opened_at: Micros) -> Self {
        ConnHistory {
            id,
            peer,
            counters: ConnCounters::opened(id, peer, opened_at),
            last_rx_at: opened_at,
            reads: VecDeque::new(),
            wrote_since_read: false,
            not_reading_since: None,
            fin_unanswered_since: None,
            samples: Default::default(),
            closed_at: None,
            last_seen: opened_at,
        }
    }

    pub fn event(&mut self, e: &Event) {
        self.last_seen = self.last_seen.max(e.at);
        match &e.kind {
            EventKind::Read { n } => {
                if self.reads.len() == READS {
                    self.reads.pop_front();
                }
                self.reads.push_back(ReadAt {
                    at: e.at,
                    n: *n,
                    after_write: std::mem::take(&mut self.wrote_since_read),
                });
                self.last_rx_at = e.at;
                self.fin_unanswered_since = None;
            }
            EventKind::Wrote { .. } => self.wrote_since_read = true,
            EventKind::Closed { .. } => self.closed_at = Some(e.at),
            _ => {}
        }
    }

    /// Fold the latest counters, at the time they speak of (their newest
    /// sample or activity).
    pub fn counters(&mut self, c: &ConnCounters) {
        let at = c
            .tcp
            .as_ref()
            .map_or(c.last_activity, |t| t.at)
            .max(c.last_activity);
        self.last_seen = self.last_seen.max(at);
        if c.rx_bytes > self.counters.rx_bytes {
            self.last_rx_at = self.last_rx_at.max(c.last_activity);
        }
        let window_zero = c.tcp.as_ref().and_then(|t| t.peer_window) == Some(0);
        let open = !matches!(c.state, ConnState::Closed(_));
        if open && (window_zero || c.backpressure) {
            self.not_reading_since.get_or_insert(self.last_seen);
        } else {
            self.not_reading_since = None;
        }
        let fin_out = matches!(c.state, ConnState::Closing { .. }) && c.queued_bytes == 0;
        if fin_out {
            self.fin_unanswered_since.get_or_insert(self.last_seen);
        } else {
            self.fin_unanswered_since = None;
        }
        if let Some(t) = &c.tcp {
            self.samples.push(t);
        }
        if let ConnState::Closed(_) = c.state {
            self.closed_at.get_or_insert(self.last_seen);
        }
        self.counters = c.clone();
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.counters.state, ConnState::Closed(_))
    }
}

/// Accepts from one host, per second.
#[derive(Clone, Debug, Default)]
pub struct HostHistory {
    /// (second, accepts in it), the last few seconds.
    pub seconds: VecDeque<(u64, u32)>,
    pub last_conn_at: Micros,
}

/// Seconds of accepts kept per host.
const HOST_SECONDS: usize = 16;

impl HostHistory {
    pub fn accepted(&mut self, at: Micros) {
        let sec = at / 1_000_000;
        match self.seconds.back_mut() {
            Some((s, n)) if *s == sec => *n += 1,
            _ => {
                if self.seconds.len() == HOST_SECONDS {
                    self.seconds.pop_front();
                }
                self.seconds.push_back((sec, 1));
            }
        }
        self.last_conn_at = at;
    }

    /// Heard from in the last minute.
    pub fn recent(&self, now: Micros) -> bool {
        self.last_conn_at + 60_000_000 >= now
    }
}
