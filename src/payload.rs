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

/// Bytes as readable text: printable UTF-8 as is, line feeds as line
/// breaks (after a visible `\n`), everything else escaped, so that no byte
/// is invisible or ambiguous.
pub fn to_escaped_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                c if shown_as_escape(c) => {
                    let mut buf = [0; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Characters that would hide bytes if shown as themselves: controls,
/// whitespace other than ' ' (it passes for a space or breaks the line),
/// and invisible format characters (zero-width, and the bidi controls that
/// reorder the text around them).
fn shown_as_escape(c: char) -> bool {
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(
            c,
            '\u{ad}'
                | '\u{61c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

/// A classic hex dump: offset, 16 bytes in hex, and their ASCII.
pub fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4 + 16);
    for (line, chunk) in bytes.chunks(16).enumerate() {
        out.push_str(&format!("{:08x}  ", line * 16));
        for i in 0..16 {
            match chunk.get(i) {
                Some(b) => out.push_str(&format!("{b:02x} ")),
                None => out.push_str("   "),
            }
            if i == 7 {
                out.push(' ');
            }
        }
        out.push(' ');
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
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

    /// Found by the `payload` fuzz target: a no-break space was shown raw,
    /// looking like a space (0x20) while being the bytes c2 a0.
    #[test]
    fn invisible_and_lookalike_characters_are_escaped() {
        assert_eq!(to_escaped_text("a\u{a0}b".as_bytes()), "a\\xc2\\xa0b");
        for c in [
            '\u{2028}', '\u{3000}', '\u{200b}', '\u{202e}', '\u{2066}', '\u{feff}',
        ] {
            let bytes = c.to_string().into_bytes();
            let text = to_escaped_text(&bytes);
            assert!(
                text.chars().all(|c| c.is_ascii_graphic()),
                "{c:?} as {text:?}"
            );
            assert_eq!(parse_escaped(&text).unwrap(), bytes);
        }
        assert_eq!(to_escaped_text("é ü".as_bytes()), "é ü");
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
