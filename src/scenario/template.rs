//! Reply templates: a rule's `send` text with `${...}` variables, parsed
//! once when the scenario is compiled and rendered on every firing
//! without parsing again.
//!
//! | variable | value | in `Text` | in `Hex` (default width) |
//! |---|---|---|---|
//! | `${1}`, `${name}` | a capture of the rule's `Regex` | its bytes | its bytes |
//! | `${seq}` | replies sent on this connection so far, from 0 | decimal | `u8` |
//! | `${conn}` | the connection's id | decimal | `u8` |
//! | `${len}` | length of the matched message | decimal | `u8` |
//! | `${now}` | Unix time in microseconds | decimal | `u64be` |
//! | `${crc16}` | CRC-16/MODBUS of the reply so far | 4 hex digits | `u16be` |
//! | `${crc32}` | CRC-32/ISO-HDLC of the reply so far | 8 hex digits | `u32be` |
//!
//! In `Hex` replies a number takes a width, `${seq:u16le}`: `u8`, `u16be`,
//! `u16le`, `u32be`, `u32le`, `u64be` or `u64le`; it wraps to fit. `$$` is
//! a literal `$` (so `$${` is a literal `${`); a `$` before anything else
//! is itself. The CRCs cover the bytes this template rendered before them,
//! not the framing added after.

use crate::logging::terminal_safe;
use crc::{CRC_16_MODBUS, CRC_32_ISO_HDLC, Crc};
use regex::bytes::{Captures, Regex};

/// CRC-16/MODBUS: poly 0x8005 reflected, init 0xffff; check("123456789")
/// = 0x4b37. Modbus RTU sends it low byte first: `${crc16:u16le}`.
static CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_MODBUS);
/// CRC-32/ISO-HDLC, the zlib/Ethernet CRC-32; check("123456789") =
/// 0xcbf43926.
static CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

pub(crate) const VARIABLES: &str = "seq, conn, len, now, crc16, crc32";
const WIDTHS: &str = "u8, u16be, u16le, u32be, u32le, u64be or u64le";

/// What a template may refer to: whether its rule has a message, and the
/// rule's regex (for captures).
pub(crate) struct Scope<'a> {
    pub message: bool,
    pub regex: Option<&'a Regex>,
}

/// The values of one firing.
pub(crate) struct Values<'a, 'h> {
    pub seq: u64,
    pub conn: u64,
    pub len: u64,
    pub now: u64,
    pub captures: Option<&'a Captures<'h>>,
}

#[derive(Clone)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
    captures: bool,
}

#[derive(Clone)]
enum Piece {
    Bytes(Box<[u8]>),
    Capture(usize),
    Var(Var, Form),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Var {
    Seq,
    Conn,
    Len,
    Now,
    Crc16,
    Crc32,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Form {
    Decimal,
    /// Lowercase hex digits, zero-padded to this many.
    HexDigits(usize),
    Binary(Width),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Width {
    U8,
    U16Be,
    U16Le,
    U32Be,
    U32Le,
    U64Be,
    U64Le,
}

impl Width {
    fn parse(text: &str) -> Option<Width> {
        Some(match text {
            "u8" => Width::U8,
            "u16be" => Width::U16Be,
            "u16le" => Width::U16Le,
            "u32be" => Width::U32Be,
            "u32le" => Width::U32Le,
            "u64be" => Width::U64Be,
            "u64le" => Width::U64Le,
            _ => return None,
        })
    }

    /// `n`, wrapped to the width.
    fn write(self, n: u64, out: &mut Vec<u8>) {
        match self {
            Width::U8 => out.push(n as u8),
            Width::U16Be => out.extend_from_slice(&(n as u16).to_be_bytes()),
            Width::U16Le => out.extend_from_slice(&(n as u16).to_le_bytes()),
            Width::U32Be => out.extend_from_slice(&(n as u32).to_be_bytes()),
            Width::U32Le => out.extend_from_slice(&(n as u32).to_le_bytes()),
            Width::U64Be => out.extend_from_slice(&n.to_be_bytes()),
            Width::U64Le => out.extend_from_slice(&n.to_le_bytes()),
        }
    }
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "seq" => Var::Seq,
            "conn" => Var::Conn,
            "len" => Var::Len,
            "now" => Var::Now,
            "crc16" => Var::Crc16,
            "crc32" => Var::Crc32,
            _ => return None,
        })
    }

    fn text_form(self) -> Form {
        match self {
            Var::Crc16 => Form::HexDigits(4),
            Var::Crc32 => Form::HexDigits(8),
            _ => Form::Decimal,
        }
    }

    fn default_width(self) -> Width {
        match self {
            Var::Now => Width::U64Be,
            Var::Crc16 => Width::U16Be,
            Var::Crc32 => Width::U32Be,
            Var::Seq | Var::Conn | Var::Len => Width::U8,
        }
    }
}

fn quote(text: &str) -> String {
    format!("'{}'", terminal_safe(text, 80))
}

impl Template {
    /// Parse `text` as a `Text` (`hex` false) or `Hex` reply. The error
    /// quotes the bad part and says what is valid.
    pub(crate) fn parse(text: &str, hex: bool, scope: &Scope<'_>) -> Result<Template, String> {
        let mut t = Template {
            pieces: Vec::new(),
            captures: false,
        };
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(more) = after.strip_prefix('$') {
                literal.push('$');
                rest = more;
            } else if let Some(inner) = after.strip_prefix('{') {
                let Some(close) = inner.find('}') else {
                    return Err(format!(
                        "{}: a variable ends with }} (write $${{ for a literal ${{)",
                        quote(&rest[at..])
                    ));
                };
                t.literal(&mut literal, hex)?;
                let piece = parse_variable(&inner[..close], hex, scope)?;
                t.captures |= matches!(piece, Piece::Capture(_));
                t.pieces.push(piece);
                rest = &inner[close + 1..];
            } else {
                literal.push('$');
                rest = after;
            }
        }
        literal.push_str(rest);
        t.literal(&mut literal, hex)?;
        Ok(t)
    }

    /// Turn the literal text so far into bytes.
    fn literal(&mut self, literal: &mut String, hex: bool) -> Result<(), String> {
        if literal.is_empty() {
            return Ok(());
        }
        let bytes = if hex {
            crate::payload::parse_hex(literal)
                .map_err(|e| format!("{}: {}", quote(literal.trim()), e.message))?
        } else {
            literal.as_bytes().to_vec()
        };
        literal.clear();
        if !bytes.is_empty() {
            self.pieces.push(Piece::Bytes(bytes.into_boxed_slice()));
        }
        Ok(())
    }

    /// Whether rendering needs the regex's captures (otherwise the rule
    /// only asks whether it matches, which is cheaper).
    pub(crate) fn uses_captures(&self) -> bool {
        self.captures
    }

    /// Whether rendering reads `${now}`, so the caller must read the clock.
    pub(crate) fn uses_clock(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Var(Var::Now, _)))
    }

    /// Append the rendered reply to `out`.
    pub(crate) fn render(&self, out: &mut Vec<u8>, v: &Values<'_, '_>) {
        let start = out.len();
        for piece in &self.pieces {
            match piece {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Capture(i) => {
                    // A group that took no part in the match is empty.
                    if let Some(m) = v.captures.and_then(|c| c.get(*i)) {
                        out.extend_from_slice(m.as_bytes());
                    }
                }
                Piece::Var(var, form) => {
                    let n = match var {
                        Var::Seq => v.seq,
                        Var::Conn => v.conn,
                        Var::Len => v.len,
                        Var::Now => v.now,
                        Var::Crc16 => CRC16.checksum(&out[start..]).into(),
                        Var::Crc32 => CRC32.checksum(&out[start..]).into(),
                    };
                    match form {
                        Form::Decimal => push_digits(out, n, 10, 1),
                        Form::HexDigits(w) => push_digits(out, n, 16, *w),
                        Form::Binary(width) => width.write(n, out),
                    }
                }
            }
        }
    }
}

/// `n` in `radix` (lowercase), at least `min` digits, without allocating.
fn push_digits(out: &mut Vec<u8>, mut n: u64, radix: u64, min: usize) {
    let mut buf = [b'0'; 64];
    let mut i = buf.len();
    while n > 0 || buf.len() - i < min {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(n % radix) as usize];
        n /= radix;
    }
    out.extend_from_slice(&buf[i..]);
}

fn parse_variable(inner: &str, hex: bool, scope: &Scope<'_>) -> Result<Piece, String> {
    let shown = format!("${{{inner}}}");
    let (name, width) = match inner.split_once(':') {
        Some((name, width)) => (name.trim(), Some(width.trim())),
        None => (inner.trim(), None),
    };
    let no_width = |what: &str| match width {
        Some(_) => Err(format!(
            "{}: {what} inserts its bytes as they are, so it takes no width",
            quote(&shown)
        )),
        None => Ok(()),
    };
    if name.is_empty() {
        return Err(format!(
            "{}: empty variable: use {VARIABLES}, or a capture of the rule's Regex \
             (write $${{ for a literal ${{)",
            quote(&shown)
        ));
    }
    if let Some(var) = Var::parse(name) {
        if var == Var::Len && !scope.message {
            return Err(format!(
                "{}: ${{len}} is the matched message's length, and this rule's trigger has no \
                 message",
                quote(&shown)
            ));
        }
        let form = match (hex, width) {
            (false, None) => var.text_form(),
            (false, Some(_)) => {
                return Err(format!(
                    "{}: widths are for Hex replies; in Text, ${{{name}}} is written as text",
                    quote(&shown)
                ));
            }
            (true, None) => Form::Binary(var.default_width()),
            (true, Some(w)) => Form::Binary(Width::parse(w).ok_or_else(|| {
                format!(
                    "{}: {} is not a width: use {WIDTHS}",
                    quote(&shown),
                    quote(w)
                )
            })?),
        };
        return Ok(Piece::Var(var, form));
    }
    let groups = || match scope.regex {
        None => "the rule's pattern is not a Regex, so it has no captures".to_owned(),
        Some(re) => {
            let names: Vec<String> = re
                .capture_names()
                .flatten()
                .map(|n| format!("${{{n}}}"))
                .collect();
            format!(
                "its Regex has ${{0}} (the whole match) to ${{{}}}{}",
                re.captures_len() - 1,
                if names.is_empty() {
                    " and no named groups".to_owned()
                } else {
                    format!(", and {}", names.join(", "))
                }
            )
        }
    };
    if name.bytes().all(|b| b.is_ascii_digit()) {
        no_width("a capture")?;
        let index = name.parse::<usize>().ok();
        return match (scope.regex, index) {
            (Some(re), Some(i)) if i < re.captures_len() => Ok(Piece::Capture(i)),
            _ => Err(format!("{}: no such capture: {}", quote(&shown), groups())),
        };
    }
    if let Some(re) = scope.regex
        && let Some(i) = re.capture_names().position(|n| n == Some(name))
    {
        no_width("a capture")?;
        return Ok(Piece::Capture(i));
    }
    Err(format!(
        "{}: unknown variable: use {VARIABLES}, or a capture ({})",
        quote(&shown),
        groups()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str, hex: bool, regex: Option<&str>, message: &[u8], seq: u64) -> Vec<u8> {
        let re = regex.map(|r| Regex::new(r).unwrap());
        let scope = Scope {
            message: true,
            regex: re.as_ref(),
        };
        let t = Template::parse(text, hex, &scope).unwrap_or_else(|e| panic!("{text}: {e}"));
        let caps = re.as_ref().and_then(|r| r.captures(message));
        let mut out = Vec::new();
        t.render(
            &mut out,
            &Values {
                seq,
                conn: 7,
                len: message.len() as u64,
                now: 1_700_000_000_000_000,
                captures: caps.as_ref(),
            },
        );
        out
    }

    fn error(text: &str, hex: bool, regex: Option<&str>, message: bool) -> String {
        let re = regex.map(|r| Regex::new(r).unwrap());
        let scope = Scope {
            message,
            regex: re.as_ref(),
        };
        match Template::parse(text, hex, &scope) {
            Ok(_) => panic!("{text} parsed"),
            Err(e) => e,
        }
    }

    #[test]
    fn captures_numbered_and_named() {
        let re = Some(r"^SET (?P<key>\w+)=(.*)$");
        assert_eq!(
            render("${key} is ${2}\r\n", false, re, b"SET a=b c", 0),
            b"a is b c\r\n"
        );
        assert_eq!(render("[${0}]", false, re, b"SET a=", 0), b"[SET a=]");
        assert_eq!(
            render("${1}", false, Some("(x)?y"), b"y", 0),
            b"",
            "unmatched group"
        );
        assert_eq!(
            render("00 ${2} ff", true, re, b"SET k=\x01", 0),
            b"\x00\x01\xff"
        );
    }

    #[test]
    fn numbers_in_text_and_hex() {
        assert_eq!(
            render("#${seq} c${conn} l${len}", false, None, b"abc", 300),
            b"#300 c7 l3"
        );
        assert_eq!(render("${now}", false, None, b"", 0), b"1700000000000000");
        assert_eq!(render("81 ${seq}", true, None, b"", 1), b"\x81\x01");
        assert_eq!(render("${seq}", true, None, b"", 257), b"\x01", "u8 wraps");
        assert_eq!(render("${seq:u16be}", true, None, b"", 258), b"\x01\x02");
        assert_eq!(render("${seq:u16le}", true, None, b"", 258), b"\x02\x01");
        assert_eq!(render("${seq:u32be}", true, None, b"", 1), b"\0\0\0\x01");
        assert_eq!(render("${seq:u32le}", true, None, b"", 1), b"\x01\0\0\0");
        assert_eq!(
            render("${seq:u64be}", true, None, b"", 1),
            b"\0\0\0\0\0\0\0\x01"
        );
        assert_eq!(
            render("${seq:u64le}", true, None, b"", 1),
            b"\x01\0\0\0\0\0\0\0"
        );
        assert_eq!(render("${len:u8}", true, None, b"ab", 0), b"\x02");
        assert_eq!(render("${seq}", false, None, b"", 0), b"0");
    }

    #[test]
    fn crcs_cover_the_reply_so_far() {
        assert_eq!(
            render("123456789${crc16}", false, None, b"", 0),
            b"1234567894b37"
        );
        assert_eq!(
            render("123456789${crc32}", false, None, b"", 0),
            b"123456789cbf43926"
        );
        assert_eq!(
            render(
                "31 32 33 34 35 36 37 38 39 ${crc16:u16le}",
                true,
                None,
                b"",
                0
            ),
            b"123456789\x37\x4b"
        );
        assert_eq!(
            render("31 32 33 34 35 36 37 38 39 ${crc32}", true, None, b"", 0),
            b"123456789\xcb\xf4\x39\x26"
        );
        // Of nothing: the algorithms' initial values, finished.
        assert_eq!(render("${crc16}", false, None, b"", 0), b"ffff");
    }

    #[test]
    fn dollars_escape_and_stand_alone() {
        assert_eq!(
            render("$${seq} costs $5 $$", false, None, b"", 3),
            b"${seq} costs $5 $"
        );
        assert_eq!(render("$$${seq}", false, None, b"", 3), b"$3");
        assert_eq!(render("end$", false, None, b"", 0), b"end$");
    }

    #[test]
    fn bad_templates_name_the_part() {
        let e = error("${2}", false, Some("(a)"), true);
        assert_eq!(
            e,
            "'${2}': no such capture: its Regex has ${0} (the whole match) to ${1} and no named groups"
        );
        let e = error("${x}", false, Some("(?P<k>a)"), true);
        assert!(e.starts_with("'${x}': unknown variable: use seq, conn, len, now, crc16, crc32, or a capture (its Regex has ${0} (the whole match) to ${1}, and ${k})"), "{e}");
        let e = error("${1}", false, None, true);
        assert!(e.contains("not a Regex, so it has no captures"), "{e}");
        let e = error("${seq:u16be}", false, None, true);
        assert!(e.contains("widths are for Hex replies"), "{e}");
        let e = error("${seq:u16}", true, None, true);
        assert_eq!(
            e,
            "'${seq:u16}': 'u16' is not a width: use u8, u16be, u16le, u32be, u32le, u64be or u64le"
        );
        let e = error("${1:u8}", true, Some("(a)"), true);
        assert!(e.contains("takes no width"), "{e}");
        let e = error("81 8 ${seq}", true, None, true);
        assert!(e.starts_with("'81 8': "), "{e}");
        assert!(e.contains("two hex digits"), "{e}");
        let e = error("81 ${seq} 8", true, None, true);
        assert!(e.contains("odd number of hex digits"), "{e}");
        let e = error("${len}", false, None, false);
        assert!(e.contains("has no message"), "{e}");
        let e = error("a ${seq", false, None, true);
        assert!(e.contains("a variable ends with }"), "{e}");
        let e = error("${}", false, None, true);
        assert!(e.contains("empty variable"), "{e}");
        let e = error("${99999999999999999999999}", false, Some("(a)"), true);
        assert!(e.contains("no such capture"), "{e}");
    }
}
