//! Moving one client's bytes, as far as its socket allows, and saying what
//! should become of it.
//!
//! Every entry point returns an [`Outcome`] instead of acting on the slab:
//! only the event loop removes a connection, after the call returned, so
//! nothing here can touch a connection that is already gone.
//!
//! The edge-triggered rules, applied here:
//! - read until `WouldBlock` (or the read budget runs out, and the loop
//!   comes back by itself); write until the queue is empty or `WouldBlock`.
//!   Stopping early for any other reason means no further event;
//! - reading that was stopped on purpose resumes at once when its
//!   [`ReadGate`](super::read_gate::ReadGate) opens, since the readable edge
//!   was consumed while it was shut ([`Io::lift`] is the one place that
//!   opens it);
//! - WRITABLE interest is wanted exactly while the queue holds bytes, so
//!   an idle client produces no events;
//! - every event may be spurious, so `WouldBlock` is never an error.

use super::EngineConfig;
use super::connection::{Connection, Phase};
use super::publish::Publisher;
use super::queue::{COPY_INJECT_MAX, Flush};
use super::read_gate::StopReason;
use super::sys;
use crate::protocol::{
    CloseReason, Direction, Event, EventKind, InjectRefusal, IoOp, KickMode, Micros, Mode, Origin,
    Readiness,
};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

/// Reads one client gets per turn before the others get theirs. A client
/// that sends as fast as it reads never makes the socket block, so without
/// a budget it would hold the loop; over budget it is read again after the
/// next (zero-timeout) poll.
const READS_PER_TURN: usize = 16;

/// Whether a short read proves the socket drained (see `read_until_blocked`).
const SHORT_READ_DRAINS: bool = cfg!(target_os = "linux");

/// What the loop must do with a connection after an I/O step.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Open {
        /// Bytes are queued: register WRITABLE interest (else drop it).
        want_writable: bool,
        /// The read budget ran out with input left: read again next turn.
        read_again: bool,
        /// A fault needs the loop back at this engine time (not yet armed).
        wake_at: Option<Micros>,
        /// The scenario's script needs the loop back then (not yet armed).
        script_at: Option<Micros>,
        /// The replay needs the loop back then (not yet armed).
        replay_at: Option<Micros>,
        /// A graceful close began in this step: it gives up (and resets)
        /// at this deadline.
        closing_deadline: Option<Micros>,
    },
    Close(Close),
}

/// Why and how a connection must be closed.
#[derive(Debug, PartialEq, Eq)]
pub struct Close {
    pub reason: CloseReason,
    /// Close with an RST (`SO_LINGER` 0) rather than a FIN.
    pub reset: bool,
}

impl Close {
    fn after(e: &io::Error) -> Close {
        let reason = match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => CloseReason::PeerReset,
            _ => CloseReason::Error(e.to_string()),
        };
        Close {
            reason,
            reset: false,
        }
    }
}

/// Engine-wide byte totals.
#[derive(Debug, Default)]
pub struct Totals {
    pub rx: u64,
    pub tx: u64,
}

type Step = Result<(), Close>;

/// What one I/O step on a connection may use of the loop.
pub struct Io<'a> {
    pub now: Micros,
    pub mode: Mode,
    pub config: &'a EngineConfig,
    pub read_buf: &'a mut [u8],
    pub publisher: &'a mut Publisher,
    pub totals: &'a mut Totals,
    /// Reads done in this step: one step gets one turn of
    /// [`READS_PER_TURN`], however many times reading is resumed in it.
    pub reads: usize,
    /// Set when a read loop stopped on its budget, not on `WouldBlock`.
    pub budget_spent: bool,
    /// Where writes under faults gather their bytes.
    pub scratch: &'a mut Vec<u8>,
    /// Whether this step's last write stopped on `WouldBlock` (`None`: no
    /// write was tried).
    pub write_blocked: Option<bool>,
    /// A graceful close began in this step, with this deadline.
    pub closing_began: Option<Micros>,
    /// The scenario new connections run, if any.
    pub scenario: Option<&'a std::sync::Arc<crate::scenario::Scenario>>,
    /// How often each of its rules fired, over all connections.
    pub rule_tallies: &'a mut Vec<crate::protocol::RuleTally>,
}

/// How often a reset fault looks whether the bytes before it have left.
const RESET_POLL: Micros = 5_000;
/// Slices one step writes back to back before other clients get a turn.
const SLICES_PER_TURN: usize = 256;
/// Fault wake-ups are rounded up to this, so they batch.
const WAKE_SLACK: Micros = 1_000;

impl Io<'_> {
    pub(super) fn emit(&mut self, conn: &Connection, kind: EventKind) {
        self.publisher.event(Event {
            at: self.now,
            conn: Some(conn.id),
            kind,
        });
    }

    pub(super) fn touch(&self, conn: &mut Connection) {
        conn.last_activity = self.now;
        conn.dirty = true;
    }

    /// mio reported readiness `r` for this connection.
    pub fn ready(&mut self, conn: &mut Connection, r: Readiness) -> Outcome {
        let counts = &mut conn.events;
        let bump = |count: &mut u32, flag| *count = count.saturating_add(r.has(flag) as u32);
        bump(&mut counts.readable, Readiness::READABLE);
        bump(&mut counts.writable, Readiness::WRITABLE);
        bump(&mut counts.read_closed, Readiness::READ_CLOSED);
        bump(&mut counts.write_closed, Readiness::WRITE_CLOSED);
        bump(&mut counts.error, Readiness::ERROR);
        self.emit(conn, EventKind::Readiness(r));
        self.touch(conn);
        conn.read_closed_seen |= r.has(Readiness::READ_CLOSED);
        if r.has(Readiness::ERROR)
            && let Ok(Some(e)) | Err(e) = conn.stream.take_error()
        {
            return Outcome::Close(Close::after(&e));
        }
        let readable = r.has(Readiness::READABLE) || r.has(Readiness::READ_CLOSED);
        self.drive(conn, readable)
    }

    /// Move bytes as far as the socket allows. Writes go first: they may
    /// lift backpressure, which lets reading continue.
    pub fn drive(&mut self, conn: &mut Connection, try_read: bool) -> Outcome {
        let step = self.flush(conn).and_then(|()| {
            if !try_read {
                return Ok(());
            }
            self.read_until_blocked(conn)
        });
        self.finish(conn, step)
    }

    /// Start a graceful kick: flush what is queued, send FIN, wait for the
    /// peer's FIN, all before `deadline` (the loop enforces it).
    pub fn kick_gracefully(&mut self, conn: &mut Connection, deadline: Micros) -> Outcome {
        self.emit(
            conn,
            EventKind::Kicked {
                mode: KickMode::Graceful,
            },
        );
        let step = self.close_gracefully(conn, deadline);
        self.finish(conn, step)
    }

    /// Flush what is queued, send FIN, wait for the peer's FIN, all before
    /// `deadline` (the loop enforces it). A second close keeps the first
    /// deadline.
    pub(super) fn close_gracefully(&mut self, conn: &mut Connection, deadline: Micros) -> Step {
        if let Phase::Closing { .. } = conn.phase {
            return Ok(());
        }
        conn.phase = Phase::Closing { deadline };
        // However the close began (a kick, a rule), the loop holds it to
        // its deadline.
        self.closing_began = Some(deadline);
        self.touch(conn);
        // Keep reading (and discarding) so input never piles up unread,
        // which would turn our close into an RST.
        self.lift(conn, StopReason::UserPause)
            .and_then(|()| self.lift(conn, StopReason::Backpressure))
            .and_then(|()| self.flush(conn))
    }

    /// Queue an inject (the first `bytes.len()` bytes of a buffer shared by
    /// all its targets), up to the queue limit; the rest is refused.
    pub fn inject(&mut self, conn: &mut Connection, bytes: &Arc<[u8]>) -> Outcome {
        let n = bytes.len();
        if matches!(conn.phase, Phase::Closing { .. }) || conn.write_shut {
            self.emit(
                conn,
                EventKind::InjectRefused {
                    n: n as u32,
                    why: InjectRefusal::Closing,
                },
            );
            return self.finish(conn, Ok(()));
        }
        let room = (self.config.queue_limit as u64).saturating_sub(conn.queue.len());
        let take = (n as u64).min(room) as usize;
        if take > 0 {
            self.emit(conn, EventKind::Injected { n: take as u32 });
            let release = self.release_at(conn);
            if take <= COPY_INJECT_MAX {
                conn.queue
                    .push_copy(&bytes[..take], self.now, Origin::Inject, release);
            } else {
                conn.queue
                    .push_shared(bytes, take, self.now, Origin::Inject, release);
            }
            self.emit(
                conn,
                EventKind::Queued {
                    n: take as u32,
                    origin: Origin::Inject,
                },
            );
            self.touch(conn);
        }
        if take < n {
            self.emit(
                conn,
                EventKind::InjectRefused {
                    n: (n - take) as u32,
                    why: InjectRefusal::QueueFull,
                },
            );
        }
        self.drive(conn, false)
    }

    /// The user paused or resumed reading this client.
    pub fn set_read_paused(&mut self, conn: &mut Connection, paused: bool) -> Outcome {
        let step = if paused {
            if conn.gate.stop(StopReason::UserPause) {
                self.emit(conn, EventKind::ReadPaused { paused: true });
                self.touch(conn);
            }
            Ok(())
        } else {
            self.lift(conn, StopReason::UserPause)
        };
        self.finish(conn, step)
    }

    /// The engine's mode changed: only echo queues what it reads, so in
    /// any other mode backpressure has no reason to hold reading.
    pub fn mode_changed(&mut self, conn: &mut Connection) -> Outcome {
        let step = if self.mode == Mode::Echo {
            Ok(())
        } else {
            self.lift(conn, StopReason::Backpressure)
        };
        self.finish(conn, step)
    }

    /// Lift one reason to stop reading; if that opened the gate, read now:
    /// the readable edge was consumed while it was shut.
    fn lift(&mut self, conn: &mut Connection, reason: StopReason) -> Step {
        if !conn.gate.lift(reason) {
            return Ok(());
        }
        match reason {
            StopReason::Backpressure => self.emit(conn, EventKind::Backpressure { on: false }),
            StopReason::UserPause => self.emit(conn, EventKind::ReadPaused { paused: false }),
            StopReason::PeerFin | StopReason::Fault => {}
        }
        self.touch(conn);
        if conn.gate.is_open() {
            self.read_until_blocked(conn)
        } else {
            Ok(())
        }
    }

    /// Settle the lifecycle, then say whether the connection stays.
    pub(super) fn finish(&mut self, conn: &mut Connection, step: Step) -> Outcome {
        // Under faults, bytes read in this step were queued, never written
        // from the read buffer: what is already due goes out now, not on a
        // WRITABLE edge that an idle socket would never raise.
        let shaped = conn
            .shaper
            .as_ref()
            .is_some_and(|s| s.shapes_writes(self.now));
        let due = conn.queue.head_release().is_some_and(|at| at <= self.now);
        let step = step.and_then(|()| {
            if shaped && due {
                self.flush(conn)
            } else {
                Ok(())
            }
        });
        match step
            .and_then(|()| self.fault_close(conn))
            .and_then(|()| self.script_reset(conn))
            .and_then(|()| self.replay_pump(conn))
            .and_then(|()| self.settle(conn))
        {
            Ok(()) => Outcome::Open {
                want_writable: self.want_writable(conn),
                read_again: std::mem::take(&mut self.budget_spent),
                wake_at: self.fault_wake(conn),
                script_at: self.script_wake(conn),
                replay_at: self.replay_wake(conn),
                closing_deadline: self.closing_began.take(),
            },
            Err(close) => Outcome::Close(close),
        }
    }

    /// WRITABLE interest is wanted while queued bytes wait for the socket.
    /// Bytes a fault holds wait for a timer instead: asking for WRITABLE
    /// then would cost two `epoll_ctl` calls and a spurious event per
    /// held message, so under faults it is kept only after a write hit
    /// `WouldBlock` (or kept as it was when no write was tried).
    fn want_writable(&mut self, conn: &Connection) -> bool {
        let blocked = self.write_blocked.take();
        if conn.queue.is_empty() {
            return false;
        }
        match &conn.shaper {
            Some(s) if s.shapes_writes(self.now) => blocked.unwrap_or(conn.writable_interest),
            _ => true,
        }
    }

    /// When bytes queued now may go out (0: at once).
    fn release_at(&mut self, conn: &mut Connection) -> Micros {
        conn.shaper.as_mut().map_or(0, |s| s.release_at(self.now))
    }

    /// The next time a fault needs this connection looked at, unless that
    /// (or an earlier) wake-up is already armed.
    fn fault_wake(&mut self, conn: &mut Connection) -> Option<Micros> {
        let now = self.now;
        let s = conn.shaper.as_mut()?;
        s.observed_at = now;
        let read_held = conn.gate.holds(StopReason::Fault);
        let at = s.next_wake(
            now,
            conn.queue.head_release(),
            conn.queue.len(),
            read_held,
            conn.opened_at,
        )?;
        // Rounded up to a whole millisecond (never early), so connections
        // due within the same millisecond share one turn of the loop
        // instead of one poll each: at 10k held requests a second that is
        // at most 1,000 wake-ups.
        let at = at.div_ceil(WAKE_SLACK) * WAKE_SLACK;
        if s.armed.is_some_and(|armed| armed > now && armed <= at) {
            return None;
        }
        s.armed = Some(at);
        let waiting = conn.queue.len();
        if waiting > 0 && at > now {
            self.emit(
                conn,
                EventKind::FaultHeld {
                    n: waiting,
                    wait: at - now,
                },
            );
        }
        Some(at)
    }

    /// A fault's wake-up came: reading held by the read bucket (or an
    /// accept delay) may resume, held bytes may go out, and a closing
    /// fault may be due.
    pub fn fault_due(&mut self, conn: &mut Connection) -> Outcome {
        if let Some(s) = conn.shaper.as_mut() {
            s.armed = None;
        }
        let step = self
            .lift(conn, StopReason::Fault)
            .and_then(|()| self.flush(conn));
        self.finish(conn, step)
    }

    /// Replace the faults acting on this connection.
    pub fn set_faults(&mut self, conn: &mut Connection, faults: &crate::faults::Faults) -> Outcome {
        self.install_faults(conn, faults);
        self.fault_due(conn)
    }

    /// Give the connection these faults (replacing its own), and say so.
    pub(super) fn install_faults(&mut self, conn: &mut Connection, faults: &crate::faults::Faults) {
        let spec = faults.to_string();
        match conn.shaper.as_mut() {
            Some(s) => s.set_faults(faults.clone()),
            None if faults.is_none() => {}
            None => {
                conn.shaper = Some(Box::new(super::shaper::Shaper::new(
                    faults.clone(),
                    conn.id.0,
                    self.now,
                )));
            }
        }
        self.emit(conn, EventKind::FaultsSet { spec });
        self.touch(conn);
    }

    /// Carry out a `close-after`/`reset-after` fault that is due. A reset
    /// waits until the bytes sent before it have left the socket (an RST
    /// discards whatever is still unsent); a close sends FIN and waits for
    /// the peer's, as a graceful kick does.
    fn fault_close(&mut self, conn: &mut Connection) -> Step {
        let now = self.now;
        let Some(s) = conn.shaper.as_mut() else {
            return Ok(());
        };
        let Some((limit, reset)) = s
            .closing
            .map(|l| (l, s.closing_reset))
            .or_else(|| s.close_due(conn.tx_bytes, conn.opened_at, now))
        else {
            return Ok(());
        };
        if s.closing.is_none() {
            s.closing = Some(limit);
            s.closing_reset = reset;
            s.give_up_at = Some(now + self.config.kick_timeout.as_micros() as Micros);
        }
        let close = Close {
            reason: crate::protocol::CloseReason::Fault { limit, reset },
            reset: true,
        };
        let gave_up = s.give_up_at.is_some_and(|t| now >= t);
        if reset {
            if gave_up || sys::unsent_bytes(&conn.stream).unwrap_or(0) == 0 {
                return Err(close);
            }
            s.poll_at = Some(now + RESET_POLL);
            return Ok(());
        }
        if gave_up {
            return Err(close);
        }
        if !conn.write_shut {
            conn.write_shut = true;
            let _ = conn.stream.shutdown(Shutdown::Write);
        }
        if conn.gate.holds(StopReason::PeerFin) {
            return Err(Close {
                reset: false,
                ..close
            });
        }
        // Keep reading (and discarding) until the peer's FIN, so unread
        // input never turns the close into an RST: the same gate openings
        // as a graceful kick, through the one place that opens it.
        self.lift(conn, StopReason::UserPause)?;
        self.lift(conn, StopReason::Backpressure)
    }

    /// End connections whose conversation is over.
    fn settle(&mut self, conn: &mut Connection) -> Step {
        let peer_fin = conn.gate.holds(StopReason::PeerFin);
        let flushed = conn.queue.is_empty()
            && conn.script.as_ref().is_none_or(|s| s.deferred.is_empty())
            && conn.replay.as_ref().is_none_or(|r| !r.owes(peer_fin));
        match conn.phase {
            // In manual mode a half-closed client may still be answered by
            // hand (think HTTP/1.0), so it stays until kicked.
            Phase::HalfClosed if flushed && self.mode != Mode::Manual => {
                if self.slow_close_waits(conn) {
                    return Ok(());
                }
                Err(Close {
                    reason: CloseReason::PeerClosed,
                    reset: false,
                })
            }
            Phase::Closing { .. } if flushed && !conn.write_shut => {
                if self.slow_close_waits(conn) {
                    return Ok(());
                }
                conn.write_shut = true;
                let _ = conn.stream.shutdown(Shutdown::Write);
                // Without the peer's FIN yet, wait for it: closing with
                // unread input would make the kernel send RST and could
                // destroy what we sent. The kick deadline bounds the wait.
                if peer_fin {
                    Err(graceful(conn))
                } else {
                    Ok(())
                }
            }
            Phase::Closing { .. } if conn.write_shut && peer_fin => Err(graceful(conn)),
            _ => Ok(()),
        }
    }

    /// Under a slow-close fault, whether the FIN must still wait (the wait
    /// starts when the conversation ends, here).
    fn slow_close_waits(&mut self, conn: &mut Connection) -> bool {
        let now = self.now;
        let Some(s) = conn.shaper.as_mut() else {
            return false;
        };
        let Some(ms) = s.faults.slow_close else {
            return false;
        };
        let at = *s.close_at.get_or_insert(now + u64::from(ms) * 1000);
        now < at
    }

    /// Write what is queued, as far as faults allow. Returns the close if
    /// the socket failed.
    pub(super) fn flush(&mut self, conn: &mut Connection) -> Step {
        if conn.queue.is_empty() {
            return Ok(());
        }
        let (now, limit, id) = (self.now, self.config.transcript_limit, conn.id);
        let transcript = &mut conn.transcript;
        let publisher = &mut *self.publisher;
        // What was sent goes to the transcript, and to the recording.
        let mut sent = |chunk: &[u8]| {
            transcript.record(limit, now, Direction::Tx, chunk);
            publisher.record_bytes(now, id, Direction::Tx, chunk);
        };
        let result = match conn.shaper.as_mut() {
            Some(s) if s.shapes_writes(now) => {
                // Slices with no delay between them go out one write each,
                // back to back, until the socket blocks or the budget ends:
                // no timer and no edge would bring the next one otherwise.
                let mut total = Flush::default();
                let mut turns = 0;
                loop {
                    let budget = s.write_budget(now, conn.tx_bytes + total.written);
                    if budget.bytes == 0 {
                        break Ok(total);
                    }
                    if s.passes_through(budget) {
                        let flush = conn.queue.write_released(&mut conn.stream, now, &mut sent);
                        break flush.map(|f| {
                            s.wrote(f.written as usize, now);
                            total.absorb(f);
                            total
                        });
                    }
                    if turns == SLICES_PER_TURN {
                        // More is due: the loop comes back after one poll.
                        self.budget_spent = true;
                        break Ok(total);
                    }
                    turns += 1;
                    let flush = conn.queue.write_shaped(
                        &mut conn.stream,
                        now,
                        budget,
                        self.scratch,
                        |bytes| s.corrupt(bytes),
                        &mut sent,
                    );
                    match flush {
                        Ok(f) => {
                            s.wrote(f.written as usize, now);
                            let more = budget.one_write && !f.would_block && f.written > 0;
                            total.absorb(f);
                            if !more {
                                break Ok(total);
                            }
                        }
                        Err(e) => break Err(e),
                    }
                }
            }
            _ => conn.queue.write_to(&mut conn.stream, &mut sent),
        };
        let flush = result.map_err(|e| Close::after(&e))?;
        if flush.would_block || flush.written > 0 {
            self.write_blocked = Some(flush.would_block);
        }
        conn.tx_bytes += flush.written;
        self.totals.tx += flush.written;
        for n in flush.writes {
            self.emit(conn, EventKind::Wrote { n });
        }
        if flush.would_block {
            self.emit(conn, EventKind::WouldBlock { op: IoOp::Write });
        }
        if flush.written > 0 {
            self.touch(conn);
        }
        if conn.queue.len() <= self.config.low_water as u64 {
            self.lift(conn, StopReason::Backpressure)?;
        }
        Ok(())
    }

    /// Read until `WouldBlock`, EOF, the gate shuts, or the budget is spent.
    fn read_until_blocked(&mut self, conn: &mut Connection) -> Step {
        while self.reads < READS_PER_TURN {
            if !conn.gate.is_open() {
                return Ok(());
            }
            let max = match conn.shaper.as_mut() {
                Some(s) => s.read_budget(self.now, self.read_buf.len()),
                None => self.read_buf.len(),
            };
            if max == 0 {
                // A read-bandwidth fault (or an accept delay) holds reading
                // until its wake-up lifts this.
                conn.gate.stop(StopReason::Fault);
                return Ok(());
            }
            self.reads += 1;
            match conn.stream.read(&mut self.read_buf[..max]) {
                Ok(0) => {
                    conn.gate.stop(StopReason::PeerFin);
                    if conn.phase == Phase::Open {
                        conn.phase = Phase::HalfClosed;
                    }
                    self.emit(conn, EventKind::PeerHalfClosed);
                    self.touch(conn);
                    return self.script_half_closed(conn);
                }
                Ok(n) => {
                    if let Some(s) = conn.shaper.as_mut() {
                        s.read(n);
                    }
                    self.on_bytes_read(conn, n)?;
                    // A short read drained the socket (Linux stream
                    // sockets fill the buffer while bytes are queued), and
                    // bytes arriving later raise a new edge: the read that
                    // would only say WouldBlock is skipped, one system call
                    // per request. Not once a FIN was signalled: its EOF
                    // gets no edge of its own, so reading goes on to it.
                    if SHORT_READ_DRAINS && n < max && !conn.read_closed_seen {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.emit(conn, EventKind::WouldBlock { op: IoOp::Read });
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Close::after(&e)),
            }
        }
        // No WouldBlock, so no new edge will come: the loop must return.
        self.budget_spent = true;
        Ok(())
    }

    /// Handle `n` fresh bytes in `read_buf`.
    fn on_bytes_read(&mut self, conn: &mut Connection, n: usize) -> Step {
        let (now, limit) = (self.now, self.config.transcript_limit);
        conn.rx_bytes += n as u64;
        self.totals.rx += n as u64;
        if self.mode != Mode::Discard {
            conn.transcript
                .record(limit, now, Direction::Rx, &self.read_buf[..n]);
        }
        self.publisher
            .record_bytes(now, conn.id, Direction::Rx, &self.read_buf[..n]);
        self.emit(conn, EventKind::Read { n: n as u32 });
        self.touch(conn);
        if matches!(conn.phase, Phase::Closing { .. }) {
            return Ok(());
        }
        if conn.replay.is_some() {
            // A replay replaces the mode's answer (and any scenario).
            return self.replay_read(conn, n);
        }
        if conn.script.is_some() {
            return self.script_read(conn, n);
        }
        if self.mode != Mode::Echo {
            return Ok(());
        }
        // Fast path: with nothing queued, write straight from the read
        // buffer and queue only what the socket did not take.
        let mut written = 0;
        let shaped = conn.shaper.as_ref().is_some_and(|s| s.shapes_writes(now));
        if conn.queue.is_empty() && !shaped {
            while written < n {
                match conn.stream.write(&self.read_buf[written..n]) {
                    Ok(0) => break,
                    Ok(w) => {
                        written += w;
                        // These are the bytes just recorded as received:
                        // the transcript references them, no second copy.
                        conn.transcript.record_echo(limit, now, n - written, w);
                        self.publisher.record_bytes(
                            now,
                            conn.id,
                            Direction::Tx,
                            &self.read_buf[written - w..written],
                        );
                        conn.tx_bytes += w as u64;
                        self.totals.tx += w as u64;
                        self.emit(conn, EventKind::Wrote { n: w as u32 });
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.emit(conn, EventKind::WouldBlock { op: IoOp::Write });
                        break;
                    }
                    Err(e) => return Err(Close::after(&e)),
                }
            }
        }
        if written < n {
            let release = self.release_at(conn);
            conn.queue
                .push_copy(&self.read_buf[written..n], now, Origin::Echo, release);
            self.emit(
                conn,
                EventKind::Queued {
                    n: (n - written) as u32,
                    origin: Origin::Echo,
                },
            );
            if conn.queue.len() >= self.config.queue_limit as u64
                && conn.gate.stop(StopReason::Backpressure)
            {
                self.emit(conn, EventKind::Backpressure { on: true });
            }
        }
        Ok(())
    }
}

/// What began a graceful close: a kick, a scenario rule, or a replayed
/// recording's end.
enum Began {
    Kick,
    Rule(u16),
    Replay,
}

fn began(conn: &Connection) -> Began {
    match conn.script.as_ref().and_then(|s| s.closing_rule) {
        Some(rule) => Began::Rule(rule),
        None if conn.replay.as_ref().is_some_and(|r| r.ended) => Began::Replay,
        None => Began::Kick,
    }
}

/// The end of a graceful close, said as what began it.
fn graceful(conn: &Connection) -> Close {
    let reason = match began(conn) {
        Began::Rule(rule) => CloseReason::Rule { rule, reset: false },
        Began::Replay => CloseReason::ReplayEnded { reset: false },
        Began::Kick => CloseReason::Kicked(KickMode::Graceful),
    };
    Close {
        reason,
        reset: false,
    }
}

/// A graceful close that did not finish by its deadline (`after_ms`): the
/// connection is reset, said as what began the close.
pub(super) fn close_timed_out(conn: &Connection, after_ms: u64) -> Close {
    let reason = match began(conn) {
        Began::Rule(rule) => CloseReason::RuleTimedOut { rule, after_ms },
        Began::Replay => CloseReason::ReplayTimedOut { after_ms },
        Began::Kick => CloseReason::KickTimedOut { after_ms },
    };
    Close {
        reason,
        reset: true,
    }
}
