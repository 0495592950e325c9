//! Compiled message patterns: what a `Message(...)` trigger matches.
//!
//! Matching runs for every message of every connection, so it is byte
//! comparisons where it can be (`memmem` for `Contains`), a regex only
//! where the file asks for one, and it never allocates.

use super::PatternSpec;
use crate::logging::terminal_safe;
use memchr::memmem::Finder;
use regex::bytes::{Regex, RegexBuilder};

/// A regex may compile to at most this much memory: a scenario is
/// untrusted input, and a few large Unicode classes fit well below it.
const REGEX_SIZE_LIMIT: usize = 4 << 20;

#[derive(Clone)]
pub(crate) enum Pattern {
    Any,
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    /// Boxed: a finder is large, and most patterns are not one.
    Contains(Box<Finder<'static>>),
    Regex(Regex),
    /// `pattern` already masked, so a match is one AND and compare a byte.
    Mask {
        pattern: Box<[u8]>,
        mask: Box<[u8]>,
    },
}

impl Pattern {
    /// Compile `spec`; the error names the bad part and what is valid.
    pub(crate) fn compile(spec: &PatternSpec) -> Result<Pattern, String> {
        let hex = |name: &str, text: &str| -> Result<Box<[u8]>, String> {
            crate::payload::parse_hex(text)
                .map(Vec::into_boxed_slice)
                .map_err(|e| format!("{name}(\"{}\"): {e}", terminal_safe(text, 80)))
        };
        Ok(match spec {
            PatternSpec::Any => Pattern::Any,
            PatternSpec::Exact(t) => Pattern::Exact(t.as_bytes().into()),
            PatternSpec::Prefix(t) => Pattern::Prefix(t.as_bytes().into()),
            PatternSpec::Contains(t) => {
                Pattern::Contains(Box::new(Finder::new(t.as_bytes()).into_owned()))
            }
            PatternSpec::Hex(h) => Pattern::Exact(hex("Hex", h)?),
            PatternSpec::HexPrefix(h) => Pattern::Prefix(hex("HexPrefix", h)?),
            PatternSpec::HexMask { pattern, mask } => {
                let p = hex("HexMask pattern", pattern)?;
                let m = hex("HexMask mask", mask)?;
                if p.len() != m.len() {
                    return Err(format!(
                        "HexMask: the pattern is {} bytes and the mask {}; give both the same \
                         length (mask ff compares a byte, 00 ignores it)",
                        p.len(),
                        m.len()
                    ));
                }
                let pattern = p.iter().zip(m.iter()).map(|(p, m)| p & m).collect();
                Pattern::Mask { pattern, mask: m }
            }
            PatternSpec::Regex(r) => Pattern::Regex(
                RegexBuilder::new(r)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("Regex(\"{}\"): {e}", terminal_safe(r, 80)))?,
            ),
        })
    }

    pub(crate) fn is_match(&self, message: &[u8]) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(b) => message == &b[..],
            Pattern::Prefix(b) => message.starts_with(b),
            Pattern::Contains(f) => f.find(message).is_some(),
            Pattern::Regex(r) => r.is_match(message),
            Pattern::Mask { pattern, mask } => {
                message.len() == pattern.len()
                    && message
                        .iter()
                        .zip(mask.iter())
                        .zip(pattern.iter())
                        .all(|((b, m), p)| b & m == *p)
            }
        }
    }

    /// The regex, for templates that use its captures.
    pub(crate) fn regex(&self) -> Option<&Regex> {
        match self {
            Pattern::Regex(r) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(spec: PatternSpec, message: &[u8]) -> bool {
        Pattern::compile(&spec).unwrap().is_match(message)
    }

    #[test]
    fn byte_patterns() {
        use PatternSpec::*;
        assert!(matches(Any, b""));
        assert!(matches(Exact("PING".into()), b"PING"));
        assert!(!matches(Exact("PING".into()), b"PING "));
        assert!(matches(Prefix("GET ".into()), b"GET /"));
        assert!(!matches(Prefix("GET ".into()), b"GET"));
        assert!(matches(Contains("ll".into()), b"hello"));
        assert!(matches(Contains("".into()), b""));
        assert!(!matches(Contains("lo!".into()), b"hello"));
        assert!(matches(Hex("00 ff".into()), b"\x00\xff"));
        assert!(matches(HexPrefix("01".into()), b"\x01\x02"));
        assert!(!matches(HexPrefix("01".into()), b"\x02\x01"));
        let mask = || HexMask {
            pattern: "80 01".into(),
            mask: "f0 ff".into(),
        };
        assert!(matches(mask(), b"\x8f\x01"));
        assert!(!matches(mask(), b"\x7f\x01"));
        assert!(!matches(mask(), b"\x80\x01\x00"), "the length must match");
    }

    #[test]
    fn regexes_match_bytes_unanchored() {
        let re = |r: &str| PatternSpec::Regex(r.into());
        assert!(matches(re("^ECHO (.*)$"), b"ECHO hi"));
        assert!(matches(re("ELL"), b"HELLO"));
        assert!(matches(re(r"(?-u)^\x01.\xff$"), b"\x01\x80\xff"));
    }

    #[test]
    fn errors_name_the_pattern() {
        let err = |spec| Pattern::compile(&spec).err().unwrap();
        let e = err(PatternSpec::Regex("(".into()));
        assert!(e.starts_with("Regex(\"(\"): regex parse error"), "{e}");
        let e = err(PatternSpec::Hex("0".into()));
        assert!(
            e.starts_with("Hex(\"0\"): at character 1: odd number"),
            "{e}"
        );
        let e = err(PatternSpec::HexMask {
            pattern: "01 02".into(),
            mask: "ff".into(),
        });
        assert!(e.contains("the pattern is 2 bytes and the mask 1"), "{e}");
        let e = err(PatternSpec::Regex(r"\w{1000}\w{1000}".into()));
        assert!(e.contains("size limit"), "{e}");
    }
}
