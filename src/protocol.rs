//! The contract between the engine and every viewer.
//!
//! These are plain serde types with no dependency on mio, egui or threads, so
//! they compile for wasm32 as well. An in-process viewer receives them over a
//! crossbeam channel; a remote viewer receives the very same values over a
//! WebSocket. Nothing else is shared between the engine and a viewer.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;

/// The most connections a `Command::Watch` may name: a screenful of rows
/// and the inspected one, with room to spare.
pub const MAX_WATCHED: usize = 1024;

/// Who a `Command::Watch` is from: the window in the engine's own process
/// ([`LOCAL_VIEWER`]), or one remote viewer, numbered by the control
/// endpoint whatever the viewer itself said.
pub type ViewerId = u64;
pub const LOCAL_VIEWER: ViewerId = 0;

/// The seed's address, used when nothing else is said.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8800";

/// Microseconds since the engine started. One clock read per poll iteration
/// stamps every event of that iteration, which keeps the hot path cheap.
pub type Micros = u64;

/// A client connection's identity. Assigned from a counter and never reused,
/// unlike mio tokens (slab keys), so a recycled token cannot make a new
/// client look like an old one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The readiness flags exactly as mio reported them for one event.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Readiness(pub u8);

impl Readiness {
    pub const READABLE: u8 = 1;
    pub const WRITABLE: u8 = 2;
    pub const READ_CLOSED: u8 = 4;
    pub const WRITE_CLOSED: u8 = 8;
    pub const ERROR: u8 = 16;

    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    /// Short flag letters, e.g. `R W rc` for a log column.
    pub fn describe(self) -> String {
        let names = [
            (Self::READABLE, "R"),
            (Self::WRITABLE, "W"),
            (Self::READ_CLOSED, "rc"),
            (Self::WRITE_CLOSED, "wc"),
            (Self::ERROR, "err"),
        ];
        let parts: Vec<&str> = names
            .iter()
            .filter(|(flag, _)| self.has(*flag))
            .map(|(_, name)| *name)
            .collect();
        if parts.is_empty() {
            "-".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

/// What the engine does with the bytes it reads.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// The seed's behaviour: every byte read is queued and written back.
    #[default]
    Echo,
    /// Bytes read are recorded but not echoed; only injected bytes are sent,
    /// so the user plays the server.
    Manual,
    /// Bytes read are counted and thrown away.
    Discard,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Echo, Mode::Manual, Mode::Discard];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Manual => "manual",
            Mode::Discard => "discard",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == text)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to get rid of a client.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KickMode {
    /// Stop reading, flush the queue, send FIN, then close.
    Graceful,
    /// Close at once with `SO_LINGER` 0, so the peer sees a reset.
    Reset,
}

/// Which clients a command applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Targets {
    All,
    Conns(Vec<ConnId>),
}

impl Targets {
    pub fn one(conn: ConnId) -> Self {
        Targets::Conns(vec![conn])
    }
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    /// The peer sent FIN and everything queued was delivered.
    PeerClosed,
    /// The peer reset the connection.
    PeerReset,
    Kicked(KickMode),
    /// A socket error other than a reset.
    Error(String),
    /// The engine shut down, or stopped listening with `close_clients`.
    EngineStopped,
    /// A graceful kick could not finish (the peer did not read what was
    /// queued, or did not answer our FIN) within the kick deadline, so the
    /// connection was reset.
    KickTimedOut {
        after_ms: u64,
    },
    /// The connection closed while this viewer was behind and its final
    /// counters were not kept; a resynchronising batch said it is gone.
    Missed,
    /// A `close-after` or `reset-after` fault fired.
    Fault {
        limit: crate::faults::Limit,
        reset: bool,
    },
    /// A scenario rule (numbered from 1) closed it with FIN or reset it.
    Rule {
        rule: u16,
        reset: bool,
    },
    /// A rule closed it with FIN, and the peer sent none back before the
    /// close's deadline, so it was reset.
    RuleTimedOut {
        rule: u16,
        after_ms: u64,
    },
    /// Under `--replay-strict`, the client's bytes differed from the
    /// recording's at byte `offset`, so the connection was reset.
    ReplayDiverged {
        offset: u64,
    },
    /// The replayed recording's server closed (FIN) or reset here, and the
    /// replay did the same.
    ReplayEnded {
        reset: bool,
    },
    /// A replay closed with FIN where the recording's server did, and the
    /// client sent none back before the close's deadline, so it was reset.
    ReplayTimedOut {
        after_ms: u64,
    },
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed"),
            CloseReason::PeerReset => f.write_str("peer reset"),
            CloseReason::Kicked(KickMode::Graceful) => f.write_str("kicked (graceful)"),
            CloseReason::Kicked(KickMode::Reset) => f.write_str("kicked (reset)"),
            CloseReason::Error(e) => write!(f, "error: {e}"),
            CloseReason::EngineStopped => f.write_str("engine stopped"),
            CloseReason::KickTimedOut { after_ms } => write!(
                f,
                "graceful kick timed out after {}: reset",
                crate::format::duration_micros(after_ms.saturating_mul(1000))
            ),
            CloseReason::Missed => f.write_str("closed while this viewer was behind"),
            CloseReason::Fault { limit, reset } => {
                let how = if *reset { "reset" } else { "closed" };
                match limit {
                    crate::faults::Limit::Bytes(n) => {
                        write!(f, "{how} after {} (fault)", crate::format::bytes(*n))
                    }
                    crate::faults::Limit::After(ms) => write!(
                        f,
                        "{how} after {} (fault)",
                        crate::format::duration_micros(u64::from(*ms) * 1000)
                    ),
                }
            }
            CloseReason::Rule { rule, reset } => {
                let how = if *reset { "reset" } else { "closed" };
                write!(f, "{how} by rule {rule} (scenario)")
            }
            CloseReason::RuleTimedOut { rule, after_ms } => write!(
                f,
                "closed by rule {rule} (scenario); no FIN back within {}: reset",
                crate::format::duration_micros(after_ms.saturating_mul(1000))
            ),
            CloseReason::ReplayDiverged { offset } => write!(
                f,
                "reset: the client differed from the recording at byte {offset} (--replay-strict)"
            ),
            CloseReason::ReplayEnded { reset: true } => {
                f.write_str("reset where the recording's server reset (replay)")
            }
            CloseReason::ReplayEnded { reset: false } => {
                f.write_str("closed where the recording's server closed (replay)")
            }
            CloseReason::ReplayTimedOut { after_ms } => write!(
                f,
                "reset: no FIN from the client {after_ms} ms after the replay closed where the recording did"
            ),
        }
    }
}

/// Which socket operation an event is about.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IoOp {
    Read,
    Write,
    Accept,
}

/// Why (part of) an inject was not queued for a client.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InjectRefusal {
    /// The client is being kicked or already sent its last byte (FIN).
    Closing,
    /// The client's queue is at its bound: it is not reading what it is
    /// sent, and the rest would only grow the server's memory.
    QueueFull,
}

impl fmt::Display for InjectRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InjectRefusal::Closing => "the connection is closing",
            InjectRefusal::QueueFull => "its queue is at the queue limit",
        })
    }
}

/// Where queued bytes came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Origin {
    Echo,
    Inject,
    /// A scenario rule's reply.
    Rule,
    /// A server write of the recording being replayed (`--replay`).
    Replay,
}

/// One thing that happened, as it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// mio reported readiness for a connection's socket (or the listener's,
    /// when `conn` is `None`).
    Readiness(Readiness),
    Accepted {
        peer: SocketAddr,
    },
    Read {
        n: u32,
    },
    Wrote {
        n: u32,
    },
    WouldBlock {
        op: IoOp,
    },
    Queued {
        n: u32,
        origin: Origin,
    },
    /// The queue crossed its bound (`on`) or drained below the low-water
    /// mark (`!on`); reading the client stops and resumes accordingly.
    Backpressure {
        on: bool,
    },
    /// The user paused or resumed reading this client.
    ReadPaused {
        paused: bool,
    },
    Injected {
        n: u32,
    },
    /// Bytes of an inject that were not queued for this client, and why.
    InjectRefused {
        n: u32,
        why: InjectRefusal,
    },
    /// The peer sent FIN; queued bytes are still delivered.
    PeerHalfClosed,
    Kicked {
        mode: KickMode,
    },
    Closed {
        reason: CloseReason,
    },
    /// `accept` failed; with `paused`, the engine backs off and retries
    /// (for example when it ran out of file descriptors).
    AcceptError {
        error: String,
        paused: bool,
    },
    AcceptResumed,
    Listening {
        addr: SocketAddr,
    },
    ListenFailed {
        addr: String,
        error: String,
    },
    ListenStopped,
    ModeChanged {
        mode: Mode,
    },
    /// The faults acting on this connection changed (or, without a
    /// connection, those given to new ones); `spec` in `--fault` grammar.
    FaultsSet {
        spec: String,
    },
    /// A fault holds `n` queued bytes back for `wait` more.
    FaultHeld {
        n: u64,
        wait: Micros,
    },
    /// The accept fault changed; `None` lifted it.
    AcceptFaultSet {
        fault: Option<crate::faults::AcceptFault>,
    },
    /// A scenario rule (numbered from 1) fired on this connection; `sent`
    /// bytes of reply were queued (after its delay, if it has one).
    RuleFired {
        rule: u16,
        sent: u32,
    },
    /// The scenario's framing failed: the connection's bytes broke it (its
    /// messages are no longer matched, and what it sends gets the
    /// fallback), or a rule's reply could not be framed (and was not sent).
    FramingError {
        why: String,
    },
    /// A scenario was loaded (`name`, with `rules` rules), or lifted
    /// (`rules` 0 and an empty name).
    ScenarioSet {
        name: String,
        rules: u16,
    },
    /// A scenario was refused as a whole; the one running stays.
    ScenarioRefused {
        why: String,
    },
    /// A recording began, into this file.
    RecordingStarted {
        path: String,
    },
    /// A recording ended (asked, at its size cap, or on a disk error), or
    /// could not start.
    RecordingStopped {
        why: String,
    },
    /// The client's bytes differ from the replayed recording's, first at
    /// `offset` (counted from the connection's first byte): up to 16 bytes
    /// of each from there. Said once per connection.
    ReplayDiverged {
        offset: u64,
        expected: Vec<u8>,
        got: Vec<u8>,
    },
    /// A lint fired (`lint` is its name): made by the viewer's model, not
    /// the engine, so it works the same on a recording.
    Lint {
        lint: String,
        message: String,
    },
}

/// Every `EventKind::name`, for filter menus.
pub const KIND_NAMES: [&str; 30] = [
    "readiness",
    "accepted",
    "read",
    "wrote",
    "would-block",
    "queued",
    "backpressure",
    "read-paused",
    "injected",
    "inject-refused",
    "half-closed",
    "kicked",
    "closed",
    "accept-error",
    "accept-resumed",
    "listening",
    "listen-failed",
    "listen-stopped",
    "mode",
    "faults",
    "fault-held",
    "accept-fault",
    "rule",
    "framing-error",
    "scenario",
    "scenario-refused",
    "recording",
    "recording-stopped",
    "replay-diverged",
    "lint",
];

impl EventKind {
    /// A stable short name, used by log filters.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Readiness(_) => "readiness",
            EventKind::Accepted { .. } => "accepted",
            EventKind::Read { .. } => "read",
            EventKind::Wrote { .. } => "wrote",
            EventKind::WouldBlock { .. } => "would-block",
            EventKind::Queued { .. } => "queued",
            EventKind::Backpressure { .. } => "backpressure",
            EventKind::ReadPaused { .. } => "read-paused",
            EventKind::Injected { .. } => "injected",
            EventKind::InjectRefused { .. } => "inject-refused",
            EventKind::PeerHalfClosed => "half-closed",
            EventKind::Kicked { .. } => "kicked",
            EventKind::Closed { .. } => "closed",
            EventKind::AcceptError { .. } => "accept-error",
            EventKind::AcceptResumed => "accept-resumed",
            EventKind::Listening { .. } => "listening",
            EventKind::ListenFailed { .. } => "listen-failed",
            EventKind::ListenStopped => "listen-stopped",
            EventKind::ModeChanged { .. } => "mode",
            EventKind::FaultsSet { .. } => "faults",
            EventKind::FaultHeld { .. } => "fault-held",
            EventKind::AcceptFaultSet { .. } => "accept-fault",
            EventKind::RuleFired { .. } => "rule",
            EventKind::FramingError { .. } => "framing-error",
            EventKind::ScenarioSet { .. } => "scenario",
            EventKind::ScenarioRefused { .. } => "scenario-refused",
            EventKind::RecordingStarted { .. } => "recording",
            EventKind::RecordingStopped { .. } => "recording-stopped",
            EventKind::ReplayDiverged { .. } => "replay-diverged",
            EventKind::Lint { .. } => "lint",
        }
    }

    /// A one-line human description of what happened.
    pub fn describe(&self) -> String {
        match self {
            EventKind::Readiness(r) => format!("ready {}", r.describe()),
            EventKind::Accepted { peer } => format!("accepted from {peer}"),
            EventKind::Read { n } => format!("read {n} B"),
            EventKind::Wrote { n } => format!("wrote {n} B"),
            EventKind::WouldBlock { op } => format!("{op:?} would block").to_lowercase(),
            EventKind::Queued { n, origin } => match origin {
                Origin::Echo => format!("queued {n} B"),
                Origin::Inject => format!("queued {n} B (inject)"),
                Origin::Rule => format!("queued {n} B (rule reply)"),
                Origin::Replay => format!("queued {n} B (replay)"),
            },
            EventKind::Backpressure { on: true } => "backpressure on: reading paused".to_owned(),
            EventKind::Backpressure { on: false } => "backpressure off: reading resumed".to_owned(),
            EventKind::ReadPaused { paused: true } => "reading paused by user".to_owned(),
            EventKind::ReadPaused { paused: false } => "reading resumed by user".to_owned(),
            EventKind::Injected { n } => format!("injected {n} B"),
            EventKind::InjectRefused { n, why } => {
                format!("inject refused: {n} B not queued ({why})")
            }
            EventKind::PeerHalfClosed => "peer half-closed (FIN): flushing queue".to_owned(),
            EventKind::Kicked { mode } => format!("kicked ({mode:?})").to_lowercase(),
            EventKind::Closed { reason } => format!("closed: {reason}"),
            EventKind::AcceptError { error, paused } => {
                if *paused {
                    format!("accept failed: {error}; backing off")
                } else {
                    format!("accept failed: {error}")
                }
            }
            EventKind::AcceptResumed => "accepting again".to_owned(),
            EventKind::Listening { addr } => format!("listening on {addr}"),
            EventKind::ListenFailed { addr, error } => format!("cannot listen on {addr}: {error}"),
            EventKind::ListenStopped => "stopped listening".to_owned(),
            EventKind::ModeChanged { mode } => format!("mode set to {mode}"),
            EventKind::FaultsSet { spec } if spec == "none" => "faults lifted".to_owned(),
            EventKind::FaultsSet { spec } => format!("faults: {spec}"),
            EventKind::FaultHeld { n, wait } => format!(
                "fault holds {} for {}",
                crate::format::bytes(*n),
                crate::format::duration_micros(*wait)
            ),
            EventKind::AcceptFaultSet { fault: None } => "accept fault lifted".to_owned(),
            EventKind::AcceptFaultSet { fault: Some(f) } => {
                format!("accept fault: {f:?}").to_lowercase()
            }
            EventKind::RuleFired { rule, sent: 0 } => format!("rule {rule} fired"),
            EventKind::RuleFired { rule, sent } => format!("rule {rule} fired: reply {sent} B"),
            EventKind::FramingError { why } => format!("framing error: {why}"),
            EventKind::ScenarioSet { rules: 0, .. } => "scenario lifted".to_owned(),
            EventKind::ScenarioSet { name, rules } => {
                format!("scenario {name:?} running ({rules} rules)")
            }
            EventKind::ScenarioRefused { why } => format!("scenario refused: {why}"),
            EventKind::RecordingStarted { path } => format!("recording to {path}"),
            EventKind::RecordingStopped { why } => format!("recording stopped: {why}"),
            EventKind::ReplayDiverged {
                offset,
                expected,
                got,
            } => format!(
                "client differs from the recording at byte {offset}: expected {}, got {}",
                hex_or_nothing(expected),
                hex_or_nothing(got)
            ),
            EventKind::Lint { lint, message } => format!("⚠ {lint}: {message}"),
        }
    }
}

/// Bytes as spaced hex (`50 49 4e 47`), or `nothing` for none.
fn hex_or_nothing(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing".to_owned();
    }
    crate::payload::spaced_hex(bytes)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: Micros,
    /// `None` for listener and engine-wide events.
    pub conn: Option<ConnId>,
    pub kind: EventKind,
}

/// Where a connection is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnState {
    Open,
    /// The peer sent FIN; the engine is delivering what is still queued.
    HalfClosed,
    /// Kicked gracefully: flushing, then FIN, then waiting for the peer's.
    /// At `deadline` (engine time) the kick gives up and resets.
    Closing {
        deadline: Micros,
    },
    Closed(CloseReason),
}

/// Per-kind counts of readiness events seen for one connection.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    pub readable: u32,
    pub writable: u32,
    pub read_closed: u32,
    pub write_closed: u32,
    pub error: u32,
}

/// The latest numbers of one connection. These are sent whenever they change
/// and are never dropped (only coalesced), so a viewer's table is exact even
/// when events were dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnCounters {
    pub id: ConnId,
    pub peer: SocketAddr,
    pub opened_at: Micros,
    pub state: ConnState,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub queued_bytes: u64,
    pub queued_msgs: u32,
    pub queue_high_water: u64,
    /// Reading stopped because the queue hit its bound.
    pub backpressure: bool,
    /// Reading stopped because the user asked.
    pub read_paused: bool,
    pub events: EventCounts,
    pub last_activity: Micros,
    /// Faults acting on this connection, and what they hold now; `None`
    /// when none ever did (boxed: every row of every viewer pays for this
    /// field, and few connections have faults).
    pub faults: Option<Box<FaultStatus>>,
    /// The kernel's latest view of this connection (`TCP_INFO`), once
    /// sampled; `None` before the first sample and where the platform has
    /// none (`EngineStats::tcp_info` says which).
    pub tcp: Option<Box<TcpInfo>>,
    /// A message the client has begun and not finished, under a scenario's
    /// framing (boxed: most rows have none).
    pub pending: Option<Box<PendingMessage>>,
}

/// A message a client has begun and not finished.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingMessage {
    /// When the read that began it came.
    pub since: Micros,
    /// Bytes of it read so far.
    pub len: u64,
    /// Its whole length, where the framing says (a length prefix whose
    /// field is in, a fixed size).
    pub expected: Option<u64>,
    /// Its first bytes (at most [`PendingMessage::HEAD`]).
    pub head: Vec<u8>,
}

impl PendingMessage {
    pub const HEAD: usize = 32;
}

/// What the kernel knows of one connection (Linux `TCP_INFO`), as sampled
/// at `at`. Times in microseconds, sizes in bytes, windows as the kernel
/// reports them (already scaled). A field the running kernel does not
/// report is `None`, never a made-up zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpInfo {
    pub at: Micros,
    /// Smoothed round-trip time and its variance.
    pub rtt_us: u32,
    pub rttvar_us: u32,
    /// Segments retransmitted over the connection's life, and now
    /// presumed lost.
    pub total_retrans: u32,
    pub lost: u32,
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    /// Congestion window, in segments, and the send MSS.
    pub cwnd: u32,
    pub snd_mss: u32,
    /// The window the peer advertises: how much more it will take
    /// (`tcpi_snd_wnd`, Linux 5.4+). Zero means the client is not reading.
    pub peer_window: Option<u32>,
    /// The window this side advertises (`tcpi_rcv_wnd`, Linux 5.4+).
    pub rcv_window: Option<u32>,
    /// Bytes written to the socket that TCP has not sent yet.
    pub notsent_bytes: u32,
    /// Since data was last sent and received, milliseconds.
    pub last_data_sent_ms: u32,
    pub last_data_recv_ms: u32,
    /// Recent delivery rate, bytes per second.
    pub delivery_rate: u64,
    /// Segments sent and received.
    pub segs_out: u32,
    pub segs_in: u32,
}

impl TcpInfo {
    /// Whether `self` says something `earlier` did not: anything but the
    /// time it was taken and the "since data was last sent/received"
    /// clocks, which drift on every idle connection.
    pub fn differs_from(&self, earlier: &TcpInfo) -> bool {
        let strip = |t: &TcpInfo| TcpInfo {
            at: 0,
            last_data_sent_ms: 0,
            last_data_recv_ms: 0,
            ..t.clone()
        };
        strip(self) != strip(earlier)
    }
}

/// What faults do to one connection right now, for its row.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStatus {
    /// Any fault acts on it.
    pub active: bool,
    /// Under `toxicity`, this connection was drawn to get the faults.
    pub chosen: bool,
    /// Queued bytes a fault holds back (latency, bandwidth, slicer, stall).
    pub held: u64,
    /// When the next held bytes go out (engine time), if a fault holds any.
    pub next_release: Option<Micros>,
}

impl ConnCounters {
    /// Whether any fault acts on this connection.
    pub fn has_faults(&self) -> bool {
        self.faults.as_ref().is_some_and(|f| f.active)
    }

    /// A client just accepted: open, nothing moved yet.
    pub fn opened(id: ConnId, peer: SocketAddr, at: Micros) -> Self {
        ConnCounters {
            id,
            peer,
            opened_at: at,
            state: ConnState::Open,
            rx_bytes: 0,
            tx_bytes: 0,
            queued_bytes: 0,
            queued_msgs: 0,
            queue_high_water: 0,
            backpressure: false,
            read_paused: false,
            events: EventCounts::default(),
            last_activity: at,
            faults: None,
            tcp: None,
            pending: None,
        }
    }
}

/// Whether the engine is accepting clients.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenState {
    Listening(SocketAddr),
    #[default]
    Stopped,
    Failed {
        addr: String,
        error: String,
    },
}

/// Engine-wide numbers, sent on every tick. Totals are cumulative; rates are
/// over the last second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStats {
    pub at: Micros,
    /// Wall-clock time of engine start, to render `Micros` as times of day.
    pub started_unix_ms: u64,
    pub listen: ListenState,
    pub mode: Mode,
    pub connections: u32,
    pub accepted_total: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub queued_bytes: u64,
    pub events_total: u64,
    pub events_per_sec: f64,
    pub polls_per_sec: f64,
    /// Events the engine could not hand to this consumer because it was
    /// behind. Counted, never hidden.
    pub dropped_events: u64,
    pub accept_paused: bool,
    pub queue_limit: u64,
    /// Faults given to new connections.
    pub new_faults: crate::faults::Faults,
    pub accept_fault: Option<crate::faults::AcceptFault>,
    /// The scenario running, and how often each rule fired (boxed: most
    /// sessions run none).
    pub scenario: Option<Box<ScenarioStatus>>,
    /// The recording being written, or the last one and why it ended.
    pub recording: Option<Box<RecordingStatus>>,
    /// Whether this engine's platform reports `TCP_INFO`: `None` where it
    /// does, else why not ("not available on this platform").
    pub tcp_info_unavailable: Option<String>,
}

/// A recording as a viewer sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStatus {
    /// The file written now (a rotated recording's latest part).
    pub path: String,
    pub started_at: Micros,
    /// Bytes written so far, over all parts.
    pub bytes: u64,
    pub part: u32,
    /// What the writer could not keep up with, counted exactly.
    pub lost_events: u64,
    pub lost_bytes: u64,
    /// Set once it ended, with why.
    pub ended: Option<String>,
}

/// The scenario an engine runs, as a viewer sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioStatus {
    pub file: crate::scenario::ScenarioFile,
    /// One per rule, in order: over all connections.
    pub fired: Vec<RuleTally>,
}

/// How often a rule fired, and when it last did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTally {
    pub fired: u64,
    pub last_at: Option<Micros>,
}

impl RuleTally {
    /// Count a firing of rule `rule` (0-based) of `rules` at `at`.
    pub fn record(tallies: &mut Vec<RuleTally>, rule: usize, rules: usize, at: Micros) {
        if tallies.len() < rules {
            tallies.resize(rules, RuleTally::default());
        }
        if let Some(t) = tallies.get_mut(rule) {
            t.fired += 1;
            t.last_at = Some(at);
        }
    }
}

/// The scenario's state on one connection, for the inspector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptDetail {
    /// The scenario it runs (the one everyone runs, or its own).
    pub name: String,
    /// It runs a scenario of its own, not the one new connections get.
    pub own: bool,
    /// One per rule, in order: on this connection.
    pub fired: Vec<RuleTally>,
    /// Bytes of a message not yet complete (at most the first 4 KiB).
    pub pending: Vec<u8>,
    pub pending_len: u64,
    /// Why framing stopped on this connection, if it did.
    pub framing_error: Option<String>,
    /// Replies waiting for their rule's delay.
    pub deferred: u32,
}

/// A pending message in a client's queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    pub len: u32,
    pub queued_at: Micros,
    pub origin: Origin,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Received from the client.
    Rx,
    /// Sent to the client.
    Tx,
}

/// A run of bytes in one direction, as read or written in one call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptChunk {
    pub at: Micros,
    pub dir: Direction,
    pub bytes: Vec<u8>,
}

/// A snapshot of one connection for the inspector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnDetail {
    pub counters: ConnCounters,
    pub queue: Vec<QueuedMessage>,
    /// Both directions merged in time order. Older bytes fall out once a
    /// direction holds more than the transcript limit.
    pub transcript: Vec<TranscriptChunk>,
    /// Bytes that fell out of the transcript, per direction.
    pub transcript_dropped_rx: u64,
    pub transcript_dropped_tx: u64,
    /// The faults acting on this connection.
    pub faults: crate::faults::Faults,
    /// The scenario's state here, while one runs.
    pub script: Option<ScriptDetail>,
    /// Where the replay of a recording is on it, while one runs (boxed:
    /// few connections replay).
    pub replay: Option<Box<ReplayDetail>>,
}

/// How a replay times the recorded server's writes.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReplayTiming {
    /// Each write waits until the client sent as many bytes as had arrived
    /// before it in the recording.
    #[default]
    Wait,
    /// Each write goes out at its recorded time after the accept.
    Original,
}

impl ReplayTiming {
    pub fn name(self) -> &'static str {
        match self {
            ReplayTiming::Wait => "wait",
            ReplayTiming::Original => "original",
        }
    }
}

/// Where the client's bytes first differed from the recording's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayDivergence {
    pub offset: u64,
    /// Up to 16 bytes of each side, from `offset`.
    pub expected: Vec<u8>,
    pub got: Vec<u8>,
}

/// A replay's state on one connection, for the inspector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayDetail {
    /// The recording's file name.
    pub file: String,
    /// The recorded connection it plays the server side of.
    pub recorded_conn: ConnId,
    pub timing: ReplayTiming,
    /// Bytes the client sent that equal the recording's, from the start
    /// up to the first difference.
    pub matched: u64,
    /// Bytes the client sent in the recording.
    pub expected: u64,
    /// Bytes the client sent beyond them.
    pub beyond: u64,
    /// Recorded server writes queued so far, of `steps` in all.
    pub sent_writes: u32,
    pub writes: u32,
    /// Whether the recorded server ended the conversation (FIN or reset),
    /// and the replay did so already.
    pub ends_with: Option<CloseReason>,
    pub ended: bool,
    pub divergence: Option<ReplayDivergence>,
}

/// What crosses from the engine to a viewer, once per flush.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub seq: u64,
    pub events: Vec<Event>,
    pub counters: Vec<ConnCounters>,
    pub stats: Option<EngineStats>,
    pub details: Vec<ConnDetail>,
    /// Events dropped for this consumer since it started, cumulative.
    pub dropped_events: u64,
    /// Set when this batch resynchronises its consumer: in the first batch
    /// and in the first one after anything was lost. It lists every
    /// connection open now, and `counters` holds theirs. A connection the
    /// consumer shows as open but that is not listed has closed (ids are
    /// never reused), so a viewer converges after any loss.
    pub open_conns: Option<Vec<ConnId>>,
    /// Answers to `TryScenario`, in the order asked.
    pub tries: Vec<Result<crate::scenario::TryReport, String>>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.counters.is_empty()
            && self.stats.is_none()
            && self.details.is_empty()
            && self.open_conns.is_none()
            && self.tries.is_empty()
    }
}

/// What a viewer asks the engine to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Kick {
        targets: Targets,
        mode: KickMode,
    },
    Inject {
        targets: Targets,
        bytes: Vec<u8>,
    },
    SetMode(Mode),
    /// Stop listening (if listening) and listen on `addr` instead.
    Listen {
        addr: String,
    },
    StopListening,
    SetReadPaused {
        targets: Targets,
        paused: bool,
    },
    /// Ask for a `ConnDetail` snapshot, answered in a later batch.
    Inspect {
        conn: ConnId,
    },
    /// The connections a viewer shows now (the inspected one and the
    /// visible rows); it replaces that viewer's previous set (an empty one
    /// ends its watch). The engine samples what any viewer watches up to
    /// ten times a second, the rest once a second. A viewer names at most
    /// [`MAX_WATCHED`].
    Watch {
        viewer: ViewerId,
        conns: Vec<ConnId>,
    },
    /// Set the faults of connections, or those new connections get. The
    /// faults given replace the ones in force (an empty set lifts them).
    SetFaults {
        scope: FaultScope,
        /// Boxed: commands travel through bounded channels by value.
        faults: Box<crate::faults::Faults>,
    },
    /// Set or lift the engine-wide fault on accepting.
    SetAcceptFault(Option<crate::faults::AcceptFault>),
    /// Run this scenario on every connection (`None` lifts it). One that
    /// does not compile is refused whole, and the running one stays.
    SetScenario(Option<Box<crate::scenario::ScenarioFile>>),
    /// Run this scenario on these open connections only (`None`: they stop
    /// running one and get the mode); the one new connections get stays.
    /// One that does not compile is refused whole.
    SetConnScenario {
        targets: Targets,
        scenario: Option<Box<crate::scenario::ScenarioFile>>,
    },
    /// Say what `input` would do under `scenario` (the running one is not
    /// touched), answered in a later batch's `tries`.
    TryScenario {
        scenario: Box<crate::scenario::ScenarioFile>,
        input: Vec<u8>,
    },
    /// Record everything from now on into `path` (a recording already on
    /// is closed first). `max_bytes` caps each file; at the cap the
    /// recording stops, or with `rotate` goes on in a new part.
    StartRecording {
        path: String,
        max_bytes: Option<u64>,
        rotate: bool,
    },
    StopRecording,
}

/// Whom a `SetFaults` is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultScope {
    /// Connections accepted from now on.
    New,
    /// These connections (and `All` the open ones).
    Conns(Targets),
}
