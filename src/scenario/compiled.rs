//! A scenario compiled for running: every rule checked and prepared once
//! (regexes built, templates parsed, times and faults read), so firing a
//! rule on a message does no parsing, and a message no rule matches costs
//! a few comparisons and no allocation.
//!
//! The engine keeps one [`RuleState`] per connection and calls
//! [`Scenario::fire`] on each trigger; `None` means no rule fired, and a
//! message then gets [`Scenario::otherwise`].

use super::framing::{self, DEFAULT_MAX_MESSAGE, Framer, Framing, FramingError};
use super::pattern::Pattern;
use super::report::{TryOutcome, TryReport, TryStep, TryTrigger};
use super::template::{Scope, Template, Values};
use super::{Otherwise, ReplySpec, RuleSpec, ScenarioFile, ThenSpec, TriggerSpec};
use crate::faults::spec::{self, FaultPlan};
use crate::faults::{AcceptFault, Faults, Millis};
use crate::logging::terminal_safe;
use std::time::Duration;

/// The largest `max_message` a scenario may set: every connection may
/// hold this much of an incomplete message.
pub const MAX_MAX_MESSAGE: usize = 1 << 30;

/// A validated scenario, ready to run. Cheap to clone (regexes are
/// shared), and `Send + Sync`.
#[derive(Clone)]
pub struct Scenario {
    file: ScenarioFile,
    plan: FaultPlan,
    max_message: usize,
    rules: Vec<Rule>,
    /// The distinct `Idle` times, shortest first.
    idle: Vec<Duration>,
    /// Some reply renders `${now}`.
    reads_clock: bool,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.file.name)
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Rule {
    on: On,
    reply: Option<Reply>,
    delay: Millis,
    jitter: Millis,
    then: Option<Then>,
    times: Option<u32>,
}

#[derive(Clone)]
enum On {
    Connect,
    Message(Pattern),
    Idle(Duration),
    HalfClose,
}

#[derive(Clone)]
struct Reply {
    template: Template,
    framed: bool,
}

/// What happens after a rule's reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Then {
    /// FIN, once what was sent has gone out.
    Close,
    /// RST.
    Reset,
    /// Stop reading the client.
    PauseReading,
    /// The connection's faults become these (as the Faults pane's Apply
    /// does; `Fault("none")` lifts them).
    Fault(Box<Faults>),
}

/// What fires a rule.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Trigger<'a> {
    Connect,
    /// A message's body (`Message::body` of the framer).
    Message(&'a [u8]),
    /// The client has been silent this long.
    Idle(Duration),
    HalfClose,
}

/// The connection a rule fires on.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    pub conn: u64,
    pub unix_micros: u64,
}

/// A rule that fired, and what to do, in order: wait `delay`, send
/// `reply`, then `then`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firing {
    /// Which rule, 0-based (messages say "rule N + 1").
    pub rule: usize,
    /// The rendered reply, framed if the rule says `Framed`.
    pub reply: Option<Vec<u8>>,
    /// The rule's delay with its jitter drawn.
    pub delay: Duration,
    pub then: Option<Then>,
    /// Why a `Framed` reply could not be framed (then `reply` is `None`
    /// and nothing is sent; the engine should show this).
    pub reply_error: Option<FramingError>,
}

/// One connection's progress through the rules.
///
/// Small and allocation-free until a rule with `times` fires.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleState {
    /// Firings per rule, kept only once a rule with `times` fires.
    fired: Vec<u32>,
    seq: u64,
    /// The longest `Idle` time handled in the current silence; `Idle`
    /// thresholds are handled shortest first, so this says which are done.
    idle_done: Option<Duration>,
}

impl RuleState {
    /// The client did something (sent bytes, even part of a message): a
    /// new silence starts, and `Idle` rules may fire again in it. Firing on
    /// a message does this too; the engine calls it on every read.
    pub fn activity(&mut self) {
        self.idle_done = None;
    }

    /// Replies sent so far: the next reply's `${seq}`.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// How often rule `rule` (0-based) fired, if it has `times`.
    pub fn fired(&self, rule: usize) -> u32 {
        self.fired.get(rule).copied().unwrap_or(0)
    }
}

/// `rule N: part: why`.
fn rule_error(n: usize, part: &str, why: impl std::fmt::Display) -> String {
    format!("rule {}: {part}: {why}", n + 1)
}

/// `"TIME"` or `"TIME~TIME"` in whole milliseconds.
fn delay_of(text: &str) -> Result<(Millis, Millis), String> {
    let (d, j) = match text.split_once('~') {
        Some((d, j)) => (d, Some(j)),
        None => (text, None),
    };
    let delay = spec::parse_time(d).map_err(|e| e.to_string())?;
    let jitter = match j {
        Some(j) => spec::parse_time(j).map_err(|e| e.to_string())?,
        None => 0,
    };
    Ok((delay, jitter))
}

fn faults_of(text: &str) -> Result<Faults, String> {
    let plan = spec::parse(text).map_err(|e| e.to_string())?;
    if plan.accept.is_some() {
        return Err(format!(
            "'{}': accept= acts on the whole server, not one connection; put it in the \
             scenario's faults",
            terminal_safe(text, 80)
        ));
    }
    Ok(plan.faults.sanitized())
}

impl Rule {
    fn compile(n: usize, spec: &RuleSpec, framing: &Framing) -> Result<Rule, String> {
        let on = match &spec.on {
            TriggerSpec::Connect => On::Connect,
            TriggerSpec::HalfClose => On::HalfClose,
            TriggerSpec::Message(p) => {
                On::Message(Pattern::compile(p).map_err(|e| rule_error(n, "on", e))?)
            }
            TriggerSpec::Idle(t) => {
                let ms = spec::parse_time(t).map_err(|e| rule_error(n, "on: Idle", e))?;
                if ms == 0 {
                    return Err(rule_error(
                        n,
                        "on: Idle",
                        "an idle time is more than 0ms (e.g. Idle(\"2s\"))",
                    ));
                }
                On::Idle(Duration::from_millis(ms.into()))
            }
        };
        let scope = Scope {
            message: matches!(on, On::Message(_)),
            regex: match &on {
                On::Message(p) => p.regex(),
                _ => None,
            },
        };
        let reply = match &spec.send {
            None => None,
            Some(reply) => {
                let (inner, framed) = match reply {
                    ReplySpec::Framed(inner) => (&**inner, true),
                    other => (other, false),
                };
                let template = match inner {
                    ReplySpec::Text(t) => Template::parse(t, false, &scope),
                    ReplySpec::Hex(h) => Template::parse(h, true, &scope),
                    ReplySpec::Framed(_) => Err(
                        "Framed inside Framed: a reply is framed once, Framed(Text(..)) or \
                         Framed(Hex(..))"
                            .to_owned(),
                    ),
                }
                .map_err(|e| rule_error(n, "send", e))?;
                if framed && let Framing::Fixed(_) | Framing::LengthPrefix { .. } = framing {
                    // Checked again per reply; this catches a framing that
                    // could never work.
                    framing.check().map_err(|e| rule_error(n, "send", e))?;
                }
                Some(Reply { template, framed })
            }
        };
        let (delay, jitter) = match &spec.delay {
            Some(d) => delay_of(d).map_err(|e| rule_error(n, "delay", e))?,
            None => (0, 0),
        };
        let then = match &spec.then {
            None => None,
            Some(ThenSpec::Close) => Some(Then::Close),
            Some(ThenSpec::Reset) => Some(Then::Reset),
            Some(ThenSpec::PauseReading) => Some(Then::PauseReading),
            Some(ThenSpec::Fault(f)) => Some(Then::Fault(Box::new(
                faults_of(f).map_err(|e| rule_error(n, "then: Fault", e))?,
            ))),
        };
        Ok(Rule {
            on,
            reply,
            delay,
            jitter,
            then,
            times: spec.times,
        })
    }
}

impl Scenario {
    /// Check every part of `file` and prepare it for running. A scenario
    /// with any bad part is refused as a whole; the message names the
    /// rule (1-based) or field and the bad part.
    pub fn compile(file: &ScenarioFile) -> Result<Scenario, String> {
        if file.version != super::SCENARIO_VERSION {
            return Err(format!(
                "scenario version {} (this muxscope runs version {})",
                file.version,
                super::SCENARIO_VERSION
            ));
        }
        file.framing.check().map_err(|e| format!("framing: {e}"))?;
        let max_message = match &file.max_message {
            None => DEFAULT_MAX_MESSAGE,
            Some(text) => {
                let bytes = spec::parse_size(text).map_err(|e| format!("max_message: {e}"))?;
                match usize::try_from(bytes) {
                    Ok(b) if (1..=MAX_MAX_MESSAGE).contains(&b) => b,
                    _ => {
                        return Err(format!(
                            "max_message: '{}': a message limit is 1 byte to 1024MiB",
                            terminal_safe(text, 80)
                        ));
                    }
                }
            }
        };
        let mut plans = Vec::with_capacity(file.faults.len());
        for f in &file.faults {
            plans.push(spec::parse(f).map_err(|e| format!("faults: {e}"))?);
        }
        let mut plan = FaultPlan::fold(&plans);
        plan.faults = plan.faults.sanitized();
        let rules = file
            .rules
            .iter()
            .enumerate()
            .map(|(n, r)| Rule::compile(n, r, &file.framing))
            .collect::<Result<Vec<_>, _>>()?;
        let mut idle: Vec<Duration> = rules
            .iter()
            .filter_map(|r| match r.on {
                On::Idle(t) => Some(t),
                _ => None,
            })
            .collect();
        idle.sort_unstable();
        idle.dedup();
        let reads_clock = rules
            .iter()
            .any(|r| r.reply.as_ref().is_some_and(|r| r.template.uses_clock()));
        Ok(Scenario {
            file: file.clone(),
            plan,
            max_message,
            rules,
            idle,
            reads_clock,
        })
    }

    /// Whether a firing may render `${now}`: only then must
    /// [`Context::unix_micros`] hold the time (reading the clock for every
    /// message would cost every message).
    pub fn reads_clock(&self) -> bool {
        self.reads_clock
    }

    /// The file this was compiled from.
    pub fn file(&self) -> &ScenarioFile {
        &self.file
    }

    pub fn framing(&self) -> &Framing {
        &self.file.framing
    }

    /// The largest message a client may send, in bytes (for
    /// [`Framer::push`]).
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    pub fn otherwise(&self) -> Otherwise {
        self.file.otherwise
    }

    /// The faults every connection gets (all `faults` entries folded,
    /// later ones winning, sanitized).
    pub fn faults(&self) -> &Faults {
        &self.plan.faults
    }

    /// The engine-wide accept fault, if the scenario's faults set one.
    pub fn accept_fault(&self) -> Option<AcceptFault> {
        self.plan.accept
    }

    /// Both: what `--fault` with the scenario's faults would give.
    pub fn fault_plan(&self) -> &FaultPlan {
        &self.plan
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The distinct `Idle` times of the rules, shortest first.
    pub fn idle_after(&self) -> &[Duration] {
        &self.idle
    }

    pub fn has_connect_rules(&self) -> bool {
        self.rules.iter().any(|r| matches!(r.on, On::Connect))
    }

    pub fn has_half_close_rules(&self) -> bool {
        self.rules.iter().any(|r| matches!(r.on, On::HalfClose))
    }

    fn used_up(&self, rule: usize, state: &RuleState) -> bool {
        self.rules[rule]
            .times
            .is_some_and(|t| state.fired(rule) >= t)
    }

    /// Fire the first rule that `trigger` fires for this connection, if
    /// any: rules in file order, skipping used-up ones.
    ///
    /// - `Message`: the first rule whose pattern matches. It also starts a
    ///   new silence (as [`RuleState::activity`]).
    /// - `Idle(d)`: the client has been silent for `d`. Each `Idle` time T
    ///   is handled once per silence, shortest first: the first live rule
    ///   with that T fires. One call handles one T, so a late engine calls
    ///   until `None` (see [`Scenario::next_idle`]).
    /// - `Connect`, `HalfClose`: the first rule with that trigger.
    ///
    /// `rng` gives uniform draws in 0..1,000,000 for the delay's jitter.
    /// The rule's count goes up, and `seq` too if a reply was rendered.
    pub fn fire(
        &self,
        trigger: Trigger<'_>,
        state: &mut RuleState,
        ctx: &Context,
        rng: &mut impl FnMut() -> u32,
    ) -> Option<Firing> {
        match trigger {
            Trigger::Connect => {
                let i = (0..self.rules.len()).find(|&i| {
                    matches!(self.rules[i].on, On::Connect) && !self.used_up(i, state)
                })?;
                Some(self.fired(i, state, ctx, rng, None, None))
            }
            Trigger::HalfClose => {
                let i = (0..self.rules.len()).find(|&i| {
                    matches!(self.rules[i].on, On::HalfClose) && !self.used_up(i, state)
                })?;
                Some(self.fired(i, state, ctx, rng, None, None))
            }
            Trigger::Message(message) => {
                state.activity();
                for (i, rule) in self.rules.iter().enumerate() {
                    let On::Message(pattern) = &rule.on else {
                        continue;
                    };
                    if self.used_up(i, state) {
                        continue;
                    }
                    let wants_captures = rule
                        .reply
                        .as_ref()
                        .is_some_and(|r| r.template.uses_captures());
                    match pattern.regex() {
                        Some(re) if wants_captures => {
                            if let Some(caps) = re.captures(message) {
                                return Some(self.fired(
                                    i,
                                    state,
                                    ctx,
                                    rng,
                                    Some(message),
                                    Some(&caps),
                                ));
                            }
                        }
                        _ => {
                            if pattern.is_match(message) {
                                return Some(self.fired(i, state, ctx, rng, Some(message), None));
                            }
                        }
                    }
                }
                None
            }
            Trigger::Idle(silent) => {
                for &t in &self.idle {
                    if t > silent {
                        return None;
                    }
                    if state.idle_done.is_some_and(|done| t <= done) {
                        continue;
                    }
                    state.idle_done = Some(t);
                    let live = (0..self.rules.len()).find(|&i| {
                        matches!(self.rules[i].on, On::Idle(d) if d == t) && !self.used_up(i, state)
                    });
                    if let Some(i) = live {
                        return Some(self.fired(i, state, ctx, rng, None, None));
                    }
                }
                None
            }
        }
    }

    /// When, measured from the client's last activity, the engine should
    /// next call `fire(Trigger::Idle(..))`: the shortest `Idle` time not yet
    /// handled in this silence that still has a rule left to fire, but no
    /// earlier than `silent_for` (the answer equals `silent_for` when one is
    /// due now). `None`: no idle rule can fire again until new activity
    /// (or ever).
    pub fn next_idle(&self, state: &RuleState, silent_for: Duration) -> Option<Duration> {
        self.idle
            .iter()
            .copied()
            .filter(|&t| state.idle_done.is_none_or(|done| t > done))
            .find(|&t| {
                (0..self.rules.len()).any(|i| {
                    matches!(self.rules[i].on, On::Idle(d) if d == t) && !self.used_up(i, state)
                })
            })
            .map(|t| t.max(silent_for))
    }

    fn fired(
        &self,
        i: usize,
        state: &mut RuleState,
        ctx: &Context,
        rng: &mut impl FnMut() -> u32,
        message: Option<&[u8]>,
        captures: Option<&regex::bytes::Captures<'_>>,
    ) -> Firing {
        let rule = &self.rules[i];
        if rule.times.is_some() {
            if state.fired.len() < self.rules.len() {
                state.fired.resize(self.rules.len(), 0);
            }
            state.fired[i] = state.fired[i].saturating_add(1);
        }
        let mut reply_error = None;
        let reply = rule.reply.as_ref().and_then(|r| {
            let mut out = Vec::new();
            r.template.render(
                &mut out,
                &Values {
                    seq: state.seq,
                    conn: ctx.conn,
                    len: message.map_or(0, |m| m.len() as u64),
                    now: ctx.unix_micros,
                    captures,
                },
            );
            if !r.framed {
                return Some(out);
            }
            framing::frame(self.framing(), &out)
                .map_err(|e| reply_error = Some(e))
                .ok()
        });
        if reply.is_some() {
            state.seq = state.seq.wrapping_add(1);
        }
        Firing {
            rule: i,
            reply,
            delay: jittered(rule.delay, rule.jitter, rng),
            then: rule.then.clone(),
            reply_error,
        }
    }

    /// What a fresh connection that sends `input` would get: it connects,
    /// its input is framed, and each message fires a rule (or gets
    /// `otherwise`). Delays are reported without jitter; the try-out stops
    /// where a rule closes, resets or pauses the connection.
    pub fn try_input(&self, input: &[u8], conn: u64) -> TryReport {
        let ctx = Context {
            conn,
            unix_micros: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
        };
        // The middle draw: no jitter.
        let mut rng = || 500_000;
        let mut state = RuleState::default();
        let mut report = TryReport::default();
        let step = |trigger, firing: Option<Firing>, otherwise: TryOutcome, raw: Option<&[u8]>| {
            let Some(f) = firing else {
                let reply = match (otherwise, raw) {
                    (TryOutcome::Otherwise(Otherwise::Echo), Some(raw)) => Some(raw.to_vec()),
                    _ => None,
                };
                return TryStep {
                    trigger,
                    outcome: otherwise,
                    reply,
                    delay_micros: 0,
                    jitter_micros: 0,
                    then: None,
                    error: None,
                };
            };
            let rule = &self.rules[f.rule];
            TryStep {
                trigger,
                outcome: TryOutcome::Rule(f.rule as u32),
                reply: f.reply,
                delay_micros: u64::from(rule.delay) * 1000,
                jitter_micros: u64::from(rule.jitter) * 1000,
                then: f.then.as_ref().map(|t| match t {
                    Then::Close => "Close".to_owned(),
                    Then::Reset => "Reset".to_owned(),
                    Then::PauseReading => "PauseReading".to_owned(),
                    Then::Fault(faults) => format!("Fault({faults})"),
                }),
                error: f.reply_error.map(|e| e.to_string()),
            }
        };
        let stops = |t: &Option<Then>| {
            t.as_ref().and_then(|t| match t {
                Then::Close => Some("closed"),
                Then::Reset => Some("reset"),
                Then::PauseReading => Some("paused reading"),
                Then::Fault(_) => None,
            })
        };
        let connect = self.fire(Trigger::Connect, &mut state, &ctx, &mut rng);
        let stop = connect
            .as_ref()
            .and_then(|f| stops(&f.then).map(|s| (s, f.rule)));
        report.steps.push(step(
            TryTrigger::Connect,
            connect,
            TryOutcome::Nothing,
            None,
        ));
        if let Some((how, rule)) = stop {
            report.stopped = Some(format!("rule {} {how} the connection on connect", rule + 1));
            return report;
        }
        let mut framer = Framer::new();
        let mut stopped: Option<(&str, usize)> = None;
        let mut left = 0usize;
        let result = framer.push(self.framing(), self.max_message, input, |m| {
            if stopped.is_some() {
                left += 1;
                return;
            }
            let firing = self.fire(Trigger::Message(m.body), &mut state, &ctx, &mut rng);
            if let Some(f) = &firing
                && let Some(how) = stops(&f.then)
            {
                stopped = Some((how, f.rule));
            }
            report.steps.push(step(
                TryTrigger::Message {
                    body: m.body.to_vec(),
                    raw: m.raw.to_vec(),
                },
                firing,
                TryOutcome::Otherwise(self.otherwise()),
                Some(m.raw),
            ));
        });
        if let Some((how, rule)) = stopped {
            report.stopped = Some(format!(
                "rule {} {how} the connection; {left} more message{} not answered",
                rule + 1,
                if left == 1 { " was" } else { "s were" }
            ));
            return report;
        }
        report.pending = framer.pending().to_vec();
        report.framing_error = result.err().map(|e| e.to_string());
        report
    }
}

/// `delay` ± up to `jitter` ms, drawn as the latency fault draws it.
fn jittered(delay: Millis, jitter: Millis, rng: &mut impl FnMut() -> u32) -> Duration {
    let ms = if jitter == 0 {
        u64::from(delay)
    } else {
        let span = 2 * u64::from(jitter) + 1;
        let offset = (u64::from(rng()) * span / 1_000_000) as i64 - i64::from(jitter);
        (i64::from(delay) + offset).max(0) as u64
    };
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        let file = super::super::parse(text).unwrap_or_else(|e| panic!("{e}"));
        Scenario::compile(&file).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_a_scenario_rendering_now_needs_the_clock() {
        let with = scenario(r#"(version: 1, rules: [(on: Connect, send: Text("${now}"))])"#);
        let without = scenario(r#"(version: 1, rules: [(on: Connect, send: Text("${seq}"))])"#);
        assert!(with.reads_clock());
        assert!(!without.reads_clock());
    }

    fn compile_error(text: &str) -> String {
        let file = super::super::parse(text).unwrap_or_else(|e| panic!("{e}"));
        Scenario::compile(&file).expect_err("compiled")
    }

    fn fire(s: &Scenario, t: Trigger<'_>, state: &mut RuleState) -> Option<Firing> {
        s.fire(
            t,
            state,
            &Context {
                conn: 3,
                unix_micros: 0,
            },
            &mut || 0,
        )
    }

    #[test]
    fn scenarios_can_be_shared_with_the_engine_thread() {
        fn send_sync<T: Send + Sync + Clone>() {}
        send_sync::<Scenario>();
    }

    #[test]
    fn first_live_rule_wins_and_times_limit_it() {
        let s = scenario(
            r#"(version: 1, rules: [
                (on: Message(Prefix("A")), send: Text("1"), times: 2),
                (on: Message(Prefix("A")), send: Text("2")),
                (on: Message(Exact("B")), then: Close),
            ])"#,
        );
        let mut st = RuleState::default();
        assert_eq!(st.fired.capacity(), 0);
        let rule = |st: &mut RuleState, m: &[u8]| fire(&s, Trigger::Message(m), st).map(|f| f.rule);
        assert_eq!(rule(&mut st, b"A"), Some(0));
        assert_eq!(rule(&mut st, b"AA"), Some(0));
        assert_eq!(rule(&mut st, b"A"), Some(1));
        assert_eq!(st.fired(0), 2);
        assert_eq!(rule(&mut st, b"C"), None);
        let f = fire(&s, Trigger::Message(b"B"), &mut st).unwrap();
        assert_eq!((f.reply, f.then), (None, Some(Then::Close)));
        assert_eq!(st.seq(), 3, "only replies count");
        assert_eq!(fire(&s, Trigger::Connect, &mut st), None);
    }

    #[test]
    fn a_message_matching_nothing_allocates_nothing() {
        let s = scenario(
            r#"(version: 1, rules: [
                (on: Message(Regex("^ECHO (.*)$")), send: Text("${1}")),
                (on: Message(Exact("PING")), send: Text("PONG"), times: 1),
            ])"#,
        );
        let mut st = RuleState::default();
        assert_eq!(fire(&s, Trigger::Message(b"nope"), &mut st), None);
        assert_eq!(st, RuleState::default());
        assert_eq!(st.fired.capacity(), 0);
        let f = fire(&s, Trigger::Message(b"ECHO hi"), &mut st).unwrap();
        assert_eq!(f.reply.as_deref(), Some(&b"hi"[..]));
    }

    #[test]
    fn idle_rules_fire_once_per_silence_shortest_first() {
        let s = scenario(
            r#"(version: 1, rules: [
                (on: Idle("1s"), send: Text("a")),
                (on: Idle("1s"), send: Text("never: rule 1 has the same time")),
                (on: Idle("3s"), send: Text("b"), times: 1),
            ])"#,
        );
        let secs = Duration::from_secs;
        let mut st = RuleState::default();
        assert_eq!(s.idle_after(), &[secs(1), secs(3)]);
        assert_eq!(s.next_idle(&st, secs(0)), Some(secs(1)));
        assert_eq!(
            fire(&s, Trigger::Idle(Duration::from_millis(999)), &mut st),
            None
        );
        assert_eq!(
            fire(&s, Trigger::Idle(secs(1)), &mut st).map(|f| f.rule),
            Some(0)
        );
        assert_eq!(fire(&s, Trigger::Idle(secs(2)), &mut st), None);
        assert_eq!(s.next_idle(&st, secs(2)), Some(secs(3)));
        // A late engine: both due, handled one per call.
        let mut late = RuleState::default();
        assert_eq!(s.next_idle(&late, secs(5)), Some(secs(5)), "due now");
        assert_eq!(
            fire(&s, Trigger::Idle(secs(5)), &mut late).map(|f| f.rule),
            Some(0)
        );
        assert_eq!(
            fire(&s, Trigger::Idle(secs(5)), &mut late).map(|f| f.rule),
            Some(2)
        );
        assert_eq!(fire(&s, Trigger::Idle(secs(5)), &mut late), None);
        assert_eq!(s.next_idle(&late, secs(5)), None);
        // Activity starts a new silence; rule 3 is used up.
        late.activity();
        assert_eq!(s.next_idle(&late, secs(0)), Some(secs(1)));
        assert_eq!(
            fire(&s, Trigger::Idle(secs(9)), &mut late).map(|f| f.rule),
            Some(0)
        );
        assert_eq!(fire(&s, Trigger::Idle(secs(9)), &mut late), None);
        // A message is activity too.
        assert_eq!(fire(&s, Trigger::Message(b"x"), &mut late), None);
        assert_eq!(
            fire(&s, Trigger::Idle(secs(1)), &mut late).map(|f| f.rule),
            Some(0)
        );
    }

    #[test]
    fn delays_take_jitter_from_the_draw() {
        let s = scenario(r#"(version: 1, rules: [(on: Connect, delay: "200ms~50ms")])"#);
        let ctx = Context::default();
        let draw = |d: u32| {
            s.fire(Trigger::Connect, &mut RuleState::default(), &ctx, &mut || d)
                .unwrap()
                .delay
        };
        assert_eq!(draw(0), Duration::from_millis(150));
        assert_eq!(draw(500_000), Duration::from_millis(200));
        assert_eq!(draw(999_999), Duration::from_millis(250));
        let s = scenario(
            r#"(version: 1, rules: [(on: HalfClose, delay: "1.5s", then: Fault("latency=1s, slice=1"))])"#,
        );
        let f = fire(&s, Trigger::HalfClose, &mut RuleState::default()).unwrap();
        assert_eq!(f.delay, Duration::from_millis(1500));
        assert!(
            matches!(f.then, Some(Then::Fault(ref x)) if x.latency.is_some() && x.slice.is_some())
        );
    }

    #[test]
    fn framed_replies_that_do_not_fit_say_so() {
        let s = scenario(
            r#"(version: 1, framing: LengthPrefix(width: 1), rules: [
                (on: Message(Regex("(?s-u).*")), send: Framed(Text("${0}${0}"))),
                (on: Connect, send: Framed(Hex("01 02"))),
            ])"#,
        );
        let mut st = RuleState::default();
        let f = fire(&s, Trigger::Connect, &mut st).unwrap();
        assert_eq!(f.reply.as_deref(), Some(&b"\x02\x01\x02"[..]));
        let big = vec![b'x'; 200];
        let f = fire(&s, Trigger::Message(&big), &mut st).unwrap();
        assert_eq!(f.reply, None);
        assert_eq!(
            f.reply_error,
            Some(FramingError::ReplyTooLong { len: 400, width: 1 })
        );
        assert_eq!(st.seq(), 1, "nothing sent, no seq");
    }

    #[test]
    fn compile_errors_name_the_rule_and_part() {
        let e = compile_error(r#"(version: 1, rules: [(on: Connect), (on: Message(Regex("(")))])"#);
        assert!(
            e.starts_with("rule 2: on: Regex(\"(\"): regex parse error"),
            "{e}"
        );
        let e = compile_error(
            r#"(version: 1, rules: [(on: Message(Regex("(a)")), send: Text("${2}"))])"#,
        );
        assert!(
            e.starts_with("rule 1: send: '${2}': no such capture"),
            "{e}"
        );
        let e = compile_error(r#"(version: 1, rules: [(on: Connect, delay: "2mz")])"#);
        assert!(
            e.starts_with("rule 1: delay: '2mz': 'mz' is not a time unit"),
            "{e}"
        );
        let e = compile_error(r#"(version: 1, rules: [(on: Connect, delay: "2ms~x")])"#);
        assert!(e.starts_with("rule 1: delay: 'x': not a time"), "{e}");
        let e = compile_error(r#"(version: 1, rules: [(on: Idle("0s"))])"#);
        assert!(e.contains("more than 0ms"), "{e}");
        let e =
            compile_error(r#"(version: 1, rules: [(on: Connect, then: Fault("accept=stall"))])"#);
        assert!(
            e.starts_with("rule 1: then: Fault: 'accept=stall': accept= acts on the whole server"),
            "{e}"
        );
        let e = compile_error(
            r#"(version: 1, rules: [(on: Connect, send: Framed(Framed(Text(""))))])"#,
        );
        assert!(e.contains("Framed inside Framed"), "{e}");
        let e = compile_error(r#"(version: 1, rules: [(on: Connect, send: Text("${len}"))])"#);
        assert!(e.contains("has no message"), "{e}");
        let e = compile_error(r#"(version: 1, faults: ["latency=1s", "slice=0"])"#);
        assert!(
            e.starts_with("faults: '0' in 'slice=0': a slice is at least 1 byte"),
            "{e}"
        );
        let e = compile_error(r#"(version: 1, max_message: "2048MiB")"#);
        assert!(e.contains("1 byte to 1024MiB"), "{e}");
        let e = compile_error(r#"(version: 1, max_message: "0")"#);
        assert!(e.contains("1 byte to 1024MiB"), "{e}");
        let e = compile_error(r#"(version: 1, max_message: "1GB")"#);
        assert!(
            e.starts_with("max_message: '1GB': 'GB' is not a size unit"),
            "{e}"
        );
    }

    #[test]
    fn faults_fold_and_accept_is_kept() {
        let s = scenario(
            r#"(version: 1, max_message: "64KiB", faults: ["latency=1s", "latency=2s, accept=stall"])"#,
        );
        assert_eq!(s.faults().latency.map(|l| l.delay), Some(2000));
        assert_eq!(s.accept_fault(), Some(AcceptFault::Stall));
        assert_eq!(s.max_message(), 64 << 10);
        assert!(!s.has_connect_rules());
        assert_eq!(s.rule_count(), 0);
    }

    #[test]
    fn try_input_reports_each_step() {
        let s = scenario(
            r#"(version: 1, framing: Lines, otherwise: Echo, rules: [
                (on: Connect, send: Text("hello\n")),
                (on: Message(Exact("PING")), send: Text("PONG\n"), delay: "1s~10ms"),
                (on: Message(Exact("QUIT")), then: Close),
            ])"#,
        );
        let r = s.try_input(b"PING\r\nother\nQUIT\nA\nB\n", 1);
        assert_eq!(r.steps.len(), 4);
        assert_eq!(r.steps[0].outcome, TryOutcome::Rule(0));
        assert_eq!(r.steps[0].reply.as_deref(), Some(&b"hello\n"[..]));
        assert_eq!(
            (r.steps[1].delay_micros, r.steps[1].jitter_micros),
            (1_000_000, 10_000)
        );
        assert_eq!(r.steps[2].outcome, TryOutcome::Otherwise(Otherwise::Echo));
        assert_eq!(r.steps[2].reply.as_deref(), Some(&b"other\n"[..]));
        assert_eq!(r.steps[3].then.as_deref(), Some("Close"));
        assert_eq!(
            r.stopped.as_deref(),
            Some("rule 3 closed the connection; 2 more messages were not answered")
        );
        let r = s.try_input(b"PI", 1);
        assert_eq!((r.steps.len(), r.pending.as_slice()), (1, &b"PI"[..]));
    }
}
