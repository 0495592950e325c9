//! Framing: how a byte stream splits into messages, and how a reply is
//! wrapped so the client reads it as one.
//!
//! Shared with the web viewer, which marks message boundaries in a
//! transcript with the same [`Framer`] the engine runs.
//!
//! A [`Framer`] is the per-connection state. It holds bytes only while a
//! message is incomplete: complete messages inside one read are sliced
//! straight out of it, and delimiters are found with `memchr`, so cutting
//! a stream costs a scan, not a copy. Reads split anywhere give the same
//! messages (and the same error) as the stream read at once.
//!
//! A client is untrusted: a length prefix over `max` is refused before
//! anything is allocated for it, and so is a line that grows past `max`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest message a client may send unless the scenario says
/// otherwise (`max_message`): 1 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;

/// The longest delimiter, in bytes: delimiters are decoded onto the stack
/// on every read, never allocated.
pub const MAX_DELIMITER: usize = 64;

/// A framer keeps at most this much spare capacity once a held message
/// is complete; an idle connection then holds little or nothing.
const KEEP_CAPACITY: usize = 4096;

/// How bytes split into messages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Framing {
    /// Each read is one message (the echo server's view).
    #[default]
    Raw,
    /// Lines ending in LF; a CR before the LF is not part of the message.
    Lines,
    /// Messages end with these bytes (not part of the message).
    Delimiter(BytesSpec),
    /// A length field of `width` bytes (1, 2, 4 or 8) sits after `offset`
    /// bytes of each frame. It counts the bytes after it, or with
    /// `includes_header` the whole frame (the bytes before it, itself and
    /// the bytes after it). The message is the frame without the length
    /// field: the `offset` bytes before it and the bytes after it.
    LengthPrefix {
        width: u8,
        #[serde(default = "big_endian_default")]
        big_endian: bool,
        #[serde(default)]
        includes_header: bool,
        #[serde(default)]
        offset: u32,
    },
    /// Every message is this many bytes.
    Fixed(u32),
}

fn big_endian_default() -> bool {
    true
}

/// Bytes written as text or hex: `Text("\r\n")` (the RON string's UTF-8
/// bytes) or `Hex("0d 0a")` (the Inject pane's hex grammar). Used for
/// delimiters, which take no template variables.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BytesSpec {
    Text(String),
    Hex(String),
}

impl BytesSpec {
    /// The bytes, or why the hex is not hex.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            BytesSpec::Text(t) => Ok(t.as_bytes().to_vec()),
            BytesSpec::Hex(h) => crate::payload::parse_hex(h).map_err(|e| e.to_string()),
        }
    }
}

/// One message cut from the stream.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// What rules match: the frame without its framing (line end,
    /// delimiter, length field).
    pub body: &'a [u8],
    /// The whole frame as received: what `Echo` sends back.
    pub raw: &'a [u8],
}

/// Why a stream (or a reply) could not be framed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// The framing itself is unusable (a scenario that was not checked).
    Invalid(String),
    /// A length prefix announced a message over `max_message`.
    PrefixTooLarge { prefix: u64, max: usize },
    /// A length prefix that counts its header was smaller than the header.
    PrefixBelowHeader { prefix: u64, header: usize },
    /// Every frame starts with more bytes than `max_message` before the
    /// length field.
    OffsetTooLarge { offset: u32, max: usize },
    /// Fixed-size messages are over `max_message`.
    FixedTooLarge { size: u32, max: usize },
    /// No line end (or delimiter) within `max_message`.
    Unterminated { lines: bool, max: usize },
    /// A `Framed` reply too long for the length field.
    ReplyTooLong { len: u64, width: u8 },
    /// A `Framed` reply shorter than the bytes before the length field.
    ReplyBelowOffset { len: usize, offset: u32 },
    /// A `Framed` reply not of the `Fixed` size.
    ReplyNotFixed { len: usize, size: u32 },
}

/// `1 MiB`, `64 KiB`, `1000 bytes`.
pub(crate) fn size_text(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    match n {
        0 => "0 bytes".to_owned(),
        1 => "1 byte".to_owned(),
        n if n.is_multiple_of(MIB) => format!("{} MiB", n / MIB),
        n if n.is_multiple_of(1024) => format!("{} KiB", n / 1024),
        n => format!("{n} bytes"),
    }
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = |max: &usize| format!("the {} limit (max_message)", size_text(*max as u64));
        match self {
            FramingError::Invalid(why) => write!(f, "unusable framing: {why}"),
            FramingError::PrefixTooLarge { prefix, max } => write!(
                f,
                "length prefix says {prefix} bytes, over {}; raise max_message if the client \
                 means it, or check the prefix's width and byte order",
                limit(max)
            ),
            FramingError::PrefixBelowHeader { prefix, header } => write!(
                f,
                "length prefix says {prefix} bytes, less than the {header} bytes up to and \
                 including it (includes_header: true); check the framing's includes_header"
            ),
            FramingError::OffsetTooLarge { offset, max } => write!(
                f,
                "the {offset} bytes before the length field are over {}",
                limit(max)
            ),
            FramingError::FixedTooLarge { size, max } => {
                write!(f, "Fixed({size}) messages are over {}", limit(max))
            }
            FramingError::Unterminated { lines: true, max } => write!(
                f,
                "a line longer than {} without a line end (LF); raise max_message, or use \
                 another framing",
                limit(max)
            ),
            FramingError::Unterminated { lines: false, max } => write!(
                f,
                "no delimiter within {}; raise max_message, or check the delimiter",
                limit(max)
            ),
            FramingError::ReplyTooLong { len, width } => write!(
                f,
                "a reply of {len} bytes does not fit a {width}-byte length prefix; shorten it \
                 or widen the prefix"
            ),
            FramingError::ReplyBelowOffset { len, offset } => write!(
                f,
                "a reply of {len} bytes is shorter than the {offset} bytes before the length \
                 field; the reply must start with them"
            ),
            FramingError::ReplyNotFixed { len, size } => write!(
                f,
                "a reply of {len} bytes, but Fixed({size}) framing sends exactly {size}; make \
                 the reply that long, or send it unframed"
            ),
        }
    }
}

impl std::error::Error for FramingError {}

impl Framing {
    /// Whether the framing can be used; why not otherwise.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Framing::Raw | Framing::Lines => Ok(()),
            Framing::Delimiter(spec) => {
                let bytes = spec
                    .to_bytes()
                    .map_err(|e| format!("delimiter: Hex: {e}"))?;
                if bytes.is_empty() {
                    return Err("the delimiter is empty: give at least one byte".to_owned());
                }
                if bytes.len() > MAX_DELIMITER {
                    return Err(format!(
                        "the delimiter is {} bytes long, more than the {MAX_DELIMITER} allowed",
                        bytes.len()
                    ));
                }
                Ok(())
            }
            Framing::LengthPrefix { width, .. } => match width {
                1 | 2 | 4 | 8 => Ok(()),
                w => Err(format!(
                    "a length prefix is 1, 2, 4 or 8 bytes wide, not {w} (width: {w})"
                )),
            },
            Framing::Fixed(0) => {
                Err("Fixed(0): a fixed-size message is at least 1 byte".to_owned())
            }
            Framing::Fixed(_) => Ok(()),
        }
    }
}

/// The delimiter's bytes, decoded onto the stack.
struct Delim {
    bytes: [u8; MAX_DELIMITER],
    len: usize,
}

impl Delim {
    fn new(spec: &BytesSpec) -> Result<Delim, FramingError> {
        let mut d = Delim {
            bytes: [0; MAX_DELIMITER],
            len: 0,
        };
        let ok = match spec {
            BytesSpec::Text(t) => d.extend(t.as_bytes()),
            BytesSpec::Hex(h) => decode_hex(h, &mut d),
        };
        if !ok || d.len == 0 {
            let why = Framing::Delimiter(spec.clone())
                .check()
                .err()
                .unwrap_or_else(|| "the delimiter cannot be decoded".to_owned());
            return Err(FramingError::Invalid(why));
        }
        Ok(d)
    }

    fn extend(&mut self, more: &[u8]) -> bool {
        let Some(room) = self.bytes.get_mut(self.len..self.len + more.len()) else {
            return false;
        };
        room.copy_from_slice(more);
        self.len += more.len();
        true
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The hex grammar of `payload::parse_hex` (pairs of digits, whitespace,
/// `,` `:` `-` between bytes, `0x` prefixes), without allocating: the same
/// characters, so every delimiter `check` accepts decodes here. False if it
/// is not hex or too long; `check` then says why.
fn decode_hex(text: &str, out: &mut Delim) -> bool {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() || matches!(c, ',' | ':' | '-') {
            continue;
        }
        if c == '0' && matches!(chars.peek(), Some('x' | 'X')) {
            chars.next();
            continue;
        }
        let (Some(hi), Some(lo)) = (c.to_digit(16), chars.next().and_then(|c| c.to_digit(16)))
        else {
            return false;
        };
        if !out.extend(&[(hi << 4 | lo) as u8]) {
            return false;
        }
    }
    true
}

impl Framing {
    /// How long the frame that `pending` begins will be, where the framing
    /// says (a length prefix once its field is in, a fixed size); `None`
    /// for lines and delimiters, or while the length field is incomplete.
    pub fn expected_len(&self, pending: &[u8], max: usize) -> Option<u64> {
        let counted = Counted::of(self)?.ok()?;
        let len = counted.frame_len(pending, max).ok()??;
        Some(len as u64)
    }
}

/// Length-counted framings (`LengthPrefix`, `Fixed`) in one shape.
#[derive(Copy, Clone)]
struct Counted {
    /// Bytes before the length field.
    offset: usize,
    /// Width of the length field; 0 for `Fixed`.
    width: usize,
    big_endian: bool,
    includes_header: bool,
    /// `Some(n)` for `Fixed(n)`.
    fixed: Option<u32>,
}

impl Counted {
    fn of(framing: &Framing) -> Option<Result<Counted, FramingError>> {
        match *framing {
            Framing::LengthPrefix {
                width,
                big_endian,
                includes_header,
                offset,
            } => Some(match width {
                1 | 2 | 4 | 8 => Ok(Counted {
                    offset: offset as usize,
                    width: width.into(),
                    big_endian,
                    includes_header,
                    fixed: None,
                }),
                _ => Err(FramingError::Invalid(
                    framing.check().err().unwrap_or_default(),
                )),
            }),
            Framing::Fixed(0) => Some(Err(FramingError::Invalid(
                framing.check().err().unwrap_or_default(),
            ))),
            Framing::Fixed(n) => Some(Ok(Counted {
                offset: 0,
                width: 0,
                big_endian: true,
                includes_header: false,
                fixed: Some(n),
            })),
            _ => None,
        }
    }

    fn header(&self) -> usize {
        self.offset + self.width
    }

    /// The length of the frame that starts `data` (not empty), once enough
    /// of it is known; `None` while the header is incomplete. Refuses a
    /// frame whose message would be over `max` as soon as that is certain.
    fn frame_len(&self, data: &[u8], max: usize) -> Result<Option<usize>, FramingError> {
        if let Some(size) = self.fixed {
            if size as usize > max {
                return Err(FramingError::FixedTooLarge { size, max });
            }
            return Ok(Some(size as usize));
        }
        if self.offset > max {
            return Err(FramingError::OffsetTooLarge {
                offset: self.offset as u32,
                max,
            });
        }
        let Some(field) = data.get(self.offset..self.header()) else {
            return Ok(None);
        };
        let prefix = read_uint(field, self.big_endian);
        let after = if self.includes_header {
            prefix
                .checked_sub(self.header() as u64)
                .ok_or(FramingError::PrefixBelowHeader {
                    prefix,
                    header: self.header(),
                })?
        } else {
            prefix
        };
        let body = after.saturating_add(self.offset as u64);
        if body > max as u64 {
            return Err(FramingError::PrefixTooLarge { prefix, max });
        }
        // body <= max, so this fits usize.
        Ok(Some(self.header() + after as usize))
    }

    /// Hand out one whole frame; the body needs a copy only when bytes sit
    /// before the length field.
    fn emit(&self, frame: &[u8], scratch: &mut Vec<u8>, on_message: &mut impl FnMut(Message<'_>)) {
        if self.offset == 0 {
            on_message(Message {
                body: &frame[self.width..],
                raw: frame,
            });
        } else {
            scratch.clear();
            scratch.extend_from_slice(&frame[..self.offset]);
            scratch.extend_from_slice(&frame[self.header()..]);
            on_message(Message {
                body: scratch,
                raw: frame,
            });
        }
    }
}

fn read_uint(field: &[u8], big_endian: bool) -> u64 {
    let fold = |v: u64, &b: &u8| v << 8 | u64::from(b);
    if big_endian {
        field.iter().fold(0, fold)
    } else {
        field.iter().rev().fold(0, fold)
    }
}

/// Per-connection framing state: the bytes of an incomplete message.
///
/// Once `push` fails the framer stays failed: the stream's boundaries are
/// lost, so every later `push` returns the same error without parsing,
/// and nothing more is held (the connection should be closed).
///
/// A framer follows one framing. Given another midway (the scenario
/// changed), it carries on without panicking, but a delimiter already
/// held is not looked for again; start a new framer to start afresh.
#[derive(Clone, Debug, Default)]
pub struct Framer {
    /// The start of an incomplete message; never holds a whole one.
    held: Vec<u8>,
    /// The body of a length-prefixed frame with bytes before its field.
    scratch: Vec<u8>,
    failed: Option<Box<FramingError>>,
}

impl Framer {
    pub fn new() -> Framer {
        Framer::default()
    }

    /// The bytes of the incomplete message so far (empty between
    /// messages, and after an error).
    pub fn pending(&self) -> &[u8] {
        &self.held
    }

    /// The error the framer failed with, if it did.
    pub fn error(&self) -> Option<&FramingError> {
        self.failed.as_deref()
    }

    /// Cut `bytes` (the next read) into messages, calling `on_message` for
    /// each complete one in order. `max` is the largest message body
    /// allowed (`Scenario::max_message`; ignored by `Raw`, whose messages
    /// are reads).
    pub fn push(
        &mut self,
        framing: &Framing,
        max: usize,
        bytes: &[u8],
        mut on_message: impl FnMut(Message<'_>),
    ) -> Result<(), FramingError> {
        if let Some(e) = &self.failed {
            return Err((**e).clone());
        }
        let result = match framing {
            Framing::Raw => {
                self.raw(bytes, &mut on_message);
                Ok(())
            }
            Framing::Lines => self.delimited(b"\n", true, max, bytes, &mut on_message),
            Framing::Delimiter(spec) => Delim::new(spec)
                .and_then(|d| self.delimited(d.as_slice(), false, max, bytes, &mut on_message)),
            Framing::LengthPrefix { .. } | Framing::Fixed(_) => match Counted::of(framing) {
                Some(Ok(c)) => self.counted(c, max, bytes, &mut on_message),
                Some(Err(e)) => Err(e),
                None => Ok(()),
            },
        };
        if let Err(e) = &result {
            self.failed = Some(Box::new(e.clone()));
            self.held = Vec::new();
        }
        if self.held.is_empty() && self.held.capacity() > KEEP_CAPACITY {
            self.held = Vec::new();
        }
        if self.scratch.capacity() > KEEP_CAPACITY {
            self.scratch = Vec::new();
        }
        result
    }

    /// Each read is a message; bytes held under another framing (the
    /// scenario changed) go with it.
    fn raw(&mut self, bytes: &[u8], on_message: &mut impl FnMut(Message<'_>)) {
        if self.held.is_empty() {
            if !bytes.is_empty() {
                on_message(Message {
                    body: bytes,
                    raw: bytes,
                });
            }
        } else {
            self.held.extend_from_slice(bytes);
            on_message(Message {
                body: &self.held,
                raw: &self.held,
            });
            self.held.clear();
        }
    }

    fn delimited(
        &mut self,
        delim: &[u8],
        lines: bool,
        max: usize,
        bytes: &[u8],
        on_message: &mut impl FnMut(Message<'_>),
    ) -> Result<(), FramingError> {
        let d = delim.len();
        // A held message can grow this far past `max` before it is certain
        // to be too long: its tail may be the start of the delimiter, or
        // (lines) a CR that the LF will strip.
        let slack = d - 1 + usize::from(lines);
        let body_of = |frame: &[u8]| -> Result<usize, FramingError> {
            let mut end = frame.len() - d;
            if lines && end > 0 && frame[end - 1] == b'\r' {
                end -= 1;
            }
            if end > max {
                return Err(FramingError::Unterminated { lines, max });
            }
            Ok(end)
        };
        let mut rest = bytes;
        if !self.held.is_empty() {
            match end_across(&self.held, rest, delim) {
                None => {
                    if self.held.len() + rest.len() > max + slack {
                        return Err(FramingError::Unterminated { lines, max });
                    }
                    self.held.extend_from_slice(rest);
                    return Ok(());
                }
                Some(end) => {
                    self.held.extend_from_slice(&rest[..end]);
                    rest = &rest[end..];
                    let body = body_of(&self.held)?;
                    on_message(Message {
                        body: &self.held[..body],
                        raw: &self.held,
                    });
                    self.held.clear();
                }
            }
        }
        // One-byte delimiters (lines) need no searcher built.
        let finder = (d > 1).then(|| memchr::memmem::Finder::new(delim));
        let find = |hay: &[u8]| match &finder {
            Some(f) => f.find(hay),
            None => memchr::memchr(delim[0], hay),
        };
        while let Some(at) = find(rest) {
            let (frame, after) = rest.split_at(at + d);
            let body = body_of(frame)?;
            on_message(Message {
                body: &frame[..body],
                raw: frame,
            });
            rest = after;
        }
        if rest.len() > max + slack {
            return Err(FramingError::Unterminated { lines, max });
        }
        self.held.extend_from_slice(rest);
        Ok(())
    }

    fn counted(
        &mut self,
        c: Counted,
        max: usize,
        bytes: &[u8],
        on_message: &mut impl FnMut(Message<'_>),
    ) -> Result<(), FramingError> {
        let mut rest = bytes;
        // First complete the held frame: its header, then its rest. (Held
        // bytes may hold more than one frame only if the framing changed.)
        while !self.held.is_empty() {
            match c.frame_len(&self.held, max)? {
                Some(total) if total <= self.held.len() => {
                    c.emit(&self.held[..total], &mut self.scratch, on_message);
                    self.held.drain(..total);
                }
                known => {
                    // More than is held: the header, or the whole frame.
                    let want = known.unwrap_or(c.header());
                    let take = want.saturating_sub(self.held.len()).min(rest.len());
                    if take == 0 {
                        return Ok(());
                    }
                    self.held.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                }
            }
        }
        // Then slice whole frames out of the read; hold the tail.
        while !rest.is_empty() {
            match c.frame_len(rest, max)? {
                Some(total) if total <= rest.len() => {
                    let (frame, after) = rest.split_at(total);
                    c.emit(frame, &mut self.scratch, on_message);
                    rest = after;
                }
                _ => {
                    self.held.extend_from_slice(rest);
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Where (in `rest`) the first delimiter ends that starts inside `held`
/// and ends inside `rest`. `held` holds no whole delimiter, so only its
/// last `d - 1` bytes matter; such a delimiter ends before any that lies
/// wholly in `rest`.
fn end_across(held: &[u8], rest: &[u8], delim: &[u8]) -> Option<usize> {
    let d = delim.len();
    if d == 1 {
        return memchr::memchr(delim[0], rest).map(|at| at + 1);
    }
    let tail = &held[held.len().saturating_sub(d - 1)..];
    let head = &rest[..rest.len().min(d - 1)];
    let mut window = [0u8; 2 * MAX_DELIMITER];
    window[..tail.len()].copy_from_slice(tail);
    window[tail.len()..tail.len() + head.len()].copy_from_slice(head);
    let window = &window[..tail.len() + head.len()];
    match memchr::memmem::find(window, delim) {
        Some(at) if at < tail.len() => Some(at + d - tail.len()),
        _ => memchr::memmem::find(rest, delim).map(|at| at + d),
    }
}

/// Wrap a reply's `body` in `framing` so the client reads it as one
/// message: `Raw` sends it as is, `Fixed(n)` only if it is `n` bytes,
/// `Lines` adds LF (write `\r\n` in the reply and send it unframed for
/// CRLF), `Delimiter` adds the delimiter, and `LengthPrefix` inserts the
/// length field after the first `offset` bytes. The body is not searched:
/// a line end inside a `Lines` reply makes two lines.
pub fn frame(framing: &Framing, body: &[u8]) -> Result<Vec<u8>, FramingError> {
    match framing {
        Framing::Raw => Ok(body.to_vec()),
        Framing::Fixed(size) => {
            framing.check().map_err(FramingError::Invalid)?;
            if body.len() as u64 != u64::from(*size) {
                return Err(FramingError::ReplyNotFixed {
                    len: body.len(),
                    size: *size,
                });
            }
            Ok(body.to_vec())
        }
        Framing::Lines => Ok([body, b"\n"].concat()),
        Framing::Delimiter(spec) => {
            let d = Delim::new(spec)?;
            Ok([body, d.as_slice()].concat())
        }
        Framing::LengthPrefix {
            width,
            big_endian,
            includes_header,
            offset,
        } => {
            framing.check().map_err(FramingError::Invalid)?;
            let k = *offset as usize;
            let w = usize::from(*width);
            let Some(after) = body.len().checked_sub(k) else {
                return Err(FramingError::ReplyBelowOffset {
                    len: body.len(),
                    offset: *offset,
                });
            };
            let len = if *includes_header {
                (body.len() + w) as u64
            } else {
                after as u64
            };
            if w < 8 && len >> (8 * w) != 0 {
                return Err(FramingError::ReplyTooLong { len, width: *width });
            }
            let field = if *big_endian {
                len.to_be_bytes()[8 - w..].to_vec()
            } else {
                len.to_le_bytes()[..w].to_vec()
            };
            let mut out = Vec::with_capacity(body.len() + w);
            out.extend_from_slice(&body[..k]);
            out.extend_from_slice(&field);
            out.extend_from_slice(&body[k..]);
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages as (body, raw), the error if any, and the pending bytes.
    type Cut = (Vec<(Vec<u8>, Vec<u8>)>, Option<FramingError>, Vec<u8>);

    /// Every message of the `chunks` pushed in turn.
    fn cut(framing: &Framing, max: usize, chunks: &[&[u8]]) -> Cut {
        let mut framer = Framer::new();
        let mut out = Vec::new();
        let mut error = None;
        for chunk in chunks {
            if let Err(e) = framer.push(framing, max, chunk, |m| {
                out.push((m.body.to_vec(), m.raw.to_vec()))
            }) {
                error = Some(e);
            }
        }
        (out, error, framer.pending().to_vec())
    }

    fn one_by_one(bytes: &[u8]) -> Vec<&[u8]> {
        bytes.chunks(1).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        list.iter()
            .map(|(b, r)| (b.as_bytes().to_vec(), r.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn expected_lengths_come_from_the_prefix_or_the_fixed_size() {
        let prefix = Framing::LengthPrefix {
            width: 2,
            big_endian: true,
            includes_header: false,
            offset: 0,
        };
        assert_eq!(prefix.expected_len(&[0], 100), None, "field incomplete");
        assert_eq!(prefix.expected_len(&[0, 5, 1], 100), Some(7));
        assert_eq!(prefix.expected_len(&[1, 0], 100), None, "over the limit");
        assert_eq!(Framing::Fixed(16).expected_len(b"abc", 100), Some(16));
        assert_eq!(Framing::Lines.expected_len(b"abc", 100), None);
    }

    #[test]
    fn lines_strip_lf_and_an_optional_cr() {
        let stream = b"PING\nECHO hi\r\n\nrest";
        let want = pairs(&[("PING", "PING\n"), ("ECHO hi", "ECHO hi\r\n"), ("", "\n")]);
        for chunks in [vec![&stream[..]], one_by_one(stream)] {
            let (msgs, err, pending) = cut(&Framing::Lines, 100, &chunks);
            assert_eq!(msgs, want);
            assert_eq!(err, None);
            assert_eq!(pending, b"rest");
        }
    }

    #[test]
    fn delimiters_are_found_across_reads() {
        let framing = Framing::Delimiter(BytesSpec::Text("\r\n\r\n".into()));
        let stream = b"a\r\n\r\nb\r\nc\r\n\r\n\r";
        let want = pairs(&[("a", "a\r\n\r\n"), ("b\r\nc", "b\r\nc\r\n\r\n")]);
        for split in 0..stream.len() {
            let (x, y) = stream.split_at(split);
            let (msgs, err, pending) = cut(&framing, 100, &[x, y]);
            assert_eq!((msgs, err), (want.clone(), None), "split at {split}");
            assert_eq!(pending, b"\r");
        }
        let (msgs, _, _) = cut(&framing, 100, &one_by_one(stream));
        assert_eq!(msgs, want);
        let hex = Framing::Delimiter(BytesSpec::Hex("0x00, ff".into()));
        let (msgs, _, _) = cut(&hex, 100, &[b"ab\x00\xffc", b"\x00", b"\xff"]);
        assert_eq!(
            msgs,
            vec![
                (b"ab".to_vec(), b"ab\x00\xff".to_vec()),
                (b"c".to_vec(), b"c\x00\xff".to_vec())
            ]
        );
    }

    /// `check` reads a delimiter with `payload::parse_hex`, the framer
    /// with its own decoder: both take any whitespace between bytes (a
    /// no-break space, a vertical tab), or a delimiter that checks fails
    /// every read.
    #[test]
    fn hex_delimiters_that_check_also_frame() {
        for hex in ["0d\u{a0}0a", "0d\u{b}0a", "0x0d\u{3000}0X0a", "0d,0a"] {
            let framing = Framing::Delimiter(BytesSpec::Hex(hex.into()));
            assert_eq!(framing.check(), Ok(()), "{hex:?}");
            let (msgs, err, pending) = cut(&framing, 100, &[b"a\r\nb\r", b"\nc"]);
            assert_eq!(err, None, "{hex:?}");
            assert_eq!(msgs, pairs(&[("a", "a\r\n"), ("b", "b\r\n")]), "{hex:?}");
            assert_eq!(pending, b"c");
            assert_eq!(frame(&framing, b"x").unwrap(), b"x\r\n");
        }
        for hex in ["0d 0", "0 d", "0x", "zz", "0d0x0a", "\u{ff10}\u{ff10}"] {
            let framing = Framing::Delimiter(BytesSpec::Hex(hex.into()));
            let (_, err, _) = cut(&framing, 100, &[b"a"]);
            assert_eq!(framing.check().is_ok(), err.is_none(), "{hex:?}: {err:?}");
        }
    }

    #[test]
    fn raw_reads_are_messages() {
        let (msgs, _, pending) = cut(&Framing::Raw, 1, &[b"abc", b"", b"d"]);
        assert_eq!(msgs, pairs(&[("abc", "abc"), ("d", "d")]));
        assert!(pending.is_empty());
    }

    #[test]
    fn length_prefix_with_offset_and_header_counted() {
        // Type byte, then a 2-byte little-endian length counting the whole frame.
        let framing = Framing::LengthPrefix {
            width: 2,
            big_endian: false,
            includes_header: true,
            offset: 1,
        };
        let frame = frame(&framing, b"\x07hello").unwrap();
        assert_eq!(frame, b"\x07\x08\x00hello");
        let stream = [frame.clone(), frame.clone()].concat();
        for chunks in [vec![&stream[..]], one_by_one(&stream)] {
            let (msgs, err, pending) = cut(&framing, 100, &chunks);
            assert_eq!(err, None);
            assert!(pending.is_empty());
            assert_eq!(msgs, vec![(b"\x07hello".to_vec(), frame.clone()); 2]);
        }
        // A count below the header is an error.
        let (_, err, _) = cut(&framing, 100, &[b"\x07\x02\x00"]);
        assert_eq!(
            err,
            Some(FramingError::PrefixBelowHeader {
                prefix: 2,
                header: 3
            })
        );
    }

    #[test]
    fn oversized_prefix_is_refused_before_allocating() {
        let framing = Framing::LengthPrefix {
            width: 4,
            big_endian: true,
            includes_header: false,
            offset: 0,
        };
        let mut framer = Framer::new();
        let e = framer
            .push(
                &framing,
                DEFAULT_MAX_MESSAGE,
                b"\xff\xff\xff\xffxx",
                |_| panic!(),
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "length prefix says 4294967295 bytes, over the 1 MiB limit (max_message); \
             raise max_message if the client means it, or check the prefix's width and byte order"
        );
        assert!(framer.pending().is_empty());
        assert_eq!(framer.held.capacity(), 0);
        // Failed for good: the same error, nothing parsed.
        let again = framer.push(
            &framing,
            DEFAULT_MAX_MESSAGE,
            b"\x00\x00\x00\x00",
            |_| panic!(),
        );
        assert_eq!(again, Err(e));
        assert_eq!(
            framer
                .error()
                .map(|e| matches!(e, FramingError::PrefixTooLarge { .. })),
            Some(true)
        );
    }

    #[test]
    fn long_lines_are_refused_without_holding_them() {
        let mut framer = Framer::new();
        let long = [b'x'; 11];
        assert!(
            framer
                .push(&Framing::Lines, 10, &long[..10], |_| {})
                .is_ok()
        );
        // 11 bytes may still be 10 and a CR.
        assert!(framer.push(&Framing::Lines, 10, b"\r", |_| {}).is_ok());
        assert_eq!(
            framer.push(&Framing::Lines, 10, b"y", |_| {}),
            Err(FramingError::Unterminated {
                lines: true,
                max: 10
            })
        );
        assert!(framer.pending().is_empty());
        // A complete line over the limit is refused too.
        let (msgs, err, _) = cut(&Framing::Lines, 3, &[b"abc\r\nabcd\n"]);
        assert_eq!(msgs.len(), 1);
        assert_eq!(
            err,
            Some(FramingError::Unterminated {
                lines: true,
                max: 3
            })
        );
    }

    #[test]
    fn fixed_frames_and_their_limits() {
        let (msgs, err, pending) = cut(&Framing::Fixed(2), 10, &[b"abc", b"de"]);
        assert_eq!(
            (msgs, err, pending),
            (pairs(&[("ab", "ab"), ("cd", "cd")]), None, b"e".to_vec())
        );
        let (_, err, _) = cut(&Framing::Fixed(20), 10, &[b"a"]);
        assert_eq!(err, Some(FramingError::FixedTooLarge { size: 20, max: 10 }));
        let (_, err, _) = cut(&Framing::Fixed(0), 10, &[b"a"]);
        assert!(matches!(err, Some(FramingError::Invalid(_))));
        assert!(frame(&Framing::Fixed(2), b"abc").is_err());
        assert_eq!(frame(&Framing::Fixed(3), b"abc").unwrap(), b"abc");
    }

    #[test]
    fn framing_replies() {
        assert_eq!(frame(&Framing::Lines, b"hi").unwrap(), b"hi\n");
        let be2 = Framing::LengthPrefix {
            width: 2,
            big_endian: true,
            includes_header: false,
            offset: 0,
        };
        assert_eq!(frame(&be2, b"\x81\x00").unwrap(), b"\x00\x02\x81\x00");
        let one = Framing::LengthPrefix {
            width: 1,
            big_endian: true,
            includes_header: false,
            offset: 0,
        };
        let e = frame(&one, &[0; 256]).unwrap_err();
        assert_eq!(e, FramingError::ReplyTooLong { len: 256, width: 1 });
        assert!(
            e.to_string()
                .contains("does not fit a 1-byte length prefix")
        );
        let eight = Framing::LengthPrefix {
            width: 8,
            big_endian: false,
            includes_header: false,
            offset: 0,
        };
        assert_eq!(frame(&eight, b"z").unwrap(), b"\x01\0\0\0\0\0\0\0z");
        let offset = Framing::LengthPrefix {
            width: 1,
            big_endian: true,
            includes_header: false,
            offset: 2,
        };
        assert!(matches!(
            frame(&offset, b"a"),
            Err(FramingError::ReplyBelowOffset { .. })
        ));
    }

    #[test]
    fn bad_framings_say_why() {
        assert!(
            Framing::Delimiter(BytesSpec::Text(String::new()))
                .check()
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            Framing::Delimiter(BytesSpec::Hex("0".into()))
                .check()
                .unwrap_err()
                .contains("odd number")
        );
        assert!(
            Framing::Delimiter(BytesSpec::Text("x".repeat(65)))
                .check()
                .unwrap_err()
                .contains("64")
        );
        let (_, err, _) = cut(
            &Framing::Delimiter(BytesSpec::Hex("zz".into())),
            10,
            &[b"a"],
        );
        assert!(matches!(err, Some(FramingError::Invalid(why)) if why.contains("not a hex digit")));
        assert_eq!(size_text(1 << 20), "1 MiB");
        assert_eq!(size_text(3 << 10), "3 KiB");
        assert_eq!(size_text(1000), "1000 bytes");
    }
}
