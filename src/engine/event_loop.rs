//! The single-threaded, readiness-driven loop: the seed's `select()` server
//! done with edge-triggered epoll (via mio), observable at every step.
//!
//! Edge-triggered readiness only announces *changes*. Hence the rules this
//! loop keeps everywhere:
//! - accept until `WouldBlock`, read until `WouldBlock`, write until the
//!   queue is empty or `WouldBlock`; stopping early means no further event;
//! - when reading was stopped on purpose (backpressure, user pause) the loop
//!   resumes it itself, since the readable edge was already consumed;
//! - WRITABLE interest is registered only while the queue holds bytes, so
//!   an idle client produces no events;
//! - every event may be spurious, so handlers tolerate `WouldBlock`.

use super::EngineConfig;
use super::connection::{Connection, Phase};
use super::listener::{self, ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN};
use super::publish::Publisher;
use crate::protocol::*;
use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const LISTENER: Token = Token(0);
pub const WAKER: Token = Token(1);
/// Slab key `k` is registered as `Token(k + FIRST_CONN)`.
const FIRST_CONN: usize = 2;

const READ_BUF: usize = 64 * 1024;
/// Reads one client gets per turn before the others get theirs. A client
/// that sends as fast as it reads never makes the socket block, so without
/// a budget it would hold the loop; over budget it waits in `read_again`.
const READS_PER_TURN: usize = 16;
const TICK: Duration = Duration::from_millis(250);
/// Stats are re-sent this often even when nothing changed, as a heartbeat.
const STATS_HEARTBEAT: Duration = Duration::from_secs(1);
/// Per-client counters are latest-value data: sending them ten times a
/// second keeps tables live while a busy client's counters are built and
/// folded once per interval rather than once per batch.
const COUNTERS_INTERVAL: Duration = Duration::from_millis(100);
/// A burst of this many events, once it has calmed down, is worth handing
/// its buffers' memory back to the OS.
const TRIM_AFTER_EVENTS: u64 = 10_000;
/// "Calmed down": fewer events per second than this.
const QUIET_EVENTS_PER_SEC: f64 = 1_000.0;
/// How long a gracefully kicked client gets to answer our FIN with its own.
const GRACEFUL_LINGER: Duration = Duration::from_secs(2);

/// One sample per tick, for per-second rates over a sliding window.
#[derive(Clone, Copy)]
struct RateSample {
    at: Instant,
    events: u64,
    polls: u64,
}

pub struct EventLoop {
    poll: Poll,
    commands: Receiver<Command>,
    stop: Arc<AtomicBool>,
    publisher: Publisher,
    config: EngineConfig,
    mode: Mode,

    listener: Option<TcpListener>,
    listen_state: ListenState,
    /// Set while accepting is suspended after running out of descriptors.
    accept_retry_at: Option<Instant>,
    accept_backoff: Duration,

    conns: Slab<Connection>,
    ids: HashMap<ConnId, usize>,
    next_id: u64,
    /// Slab keys whose counters changed since they were last sent.
    dirty: Vec<usize>,
    counters_sent_at: Instant,
    /// Slab keys of gracefully kicked clients waiting for the peer's FIN.
    /// Gracefully kicked clients waiting for the peer's FIN, with the time
    /// they are closed anyway.
    lingering: Vec<(usize, Instant)>,
    /// Clients that used up their read budget and still have input: they
    /// are read again after the next (zero-timeout) poll.
    read_again: Vec<(usize, ConnId)>,

    start: Instant,
    started_unix_ms: u64,
    /// The current poll iteration's timestamp, shared by all its events.
    now: Micros,
    read_buf: Box<[u8]>,

    accepted_total: u64,
    rx_total: u64,
    tx_total: u64,
    events_total: u64,
    polls_total: u64,
    rate_window: Vec<RateSample>,
    next_tick: Instant,
    last_stats_sent: Option<(Instant, EngineStats)>,
    /// `events_total` when memory was last handed back.
    events_at_trim: u64,
}

impl EventLoop {
    pub fn new(
        poll: Poll,
        commands: Receiver<Command>,
        stop: Arc<AtomicBool>,
        publisher: Publisher,
        config: EngineConfig,
        listener: Option<TcpListener>,
        listen_state: ListenState,
    ) -> io::Result<Self> {
        let start = Instant::now();
        let mut this = EventLoop {
            poll,
            commands,
            stop,
            publisher,
            mode: config.mode,
            config,
            listener: None,
            listen_state: ListenState::Stopped,
            accept_retry_at: None,
            accept_backoff: ACCEPT_BACKOFF_MIN,
            conns: Slab::new(),
            ids: HashMap::new(),
            next_id: 1,
            dirty: Vec::new(),
            counters_sent_at: start,
            lingering: Vec::new(),
            read_again: Vec::new(),
            start,
            started_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            now: 0,
            read_buf: vec![0; READ_BUF].into_boxed_slice(),
            accepted_total: 0,
            rx_total: 0,
            tx_total: 0,
            events_total: 0,
            polls_total: 0,
            rate_window: Vec::with_capacity(8),
            next_tick: start,
            last_stats_sent: None,
            events_at_trim: 0,
        };
        match listener {
            Some(l) => this.install_listener(l)?,
            None => {
                if let ListenState::Failed { addr, error } = &listen_state {
                    let kind = EventKind::ListenFailed {
                        addr: addr.clone(),
                        error: error.clone(),
                    };
                    this.emit(None, kind);
                }
                this.listen_state = listen_state;
            }
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
                        if self.accept_retry_at.is_none() {
                            self.accept_all();
                        }
                    }
                    Token(t) => self.on_conn_ready(t - FIRST_CONN, readiness),
                }
            }
            // Drained every iteration, not only on the waker's token: it
            // costs one empty try_recv and cannot miss a command.
            while let Ok(cmd) = self.commands.try_recv() {
                self.apply(cmd);
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
        let mut deadline = self.next_tick;
        let now = Instant::now();
        let counters_due = self.counters_due(now);
        // Counters not yet due wake the loop when they are; due ones go
        // with the publisher's next flush.
        let counters_at = (!counters_due && !self.dirty.is_empty())
            .then(|| self.counters_sent_at + COUNTERS_INTERVAL);
        let candidates = [
            self.accept_retry_at,
            self.publisher.deadline(counters_due),
            counters_at,
        ];
        for d in candidates.into_iter().flatten() {
            deadline = deadline.min(d);
        }
        for &(_, until) in &self.lingering {
            deadline = deadline.min(until);
        }
        Some(deadline.saturating_duration_since(now))
    }

    // ---- reporting -------------------------------------------------------

    #[inline]
    fn emit(&mut self, conn: Option<ConnId>, kind: EventKind) {
        self.events_total += 1;
        self.publisher.event(Event {
            at: self.now,
            conn,
            kind,
        });
    }

    #[inline]
    fn touch(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        conn.last_activity = self.now;
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(key);
        }
    }

    /// Whether changed counters are due to go out with the next flush.
    fn counters_due(&self, clock: Instant) -> bool {
        !self.dirty.is_empty() && clock >= self.counters_sent_at + COUNTERS_INTERVAL
    }

    fn publish(&mut self, clock: Instant, force: bool) {
        let send_counters = !self.dirty.is_empty() && (force || self.counters_due(clock));
        if !(force || self.publisher.due(clock, send_counters)) {
            self.publisher.poll_notify(clock);
            return;
        }
        let live: Vec<ConnCounters> = if send_counters {
            self.dirty
                .iter()
                .filter_map(|&k| self.conns.get(k))
                .filter(|c| c.dirty)
                .map(Connection::counters)
                .collect()
        } else {
            Vec::new()
        };
        if self.publisher.flush(clock, live) && send_counters {
            self.counters_sent_at = clock;
            for key in self.dirty.drain(..) {
                if let Some(c) = self.conns.get_mut(key) {
                    c.dirty = false;
                }
            }
        }
        self.publisher.poll_notify(clock);
    }

    fn on_timers(&mut self, clock: Instant) {
        if self.accept_retry_at.is_some_and(|t| clock >= t) {
            self.accept_retry_at = None;
            self.accept_all();
        }
        if !self.lingering.is_empty() {
            let expired: Vec<usize> = self
                .lingering
                .iter()
                .filter(|&&(_, until)| clock >= until)
                .map(|&(key, _)| key)
                .collect();
            for key in expired {
                self.close(key, CloseReason::Kicked(KickMode::Graceful), false);
            }
        }
        if clock >= self.next_tick {
            self.next_tick = clock + TICK;
            self.tick(clock);
        }
    }

    fn tick(&mut self, clock: Instant) {
        self.rate_window.push(RateSample {
            at: clock,
            events: self.events_total,
            polls: self.polls_total,
        });
        // Keep about one second of samples.
        if self.rate_window.len() > 5 {
            self.rate_window.remove(0);
        }
        let first = self.rate_window[0];
        let span = clock.duration_since(first.at).as_secs_f64();
        let rate = |now: u64, then: u64| {
            if span > 0.0 {
                (now - then) as f64 / span
            } else {
                0.0
            }
        };
        let stats = EngineStats {
            at: self.now,
            started_unix_ms: self.started_unix_ms,
            listen: self.listen_state.clone(),
            mode: self.mode,
            connections: self.conns.len() as u32,
            accepted_total: self.accepted_total,
            rx_bytes: self.rx_total,
            tx_bytes: self.tx_total,
            queued_bytes: self.conns.iter().map(|(_, c)| c.queue.len()).sum(),
            events_total: self.events_total,
            events_per_sec: rate(self.events_total, first.events),
            polls_per_sec: rate(self.polls_total, first.polls),
            dropped_events: self.publisher.dropped_events(),
            accept_paused: self.accept_retry_at.is_some(),
            queue_limit: self.config.queue_limit as u64,
        };
        // Quiet over the last tick alone: the one-second rate would still
        // remember the burst.
        let last_tick_events = match self.rate_window.as_slice() {
            [.., prev, now] => now.events - prev.events,
            _ => 0,
        };
        if self.events_total - self.events_at_trim >= TRIM_AFTER_EVENTS
            && (last_tick_events as f64) < QUIET_EVENTS_PER_SEC * TICK.as_secs_f64()
        {
            self.events_at_trim = self.events_total;
            super::memory::release_free_memory();
        }
        let (changed, heartbeat_due) = match &self.last_stats_sent {
            None => (true, false),
            Some((sent_at, last)) => (
                !same_apart_from_time(last, &stats),
                clock.duration_since(*sent_at) >= STATS_HEARTBEAT,
            ),
        };
        if changed || heartbeat_due {
            self.last_stats_sent = Some((clock, stats.clone()));
            self.publisher.stats(stats, !changed);
        }
    }

    // ---- accepting -------------------------------------------------------

    fn install_listener(&mut self, mut l: TcpListener) -> io::Result<()> {
        self.poll
            .registry()
            .register(&mut l, LISTENER, Interest::READABLE)?;
        let addr = l.local_addr()?;
        self.listener = Some(l);
        self.listen_state = ListenState::Listening(addr);
        self.emit(None, EventKind::Listening { addr });
        Ok(())
    }

    fn stop_listening(&mut self) {
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
            self.emit(None, EventKind::ListenStopped);
        }
        self.accept_retry_at = None;
        self.accept_backoff = ACCEPT_BACKOFF_MIN;
        self.listen_state = ListenState::Stopped;
    }

    fn listen(&mut self, addr: &str) {
        // Rebinding the same address needs the old socket closed first.
        self.stop_listening();
        let result = listener::bind(addr).and_then(|l| {
            self.install_listener(l)
                .map_err(|e| format!("cannot watch the listener on {addr}: {e}"))
        });
        if let Err(error) = result {
            self.listen_state = ListenState::Failed {
                addr: addr.to_owned(),
                error: error.clone(),
            };
            self.emit(
                None,
                EventKind::ListenFailed {
                    addr: addr.to_owned(),
                    error,
                },
            );
        }
        self.force_stats();
    }

    fn force_stats(&mut self) {
        self.last_stats_sent = None;
        self.next_tick = Instant::now();
    }

    fn accept_all(&mut self) {
        let was_paused = self.accept_backoff > ACCEPT_BACKOFF_MIN;
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    if was_paused {
                        self.accept_backoff = ACCEPT_BACKOFF_MIN;
                        self.emit(None, EventKind::AcceptResumed);
                        self.force_stats();
                    }
                    self.add_connection(stream, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if listener::is_resource_exhaustion(&e) => {
                    // Report the first failure of a streak, then back off
                    // quietly with growing waits until descriptors free up.
                    if !was_paused {
                        let error = format!(
                            "{e}; {} clients are connected. Waiting connections stay queued \
                             and are accepted once descriptors free up (raise `ulimit -n`)",
                            self.conns.len()
                        );
                        self.emit(
                            None,
                            EventKind::AcceptError {
                                error,
                                paused: true,
                            },
                        );
                        log::warn!("accept: {e}; backing off");
                    }
                    self.accept_retry_at = Some(Instant::now() + self.accept_backoff);
                    self.accept_backoff = (self.accept_backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    self.force_stats();
                    return;
                }
                Err(e) => {
                    // E.g. ECONNABORTED: that one client is gone, others wait.
                    self.emit(
                        None,
                        EventKind::AcceptError {
                            error: e.to_string(),
                            paused: false,
                        },
                    );
                }
            }
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
        entry.insert(Connection::new(id, stream, peer, self.now));
        self.ids.insert(id, key);
        self.accepted_total += 1;
        self.emit(Some(id), EventKind::Accepted { peer });
        self.touch(key);
        // Bytes that arrived before registration are reported by epoll on
        // registration, so no read is needed here.
    }

    // ---- one client ------------------------------------------------------

    fn on_conn_ready(&mut self, key: usize, r: Readiness) {
        // A stale token of a client closed earlier in this iteration.
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let id = conn.id;
        let counts = &mut conn.events;
        let bump = |count: &mut u32, flag| *count = count.saturating_add(r.has(flag) as u32);
        bump(&mut counts.readable, Readiness::READABLE);
        bump(&mut counts.writable, Readiness::WRITABLE);
        bump(&mut counts.read_closed, Readiness::READ_CLOSED);
        bump(&mut counts.write_closed, Readiness::WRITE_CLOSED);
        bump(&mut counts.error, Readiness::ERROR);
        self.emit(Some(id), EventKind::Readiness(r));
        self.touch(key);

        if r.has(Readiness::ERROR) {
            let conn = &self.conns[key];
            if let Ok(Some(e)) | Err(e) = conn.stream.take_error() {
                self.close(key, close_reason(&e), false);
                return;
            }
        }
        let readable = r.has(Readiness::READABLE) || r.has(Readiness::READ_CLOSED);
        self.drive(key, readable);
    }

    /// Move bytes for one client as far as the sockets allow, then settle
    /// its lifecycle and interest. Writes go first: they may lift
    /// backpressure, which lets the read loop continue.
    fn drive(&mut self, key: usize, try_read: bool) {
        if !self.flush_queue(key) {
            return;
        }
        if try_read && !self.read_until_blocked(key) {
            return;
        }
        self.settle(key);
    }

    /// Returns false if the connection was closed.
    fn flush_queue(&mut self, key: usize) -> bool {
        let now = self.now;
        let limit = self.config.transcript_limit;
        let conn = &mut self.conns[key];
        if conn.queue.is_empty() {
            return true;
        }
        let transcript = &mut conn.transcript;
        let result = conn.queue.write_to(&mut conn.stream, |chunk| {
            transcript.record(limit, now, Direction::Tx, chunk)
        });
        let id = conn.id;
        match result {
            Ok(flush) => {
                conn.tx_bytes += flush.written;
                self.tx_total += flush.written;
                for n in flush.writes {
                    self.emit(Some(id), EventKind::Wrote { n });
                }
                if flush.would_block {
                    self.emit(Some(id), EventKind::WouldBlock { op: IoOp::Write });
                }
                if flush.written > 0 {
                    self.touch(key);
                }
                let conn = &mut self.conns[key];
                if conn.backpressure && conn.queue.len() <= self.config.low_water as u64 {
                    conn.backpressure = false;
                    self.emit(Some(id), EventKind::Backpressure { on: false });
                    // The readable edge was consumed while paused.
                    return self.read_until_blocked(key);
                }
                true
            }
            Err(e) => {
                self.close(key, close_reason(&e), false);
                false
            }
        }
    }

    /// Read until `WouldBlock`, EOF, or reading is paused. Returns false if
    /// the connection was closed.
    fn read_until_blocked(&mut self, key: usize) -> bool {
        for _ in 0..READS_PER_TURN {
            let conn = &mut self.conns[key];
            if !conn.wants_read() {
                return true;
            }
            let id = conn.id;
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    conn.read_eof = true;
                    if conn.phase == Phase::Open {
                        conn.phase = Phase::HalfClosed;
                    }
                    self.emit(Some(id), EventKind::PeerHalfClosed);
                    self.touch(key);
                    return true;
                }
                Ok(n) => {
                    if !self.on_bytes_read(key, n) {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.emit(Some(id), EventKind::WouldBlock { op: IoOp::Read });
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(key, close_reason(&e), false);
                    return false;
                }
            }
        }
        // Budget spent without WouldBlock: no new edge will come, so the
        // loop must come back to this client by itself.
        let id = self.conns[key].id;
        if !self.read_again.contains(&(key, id)) {
            self.read_again.push((key, id));
        }
        true
    }

    /// Give clients that hit their read budget another turn.
    fn read_again(&mut self) {
        for (key, id) in std::mem::take(&mut self.read_again) {
            if self.conns.get(key).is_some_and(|c| c.id == id) {
                self.drive(key, true);
            }
        }
    }

    /// Handle `n` fresh bytes in `read_buf`. Returns false if closed.
    fn on_bytes_read(&mut self, key: usize, n: usize) -> bool {
        let now = self.now;
        let limit = self.config.transcript_limit;
        let mode = self.mode;
        let conn = &mut self.conns[key];
        let id = conn.id;
        let data = &self.read_buf[..n];
        conn.rx_bytes += n as u64;
        self.rx_total += n as u64;
        if mode != Mode::Discard {
            conn.transcript.record(limit, now, Direction::Rx, data);
        }
        self.events_total += 1;
        self.publisher.event(Event {
            at: now,
            conn: Some(id),
            kind: EventKind::Read { n: n as u32 },
        });
        self.touch(key);
        let conn = &mut self.conns[key];
        let echo = mode == Mode::Echo && conn.phase != Phase::Closing;
        if !echo {
            return true;
        }
        // Fast path: with nothing queued, write straight from the read
        // buffer and queue only what the socket did not take.
        let mut written = 0;
        let mut would_block = false;
        if conn.queue.is_empty() {
            while written < n {
                match conn.stream.write(&self.read_buf[written..n]) {
                    Ok(0) => break,
                    Ok(w) => {
                        written += w;
                        // These are the bytes just recorded as received:
                        // the transcript references them instead of
                        // copying them again.
                        let rx_end = conn.transcript.rx_end() - (n - written) as u64;
                        conn.transcript.record_echo(limit, now, rx_end, w);
                        conn.tx_bytes += w as u64;
                        self.tx_total += w as u64;
                        self.events_total += 1;
                        self.publisher.event(Event {
                            at: now,
                            conn: Some(id),
                            kind: EventKind::Wrote { n: w as u32 },
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        would_block = true;
                        break;
                    }
                    Err(e) => {
                        self.close(key, close_reason(&e), false);
                        return false;
                    }
                }
            }
        }
        if would_block {
            self.emit(Some(id), EventKind::WouldBlock { op: IoOp::Write });
        }
        if written < n {
            let rest = self.read_buf[written..n].to_vec();
            self.enqueue(key, rest, Origin::Echo);
        }
        true
    }

    fn enqueue(&mut self, key: usize, bytes: Vec<u8>, origin: Origin) {
        let now = self.now;
        let limit = self.config.queue_limit as u64;
        let conn = &mut self.conns[key];
        let id = conn.id;
        let n = bytes.len() as u32;
        conn.queue.push(bytes, now, origin);
        let hit_limit = !conn.backpressure && conn.queue.len() >= limit;
        if hit_limit {
            conn.backpressure = true;
        }
        self.emit(Some(id), EventKind::Queued { n, origin });
        if hit_limit {
            self.emit(Some(id), EventKind::Backpressure { on: true });
        }
        self.touch(key);
    }

    /// After moving bytes: finish connections whose conversation is over and
    /// keep WRITABLE interest exactly while the queue holds bytes.
    fn settle(&mut self, key: usize) {
        let mode = self.mode;
        let conn = &mut self.conns[key];
        let flushed = conn.queue.is_empty();
        match conn.phase {
            // In manual mode a half-closed client may still be answered by
            // hand (think HTTP/1.0), so it stays until kicked.
            Phase::HalfClosed if flushed && mode != Mode::Manual => {
                self.close(key, CloseReason::PeerClosed, false);
                return;
            }
            Phase::Closing if flushed && !conn.write_shut => {
                conn.write_shut = true;
                let _ = conn.stream.shutdown(Shutdown::Write);
                if conn.read_eof {
                    self.close(key, CloseReason::Kicked(KickMode::Graceful), false);
                    return;
                }
                // Wait for the peer's FIN: closing with unread input would
                // make the kernel send RST and could destroy what we sent.
                self.lingering.push((key, Instant::now() + GRACEFUL_LINGER));
            }
            Phase::Closing if conn.write_shut && conn.read_eof => {
                self.close(key, CloseReason::Kicked(KickMode::Graceful), false);
                return;
            }
            _ => {}
        }
        let conn = &mut self.conns[key];
        let want_writable = !conn.queue.is_empty();
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
                Err(e) => self.close(key, CloseReason::Error(e.to_string()), false),
            }
        }
    }

    fn close(&mut self, key: usize, reason: CloseReason, reset: bool) {
        let mut conn = self.conns.remove(key);
        self.ids.remove(&conn.id);
        self.lingering.retain(|&(k, _)| k != key);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if reset {
            // SO_LINGER 0 turns close() into an RST.
            let _ = socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
        }
        conn.last_activity = self.now;
        let mut last = conn.counters();
        last.state = ConnState::Closed(reason.clone());
        self.emit(Some(conn.id), EventKind::Closed { reason });
        self.publisher.final_counters(last);
        drop(conn);
        // A descriptor just came free: accept what waits in the backlog.
        if self.accept_retry_at.is_some() {
            self.accept_retry_at = Some(Instant::now());
        }
    }

    fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key, CloseReason::EngineStopped, false);
        }
        self.stop_listening();
        self.publish(Instant::now(), true);
    }

    // ---- commands --------------------------------------------------------

    fn resolve(&self, targets: &Targets) -> Vec<usize> {
        match targets {
            Targets::All => self.conns.iter().map(|(k, _)| k).collect(),
            Targets::Conns(ids) => ids
                .iter()
                .filter_map(|id| self.ids.get(id).copied())
                .collect(),
        }
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Kick { targets, mode } => {
                for key in self.resolve(&targets) {
                    let id = self.conns[key].id;
                    self.emit(Some(id), EventKind::Kicked { mode });
                    match mode {
                        KickMode::Reset => self.close(key, CloseReason::Kicked(mode), true),
                        KickMode::Graceful => {
                            let conn = &mut self.conns[key];
                            conn.phase = Phase::Closing;
                            // Keep reading (and discarding) so input never
                            // piles up unread, which would end in RST.
                            let was_paused = std::mem::take(&mut conn.read_paused);
                            let had_backpressure = std::mem::take(&mut conn.backpressure);
                            if was_paused {
                                self.emit(Some(id), EventKind::ReadPaused { paused: false });
                            }
                            if had_backpressure {
                                self.emit(Some(id), EventKind::Backpressure { on: false });
                            }
                            self.touch(key);
                            self.drive(key, true);
                        }
                    }
                }
            }
            Command::Inject { targets, bytes } => {
                if bytes.is_empty() {
                    return;
                }
                for key in self.resolve(&targets) {
                    let conn = &self.conns[key];
                    if conn.write_shut {
                        continue;
                    }
                    let id = conn.id;
                    self.emit(
                        Some(id),
                        EventKind::Injected {
                            n: bytes.len() as u32,
                        },
                    );
                    self.enqueue(key, bytes.clone(), Origin::Inject);
                    self.drive(key, false);
                }
            }
            Command::SetMode(mode) => {
                self.mode = mode;
                self.emit(None, EventKind::ModeChanged { mode });
                self.force_stats();
                // Half-closed clients kept open for manual answers end now.
                let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                for key in keys {
                    self.settle(key);
                }
            }
            Command::Listen { addr } => self.listen(&addr),
            Command::StopListening => {
                self.stop_listening();
                self.force_stats();
            }
            Command::SetReadPaused { targets, paused } => {
                for key in self.resolve(&targets) {
                    let conn = &mut self.conns[key];
                    if conn.read_paused == paused {
                        continue;
                    }
                    conn.read_paused = paused;
                    let id = conn.id;
                    self.emit(Some(id), EventKind::ReadPaused { paused });
                    self.touch(key);
                    if !paused {
                        self.drive(key, true);
                    }
                }
            }
            Command::Inspect { conn } => {
                if let Some(&key) = self.ids.get(&conn) {
                    let detail = self.conns[key].detail();
                    self.publisher.detail(detail);
                }
            }
        }
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

fn close_reason(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => CloseReason::PeerReset,
        _ => CloseReason::Error(e.to_string()),
    }
}

/// An idle tick repeats the last stats but for the clock and the poll rate
/// (the tick itself polls); such repeats are only sent as a heartbeat.
fn same_apart_from_time(last: &EngineStats, new: &EngineStats) -> bool {
    let mut new = new.clone();
    new.at = last.at;
    new.polls_per_sec = last.polls_per_sec;
    *last == new && new.events_per_sec == 0.0
}
