//! A stateful property test: random sequences of client actions and viewer
//! commands against a real engine and real sockets, then checks that the
//! engine survived, kept its bookkeeping straight, and never mixed up
//! anybody's bytes.
//!
//! Two kinds of clients:
//! - *chaos clients* do anything (send, read or not, half-close, close,
//!   reset) and are named, with unknown, huge and duplicated ids, by
//!   commands. Their bytes are not checked; their lifecycle is.
//! - *echo clients* are never named by a command. They only act in `Echo`
//!   steps, each a whole round trip, so they are idle whenever a command or
//!   a mode change arrives, and their bytes are checked exactly. `Targets::All`
//!   does reach them, and is modelled exactly: an inject adds the `n` bytes
//!   its `Injected { n }` event says were taken; pause and resume set their
//!   pause flag; a kick ends them (a graceful one delivers what was pending,
//!   then EOF). Every command is followed by a barrier (an `Inspect` of an
//!   echo client: commands are applied in order), so an echo step never
//!   races a command. New echo clients connect only once every command sent
//!   is known to be applied: at the start, after a kick of all (their
//!   `Kicked` events), after a Listen (its outcome event). Echo steps write
//!   only in echo mode and while not paused; otherwise they only read what
//!   injects owe them.
//!
//! Cases: 16 by default, `PROPTEST_CASES` overrides. Every wait is bounded
//! (`STEP`), and a case must finish within `CASE_BUDGET`.

mod common;

use common::*;
use muxscope::engine::EngineConfig;
use muxscope::faults::{AcceptFault, Chance, Faults, Latency, Limit, Slice};
use muxscope::protocol::{
    Command, ConnId, ConnState, EventKind, FaultScope, KickMode, Mode, Targets,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError};
use std::collections::BTreeSet;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

const ECHO_CLIENTS: usize = 3;
const KICK_TIMEOUT: Duration = Duration::from_secs(1);
const CASE_BUDGET: Duration = Duration::from_secs(30);
/// An id no engine in this test reaches (a case accepts a few dozen).
const UNKNOWN_ID: ConnId = ConnId(1 << 40);

/// One id in a command's target list.
#[derive(Clone, Debug)]
enum Pick {
    /// The chaos client connected `n`-th (modulo their number), open or not.
    Chaos(usize),
    Unknown,
    Huge,
}

#[derive(Clone, Debug)]
enum Target {
    All,
    /// May name the same client twice.
    Ids(Vec<Pick>),
}

#[derive(Clone, Debug)]
enum Op {
    Connect,
    Send {
        client: usize,
        len: usize,
    },
    Read {
        client: usize,
    },
    HalfClose {
        client: usize,
    },
    Close {
        client: usize,
    },
    Reset {
        client: usize,
    },
    Kick {
        target: Target,
        mode: KickMode,
    },
    Inject {
        target: Target,
        len: usize,
    },
    SetMode(Mode),
    SetReadPaused {
        target: Target,
        paused: bool,
    },
    Listen,
    StopListening,
    Inspect(Pick),
    Echo {
        len: usize,
    },
    /// Faults for some connections (`None`: for new ones). Lossless faults
    /// may reach echo clients, whose bytes must still arrive intact and in
    /// order; destructive ones are sent only to chaos clients.
    SetFaults {
        target: Option<Target>,
        faults: Faults,
    },
    AcceptDelay(Option<u32>),
    /// One of [`SCENARIOS`] (or none) for some chaos clients: their bytes
    /// become messages that fire rules which reply, delay, close, reset,
    /// pause or change faults.
    ChaosScenario {
        ids: Vec<Pick>,
        which: Option<usize>,
    },
    /// What arbitrary input would do under one of [`SCENARIOS`].
    TryScenario {
        which: usize,
        input: Vec<u8>,
    },
}

/// Scenarios the chaos clients may get: the shipped examples and ones that
/// end, stall and reshape conversations in every way the format allows.
const SCENARIOS: [&str; 4] = [
    include_str!("../examples/line-protocol.muxscope-scenario.ron"),
    include_str!("../examples/length-prefixed.muxscope-scenario.ron"),
    include_str!("../examples/reference.muxscope-scenario.ron"),
    r#"(
        version: 1,
        framing: Fixed(3),
        max_message: "64B",
        otherwise: Echo,
        rules: [
            (on: Connect, send: Hex("00 ff"), delay: "3ms~2ms"),
            (on: Message(HexPrefix("00")), then: PauseReading),
            (on: Message(HexPrefix("01")), send: Framed(Hex("aa")), then: Reset),
            (on: Message(HexMask(pattern: "02 00 00", mask: "ff 00 00")), then: Fault("stall-writes")),
            (on: Message(Regex("(?-u)^\x03(.)(.)$")), send: Hex("${2}${1}${crc16}"), delay: "5ms"),
            (on: Message(Any), send: Hex("${seq:u16be}"), times: 3),
            (on: Idle("10ms"), send: Text("?"), then: Close),
            (on: HalfClose, send: Text("bye"), delay: "1ms"),
        ],
    )"#,
];

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => any::<usize>().prop_map(Pick::Chaos),
        1 => Just(Pick::Unknown),
        1 => Just(Pick::Huge),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        1 => Just(Target::All),
        4 => (proptest::collection::vec(pick(), 1..4), any::<bool>()).prop_map(|(mut ids, dup)| {
            if dup {
                ids.push(ids[0].clone());
            }
            Target::Ids(ids)
        }),
    ]
}

fn inject_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(0),
        4 => 1..64usize,
        3 => 64..16 * 1024usize,
        1 => 512 * 1024..1536 * 1024usize,
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Echo), Just(Mode::Manual), Just(Mode::Discard)]
}

fn kick_mode() -> impl Strategy<Value = KickMode> {
    prop_oneof![Just(KickMode::Graceful), Just(KickMode::Reset)]
}

/// Faults that delay or reshape but lose nothing, small enough that an
/// echo step still finishes quickly.
fn lossless_faults() -> impl Strategy<Value = Faults> {
    (
        proptest::option::of((0..20u32, 0..5u32)),
        proptest::option::of(4u64 << 20..64 << 20),
        proptest::option::of((256..4096u32, 0..2u32)),
    )
        .prop_map(|(latency, bandwidth, slice)| Faults {
            latency: latency.map(|(delay, jitter)| Latency { delay, jitter }),
            bandwidth,
            slice: slice.map(|(min, delay)| Slice {
                min,
                max: min * 2,
                delay,
            }),
            ..Faults::default()
        })
}

/// Faults that alter or end a connection.
fn destructive_faults() -> impl Strategy<Value = Faults> {
    (
        proptest::option::of(0..=1_000_000u32),
        proptest::option::of(0..8192u64),
        proptest::option::of(0..8192u64),
        proptest::option::of(1..65536u32),
        any::<bool>(),
    )
        .prop_map(|(corrupt, close, reset, rcvbuf, stall)| Faults {
            corrupt: corrupt.map(Chance),
            close_after: close.map(Limit::Bytes),
            reset_after: reset.map(Limit::Bytes),
            rcvbuf,
            stall_writes: stall,
            ..Faults::default()
        })
}

fn op() -> impl Strategy<Value = Op> {
    let client = any::<usize>();
    prop_oneof![
        4 => Just(Op::Connect),
        4 => (client, 1..256 * 1024usize).prop_map(|(client, len)| Op::Send { client, len }),
        2 => client.prop_map(|client| Op::Read { client }),
        1 => client.prop_map(|client| Op::HalfClose { client }),
        1 => client.prop_map(|client| Op::Close { client }),
        1 => client.prop_map(|client| Op::Reset { client }),
        3 => (target(), kick_mode()).prop_map(|(target, mode)| Op::Kick { target, mode }),
        3 => (target(), inject_len()).prop_map(|(target, len)| Op::Inject { target, len }),
        2 => mode().prop_map(Op::SetMode),
        2 => (target(), any::<bool>()).prop_map(|(target, paused)| Op::SetReadPaused { target, paused }),
        1 => Just(Op::Listen),
        1 => Just(Op::StopListening),
        1 => pick().prop_map(Op::Inspect),
        3 => (1..64 * 1024usize).prop_map(|len| Op::Echo { len }),
        1 => (proptest::option::of(target()), lossless_faults())
            .prop_map(|(target, faults)| Op::SetFaults { target, faults }),
        1 => (proptest::collection::vec(pick(), 1..4), destructive_faults())
            .prop_map(|(ids, faults)| Op::SetFaults { target: Some(Target::Ids(ids)), faults }),
        1 => proptest::option::of(0..30u32).prop_map(Op::AcceptDelay),
        1 => (proptest::collection::vec(pick(), 1..4), proptest::option::of(0..SCENARIOS.len()))
            .prop_map(|(ids, which)| Op::ChaosScenario { ids, which }),
        1 => (0..SCENARIOS.len(), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(which, input)| Op::TryScenario { which, input }),
    ]
}

struct ChaosClient {
    id: ConnId,
    /// `None` once we closed or reset it.
    stream: Option<TcpStream>,
    write_shut: bool,
}

struct EchoClient {
    id: ConnId,
    stream: TcpStream,
    /// Injected bytes the engine took for this client and it has not read.
    pending: Vec<u8>,
    /// How many of its `Injected` events are already in `pending`.
    injects_seen: usize,
    paused: bool,
}

/// A case's engine, clients and what the test knows must happen.
struct Run {
    h: Harness,
    listen: Option<SocketAddr>,
    mode: Mode,
    chaos: Vec<ChaosClient>,
    echo: Vec<EchoClient>,
    /// Connections that must end closed: we closed them, or kicked them.
    must_close: BTreeSet<ConnId>,
    step: u64,
}

/// Distinct, reproducible bytes for step `step`.
fn payload(step: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| pattern((step << 32) | i)).collect()
}

fn fail(why: String) -> TestCaseError {
    TestCaseError::fail(why)
}

impl Run {
    fn start(recording: &std::path::Path) -> Run {
        let h = Harness::start_with_monitor(EngineConfig {
            kick_timeout: KICK_TIMEOUT,
            record: Some(muxscope::record::writer::RecordingConfig {
                path: recording.to_owned(),
                max_bytes: None,
                at_cap: muxscope::record::writer::AtCap::Stop,
            }),
            ..EngineConfig::default()
        });
        let listen = Some(h.addr);
        // Later Listen outcomes are told apart from this first one by order.
        h.wait_for("the first Listening event", |m| {
            m.events
                .iter()
                .any(|e| matches!(e.kind, EventKind::Listening { .. }))
                .then_some(())
        });
        let mut run = Run {
            h,
            listen,
            mode: Mode::Echo,
            chaos: Vec::new(),
            echo: Vec::new(),
            must_close: BTreeSet::new(),
            step: 0,
        };
        run.connect_echo_clients();
        run
    }

    /// Bring the echo clients back to full number. Only called where every
    /// command sent so far is known to have been applied, so that none of
    /// them can reach a new client.
    fn connect_echo_clients(&mut self) {
        let Some(addr) = self.listen else { return };
        while self.echo.len() < ECHO_CLIENTS {
            let (stream, id) = self.h.connect_to(addr);
            self.echo.push(EchoClient {
                id,
                stream,
                pending: Vec::new(),
                injects_seen: 0,
                paused: false,
            });
        }
    }

    fn chaos_index(&self, client: usize) -> Option<usize> {
        (!self.chaos.is_empty()).then(|| client % self.chaos.len())
    }

    fn resolve(&self, target: &Target) -> Targets {
        match target {
            Target::All => Targets::All,
            Target::Ids(picks) => Targets::Conns(picks.iter().map(|p| self.id_of(p)).collect()),
        }
    }

    fn id_of(&self, pick: &Pick) -> ConnId {
        match pick {
            Pick::Chaos(n) => match self.chaos_index(*n) {
                Some(i) => self.chaos[i].id,
                None => UNKNOWN_ID,
            },
            Pick::Unknown => UNKNOWN_ID,
            Pick::Huge => ConnId(u64::MAX),
        }
    }

    /// Chaos clients that `targets` names.
    fn chaos_named(&self, targets: &Targets) -> Vec<usize> {
        match targets {
            Targets::All => (0..self.chaos.len()).collect(),
            Targets::Conns(ids) => (0..self.chaos.len())
                .filter(|&i| ids.contains(&self.chaos[i].id))
                .collect(),
        }
    }

    /// Returns once the engine has applied every command sent so far, if
    /// that matters (an echo client exists); checks that nothing was lost,
    /// since the echo model reads events.
    fn barrier(&self) -> Result<(), TestCaseError> {
        if let Some(e) = self.echo.first() {
            self.h.inspect(e.id);
        }
        let dropped = self.h.with(|m| m.dropped_events);
        prop_assert_eq!(dropped, 0, "the test's consumer lost events");
        Ok(())
    }

    fn command(&mut self, cmd: Command) -> Result<(), TestCaseError> {
        self.h.send(cmd);
        self.barrier()
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.step += 1;
        match op {
            Op::Connect => {
                if let Some(addr) = self.listen {
                    let (stream, id) = self.h.connect_to(addr);
                    stream.set_nonblocking(true).unwrap();
                    self.chaos.push(ChaosClient {
                        id,
                        stream: Some(stream),
                        write_shut: false,
                    });
                }
            }
            Op::Send { client, len } => {
                if let Some(i) = self.chaos_index(*client)
                    && let ChaosClient {
                        stream: Some(s),
                        write_shut: false,
                        ..
                    } = &mut self.chaos[i]
                {
                    // Whatever fits; the engine may have reset it meanwhile.
                    let _ = s.write(&payload(self.step, *len));
                }
            }
            Op::Read { client } => {
                if let Some(i) = self.chaos_index(*client)
                    && let Some(s) = &mut self.chaos[i].stream
                {
                    read_available(s, 4 << 20);
                }
            }
            Op::HalfClose { client } => {
                if let Some(i) = self.chaos_index(*client)
                    && let Some(s) = &self.chaos[i].stream
                {
                    let _ = s.shutdown(Shutdown::Write);
                    self.chaos[i].write_shut = true;
                }
            }
            Op::Close { client } | Op::Reset { client } => {
                if let Some(i) = self.chaos_index(*client)
                    && let Some(s) = self.chaos[i].stream.take()
                {
                    if matches!(op, Op::Reset { .. }) {
                        reset(s);
                    } else {
                        drop(s);
                    }
                    self.must_close.insert(self.chaos[i].id);
                }
            }
            Op::Kick { target, mode } => {
                let targets = self.resolve(target);
                for i in self.chaos_named(&targets) {
                    self.must_close.insert(self.chaos[i].id);
                }
                self.h.send(Command::Kick {
                    targets: targets.clone(),
                    mode: *mode,
                });
                if targets == Targets::All {
                    self.echo_clients_kicked(*mode)?;
                }
                self.barrier()?;
                self.connect_echo_clients();
            }
            Op::Inject { target, len } => {
                let targets = self.resolve(target);
                let bytes = payload(self.step, *len);
                self.command(Command::Inject {
                    targets: targets.clone(),
                    bytes: bytes.clone(),
                })?;
                if targets == Targets::All {
                    self.echo_clients_injected(&bytes)?;
                }
            }
            Op::SetMode(mode) => {
                self.mode = *mode;
                self.command(Command::SetMode(*mode))?;
            }
            Op::SetReadPaused { target, paused } => {
                let targets = self.resolve(target);
                self.command(Command::SetReadPaused {
                    targets: targets.clone(),
                    paused: *paused,
                })?;
                if targets == Targets::All {
                    for e in &mut self.echo {
                        e.paused = *paused;
                    }
                }
            }
            Op::Listen => {
                let seen = self.h.with(|m| m.events.len());
                self.h.send(Command::Listen {
                    addr: "127.0.0.1:0".into(),
                });
                let outcome = self.h.wait_for("the Listen outcome", |m| {
                    m.events[seen..].iter().find_map(|e| match &e.kind {
                        EventKind::Listening { addr } => Some(Ok(*addr)),
                        EventKind::ListenFailed { error, .. } => Some(Err(error.clone())),
                        _ => None,
                    })
                });
                match outcome {
                    Ok(addr) => self.listen = Some(addr),
                    Err(error) => {
                        return Err(fail(format!("Listen on 127.0.0.1:0 failed: {error}")));
                    }
                }
                self.barrier()?;
                // The outcome came after every earlier command.
                self.connect_echo_clients();
            }
            Op::StopListening => {
                let seen = self.h.with(|m| m.events.len());
                self.h.send(Command::StopListening);
                if self.listen.take().is_some() {
                    self.h.wait_for("ListenStopped", |m| {
                        m.events[seen..]
                            .iter()
                            .any(|e| e.kind == EventKind::ListenStopped)
                            .then_some(())
                    });
                }
                self.barrier()?;
            }
            Op::Inspect(pick) => {
                let conn = self.id_of(pick);
                self.command(Command::Inspect { conn })?;
            }
            Op::Echo { len } => self.echo_step(*len)?,
            Op::SetFaults { target, faults } => {
                let scope = match target {
                    None => FaultScope::New,
                    Some(t) => FaultScope::Conns(self.resolve(t)),
                };
                self.command(Command::SetFaults {
                    scope,
                    faults: Box::new(faults.clone()),
                })?;
            }
            Op::AcceptDelay(ms) => {
                self.command(Command::SetAcceptFault(ms.map(AcceptFault::Delay)))?;
            }
            Op::ChaosScenario { ids, which } => {
                let targets = self.resolve(&Target::Ids(ids.clone()));
                let scenario = which.map(|i| {
                    Box::new(muxscope::scenario::parse(SCENARIOS[i]).expect("the scenario parses"))
                });
                self.command(Command::SetConnScenario { targets, scenario })?;
            }
            Op::TryScenario { which, input } => {
                let scenario = Box::new(
                    muxscope::scenario::parse(SCENARIOS[*which]).expect("the scenario parses"),
                );
                self.command(Command::TryScenario {
                    scenario,
                    input: input.clone(),
                })?;
            }
        }
        Ok(())
    }

    /// Account for an inject to all: each echo client is owed the part of
    /// `bytes` its `Injected { n }` event says was taken.
    fn echo_clients_injected(&mut self, bytes: &[u8]) -> Result<(), TestCaseError> {
        for e in &mut self.echo {
            let taken: Vec<u32> = self.h.with(|m| {
                m.events_of(e.id)
                    .filter_map(|ev| match ev.kind {
                        EventKind::Injected { n } => Some(n),
                        _ => None,
                    })
                    .skip(e.injects_seen)
                    .collect()
            });
            prop_assert!(
                taken.len() <= 1,
                "{} Injected events for one inject",
                taken.len()
            );
            for n in taken {
                prop_assert!(n as usize <= bytes.len());
                e.pending.extend_from_slice(&bytes[..n as usize]);
                e.injects_seen += 1;
            }
        }
        Ok(())
    }

    /// A kick of all ends the echo clients; a graceful one first delivers
    /// everything they were owed. Their `Kicked` events show that the kick
    /// was applied, so new echo clients are safe from it.
    fn echo_clients_kicked(&mut self, mode: KickMode) -> Result<(), TestCaseError> {
        for mut e in std::mem::take(&mut self.echo) {
            self.must_close.insert(e.id);
            self.h.wait_event(e.id, "Kicked", |k| {
                matches!(k, EventKind::Kicked { .. }).then_some(())
            });
            if mode == KickMode::Graceful {
                let got = read_to_eof(&mut e.stream, "echo client kicked gracefully");
                prop_assert!(
                    got == e.pending,
                    "{} got {} B before EOF, was owed {} B",
                    e.id,
                    got.len(),
                    e.pending.len()
                );
            }
        }
        Ok(())
    }

    /// Each echo client reads what it is owed; in echo mode and unpaused it
    /// first sends `len` bytes, which must come back after that.
    fn echo_step(&mut self, len: usize) -> Result<(), TestCaseError> {
        let sent = payload(self.step, len);
        for e in &mut self.echo {
            let echoes = self.mode == Mode::Echo && !e.paused;
            let mut expected = std::mem::take(&mut e.pending);
            if echoes {
                expected.extend_from_slice(&sent);
            }
            let got = thread::scope(|scope| {
                if echoes {
                    let mut w = e.stream.try_clone().unwrap();
                    let sent = &sent;
                    scope.spawn(move || w.write_all(sent).expect("echo client writes"));
                }
                let mut buf = vec![0; expected.len()];
                std::io::Read::read_exact(&mut e.stream, &mut buf).map(|()| buf)
            });
            let got = match got {
                Ok(got) => got,
                Err(err) => {
                    let kinds = self.h.kinds_of(e.id);
                    let tail: Vec<_> = kinds.iter().rev().take(40).rev().collect();
                    let counters = self.h.with(|m| m.counters.get(&e.id).cloned());
                    return Err(fail(format!(
                        "{}: echo of {} bytes failed: {err}; counters {counters:?}; last events {tail:#?}",
                        e.id,
                        expected.len()
                    )));
                }
            };
            if got != expected {
                let at = got.iter().zip(&expected).position(|(a, b)| a != b);
                let around = |v: &[u8]| {
                    let from = at.unwrap_or(0);
                    v[from..v.len().min(from + 16)].to_vec()
                };
                return Err(fail(format!(
                    "{}: {} bytes came back, expected {} ({} owed by injects, then its echo); \
                     first difference at {at:?}: got {:?}, expected {:?}",
                    e.id,
                    got.len(),
                    expected.len(),
                    expected.len() - if echoes { sent.len() } else { 0 },
                    around(&got),
                    around(&expected)
                )));
            }
        }
        Ok(())
    }

    /// After the sequence: lift what legitimately keeps a closed client's
    /// connection open (manual mode keeps half-closed clients for an
    /// answer; a paused client's FIN is not read), then check that the
    /// engine and a viewer agree on every connection.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        if self.mode != Mode::Echo {
            self.mode = Mode::Echo;
            self.command(Command::SetMode(Mode::Echo))?;
        }
        self.command(Command::SetReadPaused {
            targets: Targets::All,
            paused: false,
        })?;
        // Faults lifted: a client that half-closed and then went away is
        // found gone only by a write, and stalled writes never come
        // (engine_faults: a_client_gone_while_writes_are_stalled_…).
        self.command(Command::SetFaults {
            scope: FaultScope::Conns(Targets::All),
            faults: Box::default(),
        })?;
        for e in &mut self.echo {
            e.paused = false;
        }
        self.step += 1;
        self.echo_step(1000)?;

        let h = &self.h;
        let must_close = &self.must_close;
        let still_open = h.wait_until(STEP, |m| {
            let monitor = m.monitor.as_ref()?;
            let open: Vec<ConnId> = must_close
                .iter()
                .copied()
                .filter(|id| {
                    !matches!(
                        monitor.connections.get(*id).map(|c| &c.state),
                        Some(ConnState::Closed(_))
                    )
                })
                .collect();
            open.is_empty().then_some(())
        });
        if still_open.is_none() {
            let rows: Vec<_> = h.with_monitor(|mon| {
                must_close
                    .iter()
                    .map(|id| (*id, mon.connections.get(*id).map(|c| c.state.clone())))
                    .filter(|(_, s)| !matches!(s, Some(ConnState::Closed(_))))
                    .collect()
            });
            return Err(fail(format!(
                "closed or kicked clients never ended closed: {rows:?}"
            )));
        }

        // The viewer's open rows are the engine's connections.
        let agreed = h.wait_until(STEP, |m| {
            let open = open_rows(m);
            let stats = m.stats.as_ref()?;
            let newest = m.events.last().map_or(0, |e| e.at);
            (stats.at >= newest && stats.connections as usize == open.len()).then_some(open)
        });
        let Some(open) = agreed else {
            let (open, stats) = h.with(|m| (open_rows(m), m.stats.clone()));
            return Err(fail(format!(
                "the viewer shows {open:?} open, the engine's stats say {:?}",
                stats.map(|s| s.connections)
            )));
        };
        for id in open {
            let detail = h.inspect(id);
            prop_assert!(
                !matches!(detail.counters.state, ConnState::Closed(_)),
                "{id} is open in the viewer but not in the engine"
            );
        }

        // Ids only grow, and every accepted one has a row.
        let accepted: Vec<ConnId> = h.with(|m| {
            m.events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Accepted { .. }))
                .filter_map(|e| e.conn)
                .collect()
        });
        prop_assert!(
            accepted.windows(2).all(|w| w[0] < w[1]),
            "accepted ids do not only grow: {accepted:?}"
        );
        let missing: Vec<ConnId> = h.with_monitor(|mon| {
            accepted
                .iter()
                .copied()
                .filter(|id| mon.connections.get(*id).is_none())
                .collect()
        });
        prop_assert!(
            missing.is_empty(),
            "accepted but unknown to the viewer: {missing:?}"
        );
        let violations = h.with(|m| m.violations.clone());
        prop_assert!(
            violations.is_empty(),
            "batch stream violations: {violations:?}"
        );
        Ok(())
    }
}

fn open_rows(m: &Model) -> Vec<ConnId> {
    let mut open: Vec<ConnId> = m
        .monitor
        .as_ref()
        .map(|mon| {
            mon.connections
                .iter()
                .filter(|c| !matches!(c.state, ConnState::Closed(_)))
                .map(|c| c.id)
                .collect()
        })
        .unwrap_or_default();
    open.sort();
    open
}

/// The case's recording agrees with the engine: it reads to its end, and
/// every connection it saw close holds exactly the bytes its final counters
/// count, both ways (unless the writer fell behind, which it says).
fn recording_agrees(path: &std::path::Path) -> Result<(), TestCaseError> {
    use muxscope::protocol::Direction;
    use muxscope::record::Record;
    use std::collections::HashMap;
    let file = std::fs::File::open(path).map_err(|e| fail(format!("recording: {e}")))?;
    let mut reader = muxscope::record::reader::Reader::open(file)
        .map_err(|e| fail(format!("recording: {e}")))?;
    let mut bytes: HashMap<ConnId, (u64, u64)> = HashMap::new();
    let mut last = HashMap::new();
    let mut lost = false;
    reader
        .for_each_record(|r| match r {
            Record::Data(d) => {
                let e = bytes.entry(d.conn).or_default();
                match d.dir {
                    Direction::Rx => e.0 += d.bytes.len() as u64,
                    Direction::Tx => e.1 += d.bytes.len() as u64,
                }
            }
            Record::Batch(b) => {
                for c in &b.counters {
                    last.insert(c.id, c.clone());
                }
            }
            Record::Lost(_) => lost = true,
        })
        .map_err(fail)?;
    prop_assert!(reader.index.damage.is_none(), "{:?}", reader.index.damage);
    prop_assert!(reader.index.trailer.is_some(), "the file was closed");
    for (id, c) in last {
        if !matches!(c.state, ConnState::Closed(_)) {
            continue;
        }
        let (rx, tx) = bytes.get(&id).copied().unwrap_or_default();
        if lost {
            prop_assert!(rx <= c.rx_bytes && tx <= c.tx_bytes, "{id}");
        } else {
            prop_assert_eq!(
                (rx, tx),
                (c.rx_bytes, c.tx_bytes),
                "{} recorded vs counted",
                id
            );
        }
    }
    Ok(())
}

fn run_case(ops: &[Op]) -> Result<(), TestCaseError> {
    static CASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let recording = std::env::temp_dir().join(format!(
        "muxscope-props-{}-{}.muxrec",
        std::process::id(),
        CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let outcome = run_recorded_case(ops, &recording).and_then(|()| recording_agrees(&recording));
    let _ = std::fs::remove_file(&recording);
    outcome
}

fn run_recorded_case(ops: &[Op], recording: &std::path::Path) -> Result<(), TestCaseError> {
    let started = Instant::now();
    let mut run = Run::start(recording);
    // Waits panic when the engine dies; its own panic explains more.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for op in ops {
            run.apply(op)?;
        }
        run.finish()
    }));
    if let Some(why) = run.h.failure() {
        return Err(fail(why));
    }
    match outcome {
        Ok(result) => result?,
        Err(panic) => std::panic::resume_unwind(panic),
    }
    let took = started.elapsed();
    prop_assert!(took < CASE_BUDGET, "the case took {took:?}");
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(16)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // A case takes a second or two: shrink for at most two minutes.
        max_shrink_time: 120_000,
        max_shrink_iters: 1024,
        // Failures are printed with their (shrunk) input; no files are
        // left in the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_engine_survives_any_sequence_and_keeps_its_books(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        run_case(&ops)?;
    }
}

/// A refused scenario would make the chaos ops test nothing.
#[test]
fn the_chaos_scenarios_compile() {
    for text in SCENARIOS {
        let file = muxscope::scenario::parse(text).unwrap_or_else(|e| panic!("{e}"));
        muxscope::scenario::Scenario::compile(&file).unwrap_or_else(|e| panic!("{e}"));
    }
}
