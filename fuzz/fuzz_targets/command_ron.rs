//! Viewer → server commands: RON text from a WebSocket text frame.
//! Property: whatever decodes re-encodes to text that decodes to the same
//! command, so the server and a viewer never disagree about a command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxscope::control::wire::{decode_command, encode_command};

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8; lossy conversion lets mutated bytes still
    // reach the parser as (mostly) the same text.
    let text = String::from_utf8_lossy(data);
    let Ok(command) = decode_command(&text) else {
        return;
    };
    let encoded = encode_command(&command);
    let back = decode_command(&encoded)
        .unwrap_or_else(|e| panic!("{command:?} encodes as {encoded:?}, which fails: {e}"));
    assert_eq!(back, command, "round trip through {encoded:?}");
});
