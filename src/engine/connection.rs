//! One client as the engine holds it: its socket, queue, transcript and
//! numbers. The read/write logic lives in the event loop, which owns the
//! slab and the publisher that every step reports to.
//!
//! Kept small on purpose: with 10,000 idle clients this struct is most of
//! the engine's memory, so the queue and transcript allocate on first use.

use super::queue::ByteQueue;
use super::transcript::Transcript;
use crate::protocol::{ConnCounters, ConnDetail, ConnId, ConnState, EventCounts, Micros};
use mio::net::TcpStream;
use std::net::SocketAddr;

/// Where a live connection is in its life (`ConnState` without `Closed`,
/// which only the final counters carry).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    Open,
    /// The peer sent FIN; queued bytes are still being delivered.
    HalfClosed,
    /// Kicked gracefully: flushing, then FIN.
    Closing,
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
    pub backpressure: bool,
    pub read_paused: bool,
    /// The peer sent FIN: reading is over for good.
    pub read_eof: bool,
    /// We sent FIN after a graceful kick and only wait for the peer's.
    pub write_shut: bool,
    /// Whether WRITABLE is part of the registered interest. Kept so that
    /// interest is changed only when the queue goes empty or non-empty.
    pub writable_interest: bool,
    /// Already listed in the loop's dirty list for the next flush.
    pub dirty: bool,
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
            backpressure: false,
            read_paused: false,
            read_eof: false,
            write_shut: false,
            writable_interest: false,
            dirty: false,
        }
    }

    /// Whether the loop should read from the socket now.
    pub fn wants_read(&self) -> bool {
        !(self.read_eof || self.backpressure || self.read_paused)
    }

    pub fn state(&self) -> ConnState {
        match self.phase {
            Phase::Open => ConnState::Open,
            Phase::HalfClosed => ConnState::HalfClosed,
            Phase::Closing => ConnState::Closing,
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
            backpressure: self.backpressure,
            read_paused: self.read_paused,
            events: self.events,
            last_activity: self.last_activity,
        }
    }

    pub fn detail(&self) -> ConnDetail {
        let (transcript_dropped_rx, transcript_dropped_tx) = self.transcript.dropped();
        ConnDetail {
            counters: self.counters(),
            queue: self.queue.snapshot(),
            transcript: self.transcript.snapshot(),
            transcript_dropped_rx,
            transcript_dropped_tx,
        }
    }
}
