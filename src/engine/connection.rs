//! One client as the engine holds it: its socket, queue, transcript and
//! numbers. Moving its bytes is `conn_io`'s job; removing it is the event
//! loop's alone.
//!
//! Kept small on purpose: with 10,000 idle clients this struct is most of
//! the engine's memory, so the queue and transcript allocate on first use.

use super::queue::ByteQueue;
use super::read_gate::{ReadGate, StopReason};
use super::replay::Replay;
use super::script::Script;
use super::shaper::Shaper;
use super::transcript::Transcript;
use crate::protocol::{
    ConnCounters, ConnDetail, ConnId, ConnState, EventCounts, FaultStatus, Micros, TcpInfo,
};
use crate::scenario::Scenario;
use mio::net::TcpStream;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where a live connection is in its life (`ConnState` without `Closed`,
/// which only the final counters carry).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    Open,
    /// The peer sent FIN; queued bytes are still being delivered.
    HalfClosed,
    /// Kicked gracefully: flushing, then FIN, then waiting for the peer's,
    /// until `deadline`, when the kick gives up and resets.
    Closing {
        deadline: Micros,
    },
}

#[derive(Debug)]
pub struct Connection {
    pub id: ConnId,
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub opened_at: Micros,
    pub last_activity: Micros,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub queue: ByteQueue,
    pub transcript: Transcript,
    pub events: EventCounts,
    pub phase: Phase,
    pub gate: ReadGate,
    /// We sent FIN after a graceful kick and only wait for the peer's.
    pub write_shut: bool,
    /// mio reported read-closed: the peer's FIN is in (or ahead of) the
    /// receive queue, and no later edge will announce it.
    pub read_closed_seen: bool,
    /// Whether WRITABLE is part of the registered interest. Kept so that
    /// interest is changed only when the queue goes empty or non-empty.
    pub writable_interest: bool,
    /// Counters changed since they were last sent.
    pub dirty: bool,
    /// Listed in the loop's list of connections to report.
    pub listed: bool,
    /// The faults acting on it, if any.
    pub shaper: Option<Box<Shaper>>,
    /// The scenario's state on it, while one runs.
    pub script: Option<Box<Script>>,
    /// The replayed recording's state on it (`--replay`).
    pub replay: Option<Box<Replay>>,
    /// The kernel's latest view of it (`TCP_INFO`), once sampled (boxed:
    /// a pointer per idle client until the first sample).
    pub tcp: Option<Box<TcpInfo>>,
}

impl Connection {
    pub fn new(id: ConnId, stream: TcpStream, peer: SocketAddr, now: Micros) -> Self {
        Connection {
            id,
            stream,
            peer,
            opened_at: now,
            last_activity: now,
            rx_bytes: 0,
            tx_bytes: 0,
            queue: ByteQueue::default(),
            transcript: Transcript::default(),
            events: EventCounts::default(),
            phase: Phase::Open,
            gate: ReadGate::default(),
            write_shut: false,
            read_closed_seen: false,
            writable_interest: false,
            dirty: false,
            listed: false,
            shaper: None,
            script: None,
            replay: None,
            tcp: None,
        }
    }

    pub fn state(&self) -> ConnState {
        match self.phase {
            Phase::Open => ConnState::Open,
            Phase::HalfClosed => ConnState::HalfClosed,
            Phase::Closing { deadline } => ConnState::Closing { deadline },
        }
    }

    pub fn counters(&self) -> ConnCounters {
        ConnCounters {
            id: self.id,
            peer: self.peer,
            opened_at: self.opened_at,
            state: self.state(),
            rx_bytes: self.rx_bytes,
            tx_bytes: self.tx_bytes,
            queued_bytes: self.queue.len(),
            queued_msgs: self.queue.message_count(),
            queue_high_water: self.queue.high_water(),
            backpressure: self.gate.holds(StopReason::Backpressure),
            read_paused: self.gate.holds(StopReason::UserPause),
            events: self.events,
            last_activity: self.last_activity,
            faults: self.fault_status(),
            tcp: self.tcp.clone(),
            pending: self.script.as_ref().and_then(|s| s.pending_message()),
        }
    }

    fn fault_status(&self) -> Option<Box<FaultStatus>> {
        let s = self.shaper.as_ref()?;
        let now = s.observed_at;
        let stalled = s.faults.stall_writes || s.hold_until > now;
        let held = if stalled {
            self.queue.len()
        } else {
            self.queue.held_after(now)
        };
        Some(Box::new(FaultStatus {
            active: !s.faults.is_none() || s.hold_until > now,
            chosen: s.chosen,
            held,
            next_release: self.queue.head_release().filter(|t| !stalled && *t > now),
        }))
    }

    /// For the inspector; `shared` is the scenario new connections run.
    pub fn detail(&self, shared: Option<&Arc<Scenario>>) -> ConnDetail {
        let (transcript_dropped_rx, transcript_dropped_tx) = self.transcript.dropped();
        ConnDetail {
            counters: self.counters(),
            queue: self.queue.snapshot(),
            transcript: self.transcript.snapshot(),
            transcript_dropped_rx,
            transcript_dropped_tx,
            faults: self
                .shaper
                .as_ref()
                .map(|s| s.faults.clone())
                .unwrap_or_default(),
            script: self.script.as_ref().map(|s| {
                let own = shared.is_none_or(|shared| !Arc::ptr_eq(shared, &s.scenario));
                s.detail(own)
            }),
            replay: self.replay.as_ref().map(|r| Box::new(r.detail())),
        }
    }
}
