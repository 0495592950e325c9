//! Replaying a recording against a client (`--replay`): real recordings
//! made by a real engine, replayed by a real engine to real sockets.

mod common;
mod control_support;

use common::*;
use control_support::TempDir;
use muxscope::engine::EngineConfig;
use muxscope::protocol::{
    CloseReason, Command, Direction, EventKind, KickMode, Origin, ReplayTiming, Targets,
};
use muxscope::record::Record;
use muxscope::record::reader::Reader;
use muxscope::record::replay::{ReplayScript, ReplayStep};
use muxscope::record::writer::{AtCap, RecordingConfig};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GREETING: &[u8] = b"+OK muxscope ready\r\n";
const LINES: [&[u8]; 3] = [b"PING\r\n", b"hello there\r\n", b"BYE\r\n"];
/// Long enough that a reply sent too early would have arrived, on a
/// loaded machine too.
const QUIET: Duration = Duration::from_millis(400);

fn recording(path: &Path) -> Option<RecordingConfig> {
    Some(RecordingConfig {
        path: path.to_owned(),
        max_bytes: None,
        at_cap: AtCap::Stop,
    })
}

fn expect(c: &mut TcpStream, want: &[u8], what: &str) {
    let got = read_n(c, want.len(), what);
    assert_same_bytes(&got, want, what);
}

/// Record a small line protocol with an echo server: the server greets
/// (an inject), then echoes each line, each answered before the next; the
/// client closes.
fn record_session(dir: &TempDir, name: &str) -> PathBuf {
    let path = dir.path().join(name);
    let h = Harness::start(EngineConfig {
        record: recording(&path),
        ..EngineConfig::default()
    });
    let (mut c, id) = h.connect();
    h.send(Command::Inject {
        targets: Targets::one(id),
        bytes: GREETING.to_vec(),
    });
    expect(&mut c, GREETING, "greeting (recording)");
    for line in LINES {
        c.write_all(line).unwrap();
        expect(&mut c, line, "echo (recording)");
    }
    drop(c);
    assert_eq!(h.wait_closed(id), CloseReason::PeerClosed);
    h.shutdown();
    path
}

/// Record a server that says each of `lines` (injects, `gap` apart), then
/// closes with a graceful kick the client answers.
fn record_injects_then_kick(path: &Path, lines: &[&[u8]], gap: Duration) {
    let h = Harness::start(EngineConfig {
        record: recording(path),
        ..EngineConfig::default()
    });
    let (mut c, id) = h.connect();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(gap);
        }
        h.send(Command::Inject {
            targets: Targets::one(id),
            bytes: line.to_vec(),
        });
        expect(&mut c, line, "an inject (recording)");
    }
    h.send(Command::Kick {
        targets: Targets::one(id),
        mode: KickMode::Graceful,
    });
    assert_eq!(read_to_eof(&mut c, "kick (recording)"), b"");
    drop(c);
    assert_eq!(h.wait_closed(id), CloseReason::Kicked(KickMode::Graceful));
    h.shutdown();
}

/// Every byte of recorded connection `conn` in direction `dir`.
fn recorded_bytes(path: &Path, conn: u64, dir: Direction) -> Vec<u8> {
    let mut r = Reader::open(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    r.for_each_record(|rec| {
        if let Record::Data(d) = rec
            && d.conn.0 == conn
            && d.dir == dir
        {
            out.extend_from_slice(&d.bytes);
        }
    })
    .unwrap();
    out
}

fn script(path: &Path, timing: ReplayTiming, strict: bool) -> Arc<ReplayScript> {
    Arc::new(ReplayScript::load(path, None, timing, strict).unwrap_or_else(|e| panic!("{e}")))
}

fn replaying(path: &Path, timing: ReplayTiming, strict: bool, record: Option<&Path>) -> Harness {
    Harness::start(EngineConfig {
        replay: Some(script(path, timing, strict)),
        record: record.and_then(recording),
        ..EngineConfig::default()
    })
}

/// The recorded client's part, answered: everything it receives.
fn play_client(h: &Harness) -> Vec<u8> {
    let (mut c, id) = h.connect();
    let mut got = read_n(&mut c, GREETING.len(), "greeting");
    for line in LINES {
        c.write_all(line).unwrap();
        got.extend(read_n(&mut c, line.len(), "reply"));
    }
    assert_silent(
        &mut c,
        Duration::from_millis(200),
        "bytes beyond the recording",
    );
    drop(c);
    assert_eq!(h.wait_closed(id), CloseReason::PeerClosed);
    got
}

fn all_lines() -> Vec<u8> {
    let mut all = GREETING.to_vec();
    for line in LINES {
        all.extend_from_slice(line);
    }
    all
}

#[test]
fn wait_timing_answers_each_write_only_after_the_bytes_that_preceded_it() {
    let dir = TempDir::new("replay-wait");
    let a = record_session(&dir, "a.muxrec");
    assert_eq!(recorded_bytes(&a, 1, Direction::Tx), all_lines());
    let h = replaying(&a, ReplayTiming::Wait, false, None);
    let (mut c, id) = h.connect();

    // The greeting needs nothing from the client; the first echo does.
    expect(&mut c, GREETING, "greeting");
    assert_silent(&mut c, QUIET, "the reply to PING before anything was sent");
    c.write_all(b"PI").unwrap();
    assert_silent(&mut c, QUIET, "the reply to PING before all of PING");
    c.write_all(b"NG\r\n").unwrap();
    expect(&mut c, b"PING\r\n", "the reply to PING");
    c.write_all(b"hello ").unwrap();
    assert_silent(&mut c, QUIET, "the second reply before its line");
    c.write_all(b"there\r\n").unwrap();
    expect(&mut c, b"hello there\r\n", "the second reply");
    c.write_all(b"BYE\r\n").unwrap();
    expect(&mut c, b"BYE\r\n", "the third reply");
    assert_silent(&mut c, QUIET, "bytes beyond the recording");

    let detail = h.inspect(id);
    let replay = detail.replay.expect("the inspector shows the replay");
    assert_eq!(replay.file, "a.muxrec");
    assert_eq!(replay.recorded_conn.0, 1);
    assert_eq!((replay.sent_writes, replay.writes), (4, 4));
    assert_eq!(replay.matched, replay.expected);
    assert_eq!(replay.expected, (all_lines().len() - GREETING.len()) as u64);
    assert_eq!(replay.beyond, 0);
    assert_eq!(replay.divergence, None);
    assert_eq!(replay.ends_with, None, "the recorded client closed");

    // The recorded client closed: the replay waits for this one to.
    assert_silent(&mut c, QUIET, "a close the recording did not make");
    c.write_all(b"extra").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut c, "after our FIN"), b"");
    assert_eq!(h.wait_closed(id), CloseReason::PeerClosed);

    let kinds = h.kinds_of(id);
    let replayed = kinds
        .iter()
        .filter(|k| {
            matches!(
                k,
                EventKind::Queued {
                    origin: Origin::Replay,
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        replayed, 4,
        "one queued write per recorded write: {kinds:?}"
    );
    assert!(
        !kinds
            .iter()
            .any(|k| matches!(k, EventKind::ReplayDiverged { .. })),
        "extra bytes are counted, not a divergence: {kinds:?}"
    );
    h.assert_stream_consistent();
}

#[test]
fn a_deviating_client_is_told_where_and_the_replay_goes_on() {
    let dir = TempDir::new("replay-diverge");
    let a = record_session(&dir, "a.muxrec");
    let h = replaying(&a, ReplayTiming::Wait, false, None);
    let (mut c, id) = h.connect();
    expect(&mut c, GREETING, "greeting");
    c.write_all(b"PING\r\n").unwrap();
    expect(&mut c, b"PING\r\n", "the reply to PING");
    // Byte 7 (`e` of `hello`) differs; the same count keeps the replay going.
    c.write_all(b"hallo there\r\n").unwrap();
    expect(
        &mut c,
        b"hello there\r\n",
        "the recorded reply, whatever was sent",
    );
    let (offset, expected, got) = h.wait_event(id, "the divergence", |k| match k {
        EventKind::ReplayDiverged {
            offset,
            expected,
            got,
        } => Some((*offset, expected.clone(), got.clone())),
        _ => None,
    });
    assert_eq!(offset, 7);
    assert_eq!(expected, b"ello there\r\nBYE\r");
    assert_eq!(got, b"allo there\r\n");
    let described = EventKind::ReplayDiverged {
        offset,
        expected,
        got,
    }
    .describe();
    assert_eq!(
        described,
        "client differs from the recording at byte 7: \
         expected 65 6c 6c 6f 20 74 68 65 72 65 0d 0a 42 59 45 0d, \
         got 61 6c 6c 6f 20 74 68 65 72 65 0d 0a"
    );

    c.write_all(b"BYE\r\nmore").unwrap();
    expect(&mut c, b"BYE\r\n", "the last reply");
    let detail = h.inspect(id);
    let replay = detail.replay.expect("replay detail");
    assert_eq!(replay.matched, 7);
    assert_eq!(replay.beyond, 4);
    assert_eq!(replay.divergence.map(|d| d.offset), Some(7));
    // Once per connection.
    let said = h
        .kinds_of(id)
        .iter()
        .filter(|k| matches!(k, EventKind::ReplayDiverged { .. }))
        .count();
    assert_eq!(said, 1);
    drop(c);
    assert_eq!(h.wait_closed(id), CloseReason::PeerClosed);
}

#[test]
fn strict_replay_resets_a_deviating_client() {
    let dir = TempDir::new("replay-strict");
    let a = record_session(&dir, "a.muxrec");
    let h = replaying(&a, ReplayTiming::Wait, true, None);
    let (mut c, id) = h.connect();
    expect(&mut c, GREETING, "greeting");
    c.write_all(b"PONG\r\n").unwrap();
    let mut buf = [0u8; 64];
    let err = loop {
        match c.read(&mut buf) {
            Ok(0) => panic!("a FIN, not a reset"),
            Ok(n) => panic!("{n} bytes after a divergence under --replay-strict"),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    let reason = h.wait_closed(id);
    assert_eq!(reason, CloseReason::ReplayDiverged { offset: 1 });
    assert_eq!(
        reason.to_string(),
        "reset: the client differed from the recording at byte 1 (--replay-strict)"
    );
}

#[test]
fn original_timing_keeps_the_recorded_gaps_and_the_recorded_close() {
    let dir = TempDir::new("replay-original");
    let a = dir.path().join("timed.muxrec");
    record_injects_then_kick(&a, &[b"one\r\n", b"two\r\n"], Duration::from_millis(300));
    let s = script(&a, ReplayTiming::Original, false);
    let recorded_gap = match (&s.steps[0], &s.steps[1]) {
        (ReplayStep::Send { at: a, .. }, ReplayStep::Send { at: b, .. }) => {
            Duration::from_micros(b - a)
        }
        other => panic!("two writes first: {other:?}"),
    };
    assert!(
        recorded_gap >= Duration::from_millis(300),
        "{recorded_gap:?}"
    );
    assert!(
        matches!(s.steps.last(), Some(ReplayStep::Close { reset: false, .. })),
        "{:?}",
        s.steps
    );

    let h = replaying(&a, ReplayTiming::Original, false, None);
    let (mut c, id) = h.connect();
    expect(&mut c, b"one\r\n", "first");
    let t = Instant::now();
    expect(&mut c, b"two\r\n", "second");
    let gap = t.elapsed();
    assert!(
        gap >= recorded_gap.mul_f64(0.8),
        "{gap:?} between writes recorded {recorded_gap:?} apart"
    );
    // Then the recorded server's FIN.
    assert_eq!(read_to_eof(&mut c, "the recorded close"), b"");
    drop(c);
    assert_eq!(h.wait_closed(id), CloseReason::ReplayEnded { reset: false });
}

#[test]
fn a_recorded_reset_is_replayed_after_the_bytes_before_it() {
    let dir = TempDir::new("replay-reset");
    let a = dir.path().join("reset.muxrec");
    {
        let h = Harness::start(EngineConfig {
            record: recording(&a),
            ..EngineConfig::default()
        });
        let (mut c, id) = h.connect();
        c.write_all(b"QUIT\n").unwrap();
        expect(&mut c, b"QUIT\n", "echo (recording)");
        h.send(Command::Kick {
            targets: Targets::one(id),
            mode: KickMode::Reset,
        });
        assert_eq!(h.wait_closed(id), CloseReason::Kicked(KickMode::Reset));
        h.shutdown();
    }
    let h = replaying(&a, ReplayTiming::Wait, false, None);
    let (mut c, id) = h.connect();
    assert_silent(&mut c, QUIET, "the reset before the client's bytes");
    c.write_all(b"QUIT\n").unwrap();
    expect(&mut c, b"QUIT\n", "the bytes before the reset");
    let mut buf = [0u8; 16];
    let err = loop {
        match c.read(&mut buf) {
            Ok(0) => panic!("a FIN, not a reset"),
            Ok(n) => panic!("{n} more bytes"),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert_eq!(h.wait_closed(id), CloseReason::ReplayEnded { reset: true });
}

#[test]
fn replaying_a_recording_of_a_replay_reproduces_it() {
    let dir = TempDir::new("replay-twice");
    let a = record_session(&dir, "a.muxrec");
    let b = dir.path().join("b.muxrec");

    let h = replaying(&a, ReplayTiming::Wait, false, Some(&b));
    let first = play_client(&h);
    h.shutdown();
    assert_eq!(first, all_lines());
    // What the replay wrote went through the queue the recorder taps.
    assert_eq!(recorded_bytes(&b, 1, Direction::Tx), all_lines());
    assert_eq!(
        recorded_bytes(&b, 1, Direction::Rx),
        recorded_bytes(&a, 1, Direction::Rx)
    );

    let h = replaying(&b, ReplayTiming::Wait, false, None);
    let second = play_client(&h);
    assert_eq!(second, first);
    let sb = script(&b, ReplayTiming::Wait, false);
    let sa = script(&a, ReplayTiming::Wait, false);
    let shape = |s: &ReplayScript| -> Vec<(u64, Vec<u8>)> {
        s.steps
            .iter()
            .filter_map(|st| match st {
                ReplayStep::Send {
                    after_rx, bytes, ..
                } => Some((*after_rx, bytes.clone())),
                ReplayStep::Close { .. } => None,
            })
            .collect()
    };
    assert_eq!(shape(&sb), shape(&sa), "same writes after the same bytes");
}

// ---- the command line ----------------------------------------------------

/// Run the binary with `args`; it must exit within the step deadline.
fn run_cli(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args);
    let (code, _, err) = control_support::run_to_end(cmd);
    (code, err)
}

fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    lines[0]
}

#[test]
fn the_cli_refuses_a_bad_file_or_an_unknown_connection_with_one_line() {
    let dir = TempDir::new("replay-cli");
    let junk = dir.path().join("junk.muxrec");
    std::fs::write(&junk, b"(version: 1)\n").unwrap();
    let junk = junk.to_str().unwrap();
    let base = ["--headless", "--listen", "127.0.0.1:0", "--replay"];

    let (code, err) = run_cli(&[&base[..], &[junk]].concat());
    assert_eq!(code, Some(2), "{err}");
    let line = one_line(&err);
    assert!(line.starts_with("muxscope: cannot replay "), "{line}");
    assert!(line.contains("not a muxscope recording"), "{line}");

    let missing = dir.path().join("missing.muxrec");
    let (code, err) = run_cli(&[&base[..], &[missing.to_str().unwrap()]].concat());
    assert_eq!(code, Some(2), "{err}");
    assert!(one_line(&err).contains("cannot read it"), "{err}");

    let a = record_session(&dir, "a.muxrec");
    let a = a.to_str().unwrap();
    let (code, err) = run_cli(&[&base[..], &[a, "--conn", "9"]].concat());
    assert_eq!(code, Some(2), "{err}");
    let line = one_line(&err);
    assert!(
        line.ends_with("a.muxrec: it has no connection #9 (it has #1)"),
        "{line}"
    );

    let (code, err) = run_cli(&[&base[..], &[a, "--timing", "fast"]].concat());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown timing 'fast'"), "{err}");
}

#[test]
fn the_headless_binary_says_what_it_replays_and_serves_it() {
    let dir = TempDir::new("replay-headless");
    let a = record_session(&dir, "a.muxrec");
    let server = Server::start(&["--replay", a.to_str().unwrap(), "--timing", "wait"], None);
    let deadline = Instant::now() + STEP;
    let line = loop {
        let found = server
            .lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with("muxscope replaying"))
            .cloned();
        if let Some(l) = found {
            break l;
        }
        assert!(Instant::now() < deadline, "no replaying line");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        line,
        "muxscope replaying a.muxrec conn #1 (wait timing): 4 server writes, 24 B expected from the client"
    );
    let mut c = client(server.addr);
    expect(&mut c, GREETING, "greeting from the binary");
    c.write_all(LINES[0]).unwrap();
    expect(&mut c, LINES[0], "reply from the binary");
}

#[test]
fn a_damaged_recording_replays_up_to_the_damage_and_says_so() {
    let dir = TempDir::new("replay-damage");
    let a = record_session(&dir, "a.muxrec");
    let whole = std::fs::read(&a).unwrap();
    let mut r = Reader::open(std::io::Cursor::new(whole.clone())).unwrap();
    let last = *r.index_all().frames.last().unwrap();
    // Cut inside the last frame (the trailer), as a crash while writing.
    let cut = dir.path().join("cut.muxrec");
    let at = last.offset as usize + muxscope::record::frame::HEADER_LEN + 1;
    std::fs::write(&cut, &whole[..at]).unwrap();
    let damaged = script(&cut, ReplayTiming::Wait, false);
    assert_eq!(damaged.warnings.len(), 1, "{:?}", damaged.warnings);
    assert!(
        damaged.warnings[0].contains(&format!("damaged at byte {}", last.offset))
            && damaged.warnings[0].contains("replaying what comes before it"),
        "{}",
        damaged.warnings[0]
    );
    let intact = script(&a, ReplayTiming::Wait, false);
    assert!(intact.warnings.is_empty(), "{:?}", intact.warnings);
    assert_eq!(damaged.steps, intact.steps);
    assert_eq!(damaged.expected, intact.expected);
}

#[test]
fn a_connection_without_bytes_is_refused_naming_those_with_some() {
    let dir = TempDir::new("replay-silent-conn");
    let path = dir.path().join("silent.muxrec");
    let h = Harness::start(EngineConfig {
        record: recording(&path),
        ..EngineConfig::default()
    });
    let (mut c, talker) = h.connect();
    c.write_all(b"hi\n").unwrap();
    expect(&mut c, b"hi\n", "echo (recording)");
    let (silent, quiet) = h.connect();
    drop(silent);
    h.wait_closed(quiet);
    drop(c);
    h.wait_closed(talker);
    h.shutdown();
    let err = ReplayScript::load(&path, Some(quiet.0), ReplayTiming::Wait, false).unwrap_err();
    assert_eq!(
        err,
        format!(
            "cannot replay {}: its connection {quiet} has no bytes to replay (connections with bytes: {talker})",
            path.display()
        )
    );
    // By default, the first one with bytes.
    let s = ReplayScript::load(&path, None, ReplayTiming::Wait, false).unwrap();
    assert_eq!(s.conn, talker);
}

#[test]
fn a_client_that_never_answers_the_replayed_fin_is_reset_and_told_why() {
    let dir = TempDir::new("replay-fin-timeout");
    let path = dir.path().join("kicked.muxrec");
    record_injects_then_kick(&path, &[b"bye\r\n"], Duration::ZERO);
    let h = Harness::start(EngineConfig {
        replay: Some(script(&path, ReplayTiming::Wait, false)),
        kick_timeout: Duration::from_millis(300),
        ..EngineConfig::default()
    });
    let (mut c, id) = h.connect();
    expect(&mut c, b"bye\r\n", "bye");
    assert_eq!(read_to_eof(&mut c, "the replayed FIN"), b"");
    // The client keeps its side open: the replay's close times out.
    assert_eq!(
        h.wait_closed(id),
        CloseReason::ReplayTimedOut { after_ms: 300 }
    );
    drop(c);
}
