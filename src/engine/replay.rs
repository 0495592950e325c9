//! Replaying a recording on one connection (`--replay`): the state of the
//! shared, immutable [`ReplayScript`] on it, and the `Io` steps that move it.
//!
//! Like scenarios, it follows the loop's rules: reads are compared with the
//! recording where they arrive (`replay_read`), recorded writes are queued
//! through the ordinary queue (so they are flushed, shown and recorded like
//! any other bytes), and nothing sleeps: `original` timing and a reset that
//! waits for its bytes to leave ask the loop back through its timers
//! (`Timer::Replay`). The one place that moves the script on is
//! [`Io::replay_pump`], run from `finish` after every step.
//!
//! One recorded write is queued at a time, and only into an empty queue:
//! the queue would otherwise merge it with the next (same-origin messages
//! coalesce, and a flush writes several with one `writev`), losing the
//! recorded write boundaries.

use super::conn_io::{Close, Io, Outcome};
use super::connection::{Connection, Phase};
use crate::protocol::{
    CloseReason, EventKind, Micros, Origin, ReplayDetail, ReplayDivergence, ReplayTiming,
};
use crate::record::replay::{DIVERGENCE_SHOWN, ReplayScript, ReplayStep, first_difference};
use std::sync::Arc;

type Step = Result<(), Close>;

/// How often a replayed reset looks whether the bytes before it have left.
const RESET_POLL: Micros = 5_000;

/// The replay on one connection.
#[derive(Debug)]
pub struct Replay {
    pub script: Arc<ReplayScript>,
    /// The next step to carry out.
    pub next: usize,
    pub sent_writes: u32,
    /// Bytes the client sent since the replay began.
    pub received: u64,
    /// Of those, the ones equal to the recording's, up to the first
    /// difference.
    pub matched: u64,
    pub divergence: Option<ReplayDivergence>,
    /// The recorded close was carried out (or began).
    pub ended: bool,
    /// A recorded reset waits for the bytes before it to leave the socket.
    pub resetting: bool,
    pub reset_poll_at: Option<Micros>,
    /// The wake-up already armed in the loop's timers.
    pub armed: Option<Micros>,
}

impl Replay {
    pub fn new(script: Arc<ReplayScript>) -> Replay {
        Replay {
            script,
            next: 0,
            sent_writes: 0,
            received: 0,
            matched: 0,
            divergence: None,
            ended: false,
            resetting: false,
            reset_poll_at: None,
            armed: None,
        }
    }

    /// Take `got`, the client's next bytes: count them, and find the first
    /// difference from the recording, once. Returns a new divergence.
    fn compare(&mut self, got: &[u8]) -> Option<ReplayDivergence> {
        let from = self.received;
        self.received += got.len() as u64;
        if self.divergence.is_some() {
            return None;
        }
        let expected = &self.script.expected;
        match first_difference(expected, from, got) {
            None => {
                self.matched = self.received.min(expected.len() as u64);
                None
            }
            Some(at) => {
                let offset = from + at as u64;
                self.matched = offset;
                let shown = |b: &[u8]| b[..b.len().min(DIVERGENCE_SHOWN)].to_vec();
                let d = ReplayDivergence {
                    offset,
                    expected: shown(&expected[offset as usize..]),
                    got: shown(&got[at..]),
                };
                self.divergence = Some(d.clone());
                Some(d)
            }
        }
    }

    /// Bytes the client sent past the end of the recorded ones.
    fn beyond(&self) -> u64 {
        self.received
            .saturating_sub(self.script.expected.len() as u64)
    }

    /// Whether the next step may run now.
    fn due(&self, step: &ReplayStep, now: Micros, opened_at: Micros) -> bool {
        match self.script.timing {
            ReplayTiming::Wait => self.received >= step.after_rx(),
            ReplayTiming::Original => now >= opened_at + step.at(),
        }
    }

    /// Whether the script still owes the client something that may yet
    /// become due: a connection must not be ended as done before that.
    /// Under `wait` timing a step that waits for more client bytes is not
    /// owed once the client has sent its FIN.
    pub fn owes(&self, client_done: bool) -> bool {
        if self.resetting {
            return true;
        }
        let Some(step) = self.script.steps.get(self.next) else {
            return false;
        };
        match self.script.timing {
            ReplayTiming::Original => true,
            ReplayTiming::Wait => !client_done || self.received >= step.after_rx(),
        }
    }

    pub fn detail(&self) -> ReplayDetail {
        ReplayDetail {
            file: self.script.file.clone(),
            recorded_conn: self.script.conn,
            timing: self.script.timing,
            matched: self.matched,
            expected: self.script.expected.len() as u64,
            beyond: self.beyond(),
            sent_writes: self.sent_writes,
            writes: self.script.writes() as u32,
            ends_with: self.script.ends_with.clone(),
            ended: self.ended,
            divergence: self.divergence.clone(),
        }
    }
}

/// No more may be queued: a close began, or our FIN is out.
fn ending(conn: &Connection) -> bool {
    matches!(conn.phase, Phase::Closing { .. }) || conn.write_shut
}

impl Io<'_> {
    /// A client accepted while a replay runs: it gets the recorded server,
    /// whose first writes (a greeting) may be due at once.
    pub fn replay_connected(
        &mut self,
        conn: &mut Connection,
        script: &Arc<ReplayScript>,
    ) -> Outcome {
        conn.replay = Some(Box::new(Replay::new(Arc::clone(script))));
        self.finish(conn, Ok(()))
    }

    /// The replay's wake-up came: `finish` moves it on.
    pub fn replay_due(&mut self, conn: &mut Connection) -> Outcome {
        if let Some(r) = conn.replay.as_mut() {
            r.armed = None;
        }
        self.finish(conn, Ok(()))
    }

    /// `n` fresh bytes in `read_buf`, on a replaying connection: compared
    /// with the recording (a divergence is said once, and resets the
    /// connection under `--replay-strict`). What they make due is queued
    /// by [`Io::replay_pump`] when the step finishes.
    pub(super) fn replay_read(&mut self, conn: &mut Connection, n: usize) -> Step {
        let Some(r) = conn.replay.as_mut() else {
            return Ok(());
        };
        let Some(d) = r.compare(&self.read_buf[..n]) else {
            return Ok(());
        };
        let strict = r.script.strict;
        let offset = d.offset;
        self.emit(
            conn,
            EventKind::ReplayDiverged {
                offset: d.offset,
                expected: d.expected,
                got: d.got,
            },
        );
        if strict {
            return Err(Close {
                reason: CloseReason::ReplayDiverged { offset },
                reset: true,
            });
        }
        Ok(())
    }

    /// Carry out the steps that are due, one recorded write at a time into
    /// an empty queue; a write the socket did not take whole waits for its
    /// WRITABLE edge, whose step comes back here.
    pub(super) fn replay_pump(&mut self, conn: &mut Connection) -> Step {
        loop {
            let busy = ending(conn) || !conn.queue.is_empty();
            let (now, opened_at) = (self.now, conn.opened_at);
            let Some(r) = conn.replay.as_deref_mut() else {
                return Ok(());
            };
            if r.resetting {
                return self.replay_reset(conn);
            }
            if busy {
                return Ok(());
            }
            let script = Arc::clone(&r.script);
            let Some(step) = script.steps.get(r.next) else {
                return Ok(());
            };
            if !r.due(step, now, opened_at) {
                return Ok(());
            }
            r.next += 1;
            match step {
                ReplayStep::Send { bytes, .. } => {
                    r.sent_writes += 1;
                    if bytes.is_empty() {
                        continue;
                    }
                    let release = conn.shaper.as_mut().map_or(0, |s| s.release_at(now));
                    conn.queue.push_copy(bytes, now, Origin::Replay, release);
                    self.emit(
                        conn,
                        EventKind::Queued {
                            n: bytes.len() as u32,
                            origin: Origin::Replay,
                        },
                    );
                    self.touch(conn);
                    self.flush(conn)?;
                }
                ReplayStep::Close { reset: false, .. } => {
                    r.ended = true;
                    let deadline = now + self.config.kick_timeout.as_micros() as Micros;
                    return self.close_gracefully(conn, deadline);
                }
                ReplayStep::Close { reset: true, .. } => {
                    r.ended = true;
                    r.resetting = true;
                }
            }
        }
    }

    /// A recorded reset is carried out once the bytes before it have left
    /// the socket (an RST discards whatever is still unsent).
    fn replay_reset(&mut self, conn: &mut Connection) -> Step {
        if !conn.queue.is_empty() {
            return Ok(());
        }
        if super::sys::unsent_bytes(&conn.stream).unwrap_or(0) == 0 {
            return Err(Close {
                reason: CloseReason::ReplayEnded { reset: true },
                reset: true,
            });
        }
        if let Some(r) = conn.replay.as_mut() {
            r.reset_poll_at = Some(self.now + RESET_POLL);
        }
        Ok(())
    }

    /// When the replay needs the loop back, unless that (or an earlier)
    /// wake-up is already armed: the next step under `original` timing
    /// (only while the queue is empty: a queued write brings the pump back
    /// on its own), or a reset's next look at the socket.
    pub(super) fn replay_wake(&mut self, conn: &mut Connection) -> Option<Micros> {
        let now = self.now;
        let idle = !ending(conn) && conn.queue.is_empty();
        let opened_at = conn.opened_at;
        let r = conn.replay.as_mut()?;
        let at = if r.resetting {
            r.reset_poll_at.take()?
        } else if idle && r.script.timing == ReplayTiming::Original {
            opened_at + r.script.steps.get(r.next)?.at()
        } else {
            return None;
        };
        if r.armed.is_some_and(|armed| armed > now && armed <= at) {
            return None;
        }
        r.armed = Some(at);
        Some(at)
    }
}
