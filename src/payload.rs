//! Turning what a person types into bytes, and bytes into something a person
//! can read. Pure functions, shared by the inject pane and the transcript.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How inject input is interpreted.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InputFormat {
    /// Sent as typed (UTF-8).
    #[default]
    Text,
    /// Text with escapes: `\r \n \t \0 \\ \xHH`.
    Escaped,
    /// Hex byte pairs, e.g. `48 65 6c` or `48656c`; spaces, `:`, `,` and
    /// `0x` prefixes are allowed between bytes.
    Hex,
}

impl InputFormat {
    pub const ALL: [InputFormat; 3] = [InputFormat::Text, InputFormat::Escaped, InputFormat::Hex];

    pub fn label(self) -> &'static str {
        match self {
            InputFormat::Text => "Text",
            InputFormat::Escaped => "Escapes",
            InputFormat::Hex => "Hex",
        }
    }
}

/// What is appended after the payload.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LineEnding {
    #[default]
    None,
    Lf,
    Cr,
    CrLf,
}

impl LineEnding {
    pub const ALL: [LineEnding; 4] = [
        LineEnding::None,
        LineEnding::Lf,
        LineEnding::Cr,
        LineEnding::CrLf,
    ];

    pub fn label(self) -> &'static str {
        match self {
            LineEnding::None => "None",
            LineEnding::Lf => "LF",
            LineEnding::Cr => "CR",
            LineEnding::CrLf => "CRLF",
        }
    }

    pub fn bytes(self) -> &'static [u8] {
        match self {
            LineEnding::None => b"",
            LineEnding::Lf => b"\n",
            LineEnding::Cr => b"\r",
            LineEnding::CrLf => b"\r\n",
        }
    }
}

/// Why input could not be turned into bytes; `at` is a char index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.at + 1, self.message)
    }
}

/// Parse `input` in `format` and append `ending`.
pub fn parse(
    input: &str,
    format: InputFormat,
    ending: LineEnding,
) -> Result<Vec<u8>, PayloadError> {
    let mut bytes = match format {
        InputFormat::Text => input.as_bytes().to_vec(),
        InputFormat::Escaped => parse_escaped(input)?,
        InputFormat::Hex => parse_hex(input)?,
    };
    bytes.extend_from_slice(ending.bytes());
    Ok(bytes)
}

fn hex_value(c: char) -> Option<u8> {
    c.to_digit(16).map(|d| d as u8)
}

pub fn parse_escaped(input: &str) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::with_capacity(input.len());
    let mut chars = input.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some((_, e)) = chars.next() else {
            return Err(PayloadError {
                at: i,
                message: "a lone '\\' ends the input; write '\\\\' for a backslash".into(),
            });
        };
        match e {
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            '0' => out.push(0),
            'e' => out.push(0x1b),
            '\\' => out.push(b'\\'),
            'x' => {
                let hi = chars.next().and_then(|(_, c)| hex_value(c));
                let lo = chars.next().and_then(|(_, c)| hex_value(c));
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => {
                        return Err(PayloadError {
                            at: i,
                            message: "'\\x' needs two hex digits, e.g. \\x00 or \\x1b".into(),
                        });
                    }
                }
            }
            other => {
                return Err(PayloadError {
                    at: i,
                    message: format!(
                        "unknown escape '\\{other}'; use \\r \\n \\t \\0 \\e \\\\ or \\xHH"
                    ),
                });
            }
        }
    }
    Ok(out)
}

pub fn parse_hex(input: &str) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::with_capacity(input.len() / 2);
    let mut high: Option<(usize, u8)> = None;
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(v) = hex_value(c) {
            // `0x` prefix: a '0' followed by 'x' that starts a byte.
            if high.is_none() && c == '0' && matches!(chars.get(i + 1), Some('x' | 'X')) {
                i += 2;
                continue;
            }
            match high.take() {
                None => high = Some((i, v)),
                Some((_, h)) => out.push(h << 4 | v),
            }
        } else if c.is_whitespace() || c == ',' || c == ':' || c == '-' {
            if let Some((at, _)) = high {
                return Err(PayloadError {
                    at,
                    message: "a byte needs two hex digits (write 0A, not A)".into(),
                });
            }
        } else {
            return Err(PayloadError {
                at: i,
                message: format!("'{c}' is not a hex digit"),
            });
        }
        i += 1;
    }
    if let Some((at, _)) = high {
        return Err(PayloadError {
            at,
            message: "odd number of hex digits: the last byte is incomplete".into(),
        });
    }
    Ok(out)
}

/// Bytes as unambiguous text: printable ASCII as is, `\r` `\n` `\t` and
/// `\\` as markers (a line feed also breaks the line), every other byte as
/// `\xNN`. Nothing a client sends can hide, reorder or restyle the display,
/// and the result parses back to the bytes with [`parse_escaped`].
pub fn to_escaped_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        push_ascii_or_escape(&mut out, b);
    }
    out
}

fn push_ascii_or_escape(out: &mut String, b: u8) {
    push_byte_escaped(out, b, None);
    if b == b'\n' {
        out.push('\n');
    }
}

/// One byte as printable ASCII or a backslash escape (`\n \r \t \\
/// \xNN`), the escapes C, Python and [`parse_escaped`] share; `quote` is
/// escaped too, for a string literal delimited by it.
fn push_byte_escaped(out: &mut String, b: u8, quote: Option<u8>) {
    match b {
        b'\n' => out.push_str("\\n"),
        b'\r' => out.push_str("\\r"),
        b'\t' => out.push_str("\\t"),
        b'\\' => out.push_str("\\\\"),
        _ if Some(b) == quote => {
            out.push('\\');
            out.push(b as char);
        }
        0x20..=0x7e => out.push(b as char),
        _ => out.push_str(&format!("\\x{b:02x}")),
    }
}

/// Whether `c` lies in a block of a right-to-left script. Its marks and
/// digits are not strongly right-to-left by class, yet a renderer that
/// applies the bidi algorithm still lets them turn the line around.
fn in_rtl_block(c: char) -> bool {
    matches!(
        c as u32,
        0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF | 0x10800..=0x10FFF | 0x1E800..=0x1EFFF
    )
}

/// Consecutive combining marks shown on one base; more are escaped, so a
/// "zalgo" run cannot smear over neighbouring lines.
const MAX_MARKS_PER_BASE: usize = 2;

/// Bytes as UTF-8 text, for clients that speak it: valid sequences are
/// decoded, and everything that could mislead is made visible instead:
/// - ASCII controls and invalid bytes as in [`to_escaped_text`];
/// - bidi controls, right-to-left letters, invisible format characters and
///   spaces other than ' ' as `\u{XXXX}`, so no run of bytes can reorder
///   the line or pass for other bytes;
/// - a combining mark without a visible base gets one (`◌`), and more than
///   two marks in a row are escaped.
pub fn to_utf8_text(bytes: &[u8]) -> String {
    use unicode_bidi::{BidiClass, bidi_class};
    use unicode_general_category::{GeneralCategory as G, get_general_category};
    let mut out = String::with_capacity(bytes.len());
    // Marks since the last visible base; None when there is no base.
    let mut marks: Option<usize> = None;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_ascii() {
                push_ascii_or_escape(&mut out, c as u8);
                marks = c.is_ascii_graphic().then_some(0);
                continue;
            }
            let category = get_general_category(c);
            let rtl_or_control = in_rtl_block(c)
                || matches!(
                    bidi_class(c),
                    BidiClass::R
                        | BidiClass::AL
                        | BidiClass::RLE
                        | BidiClass::RLO
                        | BidiClass::LRE
                        | BidiClass::LRO
                        | BidiClass::PDF
                        | BidiClass::RLI
                        | BidiClass::LRI
                        | BidiClass::FSI
                        | BidiClass::PDI
                );
            // A space other than ' ' (c is not ASCII here) passes for one.
            let invisible = matches!(
                category,
                G::Control
                    | G::Format
                    | G::SpaceSeparator
                    | G::LineSeparator
                    | G::ParagraphSeparator
                    | G::Unassigned
                    | G::PrivateUse
                    | G::Surrogate
            );
            let mark = matches!(
                category,
                G::NonspacingMark | G::EnclosingMark | G::SpacingMark
            );
            if rtl_or_control || invisible {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32));
                marks = None;
            } else if mark {
                match marks {
                    Some(n) if n < MAX_MARKS_PER_BASE => {
                        out.push(c);
                        marks = Some(n + 1);
                    }
                    Some(_) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
                    None => {
                        out.push('\u{25cc}');
                        out.push(c);
                        marks = Some(1);
                    }
                }
            } else {
                out.push(c);
                marks = (!c.is_whitespace()).then_some(0);
            }
        }
        for &b in chunk.invalid() {
            push_ascii_or_escape(&mut out, b);
            marks = None;
        }
    }
    out
}

/// Bytes as spaced hex on one line: `50 49 4e 47`.
pub fn spaced_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A classic hex dump: offset, 16 bytes in hex, and their ASCII.
pub fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4 + 16);
    hex_dump_pieces(bytes, |piece, _| out.push_str(piece));
    out
}

/// [`hex_dump`] in pieces, each with the index of the byte it shows (the
/// offset column, padding and line breaks have none), so a view can mark
/// some bytes in both the hex and the character columns.
pub fn hex_dump_pieces(bytes: &[u8], mut emit: impl FnMut(&str, Option<usize>)) {
    let mut buf = String::new();
    for (line, chunk) in bytes.chunks(16).enumerate() {
        let base = line * 16;
        buf.clear();
        buf.push_str(&format!("{base:08x}  "));
        emit(&buf, None);
        for i in 0..16 {
            match chunk.get(i) {
                Some(b) => {
                    emit(&format!("{b:02x}"), Some(base + i));
                    emit(" ", None);
                }
                None => emit("   ", None),
            }
            if i == 7 {
                emit(" ", None);
            }
        }
        emit(" ", None);
        for (i, &b) in chunk.iter().enumerate() {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            };
            emit(c.encode_utf8(&mut [0; 4]), Some(base + i));
        }
        emit("\n", None);
    }
}

/// Bytes as a C array definition, twelve per line:
/// `static const unsigned char NAME[N] = { 0x.., ... };`.
pub fn to_c_array(name: &str, bytes: &[u8]) -> String {
    let mut out = format!("static const unsigned char {name}[{}] = {{\n", bytes.len());
    for (i, line) in bytes.chunks(12).enumerate() {
        if i > 0 {
            out.push_str(",\n");
        }
        let cells: Vec<String> = line.iter().map(|b| format!("0x{b:02x}")).collect();
        out.push_str("    ");
        out.push_str(&cells.join(", "));
    }
    out.push_str("\n};\n");
    out
}

/// Bytes as a Python `bytes` literal that evaluates to exactly them:
/// printable ASCII as is, `\\` `\'` `\t` `\n` `\r` escaped, the rest `\xNN`.
pub fn to_python_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push_str("b'");
    for &b in bytes {
        push_byte_escaped(&mut out, b, Some(b'\''));
    }
    out.push('\'');
    out
}

/// A short one-line preview of bytes, for history lists.
pub fn preview(bytes: &[u8], max_chars: usize) -> String {
    let text = to_escaped_text(bytes).replace('\n', "");
    if text.chars().count() > max_chars {
        let cut: String = text.chars().take(max_chars).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_line_endings() {
        assert_eq!(
            parse("hi", InputFormat::Text, LineEnding::CrLf).unwrap(),
            b"hi\r\n"
        );
        assert_eq!(
            parse("hi", InputFormat::Text, LineEnding::Lf).unwrap(),
            b"hi\n"
        );
        assert_eq!(
            parse("hi", InputFormat::Text, LineEnding::Cr).unwrap(),
            b"hi\r"
        );
        assert_eq!(
            parse("\\n", InputFormat::Text, LineEnding::None).unwrap(),
            b"\\n"
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(
            parse_escaped(r"GET /\r\n\x00\x41\\\t\e").unwrap(),
            b"GET /\r\n\x00A\\\t\x1b"
        );
        assert_eq!(parse_escaped("é").unwrap(), "é".as_bytes());
        let err = parse_escaped(r"ab\q").unwrap_err();
        assert_eq!(err.at, 2);
        assert!(err.message.contains("unknown escape"));
        assert!(parse_escaped(r"\x4").is_err());
        assert!(parse_escaped("\\").is_err());
    }

    #[test]
    fn hex() {
        assert_eq!(parse_hex("48 65 6c").unwrap(), b"Hel");
        assert_eq!(parse_hex("48656C6c6f").unwrap(), b"Hello");
        assert_eq!(parse_hex("0x48, 0x69").unwrap(), b"Hi");
        assert_eq!(parse_hex("de:ad:be:ef").unwrap(), [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(parse_hex("").unwrap(), b"");
        let err = parse_hex("48 6").unwrap_err();
        assert_eq!(err.at, 3);
        let err = parse_hex("48 zz").unwrap_err();
        assert_eq!(
            (err.at, err.message.as_str()),
            (3, "'z' is not a hex digit")
        );
        assert!(parse_hex("4 8").is_err(), "single digits are not bytes");
    }

    #[test]
    fn rendering_is_unambiguous() {
        assert_eq!(
            to_escaped_text(b"a\r\nb\x00\xff\\"),
            "a\\r\\n\nb\\x00\\xff\\\\"
        );
        // Escaped rendering round-trips through the escape parser.
        let bytes = b"x\r\ny\t\x01\x7f\\".to_vec();
        let text = to_escaped_text(&bytes).replace('\n', "");
        assert_eq!(parse_escaped(&text).unwrap(), bytes);
    }

    #[test]
    fn binary_that_happens_to_be_utf8_stays_bytes_in_text_view() {
        // de ad is U+07AD, a right-to-left combining mark (Thaana).
        assert_eq!(
            to_escaped_text(&[0xde, 0xad, 0xbe, 0xef]),
            "\\xde\\xad\\xbe\\xef"
        );
        assert_eq!(to_escaped_text("é".as_bytes()), "\\xc3\\xa9");
    }

    #[test]
    fn utf8_view_decodes_text_but_neutralises_what_could_mislead() {
        assert_eq!(to_utf8_text("héllo wörld".as_bytes()), "héllo wörld");
        // Bidi override, right-to-left letters and a zero-width joiner.
        assert_eq!(to_utf8_text("a\u{202e}b".as_bytes()), "a\\u{202e}b");
        assert_eq!(
            to_utf8_text("שלום".as_bytes()),
            "\\u{05e9}\\u{05dc}\\u{05d5}\\u{05dd}"
        );
        assert_eq!(to_utf8_text("a\u{200d}b".as_bytes()), "a\\u{200d}b");
        // de ad is a Thaana (right-to-left) mark: escaped, since a bidi
        // renderer would turn the line around for it; be ef is not UTF-8.
        assert_eq!(
            to_utf8_text(&[0xde, 0xad, 0xbe, 0xef]),
            "\\u{07ad}\\xbe\\xef"
        );
        assert_eq!(to_utf8_text("\u{0301}x".as_bytes()), "\u{25cc}\u{0301}x");
        assert_eq!(
            to_utf8_text("e\u{0301}".as_bytes()),
            "e\u{0301}",
            "a real accent stays"
        );
        // Zalgo: only two marks per base.
        assert_eq!(
            to_utf8_text("e\u{0301}\u{0302}\u{0303}".as_bytes()),
            "e\u{0301}\u{0302}\\u{0303}"
        );
        // Invalid bytes and controls as in the text view.
        assert_eq!(to_utf8_text(b"\xff\x00\r\n"), "\\xff\\x00\\r\\n\n");
    }

    /// Found by the `payload` fuzz target: U+00A0 (bytes c2 a0) looked
    /// exactly like a space (20).
    #[test]
    fn utf8_view_escapes_spaces_that_pass_for_a_space() {
        assert_eq!(to_utf8_text("a\u{a0}b c".as_bytes()), "a\\u{00a0}b c");
        assert_eq!(
            to_utf8_text("\u{2003}\u{3000}".as_bytes()),
            "\\u{2003}\\u{3000}"
        );
        assert_eq!(
            to_utf8_text("\u{a0}\u{301}".as_bytes()),
            "\\u{00a0}\u{25cc}\u{301}"
        );
    }

    #[test]
    fn code_literals_hold_exactly_the_bytes() {
        assert_eq!(
            to_python_bytes(b"a'\\\t\r\n\x00\xff~"),
            "b'a\\'\\\\\\t\\r\\n\\x00\\xff~'"
        );
        assert_eq!(to_python_bytes(b""), "b''");
        let c = to_c_array("rx_0", &[7; 13]);
        assert_eq!(
            c,
            "static const unsigned char rx_0[13] = {\n    0x07, 0x07, 0x07, 0x07, 0x07, 0x07, \
             0x07, 0x07, 0x07, 0x07, 0x07, 0x07,\n    0x07\n};\n"
        );
    }

    #[test]
    fn hex_dump_pieces_name_the_byte_they_show() {
        let mut shown = vec![String::new(); 3];
        hex_dump_pieces(b"A\x00B", |piece, at| {
            if let Some(i) = at {
                shown[i].push_str(piece);
            }
        });
        assert_eq!(shown, ["41A", "00.", "42B"]);
    }

    #[test]
    fn dump() {
        let d = hex_dump(b"Hello, world!\n\x00\x01\x02");
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(
            "00000000  48 65 6c 6c 6f 2c 20 77  6f 72 6c 64 21 0a 00 01  Hello, world!..."
        ));
        assert!(lines[1].starts_with("00000010  02 "));
        assert!(lines[1].ends_with(" ."));
    }
}
