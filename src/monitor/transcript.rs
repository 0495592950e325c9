//! Searching an inspector transcript and copying it out, the way
//! Wireshark's Follow Stream does: plain Rust over the protocol's chunks,
//! so the inspector only draws what this finds.

use crate::payload;
use crate::protocol::{Direction, TranscriptChunk};
use std::ops::Range;

/// Matches past this many are not reported; the count says "at least".
pub const MAX_MATCHES: usize = 10_000;

/// One occurrence of the needle: the byte ranges it covers, chunk by chunk.
/// It spans several chunks when a client wrote it in several reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    pub pieces: Vec<(usize, Range<usize>)>,
}

/// Every occurrence of `needle` in the transcript, oldest first. A run of
/// consecutive chunks in one direction is searched as one stream, since one
/// read is not one message; directions are never joined.
pub fn find(chunks: &[TranscriptChunk], needle: &[u8]) -> Vec<Match> {
    let mut found = Vec::new();
    if needle.is_empty() {
        return found;
    }
    let finder = memchr::memmem::Finder::new(needle);
    let mut run_start = 0;
    while run_start < chunks.len() {
        let dir = chunks[run_start].dir;
        let run_end = chunks[run_start..]
            .iter()
            .position(|c| c.dir != dir)
            .map_or(chunks.len(), |n| run_start + n);
        let run = &chunks[run_start..run_end];
        // Where each chunk starts in the joined run.
        let mut starts = Vec::with_capacity(run.len());
        let mut joined = Vec::new();
        for c in run {
            starts.push(joined.len());
            joined.extend_from_slice(&c.bytes);
        }
        for at in finder.find_iter(&joined) {
            // Occurrences do not overlap: "aa" in "aaa" is found once.
            if let Some(Match { pieces }) = found.last()
                && let Some((chunk, range)) = pieces.last()
                && *chunk >= run_start
                && starts[chunk - run_start] + range.end > at
            {
                continue;
            }
            found.push(Match {
                pieces: pieces_of(&starts, run, run_start, at..at + needle.len()),
            });
            if found.len() == MAX_MATCHES {
                return found;
            }
        }
        run_start = run_end;
    }
    found
}

/// The chunk ranges that `span` (offsets in a joined run) covers.
fn pieces_of(
    starts: &[usize],
    run: &[TranscriptChunk],
    run_start: usize,
    span: Range<usize>,
) -> Vec<(usize, Range<usize>)> {
    let mut pieces = Vec::new();
    for (i, (&start, chunk)) in starts.iter().zip(run).enumerate() {
        let end = start + chunk.bytes.len();
        if end <= span.start || start >= span.end {
            continue;
        }
        let from = span.start.max(start) - start;
        let to = span.end.min(end) - start;
        pieces.push((run_start + i, from..to));
    }
    pieces
}

/// How a transcript is copied to the clipboard.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CopyFormat {
    /// As the text view shows it: printable ASCII, the rest escaped.
    Text,
    HexDump,
    /// One `unsigned char` array per chunk, like Wireshark's "C Arrays".
    CArray,
    /// One Python `bytes` literal per chunk.
    PythonBytes,
}

impl CopyFormat {
    pub const ALL: [CopyFormat; 4] = [
        CopyFormat::Text,
        CopyFormat::HexDump,
        CopyFormat::CArray,
        CopyFormat::PythonBytes,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CopyFormat::Text => "Text (escaped)",
            CopyFormat::HexDump => "Hex dump",
            CopyFormat::CArray => "C arrays",
            CopyFormat::PythonBytes => "Python bytes",
        }
    }
}

/// Which directions to copy.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Directions {
    Both,
    Only(Direction),
}

impl Directions {
    fn admit(self, dir: Direction) -> bool {
        match self {
            Directions::Both => true,
            Directions::Only(d) => d == dir,
        }
    }
}

/// The transcript (or one direction of it) as text in `format`. Each chunk
/// is introduced by its engine time, direction and size, as a comment
/// where the format is code, so the result pastes into a test as is.
pub fn export(chunks: &[TranscriptChunk], format: CopyFormat, which: Directions) -> String {
    let mut out = String::new();
    let (mut rx_n, mut tx_n) = (0usize, 0usize);
    for chunk in chunks.iter().filter(|c| which.admit(c.dir)) {
        let (name, prefix, n) = match chunk.dir {
            Direction::Rx => ("received", "rx", &mut rx_n),
            Direction::Tx => ("sent", "tx", &mut tx_n),
        };
        let header = format!(
            "{}.{:06} {name} {} B",
            chunk.at / 1_000_000,
            chunk.at % 1_000_000,
            chunk.bytes.len()
        );
        let var = format!("{prefix}_{n}");
        *n += 1;
        match format {
            CopyFormat::Text => {
                out.push_str(&format!("# {header}\n"));
                out.push_str(&payload::to_escaped_text(&chunk.bytes));
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            CopyFormat::HexDump => {
                out.push_str(&format!("# {header}\n"));
                out.push_str(&payload::hex_dump(&chunk.bytes));
            }
            CopyFormat::CArray => {
                out.push_str(&format!("/* {header} */\n"));
                out.push_str(&payload::to_c_array(&var, &chunk.bytes));
            }
            CopyFormat::PythonBytes => {
                out.push_str(&format!("# {header}\n{var} = "));
                out.push_str(&payload::to_python_bytes(&chunk.bytes));
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(dir: Direction, bytes: &[u8]) -> TranscriptChunk {
        TranscriptChunk {
            at: 1_500_000,
            dir,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn a_needle_split_across_reads_of_one_direction_is_found() {
        let chunks = [
            chunk(Direction::Rx, b"GET /in"),
            chunk(Direction::Rx, b"dex HTTP"),
            chunk(Direction::Tx, b"GET /index"),
        ];
        let found = find(&chunks, b"/index");
        assert_eq!(
            found,
            [
                Match {
                    pieces: vec![(0, 4..7), (1, 0..3)]
                },
                Match {
                    pieces: vec![(2, 4..10)]
                }
            ]
        );
    }

    #[test]
    fn directions_are_never_joined_and_matches_do_not_overlap() {
        let chunks = [
            chunk(Direction::Rx, b"ab"),
            chunk(Direction::Tx, b"cd"),
            chunk(Direction::Rx, b"aaaa"),
        ];
        assert!(find(&chunks, b"bc").is_empty());
        assert_eq!(find(&chunks, b"aa").len(), 2);
        assert!(find(&chunks, b"").is_empty());
    }

    #[test]
    fn matches_are_capped() {
        let chunks = [chunk(Direction::Rx, &vec![b'x'; MAX_MATCHES * 2])];
        assert_eq!(find(&chunks, b"x").len(), MAX_MATCHES);
    }

    #[test]
    fn exports_name_each_chunk_and_filter_directions() {
        let chunks = [
            chunk(Direction::Rx, b"hi\r\n"),
            chunk(Direction::Tx, &[0xde, 0xad]),
        ];
        assert_eq!(
            export(&chunks, CopyFormat::PythonBytes, Directions::Both),
            "# 1.500000 received 4 B\nrx_0 = b'hi\\r\\n'\n# 1.500000 sent 2 B\ntx_0 = b'\\xde\\xad'\n"
        );
        assert_eq!(
            export(&chunks, CopyFormat::CArray, Directions::Only(Direction::Tx)),
            "/* 1.500000 sent 2 B */\nstatic const unsigned char tx_0[2] = {\n    0xde, 0xad\n};\n"
        );
        assert_eq!(
            export(&chunks, CopyFormat::Text, Directions::Only(Direction::Rx)),
            "# 1.500000 received 4 B\nhi\\r\\n\n"
        );
        assert!(export(&chunks, CopyFormat::HexDump, Directions::Both).contains("00000000  de ad"));
    }
}
