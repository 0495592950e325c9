//! The engine's memory against a client that does not read while many tiny
//! messages are queued for it. Its own test binary: it measures this
//! process's resident memory, which other tests running alongside would
//! disturb.

mod common;

use common::*;
use muxscope::engine::EngineConfig;
use muxscope::protocol::{Command, ConnId, Targets};
use std::time::Instant;

/// Resident set size of this process, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm is readable");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm has a resident field");
    pages * 4096
}

/// Send `n` injects of `bytes` to `id`, waiting every 2,000 for the engine
/// to take them, so the command channel never holds many at once (the
/// transient memory of commands and events then stays near 1 MiB).
fn inject_many(h: &Harness, id: ConnId, bytes: &[u8], n: usize) {
    for i in 0..n {
        h.send(Command::Inject {
            targets: Targets::one(id),
            bytes: bytes.to_vec(),
        });
        if i % 2_000 == 1_999 {
            // Commands are applied in order: the answer comes after them.
            h.inspect(id);
        }
    }
    h.inspect(id);
}

/// One message per tiny inject: a queue bounded only in bytes holds an
/// allocation per byte, each some 100 bytes of allocator and bookkeeping
/// (measured: 128,000 one-byte messages took 16 MiB). Injects make the
/// one-byte messages deterministic; a client's one-byte writes mostly reach
/// the engine coalesced (about 28 bytes per read here), and echo shares the
/// queue.
#[test]
fn one_byte_messages_keep_the_queue_memory_near_its_limit() {
    const LIMIT: usize = 256 * 1024;
    const TINY: usize = 300_000;
    let h = Harness::start_without_event_log(EngineConfig {
        queue_limit: LIMIT,
        low_water: LIMIT / 4,
        ..EngineConfig::default()
    });
    let (c, id) = h.connect_with(|a| client_with_rcvbuf(a, 4096));
    // First fill the kernel's buffers, so that what follows stays in the
    // engine's queue: 64 KiB at a time until some of it waits there.
    let mut filled = 0;
    while h.inspect(id).counters.queued_bytes == 0 {
        inject_many(&h, id, &[b'f'; 64 * 1024], 1);
        filled += 64 * 1024;
        assert!(filled < 256 * 1024 * 1024, "the kernel took {filled} B");
    }
    let start = h.inspect(id).counters;
    assert!(
        start.queued_bytes < LIMIT as u64,
        "precondition: the queue has room ({start:#?})"
    );
    let before = rss_bytes();
    let started = Instant::now();
    inject_many(&h, id, b"t", TINY);
    let end = h.inspect(id).counters;
    let after = rss_bytes();
    let grew = after.saturating_sub(before);
    eprintln!(
        "{TINY} one-byte injects in {:?}: queue {} B in {} messages -> {} B in {} messages; \
         resident memory {} KiB -> {} KiB (+{} KiB)",
        started.elapsed(),
        start.queued_bytes,
        start.queued_msgs,
        end.queued_bytes,
        end.queued_msgs,
        before / 1024,
        after / 1024,
        grew / 1024
    );
    assert!(
        end.queued_bytes <= LIMIT as u64,
        "the queue holds {} B, above its limit",
        end.queued_bytes
    );
    // The queue may take its limit and some overhead, plus about 1 MiB of
    // transient memory for events and commands (measured with a client
    // that reads everything); an allocation per byte takes 16 MiB here.
    assert!(
        grew < 6 * 1024 * 1024,
        "resident memory grew by {} KiB for a queue limit of {} KiB",
        grew / 1024,
        LIMIT / 1024
    );
    drop(c);
}
