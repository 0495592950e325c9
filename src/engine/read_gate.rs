//! The one gate every reason to stop reading a client goes through.
//!
//! Edge-triggered readiness is the reason this is a type and not a few
//! booleans: while reading is stopped, the kernel's readable edge is
//! consumed and will not come again for bytes that already wait. So
//! whoever opens the gate must read at once, or the client stalls forever.
//! [`ReadGate::lift`] reports whether the gate just opened, and the event
//! loop's single caller of it then drives a read.

/// Why reading a client is stopped. A client is read only when none holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StopReason {
    /// Echoed bytes reached the queue limit; lifted below the low-water
    /// mark, or when the mode no longer queues what it reads.
    Backpressure = 1,
    /// The user paused reading this client.
    UserPause = 2,
    /// The peer sent FIN: there is nothing more to read, ever.
    PeerFin = 4,
    /// A fault holds reading: the read-bandwidth bucket is empty, or the
    /// connection is not served yet (`accept=delay`).
    Fault = 8,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadGate(u8);

impl ReadGate {
    pub fn is_open(self) -> bool {
        self.0 == 0
    }

    pub fn holds(self, reason: StopReason) -> bool {
        self.0 & reason as u8 != 0
    }

    /// Stop reading for `reason`. Returns whether `reason` is new.
    pub fn stop(&mut self, reason: StopReason) -> bool {
        let new = !self.holds(reason);
        self.0 |= reason as u8;
        new
    }

    /// Drop `reason`. Returns whether it was held. Reading resumes only if
    /// the gate is now open: check [`ReadGate::is_open`].
    pub fn lift(&mut self, reason: StopReason) -> bool {
        let held = self.holds(reason);
        self.0 &= !(reason as u8);
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_when_every_reason_is_lifted() {
        let mut g = ReadGate::default();
        assert!(g.is_open());
        assert!(g.stop(StopReason::Backpressure));
        assert!(!g.stop(StopReason::Backpressure), "already held");
        assert!(g.stop(StopReason::UserPause));
        assert!(g.lift(StopReason::Backpressure));
        assert!(!g.is_open(), "still paused by the user");
        assert!(!g.lift(StopReason::Backpressure), "not held any more");
        assert!(g.lift(StopReason::UserPause));
        assert!(g.is_open());
    }
}
