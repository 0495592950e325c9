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
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
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

/// The fewest bytes per second a bandwidth fault allows: below that a
/// byte would wait minutes.
pub const MIN_RATE: u64 = 1;

impl Faults {
    /// The same faults with every value made usable, whoever sent them:
    /// chances at most 1, rates and sizes at least 1, a slice range in
    /// order. The engine applies only sanitized faults.
    pub fn sanitized(mut self) -> Faults {
        let chance = |c: Option<Chance>| c.map(|c| c.min(Chance::ALWAYS));
        self.corrupt = chance(self.corrupt);
        self.toxicity = chance(self.toxicity);
        self.bandwidth = self.bandwidth.map(|r| r.max(MIN_RATE));
        self.read_bandwidth = self.read_bandwidth.map(|r| r.max(MIN_RATE));
        self.rcvbuf = self.rcvbuf.map(|b| b.max(1));
        self.slice = self.slice.map(|s| {
            let min = s.min.max(1);
            Slice {
                min,
                max: s.max.max(min),
                delay: s.delay,
            }
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizing_makes_every_value_usable() {
        let f = Faults {
            corrupt: Some(Chance(u32::MAX)),
            bandwidth: Some(0),
            slice: Some(Slice {
                min: 0,
                max: 0,
                delay: 5,
            }),
            ..Faults::default()
        }
        .sanitized();
        assert_eq!(f.corrupt, Some(Chance::ALWAYS));
        assert_eq!(f.bandwidth, Some(1));
        assert_eq!(
            f.slice,
            Some(Slice {
                min: 1,
                max: 1,
                delay: 5
            })
        );
        assert!(Faults::default().sanitized().is_none());
    }
}
