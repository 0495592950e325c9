//! Reading a recording: check its magic and header, index its frames (every
//! checksum verified, a budget at a time, so a window stays responsive while
//! a big file is indexed), then read the records between two instants,
//! starting from the nearest keyframe.

use super::frame::{self, FrameHeader, HEADER_LEN, Kind, MAGIC};
use super::{FORMAT_VERSION, Header, Keyframe, Record, Trailer};
use crate::protocol::{EngineStats, Micros};
use std::io::{self, Read, Seek, SeekFrom};

/// Anything a recording can be read from: a file, or bytes in memory (the
/// web viewer's file input).
pub trait Source: Read + Seek {}
impl<T: Read + Seek> Source for T {}

/// One frame, as the index knows it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameEntry {
    pub offset: u64,
    pub kind: Kind,
    pub at: Micros,
    pub len: u32,
}

/// Where a file stops being readable, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub offset: u64,
    pub why: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "damaged at byte {}: {}", self.offset, self.why)
    }
}

/// What indexing found so far.
#[derive(Clone, Debug, Default)]
pub struct Index {
    pub frames: Vec<FrameEntry>,
    /// Indices into `frames` of the keyframes, in time order.
    pub keyframes: Vec<usize>,
    /// Every stats frame, decoded: the plot's history and the timeline.
    pub stats: Vec<EngineStats>,
    /// Engine time of the first and latest frame.
    pub start: Micros,
    pub end: Micros,
    /// Bytes verified so far, and the file's length.
    pub verified: u64,
    pub file_len: u64,
    /// Indexing reached the end of the file or its damage.
    pub done: bool,
    pub damage: Option<Damage>,
    /// Set when the file was closed properly.
    pub trailer: Option<Trailer>,
}

impl Index {
    /// The last keyframe at or before `t` (the first one if `t` is before
    /// it), as an index into `frames`.
    pub fn keyframe_for(&self, t: Micros) -> Option<usize> {
        let i = self
            .keyframes
            .partition_point(|&k| self.frames[k].at <= t)
            .saturating_sub(1);
        self.keyframes.get(i).copied()
    }
}

/// Why a file cannot be opened at all.
#[derive(Debug)]
pub enum OpenError {
    Io(io::Error),
    NotARecording,
    Version { found: u32 },
    BadHeader(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(e) => write!(f, "cannot read it: {e}"),
            OpenError::NotARecording => f.write_str(
                "it is not a muxscope recording (*.muxrec files start with \\x89MUXREC)",
            ),
            OpenError::Version { found } => write!(
                f,
                "it is a recording in format {found}, and this muxscope reads format {FORMAT_VERSION}: open it with the muxscope that wrote it"
            ),
            OpenError::BadHeader(why) => write!(f, "its header is damaged: {why}"),
        }
    }
}

impl std::error::Error for OpenError {}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

pub struct Reader<S: Source> {
    source: S,
    pub header: Header,
    pub index: Index,
    /// Where indexing goes on.
    next_offset: u64,
    buf: Vec<u8>,
}

impl<S: Source> std::fmt::Debug for Reader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("header", &self.header)
            .field("frames", &self.index.frames.len())
            .finish_non_exhaustive()
    }
}

impl<S: Source> Reader<S> {
    /// Check the magic and read the header frame. Indexing is left to
    /// [`Reader::index_step`].
    pub fn open(mut source: S) -> Result<Reader<S>, OpenError> {
        let file_len = source.seek(SeekFrom::End(0))?;
        source.seek(SeekFrom::Start(0))?;
        let mut magic = [0u8; 8];
        if file_len < MAGIC.len() as u64 {
            return Err(OpenError::NotARecording);
        }
        source.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(OpenError::NotARecording);
        }
        let mut reader = Reader {
            source,
            header: Header {
                format_version: 0,
                writer: String::new(),
                engine_started_unix_ms: 0,
                started_at: 0,
                part: 0,
            },
            index: Index {
                file_len,
                verified: MAGIC.len() as u64,
                ..Index::default()
            },
            next_offset: MAGIC.len() as u64,
            buf: Vec::new(),
        };
        let (entry, payload) = reader
            .next_frame()
            .map_err(|d| OpenError::BadHeader(d.why))?
            .ok_or_else(|| OpenError::BadHeader("the file ends after its magic".into()))?;
        if entry.kind != Kind::Header {
            return Err(OpenError::BadHeader(format!(
                "the first frame is a {:?} frame, not the header",
                entry.kind
            )));
        }
        // The version comes first, so it is readable whatever follows.
        let version: u32 = frame::decode::<(u32,)>(&payload)
            .map(|v| v.0)
            .map_err(OpenError::BadHeader)?;
        if version != FORMAT_VERSION {
            return Err(OpenError::Version { found: version });
        }
        reader.header = frame::decode(&payload).map_err(OpenError::BadHeader)?;
        reader.index.start = entry.at;
        reader.index.end = entry.at;
        reader.index.frames.push(entry);
        Ok(reader)
    }

    /// Read, verify and index frames until `budget` bytes were read or the
    /// file (or its damage) ends. Returns whether indexing is done.
    pub fn index_step(&mut self, budget: u64) -> bool {
        let until = self.index.verified.saturating_add(budget);
        while !self.index.done && self.index.verified < until {
            match self.next_frame() {
                Ok(None) => self.index.done = true,
                Err(damage) => {
                    self.index.damage = Some(damage);
                    self.index.done = true;
                }
                Ok(Some((entry, payload))) => {
                    if let Err(why) = self.note(entry, &payload) {
                        self.index.damage = Some(Damage {
                            offset: entry.offset,
                            why,
                        });
                        self.index.done = true;
                        break;
                    }
                    self.index.frames.push(entry);
                }
            }
        }
        self.index.done
    }

    pub fn index_all(&mut self) -> &Index {
        while !self.index_step(u64::MAX) {}
        &self.index
    }

    /// Learn what the index keeps from one verified frame.
    fn note(&mut self, entry: FrameEntry, payload: &[u8]) -> Result<(), String> {
        match entry.kind {
            Kind::Header => return Err("a second header frame in one file".into()),
            Kind::Keyframe => self.index.keyframes.push(self.index.frames.len()),
            Kind::Stats => self.index.stats.push(frame::decode(payload)?),
            Kind::Trailer => self.index.trailer = Some(frame::decode(payload)?),
            Kind::Records => {}
        }
        self.index.end = self.index.end.max(entry.at);
        if let Kind::Stats = entry.kind
            && let Some(s) = self.index.stats.last()
        {
            self.index.end = self.index.end.max(s.at);
        }
        Ok(())
    }

    /// The frame at `next_offset`, verified; `Ok(None)` at a clean end.
    fn next_frame(&mut self) -> Result<Option<(FrameEntry, Vec<u8>)>, Damage> {
        let offset = self.next_offset;
        let left = self.index.file_len - offset;
        if left == 0 {
            return Ok(None);
        }
        let damage = |why: String| Damage { offset, why };
        if left < HEADER_LEN as u64 {
            return Err(damage(format!(
                "the file ends {left} bytes into a frame header (cut short, e.g. by a crash while writing)"
            )));
        }
        let header = self
            .read_header(offset)
            .map_err(|e| damage(e.to_string()))?
            .map_err(damage)?;
        if left < header.total_len() {
            return Err(damage(format!(
                "the file ends {} bytes into a {}-byte frame (cut short, e.g. by a crash while writing)",
                left,
                header.total_len()
            )));
        }
        let mut payload = vec![0u8; header.len as usize];
        self.source
            .read_exact(&mut payload)
            .map_err(|e| damage(e.to_string()))?;
        if !header.verify(&payload) {
            return Err(damage(format!(
                "the checksum of a {:?} frame does not match its {} bytes (the file was altered or the disk corrupted it)",
                header.kind, header.len
            )));
        }
        self.next_offset = offset + header.total_len();
        self.index.verified = self.next_offset;
        Ok(Some((
            FrameEntry {
                offset,
                kind: header.kind,
                at: header.at,
                len: header.len,
            },
            payload,
        )))
    }

    fn read_header(&mut self, offset: u64) -> io::Result<Result<FrameHeader, String>> {
        let mut h = [0u8; HEADER_LEN];
        self.source.seek(SeekFrom::Start(offset))?;
        self.source.read_exact(&mut h)?;
        Ok(FrameHeader::parse(&h))
    }

    /// The payload of an indexed frame (verified again: the file may have
    /// changed since it was indexed).
    pub fn payload(&mut self, i: usize) -> Result<&[u8], String> {
        let entry = *self
            .index
            .frames
            .get(i)
            .ok_or_else(|| format!("no frame {i}"))?;
        let header = self
            .read_header(entry.offset)
            .map_err(|e| e.to_string())??;
        self.buf.resize(header.len as usize, 0);
        self.source
            .read_exact(&mut self.buf)
            .map_err(|e| e.to_string())?;
        if !header.verify(&self.buf) {
            return Err(format!(
                "the frame at byte {} changed since the file was opened",
                entry.offset
            ));
        }
        Ok(&self.buf)
    }

    pub fn records(&mut self, i: usize) -> Result<Vec<Record>, String> {
        frame::decode(self.payload(i)?)
    }

    pub fn keyframe(&mut self, i: usize) -> Result<Keyframe, String> {
        frame::decode(self.payload(i)?)
    }

    pub fn stats(&mut self, i: usize) -> Result<EngineStats, String> {
        frame::decode(self.payload(i)?)
    }

    /// Every record in the file, in order, with the stats frames as batches
    /// (for exports, which read the whole file once).
    pub fn for_each_record(&mut self, mut each: impl FnMut(&Record)) -> Result<(), String> {
        self.index_all();
        for i in 0..self.index.frames.len() {
            match self.index.frames[i].kind {
                Kind::Records => {
                    for r in self.records(i)? {
                        each(&r);
                    }
                }
                Kind::Stats => {
                    let stats = self.stats(i)?;
                    each(&Record::Batch(Box::new(crate::protocol::Batch {
                        stats: Some(stats),
                        ..Default::default()
                    })));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
