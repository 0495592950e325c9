//! Server → viewer batches: binary WebSocket frames (version byte, then
//! postcard). Property: whatever decodes re-encodes to a frame that decodes
//! to the same batch. Run with `-malloc_limit_mb` so that a small frame
//! claiming a huge length fails the run instead of allocating.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxscope::control::wire::{decode_batch, encode_batch};

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = decode_batch(data) else {
        return;
    };
    let frame = encode_batch(&batch);
    let back =
        decode_batch(&frame).unwrap_or_else(|e| panic!("{batch:?} re-encodes to a bad frame: {e}"));
    // The rates are f64 and may be NaN, which is never equal to itself;
    // the encodings compare bit for bit either way.
    assert_eq!(encode_batch(&back), frame);
    let has_nan = batch
        .stats
        .as_ref()
        .is_some_and(|s| s.events_per_sec.is_nan() || s.polls_per_sec.is_nan());
    if !has_nan {
        assert_eq!(back, batch);
    }
});
