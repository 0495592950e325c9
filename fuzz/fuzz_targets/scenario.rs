//! Scenario files (`muxscope::scenario::parse`, which `load` uses) and what
//! a client sends to one (`Scenario::try_input`). The input is the file's
//! text, then a NUL byte, then the client's bytes.
//!
//! Properties:
//! - parsing, compiling and running never panic;
//! - a parsed file saves (`to_ron`) to text that parses back to it;
//! - running a compiled scenario on the client's bytes answers the connect
//!   first, holds less than a message's limit, and frames the bytes the
//!   same whether they arrive at once or one at a time, and a framing that
//!   compiled never fails as unusable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxscope::scenario::{self, Framer, FramingError, Scenario, TryTrigger};

fuzz_target!(|data: &[u8]| {
    let (text, input) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let text = String::from_utf8_lossy(text);
    let Ok(file) = scenario::parse(&text) else {
        return;
    };
    let saved = scenario::to_ron(&file);
    let back = scenario::parse(&saved)
        .unwrap_or_else(|e| panic!("a saved scenario does not parse back: {e}\n{saved}"));
    assert_eq!(back, file, "{saved}");
    let Ok(compiled) = Scenario::compile(&file) else {
        return;
    };
    let report = compiled.try_input(input, 1);
    assert_eq!(report.steps.first().map(|s| &s.trigger), Some(&TryTrigger::Connect));
    // A held message is at most the limit and its framing: a delimiter
    // (at most 64 bytes) or a length field (at most 8).
    assert!(report.pending.len() <= compiled.max_message() + 64);
    let cut = |chunks: &mut dyn Iterator<Item = &[u8]>| {
        let mut framer = Framer::new();
        let mut messages = Vec::new();
        let mut error = None;
        for chunk in chunks {
            if let Err(e) = framer.push(compiled.framing(), compiled.max_message(), chunk, |m| {
                messages.push((m.body.to_vec(), m.raw.to_vec()))
            }) {
                // The framing was checked: only the client's bytes can fail.
                assert!(!matches!(e, FramingError::Invalid(_)), "{e}");
                error = Some(e);
            }
        }
        (messages, error, framer.pending().to_vec())
    };
    if !matches!(compiled.framing(), scenario::Framing::Raw) {
        assert_eq!(cut(&mut [input].into_iter()), cut(&mut input.chunks(1)));
    }
});
