//! How [`Batch`]es and [`Command`]s travel over the control WebSocket.
//!
//! - **Server → viewer: binary frames**, one [`Batch`] each: a one-byte wire
//!   version followed by the batch in [postcard]. Batches are the volume (up
//!   to hundreds per second, thousands of events each), so they get the most
//!   compact serde format there is: varint integers, no field names, about a
//!   tenth of the JSON size, and one encoding shared by every viewer.
//! - **Viewer → server: text frames**, one [`Command`] each in RON. Commands
//!   are few and small; text keeps them readable in the browser's network
//!   tab and typeable from any WebSocket tool (`Kick(targets: All, mode:
//!   Reset)`), and it sidesteps a quirk of ewebsock on the web, which
//!   switches the socket to `Blob` delivery (decoded asynchronously) after
//!   the page sends its first binary frame.
//!
//! Decoding never panics and never trusts a length: postcard checks every
//! length against the bytes that are there, and RON has a recursion limit.
//! The transport bounds a viewer's message to [`MAX_VIEWER_MESSAGE`].

use crate::protocol::{Batch, Command};
use std::fmt;

/// The first byte of every server frame. Bump it when a protocol type
/// changes shape; a viewer built from other sources then says so instead of
/// misreading the stream.
pub const WIRE_VERSION: u8 = 7;

/// The largest message (and frame) a viewer may send. A command is a few
/// dozen bytes; an `Inject` with a pasted payload is the only big one.
pub const MAX_VIEWER_MESSAGE: usize = 1 << 20;

/// Why a message could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    Empty,
    /// The frame was written by another version of muxscope.
    Version {
        got: u8,
    },
    Malformed(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Empty => f.write_str("empty message"),
            WireError::Version { got } => write!(
                f,
                "wire version {got}, expected {WIRE_VERSION}: the viewer and the server are different builds"
            ),
            WireError::Malformed(e) => write!(f, "malformed message: {e}"),
        }
    }
}

impl std::error::Error for WireError {}

/// The binary frame for `batch`.
pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + batch.events.len() * 12 + batch.counters.len() * 80);
    out.push(WIRE_VERSION);
    // Serializing plain data into a Vec cannot fail.
    postcard::to_extend(batch, out).expect("postcard encodes a Batch into a Vec")
}

pub fn decode_batch(frame: &[u8]) -> Result<Batch, WireError> {
    let (&version, body) = frame.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::Version { got: version });
    }
    match postcard::take_from_bytes::<Batch>(body) {
        Ok((batch, [])) => Ok(batch),
        Ok((_, rest)) => Err(WireError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        ))),
        Err(e) => Err(WireError::Malformed(e.to_string())),
    }
}

/// The text frame for `cmd`.
pub fn encode_command(cmd: &Command) -> String {
    ron::to_string(cmd).expect("RON encodes a Command")
}

pub fn decode_command(text: &str) -> Result<Command, WireError> {
    if text.trim().is_empty() {
        return Err(WireError::Empty);
    }
    // Scenario files inside commands write options bare (`delay: "1s"`),
    // as their own files do.
    crate::scenario::ron_options()
        .from_str(text)
        .map_err(|e| WireError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{KickMode, Targets};

    #[test]
    fn empty_batch_is_small() {
        let frame = encode_batch(&Batch::default());
        assert!(frame.len() < 16, "{} bytes", frame.len());
        assert_eq!(decode_batch(&frame).unwrap(), Batch::default());
    }

    #[test]
    fn commands_are_readable_text() {
        let cmd = Command::Kick {
            targets: Targets::All,
            mode: KickMode::Reset,
        };
        let text = encode_command(&cmd);
        assert_eq!(text, "Kick(targets:All,mode:Reset)");
        assert_eq!(
            decode_command("Kick(targets: All, mode: Reset)").unwrap(),
            cmd
        );
    }
}
