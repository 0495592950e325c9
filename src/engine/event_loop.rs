//! The single-threaded, readiness-driven loop: the seed's `select()` server
//! done with edge-triggered epoll (via mio), observable at every step.
//!
//! The loop owns the slab of connections and is the only code that removes
//! one: every I/O step (`conn_io`) returns an [`Outcome`], which the loop
//! applies in [`EventLoop::apply_outcome`]. Commands and timers name a
//! connection by id and slab key, and a step runs only while that key still
//! holds that id ([`EventLoop::with_conn_id`]), so a connection closed by an
//! earlier step is simply not found.
//!
//! Around that: accepting (`accept`), commands (`commands`), deadlines
//! (`timers`), stats (`stats`) and hand-over to the consumer (`publish`).

use super::EngineConfig;
use super::accept::{Acceptor, LISTENER};
use super::conn_io::{Close, Io, Outcome, Totals};
use super::connection::Connection;
use super::publish::{CountersOut, Publisher};
use super::resolve::Resolver;
use super::stats::StatsTicker;
use super::tcp_sample::TcpSampler;
use super::timers::{Due, Timer, Timers};
use crate::faults::{AcceptFault, Faults};
use crate::protocol::*;
use crate::scenario::Scenario;
use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const WAKER: Token = Token(1);
/// Slab key `k` is registered as `Token(k + FIRST_CONN)`.
const FIRST_CONN: usize = 2;

const READ_BUF: usize = 64 * 1024;
/// Per-client counters are latest-value data: sending them ten times a
/// second keeps tables live while a busy client's counters are built and
/// folded once per interval rather than once per batch.
const COUNTERS_INTERVAL: Duration = Duration::from_millis(100);

pub struct EventLoop {
    pub(super) poll: Poll,
    commands: Receiver<Command>,
    stop: Arc<AtomicBool>,
    pub(super) publisher: Publisher,
    pub(super) config: EngineConfig,
    pub(super) mode: Mode,
    pub(super) acceptor: Acceptor,
    pub(super) resolver: Resolver,

    pub(super) conns: Slab<Connection>,
    next_id: u64,
    /// Slab keys whose counters changed since they were last sent. A key
    /// may be stale (closed, or reused); `Connection::listed` sorts it out.
    dirty: Vec<usize>,
    counters_sent_at: Instant,
    pub(super) timers: Timers,
    /// Clients that used up their read budget and still have input: they
    /// are read again after the next (zero-timeout) poll.
    read_again: Vec<(usize, ConnId)>,

    start: Instant,
    pub(super) started_unix_ms: u64,
    /// The last recording, once it ended, for the stats.
    pub(super) last_recording: Option<crate::protocol::RecordingStatus>,
    /// The current poll iteration's timestamp, shared by all its events.
    pub(super) now: Micros,
    read_buf: Box<[u8]>,
    /// Where writes under faults gather their bytes.
    scratch: Vec<u8>,
    /// Faults new connections get (already sanitized).
    pub(super) new_faults: Faults,
    pub(super) accept_fault: Option<AcceptFault>,
    /// The scenario every connection runs, if any.
    pub(super) scenario: Option<Arc<Scenario>>,
    /// How often each of its rules fired, over all connections.
    pub(super) rule_tallies: Vec<RuleTally>,
    /// Where the listener was when `accept=refuse` closed it.
    pub(super) refused_addr: Option<std::net::SocketAddr>,
    totals: Totals,
    accepted_total: u64,
    polls_total: u64,
    pub(super) stats: StatsTicker,
    /// Samples `TCP_INFO` of watched connections often, the rest seldom.
    pub(super) sampler: TcpSampler,
}

impl EventLoop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        poll: Poll,
        waker: Arc<Waker>,
        commands: Receiver<Command>,
        stop: Arc<AtomicBool>,
        publisher: Publisher,
        config: EngineConfig,
        listener: Option<TcpListener>,
        listen_state: ListenState,
    ) -> io::Result<Self> {
        let start = Instant::now();
        let new_faults = config.faults.clone().sanitized();
        let mut this = EventLoop {
            poll,
            commands,
            stop,
            publisher,
            mode: config.mode,
            config,
            acceptor: Acceptor::new(),
            resolver: Resolver::new(waker),
            conns: Slab::new(),
            next_id: 1,
            dirty: Vec::new(),
            counters_sent_at: start,
            timers: Timers::default(),
            read_again: Vec::new(),
            start,
            started_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            last_recording: None,
            now: 0,
            read_buf: vec![0; READ_BUF].into_boxed_slice(),
            scratch: Vec::new(),
            new_faults,
            accept_fault: None,
            scenario: None,
            rule_tallies: Vec::new(),
            refused_addr: None,
            totals: Totals::default(),
            accepted_total: 0,
            polls_total: 0,
            stats: StatsTicker::new(start),
            sampler: TcpSampler::new(start),
        };
        if let Some(config) = this.config.record.take() {
            // Before any client: the recording has the whole session, and
            // a path it cannot write stops the start, as a bad flag would.
            let path = config.path.display().to_string();
            let tap = super::record_tap::RecordTap::start(config, this.started_unix_ms, 0)
                .map_err(io::Error::other)?;
            this.publisher.tap = Some(tap);
            this.emit(None, EventKind::RecordingStarted { path });
        }
        match listener {
            Some(l) => this
                .acceptor
                .install(this.poll.registry(), &mut this.publisher, 0, l)?,
            None => {
                if let ListenState::Failed { addr, error } = listen_state {
                    this.acceptor.failed(&mut this.publisher, 0, addr, error);
                }
            }
        }
        if let Some(fault) = this.config.accept_fault {
            this.set_accept_fault(Some(fault));
        }
        if let Some(scenario) = this.config.scenario.clone() {
            this.run_scenario(Some(scenario), false);
        }
        Ok(this)
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut ready: Vec<(Token, Readiness)> = Vec::with_capacity(1024);
        loop {
            let timeout = self.next_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("poll failed, engine stops: {e}");
                break;
            }
            let clock = Instant::now();
            self.now = clock.duration_since(self.start).as_micros() as Micros;
            self.polls_total += 1;

            // Copied out so handlers may borrow `self` mutably.
            ready.clear();
            ready.extend(events.iter().map(|e| (e.token(), readiness_of(e))));
            for &(token, readiness) in &ready {
                match token {
                    WAKER => {}
                    LISTENER => {
                        self.emit(None, EventKind::Readiness(readiness));
                        self.accept_all(clock);
                    }
                    Token(t) => {
                        let key = t - FIRST_CONN;
                        // A stale token of a client closed earlier in this
                        // iteration finds nothing.
                        self.with_conn(key, |io, conn| io.ready(conn, readiness));
                    }
                }
            }
            // Drained every iteration, not only on the waker's token: it
            // costs one empty try_recv and cannot miss a command.
            while let Ok(cmd) = self.commands.try_recv() {
                self.apply(cmd);
            }
            if let Some(resolved) = self.resolver.take_latest() {
                self.listen_resolved(resolved);
            }
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            self.read_again();
            self.on_timers(clock);
            self.publish(clock, false);
        }
        self.close_all();
    }

    fn next_timeout(&self) -> Option<Duration> {
        if !self.read_again.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let counters_due = self.counters_due(now);
        // Counters not yet due wake the loop when they are; due ones go
        // with the publisher's next flush.
        let counters_at = (!counters_due && !self.dirty.is_empty())
            .then(|| self.counters_sent_at + COUNTERS_INTERVAL);
        let deadline = [
            self.acceptor.retry_at(),
            self.publisher.deadline(counters_due),
            counters_at,
            self.timers
                .next()
                .map(|at| self.start + Duration::from_micros(at)),
            self.sampler.deadline(self.conns.len()),
        ]
        .into_iter()
        .flatten()
        .fold(self.stats.next_tick, Instant::min);
        Some(deadline.saturating_duration_since(now))
    }

    // ---- one connection ----------------------------------------------------

    /// Run one I/O step on the connection at `key`, then apply its outcome.
    pub(super) fn with_conn(
        &mut self,
        key: usize,
        step: impl FnOnce(&mut Io, &mut Connection) -> Outcome,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut io = Io {
            now: self.now,
            mode: self.mode,
            config: &self.config,
            read_buf: &mut self.read_buf,
            publisher: &mut self.publisher,
            totals: &mut self.totals,
            reads: 0,
            budget_spent: false,
            scratch: &mut self.scratch,
            write_blocked: None,
            closing_began: None,
            scenario: self.scenario.as_ref(),
            rule_tallies: &mut self.rule_tallies,
        };
        let outcome = step(&mut io, conn);
        self.apply_outcome(key, outcome);
    }

    /// [`EventLoop::with_conn`] if `key` still holds connection `id`.
    pub(super) fn with_conn_id(
        &mut self,
        id: ConnId,
        key: usize,
        step: impl FnOnce(&mut Io, &mut Connection) -> Outcome,
    ) {
        if self.conns.get(key).is_some_and(|c| c.id == id) {
            self.with_conn(key, step);
        }
    }

    /// The one place a connection's fate is carried out.
    fn apply_outcome(&mut self, key: usize, outcome: Outcome) {
        match outcome {
            Outcome::Open {
                want_writable,
                read_again,
                wake_at,
                script_at,
                replay_at,
                closing_deadline,
            } => {
                let conn = &mut self.conns[key];
                if let Some(at) = closing_deadline {
                    self.timers.arm(at, conn.id, key, Timer::KickDeadline);
                }
                if let Some(at) = wake_at {
                    self.timers.arm(at, conn.id, key, Timer::Fault);
                }
                if let Some(at) = script_at {
                    self.timers.arm(at, conn.id, key, Timer::Script);
                }
                if let Some(at) = replay_at {
                    self.timers.arm(at, conn.id, key, Timer::Replay);
                }
                if conn.dirty && !conn.listed && !self.publisher.resync_owed() {
                    conn.listed = true;
                    self.dirty.push(key);
                }
                if read_again && !self.read_again.contains(&(key, conn.id)) {
                    self.read_again.push((key, conn.id));
                }
                if want_writable != conn.writable_interest {
                    let interest = if want_writable {
                        Interest::READABLE | Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    let token = Token(key + FIRST_CONN);
                    match self
                        .poll
                        .registry()
                        .reregister(&mut conn.stream, token, interest)
                    {
                        Ok(()) => conn.writable_interest = want_writable,
                        Err(e) => self.remove(
                            key,
                            Close {
                                reason: CloseReason::Error(e.to_string()),
                                reset: false,
                            },
                        ),
                    }
                }
            }
            Outcome::Close(close) => self.remove(key, close),
        }
    }

    fn remove(&mut self, key: usize, close: Close) {
        let mut conn = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if close.reset {
            // SO_LINGER 0 turns close() into an RST.
            let _ = socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
        }
        conn.last_activity = self.now;
        let mut last = conn.counters();
        last.state = ConnState::Closed(close.reason.clone());
        self.emit(
            Some(conn.id),
            EventKind::Closed {
                reason: close.reason,
            },
        );
        self.publisher.final_counters(last);
        drop(conn);
        self.acceptor.descriptor_freed();
    }

    /// Give clients that hit their read budget another turn.
    fn read_again(&mut self) {
        for (key, id) in std::mem::take(&mut self.read_again) {
            if self.conns.get(key).is_some_and(|c| c.id == id) {
                self.with_conn(key, |io, conn| io.drive(conn, true));
            }
        }
    }

    // ---- accepting ---------------------------------------------------------

    pub(super) fn accept_all(&mut self, clock: Instant) {
        // Under `accept=stall` clients wait in the backlog; lifting the
        // fault calls this again, since their edge is spent.
        if self.accept_fault == Some(AcceptFault::Stall) || !self.acceptor.may_accept(clock) {
            return;
        }
        let was_paused = self.acceptor.paused();
        while let Some((stream, peer)) =
            self.acceptor
                .accept_one(&mut self.publisher, self.now, self.conns.len())
        {
            self.add_connection(stream, peer);
        }
        if was_paused != self.acceptor.paused() {
            self.stats.force();
        }
    }

    fn add_connection(&mut self, mut stream: mio::net::TcpStream, peer: std::net::SocketAddr) {
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, Token(key + FIRST_CONN), Interest::READABLE)
        {
            self.emit(
                None,
                EventKind::AcceptError {
                    error: format!("cannot watch client {peer}: {e}"),
                    paused: false,
                },
            );
            return;
        }
        let id = ConnId(self.next_id);
        self.next_id += 1;
        let mut conn = Connection::new(id, stream, peer, self.now);
        conn.dirty = true;
        entry.insert(conn);
        self.accepted_total += 1;
        self.emit(Some(id), EventKind::Accepted { peer });
        self.apply_new_faults(key);
        // Bytes that arrived before registration are reported by epoll on
        // registration, so no read is needed here.
        if let Some(script) = self.config.replay.clone() {
            self.with_conn(key, |io, conn| io.replay_connected(conn, &script));
        } else if self.scenario.is_some() {
            self.with_conn(key, |io, conn| io.script_connected(conn));
        } else {
            self.apply_outcome(
                key,
                Outcome::Open {
                    want_writable: false,
                    read_again: false,
                    wake_at: None,
                    script_at: None,
                    replay_at: None,
                    closing_deadline: None,
                },
            );
        }
    }

    // ---- deadlines ---------------------------------------------------------

    fn on_timers(&mut self, clock: Instant) {
        if self.acceptor.retry_at().is_some_and(|t| clock >= t) {
            self.accept_all(clock);
        }
        while let Some(bucket) = self.timers.take_due(self.now) {
            for &Due {
                conn: id,
                key,
                timer,
            } in &bucket
            {
                match timer {
                    Timer::Fault => self.with_conn_id(id, key, |io, conn| io.fault_due(conn)),
                    Timer::Script => self.with_conn_id(id, key, |io, conn| io.script_due(conn)),
                    Timer::Replay => self.with_conn_id(id, key, |io, conn| io.replay_due(conn)),
                    Timer::KickDeadline => {
                        let after_ms = self.config.kick_timeout.as_millis() as u64;
                        // A stale entry (the client closed) finds nothing.
                        self.with_conn_id(id, key, |_, conn| {
                            Outcome::Close(super::conn_io::close_timed_out(conn, after_ms))
                        });
                    }
                }
            }
            self.timers.recycle(bucket);
        }
        self.sample_tcp(clock);
        if clock >= self.stats.next_tick {
            self.tick(clock);
        }
    }

    /// Have the counters of the connection at `key` go out with the next
    /// batch.
    pub(super) fn mark_dirty(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.dirty = true;
        // While a resync is owed, it carries every connection anyway.
        if !conn.listed && !self.publisher.resync_owed() {
            conn.listed = true;
            self.dirty.push(key);
        }
    }

    // ---- reporting ---------------------------------------------------------

    pub(super) fn emit(&mut self, conn: Option<ConnId>, kind: EventKind) {
        self.publisher.event(Event {
            at: self.now,
            conn,
            kind,
        });
    }

    fn tick(&mut self, clock: Instant) {
        let tick = self
            .stats
            .sample(clock, self.publisher.events_total(), self.polls_total);
        if tick.trim {
            super::sys::release_free_memory();
        }
        let stats = EngineStats {
            at: self.now,
            started_unix_ms: self.started_unix_ms,
            listen: self.acceptor.state.clone(),
            mode: self.mode,
            connections: self.conns.len() as u32,
            accepted_total: self.accepted_total,
            rx_bytes: self.totals.rx,
            tx_bytes: self.totals.tx,
            queued_bytes: self.conns.iter().map(|(_, c)| c.queue.len()).sum(),
            events_total: self.publisher.events_total(),
            events_per_sec: tick.events_per_sec,
            polls_per_sec: tick.polls_per_sec,
            dropped_events: self.publisher.dropped_events(),
            accept_paused: self.acceptor.paused(),
            queue_limit: self.config.queue_limit as u64,
            new_faults: self.new_faults.clone(),
            accept_fault: self.accept_fault,
            scenario: self.scenario_status(),
            recording: self.recording_status(),
            tcp_info_unavailable: super::sys::TCP_INFO_UNAVAILABLE.map(str::to_owned),
        };
        if let Some(heartbeat) = self.stats.should_send(clock, &stats) {
            self.publisher.stats(stats, heartbeat);
        }
    }

    /// Whether changed counters are due to go out with the next flush.
    fn counters_due(&self, clock: Instant) -> bool {
        !self.dirty.is_empty() && clock >= self.counters_sent_at + COUNTERS_INTERVAL
    }

    pub(super) fn publish(&mut self, clock: Instant, force: bool) {
        let send_counters = !self.dirty.is_empty() && (force || self.counters_due(clock));
        if !(force || self.publisher.due(clock, send_counters)) {
            self.publisher.poll_notify(clock);
            return;
        }
        let (conns, dirty) = (&mut self.conns, &mut self.dirty);
        let mut counters_built = false;
        self.publisher.flush(clock, |resync| {
            if resync {
                // Everything open, whatever changed: the consumer may have
                // missed any of it.
                counters_built = true;
                dirty.clear();
                let mut out = CountersOut {
                    counters: Vec::with_capacity(conns.len()),
                    open_conns: Some(Vec::with_capacity(conns.len())),
                };
                for (_, c) in conns.iter_mut() {
                    (c.dirty, c.listed) = (false, false);
                    out.counters.push(c.counters());
                    out.open_conns.get_or_insert_default().push(c.id);
                }
                return out;
            }
            if !send_counters {
                return CountersOut::default();
            }
            counters_built = true;
            let mut out = CountersOut::default();
            for key in dirty.drain(..) {
                if let Some(c) = conns.get_mut(key)
                    && std::mem::take(&mut c.listed)
                    && std::mem::take(&mut c.dirty)
                {
                    out.counters.push(c.counters());
                }
            }
            if dirty.capacity() > 4096 {
                // After a burst (10,000 clients connecting), do not keep a
                // slot per client for good.
                dirty.shrink_to(256);
            }
            out
        });
        if counters_built {
            self.counters_sent_at = clock;
        }
        self.publisher.poll_notify(clock);
    }

    fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.remove(
                key,
                Close {
                    reason: CloseReason::EngineStopped,
                    reset: false,
                },
            );
        }
        self.acceptor
            .stop(self.poll.registry(), &mut self.publisher, self.now);
        self.publish(Instant::now(), true);
        self.stop_recording("the engine stopped");
    }
}

fn readiness_of(e: &mio::event::Event) -> Readiness {
    let mut bits = 0;
    if e.is_readable() {
        bits |= Readiness::READABLE;
    }
    if e.is_writable() {
        bits |= Readiness::WRITABLE;
    }
    if e.is_read_closed() {
        bits |= Readiness::READ_CLOSED;
    }
    if e.is_write_closed() {
        bits |= Readiness::WRITE_CLOSED;
    }
    if e.is_error() {
        bits |= Readiness::ERROR;
    }
    Readiness(bits)
}
