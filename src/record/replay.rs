//! A recording turned into a server (`--replay`): the server side of one
//! recorded connection, compiled once into an immutable script that every
//! new client is played against.
//!
//! The script is a list of steps in recorded order: each recorded server
//! write (one Tx chunk, one step, so write boundaries survive), and at the
//! end the recorded server's FIN or reset if it ended the conversation.
//! Each step knows how many client bytes had arrived before it (`after_rx`,
//! for `wait` timing) and when it happened after the accept (`at`, for
//! `original` timing). What the client sent is kept as one buffer, which a
//! live client's bytes are compared with.
//!
//! The engine's per-connection side is `engine::replay`.

use super::reader::{Reader, Source};
use super::{DataChunk, Record};
use crate::protocol::{CloseReason, ConnId, Direction, EventKind, KickMode, Micros, ReplayTiming};
use std::collections::BTreeSet;

/// Bytes of each side a divergence shows.
pub const DIVERGENCE_SHOWN: usize = 16;

/// One thing the recorded server did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayStep {
    /// One recorded write: `after_rx` client bytes had arrived before it,
    /// `at` after the accept.
    Send {
        after_rx: u64,
        at: Micros,
        bytes: Vec<u8>,
    },
    /// The recorded server ended the conversation: with a FIN, or a reset.
    Close {
        after_rx: u64,
        at: Micros,
        reset: bool,
    },
}

impl ReplayStep {
    pub fn after_rx(&self) -> u64 {
        match self {
            ReplayStep::Send { after_rx, .. } | ReplayStep::Close { after_rx, .. } => *after_rx,
        }
    }

    pub fn at(&self) -> Micros {
        match self {
            ReplayStep::Send { at, .. } | ReplayStep::Close { at, .. } => *at,
        }
    }
}

/// The server side of one recorded connection, ready to play.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayScript {
    /// The recording's file name (for lines and the inspector).
    pub file: String,
    /// The recorded connection played.
    pub conn: ConnId,
    pub timing: ReplayTiming,
    /// A client that differs from the recording is reset.
    pub strict: bool,
    pub steps: Vec<ReplayStep>,
    /// Every byte the client sent in the recording, in order.
    pub expected: Vec<u8>,
    /// How the recorded connection ended, if the server ended it.
    pub ends_with: Option<CloseReason>,
    /// What was wrong with the file (damage, losses): the script holds what
    /// could be read.
    pub warnings: Vec<String>,
}

/// Everything one recorded connection left in the file.
#[derive(Debug, Default)]
struct Track {
    accepted_at: Option<Micros>,
    first_at: Option<Micros>,
    chunks: Vec<DataChunk>,
    closed: Option<(Micros, CloseReason)>,
    kicked_at: Option<Micros>,
    lost: u64,
}

impl ReplayScript {
    /// Read `path` and compile the server side of connection `conn` (by
    /// default the first one with any bytes). The error is one line that
    /// names the file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(
        path: &std::path::Path,
        conn: Option<u64>,
        timing: ReplayTiming,
        strict: bool,
    ) -> Result<ReplayScript, String> {
        let shown = path.display().to_string();
        let fail = |why: String| format!("cannot replay {shown}: {why}");
        let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let reader = Reader::open(file).map_err(|e| fail(e.to_string()))?;
        let name = path
            .file_name()
            .map_or(shown.clone(), |n| n.to_string_lossy().into_owned());
        Self::compile(reader, name, conn, timing, strict).map_err(fail)
    }

    /// [`ReplayScript::load`] on an opened recording.
    pub fn compile<S: Source>(
        mut reader: Reader<S>,
        file: String,
        conn: Option<u64>,
        timing: ReplayTiming,
        strict: bool,
    ) -> Result<ReplayScript, String> {
        // First pass: which connections exist, and which have bytes, so
        // the default and the errors need not keep every connection's bytes.
        let mut seen = BTreeSet::new();
        let mut with_bytes = BTreeSet::new();
        reader.for_each_record(|r| match r {
            Record::Data(d) => {
                seen.insert(d.conn);
                with_bytes.insert(d.conn);
            }
            Record::Batch(b) => seen.extend(b.events.iter().filter_map(|e| e.conn)),
            Record::Lost(_) => {}
        })?;
        let ids = |set: &BTreeSet<ConnId>| list_ids(set.iter());
        let conn = match conn {
            Some(n) if with_bytes.contains(&ConnId(n)) => ConnId(n),
            Some(n) if seen.contains(&ConnId(n)) => {
                return Err(format!(
                    "its connection #{n} has no bytes to replay (connections with bytes: {})",
                    or_none(&ids(&with_bytes))
                ));
            }
            Some(n) => {
                return Err(format!(
                    "it has no connection #{n} (it has {})",
                    or_none(&ids(&seen))
                ));
            }
            None => *with_bytes.iter().next().ok_or_else(|| {
                format!(
                    "none of its connections has any bytes to replay (connections: {})",
                    or_none(&ids(&seen))
                )
            })?,
        };

        let mut track = Track::default();
        reader.for_each_record(|r| match r {
            Record::Data(d) if d.conn == conn => {
                track.first_at.get_or_insert(d.at);
                track.chunks.push(d.clone());
            }
            Record::Data(_) => {}
            Record::Batch(b) => {
                for e in b.events.iter().filter(|e| e.conn == Some(conn)) {
                    match &e.kind {
                        EventKind::Accepted { .. } => track.accepted_at = Some(e.at),
                        EventKind::Kicked {
                            mode: KickMode::Graceful,
                        } => {
                            track.kicked_at.get_or_insert(e.at);
                        }
                        EventKind::Closed { reason } => track.closed = Some((e.at, reason.clone())),
                        _ => {}
                    }
                }
            }
            Record::Lost(l) => {
                track.lost += l
                    .conns
                    .iter()
                    .filter(|c| c.conn == conn)
                    .map(|c| c.rx + c.tx)
                    .sum::<u64>();
            }
        })?;

        let mut warnings = Vec::new();
        if let Some(damage) = &reader.index.damage {
            warnings.push(format!(
                "the file is {damage}; replaying what comes before it"
            ));
        }
        if track.lost > 0 {
            warnings.push(format!(
                "the recording lost {} of connection {conn} (its writer fell behind): the replay has gaps",
                crate::format::bytes(track.lost)
            ));
        }
        if track.accepted_at.is_none() {
            warnings.push(format!(
                "connection {conn} was accepted before the recording began: the replay starts from its first recorded byte"
            ));
        }
        Ok(Self::from_track(
            file, conn, timing, strict, track, warnings,
        ))
    }

    fn from_track(
        file: String,
        conn: ConnId,
        timing: ReplayTiming,
        strict: bool,
        track: Track,
        warnings: Vec<String>,
    ) -> ReplayScript {
        let base = track.accepted_at.or(track.first_at).unwrap_or(0);
        let mut expected = Vec::new();
        let mut steps = Vec::new();
        let mut last_tx_at = None;
        for chunk in track.chunks {
            match chunk.dir {
                Direction::Rx => expected.extend_from_slice(&chunk.bytes),
                Direction::Tx => {
                    last_tx_at = Some(chunk.at);
                    steps.push(ReplayStep::Send {
                        after_rx: expected.len() as u64,
                        at: chunk.at.saturating_sub(base),
                        bytes: chunk.bytes,
                    });
                }
            }
        }
        let ends_with = track.closed.and_then(|(closed_at, reason)| {
            let reset = server_close(&reason)?;
            // A reset happens when the connection is removed; a FIN goes
            // out earlier, when a kick began or after the last write, and
            // the removal waits for the client's FIN.
            let at = if reset || reason == CloseReason::EngineStopped {
                closed_at
            } else {
                track
                    .kicked_at
                    .or(last_tx_at)
                    .unwrap_or(closed_at)
                    .min(closed_at)
            };
            steps.push(ReplayStep::Close {
                after_rx: expected.len() as u64,
                at: at.saturating_sub(base),
                reset,
            });
            Some(reason)
        });
        ReplayScript {
            file,
            conn,
            timing,
            strict,
            steps,
            expected,
            ends_with,
            warnings,
        }
    }

    /// Recorded server writes (not counting the close).
    pub fn writes(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, ReplayStep::Send { .. }))
            .count()
    }

    /// What `--replay` says at start: `muxscope replaying FILE conn #3
    /// (wait timing): 12 server writes, 340 B expected from the client`.
    pub fn summary_line(&self) -> String {
        let mut line = format!(
            "muxscope replaying {} conn {} ({} timing{}): {} server writes, {} expected from the client",
            self.file,
            self.conn,
            self.timing.name(),
            if self.strict { ", strict" } else { "" },
            self.writes(),
            crate::format::bytes(self.expected.len() as u64),
        );
        match self.steps.last() {
            Some(ReplayStep::Close { reset: true, .. }) => line.push_str(", then a reset"),
            Some(ReplayStep::Close { reset: false, .. }) => line.push_str(", then a FIN"),
            _ => {}
        }
        line
    }
}

/// Whether the recorded server ended the conversation, and if so whether
/// with a reset; `None` when the client did (or nobody knows who).
fn server_close(reason: &CloseReason) -> Option<bool> {
    match reason {
        CloseReason::PeerClosed
        | CloseReason::PeerReset
        | CloseReason::Error(_)
        | CloseReason::Missed => None,
        CloseReason::Kicked(mode) => Some(*mode == KickMode::Reset),
        CloseReason::EngineStopped => Some(false),
        CloseReason::KickTimedOut { .. }
        | CloseReason::RuleTimedOut { .. }
        | CloseReason::ReplayTimedOut { .. }
        | CloseReason::ReplayDiverged { .. } => Some(true),
        CloseReason::Fault { reset, .. }
        | CloseReason::Rule { reset, .. }
        | CloseReason::ReplayEnded { reset } => Some(*reset),
    }
}

/// `#1, #2, #5` (at most 20, then how many more).
fn list_ids<'a>(ids: impl Iterator<Item = &'a ConnId>) -> String {
    const SHOWN: usize = 20;
    let ids: Vec<&ConnId> = ids.collect();
    let mut out: Vec<String> = ids.iter().take(SHOWN).map(|id| id.to_string()).collect();
    if ids.len() > SHOWN {
        out.push(format!("and {} more", ids.len() - SHOWN));
    }
    out.join(", ")
}

fn or_none(list: &str) -> &str {
    if list.is_empty() { "none" } else { list }
}

/// Where `got` (the client's bytes from offset `from`) first differs from
/// `expected` (the recording's, whole), within what both have.
pub fn first_difference(expected: &[u8], from: u64, got: &[u8]) -> Option<usize> {
    let rest = expected.get(from as usize..).unwrap_or(&[]);
    rest.iter().zip(got).position(|(a, b)| a != b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(at: Micros, dir: Direction, bytes: &[u8]) -> DataChunk {
        DataChunk {
            at,
            conn: ConnId(1),
            dir,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn steps_know_what_came_before_them_and_when() {
        let track = Track {
            accepted_at: Some(1_000),
            first_at: Some(1_100),
            chunks: vec![
                chunk(1_100, Direction::Tx, b"hello\n"),
                chunk(2_000, Direction::Rx, b"ab"),
                chunk(2_500, Direction::Rx, b"c\n"),
                chunk(3_000, Direction::Tx, b"abc\n"),
                chunk(3_001, Direction::Tx, b"!"),
            ],
            closed: Some((9_000, CloseReason::Kicked(KickMode::Reset))),
            kicked_at: None,
            lost: 0,
        };
        let s = ReplayScript::from_track(
            "x.muxrec".into(),
            ConnId(1),
            ReplayTiming::Wait,
            false,
            track,
            vec![],
        );
        assert_eq!(s.expected, b"abc\n");
        assert_eq!(
            s.steps,
            vec![
                ReplayStep::Send {
                    after_rx: 0,
                    at: 100,
                    bytes: b"hello\n".to_vec()
                },
                ReplayStep::Send {
                    after_rx: 4,
                    at: 2_000,
                    bytes: b"abc\n".to_vec()
                },
                ReplayStep::Send {
                    after_rx: 4,
                    at: 2_001,
                    bytes: b"!".to_vec()
                },
                ReplayStep::Close {
                    after_rx: 4,
                    at: 8_000,
                    reset: true
                },
            ]
        );
        assert_eq!(
            s.summary_line(),
            "muxscope replaying x.muxrec conn #1 (wait timing): 3 server writes, 4 B expected from the client, then a reset"
        );
    }

    #[test]
    fn a_client_that_closed_leaves_no_close_step() {
        let track = Track {
            chunks: vec![chunk(5, Direction::Rx, b"x")],
            closed: Some((9, CloseReason::PeerClosed)),
            ..Track::default()
        };
        let s = ReplayScript::from_track(
            "x".into(),
            ConnId(1),
            ReplayTiming::Original,
            false,
            track,
            vec![],
        );
        assert!(s.steps.is_empty());
        assert_eq!(s.ends_with, None);
    }

    #[test]
    fn differences_are_found_within_what_both_sides_have() {
        assert_eq!(first_difference(b"PING\r\n", 0, b"PONG"), Some(1));
        assert_eq!(first_difference(b"PING\r\n", 2, b"NG\r\n"), None);
        assert_eq!(first_difference(b"PING", 2, b"NGxx"), None, "surplus");
        assert_eq!(first_difference(b"PING", 9, b"x"), None);
    }
}
