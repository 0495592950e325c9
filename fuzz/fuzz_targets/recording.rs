//! A recording file (`*.muxrec`) as someone may hand it over: cut, altered
//! or made up. Opened, indexed, decoded and played back the way the window
//! does (`muxscope::record::reader`, `muxscope::backend::ReplayBackend`).
//!
//! With a first byte of 0 the rest is the file as it is. Otherwise the rest
//! is read as frames to wrap with a valid magic, header and checksums
//! (kind, a 16-bit length, that many payload bytes), so the fuzzer gets
//! past the checksums to the decoding of records and keyframes.
//!
//! Properties:
//! - nothing panics, however the file is made;
//! - damage is reported at a frame boundary within the file;
//! - the frames indexed lie within the file, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxscope::backend::{Backend, ReplayBackend};
use muxscope::monitor::Monitor;
use muxscope::protocol::{Command, ConnId};
use muxscope::record::frame::{self, Kind, MAGIC};
use muxscope::record::reader::Reader;
use muxscope::record::{FORMAT_VERSION, Header};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode == 0 { rest.to_vec() } else { wrap(rest) };

    if let Ok(mut reader) = Reader::open(std::io::Cursor::new(file.clone())) {
        let index = reader.index_all().clone();
        let mut last = 0;
        for f in &index.frames {
            assert!(f.offset >= last && f.offset + f.len as u64 <= file.len() as u64);
            last = f.offset;
        }
        if let Some(d) = &index.damage {
            assert!(d.offset <= file.len() as u64, "{d}");
        }
        for i in 0..index.frames.len() {
            let _ = match index.frames[i].kind {
                Kind::Records => reader.records(i).map(drop),
                Kind::Keyframe => reader.keyframe(i).map(drop),
                Kind::Stats => reader.stats(i).map(drop),
                Kind::Header | Kind::Trailer => Ok(()),
            };
        }
    }

    let Ok(mut replay) = ReplayBackend::open_bytes(file, "fuzz.muxrec") else {
        return;
    };
    let mut monitor = Monitor::default();
    replay.drain_into(&mut monitor, Duration::from_secs(1));
    let (start, end) = (replay.timeline.start, replay.timeline.end);
    for t in [end, start, start + (end.saturating_sub(start)) / 2] {
        replay.timeline.seek = Some(t);
        replay.send(Command::Inspect { conn: ConnId(1) });
        replay.drain_into(&mut monitor, Duration::from_secs(1));
        replay.timeline.jump = Some((ConnId(1), muxscope::backend::replay::Jump::Previous));
        replay.drain_into(&mut monitor, Duration::from_secs(1));
    }
});

/// A file with a valid magic and header, then `rest` as frames.
fn wrap(mut rest: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let header = Header {
        format_version: FORMAT_VERSION,
        writer: "fuzz".into(),
        engine_started_unix_ms: 0,
        started_at: 0,
        part: 1,
    };
    frame::encode(Kind::Header, 0, &header, &mut out);
    let mut at = 0u64;
    while rest.len() >= 3 {
        let kind = match rest[0] % 4 {
            0 => Kind::Records,
            1 => Kind::Keyframe,
            2 => Kind::Stats,
            _ => Kind::Trailer,
        };
        let len = (u16::from_le_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        let payload = &rest[3..3 + len];
        at += u64::from(rest[1]) * 1000;
        frame::write(kind, at, &[payload], &mut out);
        rest = &rest[3 + len..];
    }
    out
}
