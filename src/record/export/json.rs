//! A message list per connection, shaped like the WebSocket message lists
//! of Chrome's DevTools and mitmproxy, for scripts and diffing.
//!
//! Seen from the client, as Chrome sees it from the browser: `"send"` is
//! what the client sent (one read by the server), `"receive"` what the
//! server sent it (one write). The document says so in `perspective`.
//! Times are ISO-8601 UTC strings with microseconds (`time`), plus the
//! engine's own microseconds since it started (`engine_us`), which are
//! exact and what the app shows.

use super::{Conversation, Recording, What, describe_loss, iso8601, unix_micros};
use crate::protocol::{Direction, Micros};
use data_encoding::{BASE64, HEXLOWER};
use serde::Serialize;
use std::io::{self, Write};

/// Payloads up to this long get a `hex` field too (easy to read by eye).
pub const HEX_UP_TO: usize = 64;

const PERSPECTIVE_NOTE: &str = "messages are seen from the client: \"send\" is what the client sent to the server, \"receive\" what the server sent to the client; one message per read or write the server made";

#[derive(Serialize)]
struct Document {
    format: &'static str,
    version: u32,
    perspective: &'static str,
    perspective_note: &'static str,
    exported_by: String,
    /// The muxscope that wrote the recording.
    recorded_by: String,
    engine_started: String,
    engine_started_unix_ms: u64,
    recording_started: Stamp,
    lost_events: u64,
    /// Set when the file is damaged: the export ends there.
    damaged: Option<String>,
    connections: Vec<Connection>,
}

#[derive(Serialize)]
struct Stamp {
    time: String,
    engine_us: Micros,
}

#[derive(Serialize)]
struct Connection {
    id: u64,
    peer: Option<String>,
    server: String,
    opened: Stamp,
    /// Accepted before the recording started: `opened` is when the
    /// recording first saw it.
    opened_before_recording: bool,
    closed: Option<Stamp>,
    close_reason: Option<String>,
    bytes_sent: u64,
    bytes_received: u64,
    messages: Vec<Message>,
    /// muxscope's events on this connection (injects, kicks, pauses,
    /// faults, rules, the close), and what the recording lost.
    events: Vec<Note>,
}

#[derive(Serialize)]
struct Message {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    engine_us: Micros,
    length: usize,
    /// Base64 (standard alphabet, padded).
    data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
}

#[derive(Serialize)]
struct Note {
    time: String,
    engine_us: Micros,
    kind: &'static str,
    what: String,
}

pub fn write(rec: &Recording, convs: &[&Conversation], mut out: impl Write) -> io::Result<()> {
    let stamp = |at: Micros| Stamp {
        time: iso8601(unix_micros(&rec.header, at)),
        engine_us: at,
    };
    let connections = convs
        .iter()
        .map(|c| {
            let mut messages = Vec::new();
            let mut events = Vec::new();
            let (mut sent, mut received) = (0, 0);
            for item in &c.items {
                let Stamp { time, engine_us } = stamp(item.at);
                match &item.what {
                    What::Data(dir, bytes) => {
                        let kind = match dir {
                            Direction::Rx => {
                                sent += bytes.len() as u64;
                                "send"
                            }
                            Direction::Tx => {
                                received += bytes.len() as u64;
                                "receive"
                            }
                        };
                        messages.push(Message {
                            kind,
                            time,
                            engine_us,
                            length: bytes.len(),
                            data: BASE64.encode(bytes),
                            hex: (bytes.len() <= HEX_UP_TO).then(|| HEXLOWER.encode(bytes)),
                        });
                    }
                    What::Event(kind) => events.push(Note {
                        time,
                        engine_us,
                        kind: kind.name(),
                        what: kind.describe(),
                    }),
                    What::Lost { rx, tx } => events.push(Note {
                        time,
                        engine_us,
                        kind: "lost",
                        what: describe_loss(*rx, *tx),
                    }),
                }
            }
            Connection {
                id: c.id.0,
                peer: c.peer.map(|p| p.to_string()),
                server: c.server.to_string(),
                opened: stamp(c.opened),
                opened_before_recording: c.opened_before,
                closed: c.closed.as_ref().map(|(at, _)| stamp(*at)),
                close_reason: c.closed.as_ref().map(|(_, r)| r.to_string()),
                bytes_sent: sent,
                bytes_received: received,
                messages,
                events,
            }
        })
        .collect();
    let doc = Document {
        format: "muxscope-export",
        version: 1,
        perspective: "client",
        perspective_note: PERSPECTIVE_NOTE,
        exported_by: format!("muxscope {}", env!("CARGO_PKG_VERSION")),
        recorded_by: format!("muxscope {}", rec.header.writer),
        engine_started: iso8601(unix_micros(&rec.header, 0)),
        engine_started_unix_ms: rec.header.engine_started_unix_ms,
        recording_started: stamp(rec.header.started_at),
        lost_events: rec.lost_events,
        damaged: rec.damage.as_ref().map(|d| d.to_string()),
        connections,
    };
    serde_json::to_writer_pretty(&mut out, &doc)?;
    out.write_all(b"\n")?;
    out.flush()
}
