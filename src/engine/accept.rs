//! The listening socket: accepting until `WouldBlock`, backing off when
//! the process runs out of descriptors, and moving to another address.
//!
//! `EMFILE` on accept leaves the connection in the backlog and no new edge
//! will announce it, so retrying at once would spin and waiting for an
//! event would stall. Accepting pauses on a growing timer instead, and
//! resumes early when a client closes (a descriptor came free).

use super::listener::{self, ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN};
use super::publish::Publisher;
use crate::protocol::{Event, EventKind, ListenState, Micros};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const LISTENER: Token = Token(0);

pub struct Acceptor {
    listener: Option<TcpListener>,
    pub state: ListenState,
    /// Set while accepting is suspended after running out of descriptors.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Accepting is suspended (reported once when it starts and once when
    /// it ends, however many retries come between).
    paused: bool,
}

impl Acceptor {
    pub fn new() -> Self {
        Acceptor {
            listener: None,
            state: ListenState::Stopped,
            retry_at: None,
            backoff: ACCEPT_BACKOFF_MIN,
            paused: false,
        }
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Whether accepting should be tried now (readiness or a due retry).
    pub fn may_accept(&mut self, clock: Instant) -> bool {
        match self.retry_at {
            Some(at) if clock >= at => {
                self.retry_at = None;
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// A descriptor came free: retry a paused accept at once.
    pub fn descriptor_freed(&mut self) {
        if self.retry_at.is_some() {
            self.retry_at = Some(Instant::now());
        }
    }

    /// Accept one waiting client, if any. `open` is the number of clients,
    /// for the out-of-descriptors message.
    pub fn accept_one(
        &mut self,
        publisher: &mut Publisher,
        now: Micros,
        open: usize,
    ) -> Option<(TcpStream, SocketAddr)> {
        loop {
            let listener = self.listener.as_ref()?;
            if self.retry_at.is_some() {
                return None;
            }
            match listener.accept() {
                Ok(accepted) => {
                    if std::mem::take(&mut self.paused) {
                        self.backoff = ACCEPT_BACKOFF_MIN;
                        emit(publisher, now, EventKind::AcceptResumed);
                    }
                    return Some(accepted);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if listener::is_resource_exhaustion(&e) => {
                    // Report the first failure of a streak, then back off
                    // quietly with growing waits until descriptors free up.
                    if !self.paused {
                        self.paused = true;
                        let error = format!(
                            "{e}; {open} clients are connected. Waiting connections stay queued \
                             and are accepted once descriptors free up (raise `ulimit -n`)"
                        );
                        emit(
                            publisher,
                            now,
                            EventKind::AcceptError {
                                error,
                                paused: true,
                            },
                        );
                        log::warn!("accept: {e}; backing off");
                    }
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    return None;
                }
                Err(e) => {
                    // E.g. ECONNABORTED: that one client is gone, others wait.
                    let error = e.to_string();
                    emit(
                        publisher,
                        now,
                        EventKind::AcceptError {
                            error,
                            paused: false,
                        },
                    );
                }
            }
        }
    }

    /// Listen on `addr`. The current listener stays until the new one is
    /// bound, so a failed move leaves the server where it was.
    pub fn listen(
        &mut self,
        registry: &Registry,
        publisher: &mut Publisher,
        now: Micros,
        addr: SocketAddr,
    ) {
        if let Some(l) = &self.listener
            && l.local_addr().is_ok_and(|current| current == addr)
        {
            emit(publisher, now, EventKind::Listening { addr });
            return;
        }
        let mut bound = listener::bind_addr(addr);
        if bound
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::AddrInUse)
            && self.holds_port(addr.port())
        {
            // Our own listener holds the port (e.g. 127.0.0.1:P → 0.0.0.0:P):
            // let it go, and take it back if the new bind still fails.
            let old = self.listener.as_ref().and_then(|l| l.local_addr().ok());
            self.release(registry);
            bound = listener::bind_addr(addr);
            if bound.is_err()
                && let Some(old) = old
                && let Ok(l) = listener::bind_addr(old)
            {
                let _ = self.install(registry, publisher, now, l);
            }
        }
        let result = bound
            .map_err(|e| listener::describe_bind_error(&addr, &e))
            .and_then(|l| {
                self.release(registry);
                self.install(registry, publisher, now, l)
                    .map_err(|e| format!("cannot watch the listener on {addr}: {e}"))
            });
        if let Err(error) = result {
            self.failed(publisher, now, addr.to_string(), error);
        }
    }

    /// Report a failed listen; a listener that still runs keeps running.
    pub fn failed(&mut self, publisher: &mut Publisher, now: Micros, addr: String, error: String) {
        emit(
            publisher,
            now,
            EventKind::ListenFailed {
                addr: addr.clone(),
                error: error.clone(),
            },
        );
        if self.listener.is_none() {
            self.state = ListenState::Failed { addr, error };
        }
    }

    pub fn install(
        &mut self,
        registry: &Registry,
        publisher: &mut Publisher,
        now: Micros,
        mut l: TcpListener,
    ) -> io::Result<()> {
        registry.register(&mut l, LISTENER, Interest::READABLE)?;
        let addr = l.local_addr()?;
        self.listener = Some(l);
        self.state = ListenState::Listening(addr);
        emit(publisher, now, EventKind::Listening { addr });
        Ok(())
    }

    /// Stop listening (reported only if there was a listener).
    pub fn stop(&mut self, registry: &Registry, publisher: &mut Publisher, now: Micros) {
        if self.release(registry) {
            emit(publisher, now, EventKind::ListenStopped);
        }
        self.state = ListenState::Stopped;
    }

    fn holds_port(&self, port: u16) -> bool {
        self.listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .is_some_and(|a| a.port() == port)
    }

    fn release(&mut self, registry: &Registry) -> bool {
        self.retry_at = None;
        self.backoff = ACCEPT_BACKOFF_MIN;
        self.paused = false;
        match self.listener.take() {
            Some(mut l) => {
                let _ = registry.deregister(&mut l);
                true
            }
            None => false,
        }
    }
}

fn emit(publisher: &mut Publisher, now: Micros, kind: EventKind) {
    publisher.event(Event {
        at: now,
        conn: None,
        kind,
    });
}
