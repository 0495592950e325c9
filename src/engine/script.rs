//! The scenario acting on one connection, as state: where its byte stream
//! is in the framing, how often each rule fired here, and the firings
//! that wait for their delay.
//!
//! Like the shaper, a script never sleeps: it says when the loop should
//! come back ([`Script::next_wake`]) for a delayed reply or an idle rule,
//! and the loop keeps that deadline in its timers. Only connections that
//! run a scenario have a script (boxed: one pointer for the others).

use super::rng::Rng;
use crate::protocol::{Micros, RuleTally, ScriptDetail};
use crate::scenario::{Firing, Framer, RuleState, Scenario};
use std::collections::VecDeque;
use std::sync::Arc;

/// The most of an incomplete message the inspector is shown.
const PENDING_SHOWN: usize = 4 * 1024;

/// What a deferred step does when its time comes.
#[derive(Debug)]
pub enum Step {
    /// A rule's firing: its reply, then its `then`.
    Fired(Firing),
    /// A message no rule matched, echoed: it waits behind the delayed
    /// replies before it, so the client sees answers in the order it asked.
    Echo(Vec<u8>),
}

#[derive(Debug)]
pub struct Deferred {
    pub at: Micros,
    pub step: Step,
}

#[derive(Debug)]
pub struct Script {
    /// What it runs: the engine's scenario, or one set for it alone.
    pub scenario: Arc<Scenario>,
    pub framer: Framer,
    pub rules: RuleState,
    /// Per rule, on this connection (sized on the first firing).
    pub tallies: Vec<RuleTally>,
    /// Steps waiting for their time, in order (times never decrease).
    pub deferred: VecDeque<Deferred>,
    /// Reply bytes in `deferred`: they count toward the queue bound.
    pub deferred_bytes: u64,
    /// Framing failed here: messages are no longer matched.
    pub framing_error: Option<String>,
    /// When the current silence began (the last message, or the connect).
    pub quiet_since: Micros,
    /// A rule closes (FIN) once what it sent has gone out.
    pub closing_rule: Option<u16>,
    /// A rule resets once what it sent has left the socket.
    pub reset_rule: Option<u16>,
    /// A reset rule looks again whether its reply has left, at this time.
    pub reset_poll_at: Option<Micros>,
    /// The wake-up already armed in the loop's timers.
    pub armed: Option<Micros>,
    /// Draws the jitter of delays.
    pub rng: Rng,
    /// When the message now pending began (its first read).
    pub pending_since: Option<Micros>,
}

impl Script {
    pub fn new(scenario: Arc<Scenario>, now: Micros, seed: u64) -> Script {
        Script {
            scenario,
            framer: Framer::default(),
            rules: RuleState::default(),
            tallies: Vec::new(),
            deferred: VecDeque::new(),
            deferred_bytes: 0,
            framing_error: None,
            quiet_since: now,
            closing_rule: None,
            reset_rule: None,
            reset_poll_at: None,
            armed: None,
            rng: Rng::new(seed),
            pending_since: None,
        }
    }

    /// When a step decided at `now` with `delay` may run: never before the
    /// steps already waiting.
    pub fn due_at(&self, now: Micros, delay: Micros) -> Micros {
        let last = self.deferred.back().map_or(0, |d| d.at);
        (now + delay).max(last)
    }

    pub fn defer(&mut self, at: Micros, step: Step) {
        if let Step::Fired(Firing {
            reply: Some(bytes), ..
        })
        | Step::Echo(bytes) = &step
        {
            self.deferred_bytes += bytes.len() as u64;
        }
        self.deferred.push_back(Deferred { at, step });
    }

    /// The next step due at `now`, if any.
    pub fn pop_due(&mut self, now: Micros) -> Option<Step> {
        if self.deferred.front().is_none_or(|d| d.at > now) {
            return None;
        }
        let d = self.deferred.pop_front()?;
        if let Step::Fired(Firing {
            reply: Some(bytes), ..
        })
        | Step::Echo(bytes) = &d.step
        {
            self.deferred_bytes -= bytes.len() as u64;
        }
        Some(d.step)
    }

    /// When the loop must come back: the next deferred step, or the next
    /// idle rule's moment, whichever is first.
    pub fn next_wake(&self, now: Micros) -> Option<Micros> {
        let scenario = &self.scenario;
        let deferred = self.deferred.front().map(|d| d.at);
        let silent = std::time::Duration::from_micros(now.saturating_sub(self.quiet_since));
        let idle = scenario
            .next_idle(&self.rules, silent)
            .map(|d| self.quiet_since + d.as_micros() as Micros);
        [deferred, idle, self.reset_poll_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// For the inspector; `own` when it is not the engine's scenario.
    /// After a read: remember when the message now pending began.
    pub fn note_pending(&mut self, now: Micros) {
        if self.framer.pending().is_empty() || self.framing_error.is_some() {
            self.pending_since = None;
        } else if self.pending_since.is_none() {
            self.pending_since = Some(now);
        }
    }

    /// The message the client has begun and not finished, for its row.
    pub fn pending_message(&self) -> Option<Box<crate::protocol::PendingMessage>> {
        let since = self.pending_since?;
        let pending = self.framer.pending();
        let max = self.scenario.max_message();
        Some(Box::new(crate::protocol::PendingMessage {
            since,
            len: pending.len() as u64,
            expected: self.scenario.framing().expected_len(pending, max),
            head: pending[..pending.len().min(crate::protocol::PendingMessage::HEAD)].to_vec(),
        }))
    }

    pub fn detail(&self, own: bool) -> ScriptDetail {
        let pending = self.framer.pending();
        let file = self.scenario.file();
        ScriptDetail {
            name: file.name.clone().unwrap_or_else(|| "unnamed".to_owned()),
            own,
            fired: self.tallies.clone(),
            pending: pending[..pending.len().min(PENDING_SHOWN)].to_vec(),
            pending_len: pending.len() as u64,
            framing_error: self.framing_error.clone(),
            deferred: self.deferred.len() as u32,
        }
    }
}
