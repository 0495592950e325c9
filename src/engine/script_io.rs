//! Running the scenario on one connection: bytes read become messages,
//! messages fire rules, and rules queue replies and end conversations.
//!
//! Everything here is a step of [`Io`], so it follows the loop's rules:
//! it queues bytes and changes the connection's state, and the caller's
//! `finish` flushes, settles and says what the loop must do. A reply that
//! waits for its delay, and everything decided after it, waits in the
//! script's `deferred` list; the script's wake-up brings it out, in order.

use super::conn_io::{Close, Io, Outcome};
use super::connection::{Connection, Phase};
use super::publish::Publisher;
use super::queue::ByteQueue;
use super::read_gate::StopReason;
use super::script::{Script, Step};
use super::shaper::Shaper;
use crate::protocol::{CloseReason, ConnId, Event, EventKind, Micros, Mode, Origin, RuleTally};
use crate::scenario::{Context, Message, Scenario, Then, Trigger};
use std::sync::Arc;

type Result = std::result::Result<(), Close>;

/// How often a reset rule looks whether its reply has left the socket.
const RESET_POLL: Micros = 5_000;

/// Rule numbers as people read them: from 1.
fn rule_number(rule: usize) -> u16 {
    u16::try_from(rule + 1).unwrap_or(u16::MAX)
}

/// Microseconds since the Unix epoch, for `${now}`.
fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Io<'_> {
    /// A connection accepted while a scenario runs: its script starts and
    /// the connect rules fire.
    pub fn script_connected(&mut self, conn: &mut Connection) -> Outcome {
        let step = match self.scenario.cloned() {
            Some(scenario) => {
                conn.script = Some(Box::new(Script::new(
                    Arc::clone(&scenario),
                    self.now,
                    conn.id.0,
                )));
                self.fire(conn, &scenario, Trigger::Connect)
                    .and_then(|()| self.flush(conn))
            }
            None => Ok(()),
        };
        self.finish(conn, step)
    }

    /// The connection runs `scenario` from now on (`None`: none): the
    /// script starts over, and what the old one deferred is dropped.
    pub fn run_script(
        &mut self,
        conn: &mut Connection,
        scenario: Option<&Arc<Scenario>>,
    ) -> Outcome {
        if conn.replay.is_none() {
            // A replaying connection answers as the recording did, whatever
            // scenario runs.
            conn.script =
                scenario.map(|s| Box::new(Script::new(Arc::clone(s), self.now, conn.id.0)));
        }
        self.finish(conn, Ok(()))
    }

    /// The script's wake-up came: deferred steps that are due run, then
    /// idle rules whose silence has lasted long enough fire.
    pub fn script_due(&mut self, conn: &mut Connection) -> Outcome {
        let step = match conn.script.as_mut() {
            Some(script) => {
                script.armed = None;
                let scenario = Arc::clone(&script.scenario);
                self.run_due(conn, &scenario)
                    .and_then(|()| self.fire_idle(conn, &scenario))
                    .and_then(|()| self.flush(conn))
            }
            None => Ok(()),
        };
        self.finish(conn, step)
    }

    /// The peer half-closed: half-close rules fire.
    pub(super) fn script_half_closed(&mut self, conn: &mut Connection) -> Result {
        match conn.script.as_ref().map(|s| Arc::clone(&s.scenario)) {
            Some(scenario) => self.fire(conn, &scenario, Trigger::HalfClose),
            None => Ok(()),
        }
    }

    /// `n` fresh bytes in `read_buf`, on a connection with a script: frame
    /// them, fire a rule on each message, and give the others the mode's
    /// fallback (echo, or nothing).
    pub(super) fn script_read(&mut self, conn: &mut Connection, n: usize) -> Result {
        let Some(scenario) = conn.script.as_ref().map(|s| Arc::clone(&s.scenario)) else {
            return Ok(());
        };
        let scenario = &*scenario;
        // Moved out while the sink borrows the rest of `self`; put back
        // below (the framer, likewise, while the sink holds the script).
        let read_buf = std::mem::take(&mut self.read_buf);
        let mut framer = conn
            .script
            .as_mut()
            .map(|s| std::mem::take(&mut s.framer))
            .unwrap_or_default();
        if let Some(mut sink) = self.sink(conn, scenario) {
            let bytes = &read_buf[..n];
            if sink.script.framing_error.is_some() {
                // Framing is lost: the stream is bytes again.
                if sink.mode == Mode::Echo {
                    sink.echo(bytes);
                }
            } else if let Err(e) =
                framer.push(scenario.framing(), scenario.max_message(), bytes, |m| {
                    sink.message(m)
                })
            {
                let why = e.to_string();
                sink.script.framing_error = Some(why.clone());
                sink.event(EventKind::FramingError { why });
            }
        }
        if let Some(script) = conn.script.as_mut() {
            script.framer = framer;
            script.note_pending(self.now);
        }
        self.read_buf = read_buf;
        self.after_messages(conn, scenario)
    }

    /// Everything a firing may touch, borrowed apart.
    fn sink<'s>(
        &'s mut self,
        conn: &'s mut Connection,
        scenario: &'s Scenario,
    ) -> Option<Sink<'s>> {
        let script = conn.script.as_deref_mut()?;
        // Counted over all connections only for the scenario they share.
        let shared = self
            .scenario
            .is_some_and(|s| Arc::ptr_eq(s, &script.scenario));
        Some(Sink {
            scenario,
            script,
            queue: &mut conn.queue,
            shaper: &mut conn.shaper,
            publisher: &mut *self.publisher,
            tallies: shared.then_some(&mut *self.rule_tallies),
            now: self.now,
            mode: self.mode,
            conn: conn.id,
        })
    }

    /// After messages were handled: run what is due, write what it queued,
    /// and stop reading at the queue bound (deferred replies count toward
    /// it).
    fn after_messages(&mut self, conn: &mut Connection, scenario: &Scenario) -> Result {
        self.run_due(conn, scenario)?;
        self.flush(conn)?;
        let deferred = conn.script.as_ref().map_or(0, |s| s.deferred_bytes);
        if conn.queue.len() + deferred >= self.config.queue_limit as u64
            && conn.gate.stop(StopReason::Backpressure)
        {
            self.emit(conn, EventKind::Backpressure { on: true });
        }
        Ok(())
    }

    /// Fire the first rule that `trigger` matches, if any.
    fn fire(&mut self, conn: &mut Connection, scenario: &Scenario, trigger: Trigger<'_>) -> Result {
        self.fire_first(conn, scenario, trigger).map(|_| ())
    }

    /// [`Io::fire`], saying whether a rule fired.
    fn fire_first(
        &mut self,
        conn: &mut Connection,
        scenario: &Scenario,
        trigger: Trigger<'_>,
    ) -> std::result::Result<bool, Close> {
        if ending(conn) {
            return Ok(false);
        }
        let fired = self
            .sink(conn, scenario)
            .is_some_and(|mut sink| sink.trigger(trigger));
        self.run_due(conn, scenario).map(|()| fired)
    }

    /// Idle rules whose silence has lasted long enough fire, each once
    /// per silence.
    fn fire_idle(&mut self, conn: &mut Connection, scenario: &Scenario) -> Result {
        // Each firing uses up one idle rule for this silence, so this ends.
        for _ in 0..scenario.rule_count() {
            let Some(script) = conn.script.as_ref() else {
                return Ok(());
            };
            let silent =
                std::time::Duration::from_micros(self.now.saturating_sub(script.quiet_since));
            if !self.fire_first(conn, scenario, Trigger::Idle(silent))? {
                break;
            }
        }
        Ok(())
    }

    /// Run the deferred steps that are due, in order.
    fn run_due(&mut self, conn: &mut Connection, scenario: &Scenario) -> Result {
        let now = self.now;
        while let Some(step) = conn.script.as_mut().and_then(|s| s.pop_due(now)) {
            if matches!(conn.phase, Phase::Closing { .. }) {
                // A rule ended the conversation: what was decided after it
                // is moot.
                continue;
            }
            match step {
                Step::Echo(bytes) => self.queue_reply(conn, scenario, &bytes, Origin::Echo),
                Step::Fired(firing) => {
                    if let Some(reply) = &firing.reply {
                        self.queue_reply(conn, scenario, reply, Origin::Rule);
                    }
                    if let Some(then) = firing.then {
                        self.then(conn, firing.rule, then)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn queue_reply(
        &mut self,
        conn: &mut Connection,
        scenario: &Scenario,
        bytes: &[u8],
        origin: Origin,
    ) {
        if conn.write_shut {
            return;
        }
        if let Some(mut sink) = self.sink(conn, scenario) {
            sink.send(bytes, origin);
        }
    }

    /// A rule's `then`, after its reply was queued.
    fn then(&mut self, conn: &mut Connection, rule: usize, then: Then) -> Result {
        let number = rule_number(rule);
        match then {
            Then::Close => {
                if let Some(s) = conn.script.as_mut() {
                    s.closing_rule = Some(number);
                }
                let deadline = self.now + self.config.kick_timeout.as_micros() as Micros;
                self.close_gracefully(conn, deadline)
            }
            Then::Reset => {
                if let Some(s) = conn.script.as_mut() {
                    s.reset_rule = Some(number);
                }
                Ok(())
            }
            Then::PauseReading => {
                if conn.gate.stop(StopReason::UserPause) {
                    self.emit(conn, EventKind::ReadPaused { paused: true });
                }
                Ok(())
            }
            Then::Fault(faults) => {
                self.install_faults(conn, &faults);
                Ok(())
            }
        }
    }

    /// A reset rule is carried out once its reply has left the socket (an
    /// RST discards whatever is still unsent).
    pub(super) fn script_reset(&mut self, conn: &mut Connection) -> Result {
        let Some(script) = conn.script.as_mut() else {
            return Ok(());
        };
        let Some(rule) = script.reset_rule else {
            return Ok(());
        };
        let close = Close {
            reason: CloseReason::Rule { rule, reset: true },
            reset: true,
        };
        if !conn.queue.is_empty() {
            return Ok(());
        }
        if super::sys::unsent_bytes(&conn.stream).unwrap_or(0) == 0 {
            return Err(close);
        }
        let at = self.now + RESET_POLL;
        script.reset_poll_at = Some(at);
        Ok(())
    }

    /// When the script needs the loop back, unless that (or an earlier)
    /// wake-up is already armed.
    pub(super) fn script_wake(&mut self, conn: &mut Connection) -> Option<Micros> {
        let now = self.now;
        let ending = ending(conn);
        let script = conn.script.as_mut()?;
        let at = if ending {
            // Only a reset still waiting for its reply to leave matters.
            script.reset_poll_at?
        } else {
            script.next_wake(now)?
        };
        if script.armed.is_some_and(|armed| armed > now && armed <= at) {
            return None;
        }
        script.armed = Some(at);
        Some(at)
    }
}

/// The conversation is ending (a kick or a rule closes it, or our FIN is
/// out): no rule fires any more, and nothing more may be queued.
fn ending(conn: &Connection) -> bool {
    matches!(conn.phase, Phase::Closing { .. }) || conn.write_shut
}

/// Where messages go while the framer yields them: everything a firing
/// may touch, borrowed apart from the framer.
struct Sink<'a> {
    scenario: &'a Scenario,
    script: &'a mut Script,
    queue: &'a mut ByteQueue,
    shaper: &'a mut Option<Box<Shaper>>,
    publisher: &'a mut Publisher,
    /// Over all connections, when this one runs the shared scenario.
    tallies: Option<&'a mut Vec<RuleTally>>,
    now: Micros,
    mode: Mode,
    conn: ConnId,
}

impl Sink<'_> {
    /// Queue `bytes` for the client (after a latency fault's hold, if
    /// any), and say so.
    fn send(&mut self, bytes: &[u8], origin: Origin) {
        if bytes.is_empty() {
            return;
        }
        let release = self.shaper.as_mut().map_or(0, |s| s.release_at(self.now));
        self.queue.push_copy(bytes, self.now, origin, release);
        self.event(EventKind::Queued {
            n: bytes.len() as u32,
            origin,
        });
    }

    fn event(&mut self, kind: EventKind) {
        self.publisher.event(Event {
            at: self.now,
            conn: Some(self.conn),
            kind,
        });
    }

    fn message(&mut self, m: Message<'_>) {
        self.script.quiet_since = self.now;
        self.script.rules.activity();
        if !self.trigger(Trigger::Message(m.body)) && self.mode == Mode::Echo {
            self.echo(m.raw);
        }
    }

    /// Echo bytes no rule took, behind any reply still waiting.
    fn echo(&mut self, raw: &[u8]) {
        if self.script.deferred.is_empty() {
            self.send(raw, Origin::Echo);
        } else {
            let at = self.script.due_at(self.now, 0);
            self.script.defer(at, Step::Echo(raw.to_vec()));
        }
    }

    /// Fire the first rule `trigger` matches; whether one did.
    fn trigger(&mut self, trigger: Trigger<'_>) -> bool {
        let ctx = Context {
            conn: self.conn.0,
            unix_micros: if self.scenario.reads_clock() {
                unix_micros()
            } else {
                0
            },
        };
        let Script { rules, rng, .. } = &mut *self.script;
        let mut draw = || rng.draw();
        let Some(firing) = self.scenario.fire(trigger, rules, &ctx, &mut draw) else {
            return false;
        };
        let rules = self.scenario.rule_count();
        RuleTally::record(&mut self.script.tallies, firing.rule, rules, self.now);
        if let Some(tallies) = self.tallies.as_deref_mut() {
            RuleTally::record(tallies, firing.rule, rules, self.now);
        }
        if let Some(e) = &firing.reply_error {
            self.event(EventKind::FramingError {
                why: format!(
                    "rule {}'s reply was not sent: {e}",
                    rule_number(firing.rule)
                ),
            });
        }
        self.event(EventKind::RuleFired {
            rule: rule_number(firing.rule),
            sent: firing.reply.as_ref().map_or(0, |r| r.len() as u32),
        });
        let delay = firing.delay.as_micros() as Micros;
        if delay == 0 && firing.then.is_none() && self.script.deferred.is_empty() {
            if let Some(reply) = firing.reply.as_deref() {
                self.send(reply, Origin::Rule);
            }
        } else {
            let at = self.script.due_at(self.now, delay);
            self.script.defer(at, Step::Fired(firing));
        }
        true
    }
}
