//! What a viewer asks of the engine, applied on the engine thread.
//!
//! Nothing a command carries is trusted. Targets are deduplicated ids,
//! each looked up when it applies, so duplicate, unknown or just-closed ids
//! are harmless; an address is parsed here only if it is an `IP:port`
//! literal (names resolve off this thread) and is bounded in length.

use super::conn_io::{Close, Outcome};
use super::event_loop::EventLoop;
use crate::protocol::*;
use std::net::SocketAddr;
use std::sync::Arc;

/// Longer than any host name (253) plus a port: anything longer is not an
/// address, and is not echoed back in full either.
pub const MAX_ADDR_LEN: usize = 300;

impl EventLoop {
    /// The connections a command applies to, each once, as (id, slab key).
    /// One pass over the slab: a map from id to key would cost every idle
    /// client memory for the sake of rare commands.
    pub(super) fn targets(&self, targets: &Targets) -> Vec<(ConnId, usize)> {
        let wanted = match targets {
            Targets::All => None,
            Targets::Conns(ids) => {
                let mut ids = ids.clone();
                ids.sort_unstable();
                ids.dedup();
                Some(ids)
            }
        };
        self.conns
            .iter()
            .filter(|(_, c)| {
                wanted
                    .as_ref()
                    .is_none_or(|w| w.binary_search(&c.id).is_ok())
            })
            .map(|(key, c)| (c.id, key))
            .collect()
    }

    pub(super) fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Kick { targets, mode } => {
                for (id, key) in self.targets(&targets) {
                    match mode {
                        KickMode::Reset => self.with_conn_id(id, key, |io, _| {
                            io.publisher.event(Event {
                                at: io.now,
                                conn: Some(id),
                                kind: EventKind::Kicked { mode },
                            });
                            Outcome::Close(Close {
                                reason: CloseReason::Kicked(mode),
                                reset: true,
                            })
                        }),
                        KickMode::Graceful => self.kick_gracefully(id, key),
                    }
                }
            }
            Command::Inject { targets, bytes } => {
                if bytes.is_empty() {
                    return;
                }
                // One buffer for every target, however many there are.
                let shared: Arc<[u8]> = bytes.into();
                for (id, key) in self.targets(&targets) {
                    self.with_conn_id(id, key, |io, conn| io.inject(conn, &shared));
                }
            }
            Command::SetMode(mode) => self.set_mode(mode),
            Command::Listen { addr } => self.listen(addr),
            Command::StopListening => {
                self.acceptor
                    .stop(self.poll.registry(), &mut self.publisher, self.now);
                self.stats.force();
            }
            Command::SetReadPaused { targets, paused } => {
                for (id, key) in self.targets(&targets) {
                    self.with_conn_id(id, key, |io, conn| io.set_read_paused(conn, paused));
                }
            }
            Command::Inspect { conn } => {
                if let Some((_, c)) = self.conns.iter().find(|(_, c)| c.id == conn) {
                    let detail = c.detail(self.scenario.as_ref());
                    self.publisher.detail(detail);
                }
            }
            Command::SetFaults { scope, faults } => self.set_faults(scope, *faults),
            Command::SetAcceptFault(fault) => self.set_accept_fault(fault),
            Command::SetScenario(file) => self.set_scenario(file.map(|f| *f)),
            Command::SetConnScenario { targets, scenario } => {
                self.set_conn_scenario(&targets, scenario.map(|f| *f));
            }
            Command::TryScenario { scenario, input } => self.try_scenario(&scenario, &input),
            Command::StartRecording {
                path,
                max_bytes,
                rotate,
            } => self.start_recording(crate::record::writer::RecordingConfig {
                path: path.into(),
                max_bytes,
                at_cap: if rotate {
                    crate::record::writer::AtCap::Rotate
                } else {
                    crate::record::writer::AtCap::Stop
                },
            }),
            Command::StopRecording => self.stop_recording("stopped by the user"),
            Command::Watch { viewer, conns } => self.watch(viewer, conns),
        }
    }

    pub(super) fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.emit(None, EventKind::ModeChanged { mode });
        self.stats.force();
        // Backpressure ends outside echo, and half-closed clients kept
        // open for manual answers end outside manual.
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.with_conn(key, |io, conn| io.mode_changed(conn));
        }
    }

    fn kick_gracefully(&mut self, id: ConnId, key: usize) {
        let deadline = self.now + self.config.kick_timeout.as_micros() as Micros;
        self.with_conn_id(id, key, |io, conn| io.kick_gracefully(conn, deadline));
    }

    fn listen(&mut self, addr: String) {
        if addr.len() > MAX_ADDR_LEN {
            let shown: String = addr.chars().take(40).collect();
            let error = format!(
                "an address of {} bytes is not a listen address; use HOST:PORT, e.g. 127.0.0.1:8800",
                addr.len()
            );
            self.acceptor
                .failed(&mut self.publisher, self.now, format!("{shown}…"), error);
        } else if let Ok(literal) = addr.trim().parse::<SocketAddr>() {
            self.acceptor
                .listen(self.poll.registry(), &mut self.publisher, self.now, literal);
        } else if let Err(error) = self.resolver.start(addr.clone()) {
            self.acceptor
                .failed(&mut self.publisher, self.now, addr, error);
        }
        self.stats.force();
    }

    pub(super) fn listen_resolved(&mut self, resolved: super::resolve::Resolved) {
        match resolved.result {
            Ok(addr) => {
                self.acceptor
                    .listen(self.poll.registry(), &mut self.publisher, self.now, addr)
            }
            Err(error) => self
                .acceptor
                .failed(&mut self.publisher, self.now, resolved.addr, error),
        }
        self.stats.force();
    }
}
