//! The loop's side of faults: which connections get them, and the
//! engine-wide fault on accepting. What a fault does to one connection's
//! bytes is `shaper`'s (state) and `conn_io`'s (I/O).

use super::event_loop::EventLoop;
use super::read_gate::StopReason;
use super::shaper::Shaper;
use crate::faults::{AcceptFault, Faults};
use crate::protocol::{EventKind, FaultScope, ListenState};
use std::time::Instant;

impl EventLoop {
    /// A `SetFaults` command: faults for new connections, or for some.
    pub(super) fn set_faults(&mut self, scope: FaultScope, faults: Faults) {
        let faults = faults.sanitized();
        match scope {
            FaultScope::New => {
                self.emit(
                    None,
                    EventKind::FaultsSet {
                        spec: faults.to_string(),
                    },
                );
                self.new_faults = faults;
                self.stats.force();
            }
            FaultScope::Conns(targets) => {
                for (id, key) in self.targets(&targets) {
                    self.with_conn_id(id, key, |io, conn| io.set_faults(conn, &faults));
                }
            }
        }
    }

    /// Give the connection just accepted at `key` the faults for new ones:
    /// under toxicity only if drawn, and with `accept=delay` it is not
    /// served until the delay is over.
    pub(super) fn apply_new_faults(&mut self, key: usize) {
        let delay = match self.accept_fault {
            Some(AcceptFault::Delay(ms)) => u64::from(ms) * 1000,
            _ => 0,
        };
        let faults = &self.new_faults;
        if faults.is_none() && delay == 0 {
            return;
        }
        let now = self.now;
        let conn = &mut self.conns[key];
        let mut shaper = Shaper::new(faults.clone(), conn.id.0, now);
        if let Some(chance) = faults.toxicity {
            shaper.chosen = chance.admits(shaper.draw());
            if !shaper.chosen {
                shaper.set_faults(Faults::default());
            }
        }
        if let Some(size) = shaper.faults.rcvbuf {
            let _ = socket2::SockRef::from(&conn.stream).set_recv_buffer_size(size as usize);
        }
        if delay > 0 {
            shaper.hold_until = now + delay;
            conn.gate.stop(StopReason::Fault);
        }
        // Under toxicity a spared connection keeps an (idle) shaper too, so
        // its row can say it was not chosen.
        let keep = !shaper.faults.is_none() || delay > 0 || faults.toxicity.is_some();
        if keep {
            conn.shaper = Some(Box::new(shaper));
        }
    }

    /// Set or lift the fault on accepting.
    pub(super) fn set_accept_fault(&mut self, fault: Option<AcceptFault>) {
        let before = self.accept_fault;
        self.accept_fault = fault;
        // Leaving `refuse`: listen again where the listener was.
        if before == Some(AcceptFault::Refuse)
            && fault != Some(AcceptFault::Refuse)
            && let Some(addr) = self.refused_addr.take()
        {
            self.acceptor
                .listen(self.poll.registry(), &mut self.publisher, self.now, addr);
        }
        if fault == Some(AcceptFault::Refuse)
            && before != Some(AcceptFault::Refuse)
            && let ListenState::Listening(addr) = self.acceptor.state
        {
            self.refused_addr = Some(addr);
            self.acceptor
                .stop(self.poll.registry(), &mut self.publisher, self.now);
        }
        self.emit(None, EventKind::AcceptFaultSet { fault });
        self.stats.force();
        // Leaving `stall`: the waiting clients raised their edge already.
        if before == Some(AcceptFault::Stall) && fault != Some(AcceptFault::Stall) {
            self.accept_all(Instant::now());
        }
    }
}
