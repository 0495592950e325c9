//! Logging: to stderr when a terminal is attached, otherwise (double-clicked
//! app) to `muxscope.log` in the data directory, which the Help menu names.
//! The logger is native only; [`terminal_safe`] is pure and builds for the
//! web viewer too.

use std::borrow::Cow;
#[cfg(not(target_arch = "wasm32"))]
use std::fs::{File, OpenOptions};
#[cfg(not(target_arch = "wasm32"))]
use std::io::{IsTerminal, Write};
#[cfg(not(target_arch = "wasm32"))]
use std::path::PathBuf;
#[cfg(not(target_arch = "wasm32"))]
use std::sync::Mutex;

/// Above this size the log starts over, so it never grows without bound.
#[cfg(not(target_arch = "wasm32"))]
const MAX_LOG_BYTES: u64 = 4 * 1024 * 1024;
/// One log record's message is cut to this many bytes.
#[cfg(not(target_arch = "wasm32"))]
const MAX_RECORD_BYTES: usize = 4096;

/// `text` made safe to print on a terminal or write to a log: control
/// characters (C0 such as ESC, CR, LF and BEL; DEL; C1) and the Unicode
/// bidirectional controls, which could rewrite or reorder what the reader
/// sees, are written as `\u{..}` escapes (and `\` as `\\`, so escapes stay
/// unambiguous), and the result is cut to about `max` bytes, saying how
/// much was left out. Text that needs neither is borrowed as it is.
pub fn terminal_safe(text: &str, max: usize) -> Cow<'_, str> {
    let needs_escape = |c: char| c == '\\' || c.is_control() || is_bidi_control(c);
    if text.len() <= max && !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(max) + 32);
    for (i, c) in text.char_indices() {
        let before = out.len();
        if c == '\\' {
            out.push_str("\\\\");
        } else if needs_escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
        if out.len() > max {
            out.truncate(before);
            let rest = text.len() - i;
            out.push_str(&format!("…({rest} more bytes)"));
            return Cow::Owned(out);
        }
    }
    Cow::Owned(out)
}

/// Characters that change the display order of the text around them
/// (the "Trojan Source" set).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(not(target_arch = "wasm32"))]
struct Logger {
    file: Option<Mutex<File>>,
}

#[cfg(not(target_arch = "wasm32"))]
impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
            || metadata.target().starts_with("muxscope") && metadata.level() <= log::Level::Debug
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let message = record.args().to_string();
        let line = format!(
            "{secs:.3} {:5} {}: {}\n",
            record.level(),
            record.target(),
            terminal_safe(&message, MAX_RECORD_BYTES)
        );
        match &self.file {
            Some(file) => {
                if let Ok(mut f) = file.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// Install the logger. Returns the log file's path when logging to a file.
#[cfg(not(target_arch = "wasm32"))]
pub fn init() -> Option<PathBuf> {
    let path = crate::paths::log_path();
    let file = if std::io::stderr().is_terminal() {
        None
    } else {
        let _ = std::fs::create_dir_all(path.parent()?);
        let too_big = std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_LOG_BYTES);
        OpenOptions::new()
            .create(true)
            .append(!too_big)
            .write(true)
            .truncate(too_big)
            .open(&path)
            .ok()
    };
    let to_file = file.is_some();
    let logger = Logger {
        file: file.map(Mutex::new),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    to_file.then_some(path)
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "cannot listen on 127.0.0.1:80: permission denied — café";
        assert!(matches!(
            terminal_safe(text, 1000),
            std::borrow::Cow::Borrowed(t) if t == text
        ));
    }

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        let evil = "a\u{1b}[2J\u{1b}]0;title\u{7}b\rc\nd\u{7f}e\u{9b}f\u{202e}g\u{2066}h\\";
        let safe = terminal_safe(evil, 1000);
        assert_eq!(
            safe,
            "a\\u{1b}[2J\\u{1b}]0;title\\u{7}b\\u{d}c\\u{a}d\\u{7f}e\\u{9b}f\\u{202e}g\\u{2066}h\\\\"
        );
        assert!(!safe.chars().any(|c| c.is_control()));
    }

    #[test]
    fn long_text_is_cut_and_says_how_much() {
        let long = "x".repeat(1_000_000);
        let safe = terminal_safe(&long, 100);
        assert!(safe.len() <= 100 + 32, "{}", safe.len());
        assert!(safe.ends_with("…(999900 more bytes)"), "{safe}");
        // Escapes count towards the limit, and are never cut in half.
        let esc = "\u{1b}".repeat(1000);
        let safe = terminal_safe(&esc, 50);
        assert!(safe.starts_with("\\u{1b}\\u{1b}"));
        assert!(safe.contains("\\u{1b}…("), "{safe}");
        // Multi-byte characters are not split.
        let accents = "é".repeat(100);
        let safe = terminal_safe(&accents, 11);
        assert!(safe.starts_with("ééééé…"), "{safe}");
    }
}
