//! What a scenario would do with some input: the answer to the Scenario
//! pane's "try it", computed on the engine (`Scenario::try_input`) and sent
//! to the window, so these are plain data that travel over the wire
//! (postcard): bytes, numbers and strings only.

use super::Otherwise;
use serde::{Deserialize, Serialize};

/// A fresh connection's story: it connects, then sends the input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TryReport {
    /// Connect first, then one step per message, in order.
    pub steps: Vec<TryStep>,
    /// The bytes of an incomplete message after the input.
    pub pending: Vec<u8>,
    /// Why framing failed (the connection would be closed there).
    pub framing_error: Option<String>,
    /// Why the try-out stopped before the end of the input: a rule closed,
    /// reset or paused the connection.
    pub stopped: Option<String>,
}

/// One trigger and what answered it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TryStep {
    pub trigger: TryTrigger,
    pub outcome: TryOutcome,
    /// What would be sent (after `delay`); `None` if nothing.
    pub reply: Option<Vec<u8>>,
    /// The rule's delay, without jitter.
    pub delay_micros: u64,
    /// The most the delay varies either way.
    pub jitter_micros: u64,
    /// The action after the reply: `Close`, `Reset`, `PauseReading` or
    /// `Fault(SPEC)` with the canonical fault spec.
    pub then: Option<String>,
    /// Why the reply could not be sent (it could not be framed).
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TryTrigger {
    Connect,
    /// A message: its body (what rules match) and the frame as received.
    Message {
        body: Vec<u8>,
        raw: Vec<u8>,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TryOutcome {
    /// This rule fired (0-based; the window shows rule N + 1).
    Rule(u32),
    /// No rule matched the message: the scenario's `otherwise`.
    Otherwise(Otherwise),
    /// No rule fired on connect.
    Nothing,
}
