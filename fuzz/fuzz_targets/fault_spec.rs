//! The `--fault` grammar (`muxscope::faults::spec::parse`): what a person or
//! a CI script passes on the command line, or types into the window.
//!
//! Properties:
//! - parsing never panics;
//! - a spec that parses prints (`Display`) as a canonical spec that parses
//!   back to the same plan, and prints the same again;
//! - an error is one line, without control characters, of bounded length,
//!   and its bad part is a piece of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxscope::faults::spec;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match spec::parse(&text) {
        Ok(plan) => {
            let canonical = plan.to_string();
            let back = spec::parse(&canonical)
                .unwrap_or_else(|e| panic!("{canonical:?} does not parse back: {e}"));
            assert_eq!(back, plan, "{canonical:?}");
            assert_eq!(back.to_string(), canonical);
        }
        Err(e) => {
            let line = e.to_string();
            assert!(!line.chars().any(char::is_control), "{line:?}");
            // Two quotes cut to about 80 bytes each, the valid names and
            // the syntax; a 10-byte escape may overshoot the cut.
            assert!(line.len() < 600, "{} bytes: {line}", line.len());
            assert!(text.contains(e.part()), "{:?} is not in the input", e.part());
        }
    }
});
