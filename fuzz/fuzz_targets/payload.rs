//! The inject payload parsers (what a person types) and the transcript
//! renderers (what a client sent), from `muxscope::payload`.
//!
//! Properties:
//! - parsing never panics, errors point inside the input, and the line
//!   ending is appended;
//! - the text view (`to_escaped_text`) is printable ASCII and line breaks
//!   only, and parses back to the same bytes;
//! - the UTF-8 view (`to_utf8_text`) shows no control, no whitespace other
//!   than ' ' and no bidi control raw, and renders ASCII as the text view
//!   does;
//! - the hex dump's hex columns parse back to the same bytes, and its
//!   columns line up;
//! - a preview stays on one line and within its length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxscope::payload::{
    self, InputFormat, LineEnding, hex_dump, parse_escaped, parse_hex, preview, to_escaped_text,
    to_utf8_text,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    check_parsers(&String::from_utf8_lossy(rest), selector);
    check_escaped_rendering(rest);
    check_utf8_rendering(rest);
    check_hex_dump(rest);
    check_preview(rest, usize::from(selector));
});

fn check_parsers(text: &str, selector: u8) {
    let ending = LineEnding::ALL[usize::from(selector) % LineEnding::ALL.len()];
    let chars = text.chars().count();
    for format in InputFormat::ALL {
        match payload::parse(text, format, ending) {
            Ok(bytes) => assert!(bytes.ends_with(ending.bytes()), "{format:?}"),
            Err(e) => assert!(e.at < chars, "{format:?}: error at {} of {chars}", e.at),
        }
    }
    assert_eq!(
        payload::parse(text, InputFormat::Text, ending).unwrap(),
        [text.as_bytes(), ending.bytes()].concat()
    );
    if !text.contains('\\') {
        assert_eq!(parse_escaped(text).unwrap(), text.as_bytes());
    }
    if let Ok(bytes) = parse_hex(text) {
        let digits = text.chars().filter(char::is_ascii_hexdigit).count();
        assert!(bytes.len() * 2 <= digits);
    }
}

fn check_escaped_rendering(bytes: &[u8]) {
    let text = to_escaped_text(bytes);
    assert_only_marked_line_breaks(&text);
    assert!(
        text.chars()
            .all(|c| c == '\n' || c == ' ' || c.is_ascii_graphic()),
        "{text:?}"
    );
    let typed = text.replace('\n', "");
    assert_eq!(parse_escaped(&typed).as_deref(), Ok(bytes), "{typed:?}");
}

fn check_utf8_rendering(bytes: &[u8]) {
    let text = to_utf8_text(bytes);
    assert_only_marked_line_breaks(&text);
    for c in text.chars() {
        let hides = c.is_control() || (c.is_whitespace() && c != ' ') || is_bidi_control(c);
        assert!(
            c == '\n' || !hides,
            "{c:?} (U+{:04X}) is shown raw in {text:?}",
            u32::from(c)
        );
    }
    if bytes.is_ascii() {
        assert_eq!(text, to_escaped_text(bytes));
    }
}

/// Line feeds are shown as `\n` followed by a real line break; no other
/// character breaks the line.
fn assert_only_marked_line_breaks(text: &str) {
    assert!(!text.replace("\\n\n", "").contains('\n'), "{text:?}");
}

/// The explicit bidi formatting characters, which reorder the text around
/// them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn check_hex_dump(bytes: &[u8]) {
    let dump = hex_dump(bytes);
    let mut back = Vec::with_capacity(bytes.len());
    for (i, (line, chunk)) in dump.lines().zip(bytes.chunks(16)).enumerate() {
        assert_eq!(&line[..8], format!("{:08x}", i * 16));
        // Offset, two spaces, 16 columns of "hh " with one extra space in
        // the middle, a space, then one ASCII character per byte.
        assert_eq!(line.len(), 10 + 49 + 1 + chunk.len(), "{line:?}");
        back.extend(parse_hex(&line[10..59]).unwrap());
    }
    assert_eq!(dump.lines().count(), bytes.len().div_ceil(16));
    assert_eq!(back, bytes);
}

fn check_preview(bytes: &[u8], max_chars: usize) {
    let shown = preview(bytes, max_chars);
    assert!(!shown.contains('\n'));
    let full = to_escaped_text(bytes).replace('\n', "");
    if full.chars().count() <= max_chars {
        assert_eq!(shown, full);
    } else {
        let cut = shown.strip_suffix('…').expect("a cut preview ends in …");
        assert_eq!(cut.chars().count(), max_chars);
        assert!(full.starts_with(cut));
    }
}
