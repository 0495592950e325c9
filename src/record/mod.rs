//! Recordings (`*.muxrec`): everything an engine reported, and every byte
//! each client sent and was sent, kept in a file that can be opened later,
//! replayed, exported and shared.
//!
//! - [`frame`]: the file's framing (magic, then length + checksum frames),
//!   which is what makes a file readable up to its last complete frame after
//!   a crash.
//! - [`parts`]: the file names of a rotated recording's parts.
//! - [`state`]: the session as of some instant, folded from records; the
//!   writer snapshots it into keyframes, a reader starts from one.
//! - [`reader`]: indexes a file (incrementally, so a window never stalls on
//!   a big one) and reads the records between two instants.
//! - [`replay`]: one recorded connection's server side, compiled into a
//!   script a live client is played against (`--replay`).
//! - `writer` (native): the thread that writes, off the engine thread.
//! - `export` (native): pcapng, JSON and raw exports of a file.
//!
//! The records themselves are the protocol's own types (`Batch`, …) in
//! postcard, so a recording holds exactly what a viewer was told.

pub mod frame;
pub mod parts;
pub mod reader;
pub mod replay;
pub mod state;

#[cfg(not(target_arch = "wasm32"))]
pub mod writer;

/// Exports for other tools (pcapng, JSON, raw bytes); native only, as the
/// command line that runs them is.
#[cfg(not(target_arch = "wasm32"))]
pub mod export;

use crate::protocol::{
    Batch, ConnCounters, ConnId, Direction, EngineStats, Event, Micros, QueuedMessage,
};
use serde::{Deserialize, Serialize};

/// The file name extension.
pub const EXTENSION: &str = "muxrec";

/// Bumped when a record type changes shape. It covers the protocol types
/// inside records too, so it moves with `control::wire::WIRE_VERSION`.
pub const FORMAT_VERSION: u32 = 1;

/// The first frame of every file (and of every part of a rotated one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format_version: u32,
    /// The muxscope that wrote it (`CARGO_PKG_VERSION`).
    pub writer: String,
    /// Wall-clock time of the engine's start: engine times (`Micros`) are
    /// relative to it.
    pub engine_started_unix_ms: u64,
    /// When this file was started, in engine time.
    pub started_at: Micros,
    /// 1 for the first file of a recording, 2… for the parts rotation made.
    pub part: u32,
}

/// Bytes that moved on one connection in one read or write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataChunk {
    pub at: Micros,
    pub conn: ConnId,
    pub dir: Direction,
    /// As bytes, not a sequence of `u8`: the same postcard encoding, read
    /// back with one copy instead of a call per byte (most of a file is
    /// these).
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// What the recording did not get, because its writer fell behind: counted
/// exactly, and written as soon as there was room again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    /// The span the losses happened in (engine time).
    pub from: Micros,
    pub to: Micros,
    pub events: u64,
    /// Bytes of conversation lost, per connection and direction.
    pub conns: Vec<ConnLoss>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnLoss {
    pub conn: ConnId,
    pub rx: u64,
    pub tx: u64,
}

impl Loss {
    pub fn bytes(&self) -> u64 {
        self.conns.iter().map(|c| c.rx + c.tx).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0 && self.conns.is_empty()
    }

    /// One line for logs and the replay's event list.
    pub fn describe(&self) -> String {
        format!(
            "the recording lost {} events and {} of conversation on {} connections (its writer fell behind)",
            self.events,
            crate::format::bytes(self.bytes()),
            self.conns.len()
        )
    }
}

/// One thing in a records frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// What the engine reported in one flush (its stats travel in stats
    /// frames instead, so a reader can index them cheaply).
    Batch(Box<Batch>),
    Data(DataChunk),
    Lost(Loss),
}

impl Record {
    /// The latest engine time this record speaks of, if any.
    pub fn at(&self) -> Option<Micros> {
        match self {
            Record::Batch(b) => b.events.last().map(|e| e.at),
            Record::Data(d) => Some(d.at),
            Record::Lost(l) => Some(l.to),
        }
    }
}

/// The session as of `at`: enough to show every pane from there on
/// without reading what came before.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Keyframe {
    pub at: Micros,
    pub stats: Option<EngineStats>,
    /// Open connections, and those closed in the last minute.
    pub counters: Vec<ConnCounters>,
    /// The latest events (at most [`state::RECENT_EVENTS`]).
    pub events: Vec<Event>,
    /// What each connection with a non-empty queue has queued.
    pub queues: Vec<(ConnId, Vec<QueuedMessage>)>,
    /// Bytes seen so far per connection (rx, tx): a transcript read back
    /// from here knows its offsets.
    pub totals: Vec<(ConnId, u64, u64)>,
}

/// Why a recording ended (the last frame of a file that was closed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    pub at: Micros,
    pub reason: String,
    /// Another part follows (rotation), with this file name.
    pub next_part: Option<String>,
}
