//! A transcript cut into messages, the way the scenario's framing cuts
//! them: a read is not a message (mitmproxy #1020), so each direction's
//! bytes are joined and re-split, each message stamped with the time of
//! the read that completed it. What is left over is a pending message.

use crate::protocol::{Direction, Micros, TranscriptChunk};
use crate::scenario::{Framer, Framing};

/// One message of one direction, as framed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramedMessage {
    /// When its last byte arrived (or was sent).
    pub at: Micros,
    pub dir: Direction,
    /// The frame as it went over the wire: prefix, body, delimiter.
    pub raw: Vec<u8>,
    pub state: MessageState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageState {
    Complete,
    /// Still waiting for the rest of its bytes.
    Pending,
    /// The framing failed here: these bytes, and all after them in this
    /// direction, are shown as read.
    Unframed(String),
}

/// Both directions of `chunks` framed with `framing` (messages over `max`
/// bytes are errors), in time order.
pub fn frame_transcript(
    chunks: &[TranscriptChunk],
    framing: &Framing,
    max: usize,
) -> Vec<FramedMessage> {
    let mut out = Vec::new();
    for dir in [Direction::Rx, Direction::Tx] {
        let mut framer = Framer::new();
        let mut failed = false;
        let mut last_at = None;
        for chunk in chunks.iter().filter(|c| c.dir == dir) {
            last_at = Some(chunk.at);
            if failed {
                out.push(unframed(chunk, None));
                continue;
            }
            let mut complete = Vec::new();
            let result = framer.push(framing, max, &chunk.bytes, |m| {
                complete.push(m.raw.to_vec());
            });
            out.extend(complete.into_iter().map(|raw| FramedMessage {
                at: chunk.at,
                dir,
                raw,
                state: MessageState::Complete,
            }));
            if let Err(e) = result {
                failed = true;
                out.push(unframed(chunk, Some(e.to_string())));
            }
        }
        if let Some(at) = last_at
            && !failed
            && !framer.pending().is_empty()
        {
            out.push(FramedMessage {
                at,
                dir,
                raw: framer.pending().to_vec(),
                state: MessageState::Pending,
            });
        }
    }
    // Stable: within one time, receptions stay before what answered them.
    out.sort_by_key(|m| m.at);
    out
}

fn unframed(chunk: &TranscriptChunk, why: Option<String>) -> FramedMessage {
    FramedMessage {
        at: chunk.at,
        dir: chunk.dir,
        raw: chunk.bytes.clone(),
        state: MessageState::Unframed(why.unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(at: Micros, dir: Direction, bytes: &[u8]) -> TranscriptChunk {
        TranscriptChunk {
            at,
            dir,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn lines_split_over_reads_become_messages_with_the_completing_time() {
        let chunks = [
            chunk(1, Direction::Rx, b"PI"),
            chunk(2, Direction::Rx, b"NG\nECHO a\nhal"),
            chunk(3, Direction::Tx, b"+PONG\r\n"),
        ];
        let got = frame_transcript(&chunks, &Framing::Lines, 1 << 20);
        let rows: Vec<(Micros, Direction, &[u8], &MessageState)> = got
            .iter()
            .map(|m| (m.at, m.dir, m.raw.as_slice(), &m.state))
            .collect();
        assert_eq!(
            rows,
            [
                (2, Direction::Rx, &b"PING\n"[..], &MessageState::Complete),
                (2, Direction::Rx, &b"ECHO a\n"[..], &MessageState::Complete),
                (2, Direction::Rx, &b"hal"[..], &MessageState::Pending),
                (3, Direction::Tx, &b"+PONG\r\n"[..], &MessageState::Complete),
            ]
        );
    }

    #[test]
    fn a_framing_error_shows_the_rest_of_that_direction_as_read() {
        let framing = Framing::LengthPrefix {
            width: 1,
            big_endian: true,
            includes_header: false,
            offset: 0,
        };
        let chunks = [
            chunk(1, Direction::Rx, &[2, b'h', b'i']),
            chunk(2, Direction::Rx, &[200, 1]),
            chunk(3, Direction::Rx, b"after"),
        ];
        let got = frame_transcript(&chunks, &framing, 16);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].raw, [2, b'h', b'i']);
        assert!(matches!(&got[1].state, MessageState::Unframed(why) if !why.is_empty()));
        assert_eq!(got[2].raw, b"after");
        assert_eq!(got[2].state, MessageState::Unframed(String::new()));
    }
}
