//! Faults: ways to make the server misbehave on purpose, per connection or
//! for all new ones, so a client's handling of them can be watched.
//!
//! This module is vocabulary only, shared by the protocol, the engine (which
//! applies faults in `engine::shaper`), the command line and the window.
//! Every fault is off by default; a [`Faults`] with all fields off changes
//! nothing. Times are whole milliseconds and sizes whole bytes, the finest
//! units the `--fault` grammar (`spec`) offers.

pub mod spec;

use serde::{Deserialize, Serialize};

/// Milliseconds, the unit of every fault delay.
pub type Millis = u32;

/// A probability in parts per million (0..=1,000,000): exact in text
/// ("0.01" is 10,000), comparable and hashable, unlike an `f64`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Chance(pub u32);

impl Chance {
    pub const ALWAYS: Chance = Chance(1_000_000);

    /// Whether a uniform draw in 0..1,000,000 falls under this chance.
    pub fn admits(self, draw: u32) -> bool {
        draw < self.0
    }
}

/// The faults acting on one connection, or given to new connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Everything sent is held for `delay` ± `jitter`; order is kept.
    pub latency: Option<Latency>,
    /// What is sent is capped at this many bytes per second.
    pub bandwidth: Option<u64>,
    /// Reading is capped at this many bytes per second, so the client's
    /// writes slow down.
    pub read_bandwidth: Option<u64>,
    /// What is sent goes out in writes of a (random) size in `min..=max`,
    /// `delay` apart, each its own segment.
    pub slice: Option<Slice>,
    /// Nothing is sent until the fault is lifted.
    pub stall_writes: bool,
    /// FIN once this many bytes were sent, or this long after accept.
    pub close_after: Option<Limit>,
    /// RST (`SO_LINGER` 0) once this many bytes were sent, or this long
    /// after accept.
    pub reset_after: Option<Limit>,
    /// When the conversation ends, the FIN waits this long.
    pub slow_close: Option<Millis>,
    /// Each byte sent is altered with this probability.
    pub corrupt: Option<Chance>,
    /// `SO_RCVBUF` of accepted sockets, in bytes.
    pub rcvbuf: Option<u32>,
    /// The faults apply to this fraction of new connections, drawn at
    /// accept; `None` means all of them.
    pub toxicity: Option<Chance>,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Latency {
    pub delay: Millis,
    pub jitter: Millis,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Slice {
    pub min: u32,
    pub max: u32,
    pub delay: Millis,
}

/// When a closing fault fires.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Limit {
    /// Once this many bytes were sent.
    Bytes(u64),
    /// This long after accept.
    After(Millis),
}

/// Engine-wide faults on accepting clients.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AcceptFault {
    /// The listener is closed, so connects are refused.
    Refuse,
    /// accept() is not called: the backlog fills and connects hang.
    Stall,
    /// Each connection is served this long after it was accepted.
    Delay(Millis),
}

impl Faults {
    /// No fault at all.
    pub fn is_none(&self) -> bool {
        *self == Faults::default()
    }

    /// Whether anything holds back or reshapes what is sent (so bytes must
    /// be queued, never written straight from the read buffer).
    pub fn shapes_writes(&self) -> bool {
        self.latency.is_some()
            || self.bandwidth.is_some()
            || self.slice.is_some()
            || self.stall_writes
            || self.corrupt.is_some()
            || matches!(self.close_after, Some(Limit::Bytes(_)))
            || matches!(self.reset_after, Some(Limit::Bytes(_)))
    }
}
