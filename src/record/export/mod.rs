//! Exports of a recording for other tools: a capture Wireshark opens
//! ([`pcapng`]), a message list a script reads ([`json`]), and each
//! direction's bytes as they are ([`raw`]).
//!
//! Every format starts from the same regrouping ([`gather`]): one
//! conversation per connection. The file is read once and the conversations
//! are held in memory, so an export needs about as much memory as the bytes
//! it exports (`--conn` narrows it): 503 MB at its peak for a 347 MB file
//! of 64-byte messages (`cargo bench --bench recording`). Packets are made
//! as they are written, never all at once.

mod gather;
pub mod json;
pub mod pcapng;
pub mod raw;

pub use gather::{Conversation, Item, Recording, What, annotates, gather};

use super::Header;
use super::reader::Reader;
use crate::protocol::{ConnId, Micros};
use std::path::Path;

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Synthesized Ethernet/IP/TCP frames for Wireshark or tshark.
    Pcapng,
    /// One object per connection with its messages (base64).
    Json,
    /// A directory with one file per connection and direction.
    Raw,
}

/// What an export did.
#[derive(Debug, Default)]
pub struct Exported {
    pub connections: usize,
    /// Things the user should know (damage, losses); the export still
    /// holds everything that could be read.
    pub warnings: Vec<String>,
}

/// `#3` or `3`, as the app shows ids.
pub fn parse_conn_id(text: &str) -> Result<ConnId, String> {
    let digits = text.trim().strip_prefix('#').unwrap_or(text.trim());
    digits.parse().map(ConnId).map_err(|_| {
        format!("'{text}' is not a connection id: use the number the app shows, e.g. 3 or #3")
    })
}

/// Export `input` into `out` (a file, or for [`Format::Raw`] a directory),
/// keeping only the connections in `only` when it is not empty. Errors are
/// one line naming the file and what to do.
pub fn export(
    input: &Path,
    format: Format,
    only: &[ConnId],
    out: &Path,
) -> Result<Exported, String> {
    let name = input.display();
    let file = std::fs::File::open(input)
        .map_err(|e| format!("cannot read {name}: {e}; check the path"))?;
    let reader = Reader::open(file).map_err(|e| format!("cannot export {name}: {e}"))?;
    let recording = gather(reader).map_err(|e| {
        format!("cannot export {name}: {e}; the file may be changing (copy it and export the copy)")
    })?;
    let conversations = select(&recording, only).map_err(|e| format!("{name}: {e}"))?;
    let written = match format {
        Format::Pcapng => create(out).and_then(|f| pcapng::write(&recording, &conversations, f)),
        Format::Json => create(out).and_then(|f| json::write(&recording, &conversations, f)),
        Format::Raw => raw::write(&conversations, out),
    };
    written.map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let mut warnings = Vec::new();
    if let Some(damage) = &recording.damage {
        warnings.push(format!(
            "{name} is {damage}; everything before byte {} was exported",
            damage.offset
        ));
    }
    if let Some(next) = &recording.next_part {
        warnings.push(format!(
            "{name} is one part of a rotated recording: it continues in {next}, which was not exported; export each part (and join pcapng files with mergecap)"
        ));
    }
    let lost: u64 = conversations
        .iter()
        .flat_map(|c| &c.items)
        .map(|i| match i.what {
            What::Lost { rx, tx } => rx + tx,
            _ => 0,
        })
        .sum();
    if lost > 0 {
        warnings.push(format!(
            "the recording lost {} of these conversations while it was made (its writer fell behind); the export says where",
            crate::format::bytes(lost)
        ));
    }
    Ok(Exported {
        connections: conversations.len(),
        warnings,
    })
}

fn create(path: &Path) -> std::io::Result<std::io::BufWriter<std::fs::File>> {
    std::fs::File::create(path).map(std::io::BufWriter::new)
}

/// The conversations asked for (all when `only` is empty), or an error
/// that lists the ids the file has.
pub fn select<'a>(rec: &'a Recording, only: &[ConnId]) -> Result<Vec<&'a Conversation>, String> {
    if let Some(missing) = only
        .iter()
        .find(|id| !rec.conversations.iter().any(|c| c.id == **id))
    {
        let ids: Vec<String> = rec.conversations.iter().map(|c| c.id.to_string()).collect();
        return Err(if ids.is_empty() {
            format!("it has no connection {missing}: it has no connections at all")
        } else {
            format!(
                "it has no connection {missing}; its connections are {}",
                ids.join(", ")
            )
        });
    }
    Ok(rec
        .conversations
        .iter()
        .filter(|c| only.is_empty() || only.contains(&c.id))
        .collect())
}

/// Wall-clock time of an engine time, in µs since 1970.
pub fn unix_micros(header: &Header, at: Micros) -> u64 {
    header
        .engine_started_unix_ms
        .saturating_mul(1000)
        .saturating_add(at)
}

/// `2026-12-03T07:14:53.123456Z` (UTC, µs).
pub fn iso8601(unix_micros: u64) -> String {
    let (year, month, day, h, m, s) = crate::format::civil(unix_micros / 1_000_000);
    format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:06}Z",
        unix_micros % 1_000_000
    )
}

/// One line for bytes the recording lost on a connection.
pub fn describe_loss(rx: u64, tx: u64) -> String {
    format!(
        "the recording lost {} client→server and {} server→client here (its writer fell behind)",
        crate::format::bytes(rx),
        crate::format::bytes(tx)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_is_utc_with_microseconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 (a leap day) 12:34:56.789012
        assert_eq!(iso8601(951_827_696_789_012), "2000-02-29T12:34:56.789012Z");
        assert_eq!(
            iso8601(1_798_761_600_000_001),
            "2027-01-01T00:00:00.000001Z"
        );
    }

    #[test]
    fn connection_ids_are_read_as_the_app_shows_them() {
        assert_eq!(parse_conn_id("#3"), Ok(ConnId(3)));
        assert_eq!(parse_conn_id("12"), Ok(ConnId(12)));
        assert!(parse_conn_id("#x").unwrap_err().contains("e.g. 3 or #3"));
        assert!(parse_conn_id("-1").is_err());
    }
}
