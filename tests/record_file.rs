//! Recordings written by a real engine with real clients, read back.

mod temp_dir;

use muxscope::engine::{EngineConfig, EngineHandle};
use muxscope::protocol::{Direction, EventKind};
use muxscope::record::reader::Reader;
use muxscope::record::writer::{AtCap, RecordingConfig};
use muxscope::record::{Record, frame};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn temp(name: &str) -> (temp_dir::TempDir, PathBuf) {
    let dir = temp_dir::TempDir::new(name);
    let path = dir.path().join("session.muxrec");
    (dir, path)
}

fn engine_recording(path: &Path) -> EngineHandle {
    EngineHandle::spawn(EngineConfig {
        listen: Some("127.0.0.1:0".into()),
        record: Some(RecordingConfig {
            path: path.to_owned(),
            max_bytes: None,
            at_cap: AtCap::Stop,
        }),
        ..EngineConfig::default()
    })
    .unwrap()
}

/// Echo `msgs` through one client, each answered before the next.
fn converse(addr: std::net::SocketAddr, msgs: &[&[u8]]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for m in msgs {
        s.write_all(m).unwrap();
        let mut back = vec![0; m.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(&back, m);
    }
}

/// Every byte per connection and direction, as the file has them.
fn bytes_by_conn(path: &Path) -> std::collections::BTreeMap<(u64, bool), Vec<u8>> {
    let mut r = Reader::open(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = std::collections::BTreeMap::new();
    r.for_each_record(|rec| {
        if let Record::Data(d) = rec {
            out.entry((d.conn.0, d.dir == Direction::Rx))
                .or_insert_with(Vec::new)
                .extend_from_slice(&d.bytes);
        }
    })
    .unwrap();
    assert!(r.index.damage.is_none(), "{:?}", r.index.damage);
    out
}

#[test]
fn every_byte_both_ways_is_in_the_file_beyond_the_transcript_ring() {
    let (_dir, path) = temp("record-every-byte");
    let engine = engine_recording(&path);
    let addr = engine.local_addr().unwrap();
    // 64 KiB each way: four times the 16 KiB transcript ring.
    let big: Vec<u8> = (0..65_536u32).map(|i| (i * 7 % 251) as u8).collect();
    converse(addr, &[b"hello\n", &big, b"\x00\xffbinary"]);
    converse(addr, &[b"second client\r\n"]);
    std::thread::sleep(Duration::from_millis(300));
    engine.shutdown();

    let bytes = bytes_by_conn(&path);
    let mut first = b"hello\n".to_vec();
    first.extend_from_slice(&big);
    first.extend_from_slice(b"\x00\xffbinary");
    assert_eq!(bytes.get(&(1, true)), Some(&first), "client 1 sent");
    assert_eq!(bytes.get(&(1, false)), Some(&first), "client 1 was sent");
    assert_eq!(bytes[&(2, true)], b"second client\r\n");
    assert_eq!(bytes[&(2, false)], b"second client\r\n");

    let mut r = Reader::open(std::fs::File::open(&path).unwrap()).unwrap();
    let index = r.index_all().clone();
    assert!(index.trailer.is_some(), "a stopped engine closes the file");
    assert!(
        !index.keyframes.is_empty(),
        "the file starts with a keyframe"
    );
    let mut accepted = 0;
    r.for_each_record(|rec| {
        if let Record::Batch(b) = rec {
            accepted += b
                .events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Accepted { .. }))
                .count();
        }
    })
    .unwrap();
    assert_eq!(accepted, 2, "the engine's events are recorded");
}

#[test]
fn a_cut_or_altered_file_opens_up_to_the_damage_and_says_where() {
    let (_dir, path) = temp("record-damage");
    let engine = engine_recording(&path);
    let addr = engine.local_addr().unwrap();
    for i in 0..20 {
        converse(addr, &[format!("message {i}\n").as_bytes()]);
        std::thread::sleep(Duration::from_millis(30));
    }
    engine.shutdown();
    let whole = std::fs::read(&path).unwrap();
    let mut r = Reader::open(std::io::Cursor::new(whole.clone())).unwrap();
    let frames = r.index_all().frames.clone();
    assert!(frames.len() >= 4, "{} frames", frames.len());

    // Cut in the middle of the third-last frame, as a kill -9 mid-write.
    let victim = frames[frames.len() - 3];
    let cut = victim.offset as usize + frame::HEADER_LEN + 3;
    let mut r = Reader::open(std::io::Cursor::new(whole[..cut].to_vec())).unwrap();
    let index = r.index_all();
    let damage = index.damage.clone().expect("damage found");
    assert_eq!(damage.offset, victim.offset);
    assert!(damage.why.contains("cut short"), "{}", damage.why);
    assert_eq!(
        index.frames.len(),
        frames.len() - 3,
        "everything before it is kept"
    );

    // Flip one bit inside a frame's payload.
    let victim = frames[frames.len() / 2];
    let mut flipped = whole.clone();
    flipped[victim.offset as usize + frame::HEADER_LEN + 1] ^= 0x10;
    let mut r = Reader::open(std::io::Cursor::new(flipped)).unwrap();
    let index = r.index_all();
    let damage = index.damage.clone().expect("damage found");
    assert_eq!(damage.offset, victim.offset);
    assert!(damage.why.contains("checksum"), "{}", damage.why);
    assert_eq!(index.frames.len(), frames.len() / 2);

    // Not a recording at all.
    let err = Reader::open(std::io::Cursor::new(b"(version: 1)".to_vec())).unwrap_err();
    assert!(
        err.to_string().contains("not a muxscope recording"),
        "{err}"
    );
}

#[test]
fn a_size_cap_stops_or_rotates_the_recording_and_says_so() {
    for rotate in [false, true] {
        let (_dir, path) = temp(if rotate {
            "record-rotate"
        } else {
            "record-cap"
        });
        let engine = EngineHandle::spawn(EngineConfig {
            listen: Some("127.0.0.1:0".into()),
            record: Some(RecordingConfig {
                path: path.clone(),
                max_bytes: Some(64 * 1024),
                at_cap: if rotate { AtCap::Rotate } else { AtCap::Stop },
            }),
            ..EngineConfig::default()
        })
        .unwrap();
        let addr = engine.local_addr().unwrap();
        let chunk = vec![b'x'; 50_000];
        for _ in 0..6 {
            converse(addr, &[&chunk]);
            std::thread::sleep(Duration::from_millis(250));
        }
        // The stats carry the status.
        let mut status = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(b) = engine.batches().recv_timeout(Duration::from_millis(100))
                && let Some(s) = b.stats
                && let Some(r) = s.recording
            {
                status = Some(*r);
            }
        }
        engine.shutdown();
        let status = status.expect("stats say how the recording goes");
        let mut r = Reader::open(std::fs::File::open(&path).unwrap()).unwrap();
        let index = r.index_all().clone();
        assert!(index.damage.is_none());
        let trailer = index.trailer.expect("the capped file was closed");
        if rotate {
            assert_eq!(trailer.next_part.as_deref(), Some("session.2.muxrec"));
            assert!(status.part >= 2, "{status:?}");
            assert!(status.ended.is_none(), "rotation goes on: {status:?}");
            let second = path.with_file_name("session.2.muxrec");
            let r2 = Reader::open(std::fs::File::open(&second).unwrap()).unwrap();
            assert_eq!(r2.header.part, 2);
            // An export of one part says the rest was left out.
            let out = path.with_file_name("part1.json");
            let done = muxscope::record::export::export(
                &path,
                muxscope::record::export::Format::Json,
                &[],
                &out,
            )
            .unwrap();
            assert!(
                done.warnings
                    .iter()
                    .any(|w| w.contains("continues in session.2.muxrec")),
                "{:?}",
                done.warnings
            );
        } else {
            assert!(trailer.reason.contains("size cap"), "{}", trailer.reason);
            let ended = status.ended.expect("the status says it ended");
            assert!(ended.contains("size cap"), "{ended}");
        }
    }
}

#[test]
fn a_path_that_cannot_be_written_is_an_error_at_start() {
    let err = EngineHandle::spawn(EngineConfig {
        listen: Some("127.0.0.1:0".into()),
        record: Some(RecordingConfig {
            path: "/nonexistent-dir/x.muxrec".into(),
            max_bytes: None,
            at_cap: AtCap::Stop,
        }),
        ..EngineConfig::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("cannot create the recording"),
        "{err}"
    );
}

#[test]
fn a_recording_played_back_shows_the_table_and_transcript_as_of_the_position() {
    use muxscope::backend::{Backend, ReplayBackend};
    use muxscope::monitor::Monitor;
    use muxscope::protocol::{Command, ConnId, ConnState};
    let (_dir, path) = temp("record-playback");
    let engine = engine_recording(&path);
    let addr = engine.local_addr().unwrap();
    let mut a = TcpStream::connect(addr).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sent = Vec::new();
    for i in 0..12 {
        let line = format!("line {i}\n");
        a.write_all(line.as_bytes()).unwrap();
        let mut back = vec![0; line.len()];
        a.read_exact(&mut back).unwrap();
        sent.extend_from_slice(line.as_bytes());
        std::thread::sleep(Duration::from_millis(120));
    }
    drop(a);
    std::thread::sleep(Duration::from_millis(300));
    engine.shutdown();

    let mut replay = ReplayBackend::open_file(&path).unwrap();
    replay.index_all();
    let (start, end) = (replay.timeline.start, replay.timeline.end);
    assert!(end > start + 1_000_000, "{start}..{end}");
    let mut monitor = Monitor::default();
    replay.timeline.seek = Some(end);
    replay.drain_into(&mut monitor, Duration::from_secs(5));
    let row = monitor
        .connections
        .get(ConnId(1))
        .expect("the client's row");
    assert!(matches!(row.state, ConnState::Closed(_)), "{:?}", row.state);
    assert_eq!(row.rx_bytes, sent.len() as u64);
    replay.send(Command::Inspect { conn: ConnId(1) });
    replay.drain_into(&mut monitor, Duration::from_secs(5));
    let detail = monitor
        .detail(ConnId(1))
        .expect("a closed connection's bytes");
    let rx: Vec<u8> = detail
        .transcript
        .iter()
        .filter(|c| c.dir == Direction::Rx)
        .flat_map(|c| c.bytes.clone())
        .collect();
    assert_eq!(rx, sent, "every byte it sent, at the end");

    // Back to the middle: fewer bytes, and the row open again.
    let mid = start + (end - start) / 2;
    replay.timeline.seek = Some(mid);
    replay.drain_into(&mut monitor, Duration::from_secs(5));
    let row = monitor.connections.get(ConnId(1)).expect("the row");
    assert_eq!(row.state, ConnState::Open);
    assert!(
        row.rx_bytes > 0 && row.rx_bytes < sent.len() as u64,
        "{}",
        row.rx_bytes
    );
    let detail = monitor.detail(ConnId(1)).expect("detail as of the middle");
    let rx: Vec<u8> = detail
        .transcript
        .iter()
        .filter(|c| c.dir == Direction::Rx)
        .flat_map(|c| c.bytes.clone())
        .collect();
    assert_eq!(
        rx,
        sent[..row.rx_bytes as usize],
        "the bytes up to the middle"
    );
}
