//! Scenarios run by the engine, measured as a client sees them over real
//! loopback sockets: the two shipped examples byte for byte, every
//! framing split and coalesced, delays, then-actions, idle and half-close
//! rules, and refusal of a scenario that does not compile.

mod common;

use common::*;
use muxscope::engine::EngineConfig;
use muxscope::protocol::{CloseReason, Command, EventKind};
use muxscope::scenario::{Otherwise, Scenario, ScenarioFile, TryOutcome};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn example(name: &str) -> ScenarioFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    muxscope::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn running(file: &ScenarioFile) -> Harness {
    let scenario = Scenario::compile(file).unwrap_or_else(|e| panic!("{e}"));
    Harness::start(EngineConfig {
        mode: file.otherwise.into(),
        faults: scenario.faults().clone(),
        scenario: Some(Arc::new(scenario)),
        ..EngineConfig::default()
    })
}

fn parse(text: &str) -> ScenarioFile {
    muxscope::scenario::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn expect(c: &mut TcpStream, want: &[u8], what: &str) {
    let got = read_n(c, want.len(), what);
    assert_same_bytes(&got, want, what);
}

fn line_protocol() -> Harness {
    running(&example("line-protocol.muxscope-scenario.ron"))
}

#[test]
fn line_protocol_greets_answers_and_echoes_the_rest_byte_for_byte() {
    let h = line_protocol();
    let (mut c, _) = h.connect();
    expect(&mut c, b"+OK muxscope ready\r\n", "greeting");
    c.write_all(b"PING\n").unwrap();
    expect(&mut c, b"+PONG\r\n", "PING");
    // CR before LF is stripped for matching, kept for the echo.
    c.write_all(b"PING\r\n").unwrap();
    expect(&mut c, b"+PONG\r\n", "PING with CRLF");
    c.write_all(b"hello there\r\n").unwrap();
    expect(&mut c, b"hello there\r\n", "echo with CRLF");
    c.write_all(b"bare\n").unwrap();
    expect(&mut c, b"bare\n", "echo with LF");
}

#[test]
fn line_protocol_echo_rule_answers_with_its_capture_after_its_delay() {
    let h = line_protocol();
    let (mut c, id) = h.connect();
    expect(&mut c, b"+OK muxscope ready\r\n", "greeting");
    let t = Instant::now();
    c.write_all(b"ECHO hi there\r\n").unwrap();
    expect(&mut c, b"hi there\r\n", "ECHO capture");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(200),
        "ECHO answered after {took:?}"
    );
    // A line sent while the delayed reply waits is answered after it.
    c.write_all(b"ECHO first\nPING\n").unwrap();
    expect(&mut c, b"first\r\n+PONG\r\n", "order behind a delay");
    let rule = h.wait_event(id, "a rule-fired event", |k| match k {
        EventKind::RuleFired { rule: 3, sent } => Some(*sent),
        _ => None,
    });
    assert_eq!(rule, 10);
}

#[test]
fn line_protocol_quit_says_bye_then_closes() {
    let h = line_protocol();
    let (mut c, id) = h.connect();
    expect(&mut c, b"+OK muxscope ready\r\n", "greeting");
    c.write_all(b"QUIT\n").unwrap();
    assert_eq!(read_to_eof(&mut c, "QUIT"), b"+BYE\r\n");
    drop(c);
    assert_eq!(
        h.wait_closed(id),
        CloseReason::Rule {
            rule: 4,
            reset: false
        }
    );
}

#[test]
fn line_protocol_boom_resets() {
    let h = line_protocol();
    let (mut c, id) = h.connect();
    expect(&mut c, b"+OK muxscope ready\r\n", "greeting");
    c.write_all(b"BOOM\n").unwrap();
    let mut buf = [0u8; 64];
    let err = loop {
        match c.read(&mut buf) {
            Ok(0) => panic!("BOOM got a FIN, not a reset"),
            Ok(n) => panic!("BOOM got {n} bytes"),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert_eq!(
        h.wait_closed(id),
        CloseReason::Rule {
            rule: 5,
            reset: true
        }
    );
}

#[test]
fn line_protocol_asks_after_two_silent_seconds_once() {
    let h = line_protocol();
    // Before the connect: the silence starts when the engine accepts.
    let t = Instant::now();
    let (mut c, _) = h.connect();
    expect(&mut c, b"+OK muxscope ready\r\n", "greeting");
    expect(&mut c, b"+STILL THERE?\r\n", "idle prompt");
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(2), "idle prompt after {took:?}");
    // times: 1 — not again, however long the silence.
    assert_silent(&mut c, Duration::from_millis(2600), "a second idle prompt");
}

#[test]
fn a_message_split_into_single_bytes_is_one_message() {
    let h = line_protocol();
    let (mut c, _) = h.connect();
    c.set_nodelay(true).unwrap();
    expect(&mut c, b"+OK muxscope ready\r\n", "greeting");
    for b in b"PING\n" {
        c.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    expect(&mut c, b"+PONG\r\n", "PING one byte per write");
}

#[test]
fn ten_messages_in_one_write_get_ten_answers_in_order() {
    let h = line_protocol();
    let (mut c, id) = h.connect();
    expect(&mut c, b"+OK muxscope ready\r\n", "greeting");
    let mut burst = Vec::new();
    let mut want = Vec::new();
    for i in 0..10 {
        if i % 2 == 0 {
            burst.extend_from_slice(b"PING\n");
            want.extend_from_slice(b"+PONG\r\n");
        } else {
            let line = format!("line {i}\n");
            burst.extend_from_slice(line.as_bytes());
            want.extend_from_slice(line.as_bytes());
        }
    }
    c.write_all(&burst).unwrap();
    expect(&mut c, &want, "ten messages in one write");
    let detail = h.inspect(id);
    let script = detail.script.expect("the inspector shows the script");
    assert_eq!(script.fired[1].fired, 5, "PING fired five times");
}

fn length_prefixed() -> Harness {
    running(&example("length-prefixed.muxscope-scenario.ron"))
}

/// Read `n` bytes one `recv` at a time, returning each recv's size.
fn recv_sizes(c: &mut TcpStream, n: usize) -> (Vec<u8>, Vec<usize>) {
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    let mut buf = [0u8; 64];
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while got.len() < n {
        let k = c.read(&mut buf).expect("reply bytes");
        assert!(k > 0, "EOF after {got:02x?}");
        got.extend_from_slice(&buf[..k]);
        sizes.push(k);
    }
    (got, sizes)
}

#[test]
fn length_prefixed_answers_with_seq_one_byte_per_segment_then_closes() {
    let h = length_prefixed();
    let (mut c, id) = h.connect();
    c.write_all(&[0x00, 0x01, 0x01]).unwrap();
    let (got, _) = recv_sizes(&mut c, 4);
    assert_eq!(got, [0x00, 0x02, 0x81, 0x00]);
    // slice=1@2ms: one byte per write, as the engine reports its writes
    // (what the client's reads see depends on how promptly it is
    // scheduled: two bytes 2 ms apart may arrive in one read on a loaded
    // machine).
    let writes = h.wait_for("four one-byte writes", |m| {
        let sizes: Vec<u32> = m
            .events_of(id)
            .filter_map(|e| match e.kind {
                muxscope::protocol::EventKind::Wrote { n } => Some(n),
                _ => None,
            })
            .collect();
        (sizes.len() >= 4).then_some(sizes)
    });
    assert_eq!(writes, [1, 1, 1, 1], "slice=1@2ms: one byte per write");
    c.write_all(&[0x00, 0x01, 0x01]).unwrap();
    let (got, _) = recv_sizes(&mut c, 4);
    assert_eq!(got, [0x00, 0x02, 0x81, 0x01], "seq counts replies");
    // Other messages are discarded.
    c.write_all(&[0x00, 0x02, 0x07, 0x07]).unwrap();
    c.write_all(&[0x00, 0x01, 0x02]).unwrap();
    assert_eq!(read_to_eof(&mut c, "02"), [0x00, 0x01, 0x82]);
    drop(c);
    assert_eq!(
        h.wait_closed(id),
        CloseReason::Rule {
            rule: 2,
            reset: false
        }
    );
}

#[test]
fn length_prefixed_split_and_coalesced_frames_are_the_same_messages() {
    let h = length_prefixed();
    let (mut c, _) = h.connect();
    c.set_nodelay(true).unwrap();
    for b in [0x00, 0x01, 0x01] {
        c.write_all(&[b]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let (got, _) = recv_sizes(&mut c, 4);
    assert_eq!(got, [0x00, 0x02, 0x81, 0x00]);
    // Ten frames in one write: ten replies, seq 1..=10.
    let burst: Vec<u8> = (0..10).flat_map(|_| [0x00, 0x01, 0x01]).collect();
    c.write_all(&burst).unwrap();
    let (got, _) = recv_sizes(&mut c, 40);
    let want: Vec<u8> = (1..=10u8).flat_map(|s| [0x00, 0x02, 0x81, s]).collect();
    assert_eq!(got, want);
}

#[test]
fn an_oversized_length_prefix_is_a_framing_error_not_an_allocation() {
    let h = running(&parse(
        r#"(
            version: 1,
            framing: LengthPrefix(width: 4, big_endian: true),
            max_message: "1KiB",
            otherwise: Echo,
            rules: [(on: Message(Any), send: Text("ok"))],
        )"#,
    ));
    let (mut c, id) = h.connect();
    c.write_all(&[0x00, 0x00, 0x00, 0x02, b'h', b'i']).unwrap();
    expect(&mut c, b"ok", "a framed message");
    c.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).unwrap();
    let why = h.wait_event(id, "a framing error", |k| match k {
        EventKind::FramingError { why } => Some(why.clone()),
        _ => None,
    });
    assert!(why.contains("4294967295"), "{why}");
    // The framing is lost on this connection, so the bytes fall back to
    // echo, and the connection lives on.
    c.write_all(b"raw").unwrap();
    expect(&mut c, b"raw", "echo after the framing error");
    let detail = h.inspect(id);
    let script = detail.script.expect("script detail");
    assert!(script.framing_error.is_some());
    assert!(
        script.pending_len < 1024,
        "{} bytes pending",
        script.pending_len
    );
}

#[test]
fn every_framing_matches_split_and_coalesced_messages() {
    let cases: [(&str, &[u8], &[u8]); 5] = [
        ("Raw", b"hit", b""),
        ("Lines", b"hit\n", b"\n"),
        (r#"Delimiter(Hex("00"))"#, b"hit\x00", b"\x00"),
        ("LengthPrefix(width: 1)", b"\x03hit", b""),
        ("Fixed(3)", b"hit", b""),
    ];
    for (framing, message, _) in cases {
        let h = running(&parse(&format!(
            r#"(version: 1, framing: {framing}, otherwise: Discard,
                rules: [(on: Message(Exact("hit")), send: Text("!"))])"#
        )));
        let (mut c, _) = h.connect();
        c.set_nodelay(true).unwrap();
        c.write_all(message).unwrap();
        expect(&mut c, b"!", &format!("{framing}: one message"));
        if framing != "Raw" {
            for b in message {
                c.write_all(&[*b]).unwrap();
                std::thread::sleep(Duration::from_millis(3));
            }
            expect(&mut c, b"!", &format!("{framing}: one byte per write"));
            let burst = message.repeat(10);
            c.write_all(&burst).unwrap();
            expect(&mut c, &[b'!'; 10], &format!("{framing}: ten in one write"));
        }
    }
}

#[test]
fn templates_fill_in_numbered_and_named_captures() {
    let h = running(&parse(
        r#"(
            version: 1,
            framing: Lines,
            otherwise: Discard,
            rules: [
                (on: Message(Regex("^SET (?P<key>\\w+)=(\\w+)$")), send: Text("${key} is ${2} (${len} B, #${seq})\n")),
            ],
        )"#,
    ));
    let (mut c, _) = h.connect();
    c.write_all(b"SET color=blue\n").unwrap();
    expect(&mut c, b"color is blue (14 B, #0)\n", "captures");
    c.write_all(b"SET x=1\n").unwrap();
    expect(&mut c, b"x is 1 (7 B, #1)\n", "second reply");
}

#[test]
fn half_close_rules_answer_before_the_connection_ends() {
    let h = running(&parse(
        r#"(version: 1, framing: Lines, otherwise: Echo,
            rules: [(on: HalfClose, send: Text("bye\n"))])"#,
    ));
    let (mut c, id) = h.connect();
    c.write_all(b"a\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut c, "half close"), b"a\nbye\n");
    assert_eq!(h.wait_closed(id), CloseReason::PeerClosed);
}

#[test]
fn a_scenario_that_does_not_compile_is_refused_and_the_running_one_stays() {
    let h = line_protocol();
    let mut bad = parse(
        r#"(version: 1, framing: Lines, rules: [(on: Message(Regex("(unclosed")), send: Text("x"))])"#,
    );
    bad.name = Some("bad".to_owned());
    h.send(Command::SetScenario(Some(Box::new(bad))));
    let why = h.wait_for("a refusal", |m| {
        m.events.iter().find_map(|e| match &e.kind {
            EventKind::ScenarioRefused { why } => Some(why.clone()),
            _ => None,
        })
    });
    assert!(why.contains("rule 1"), "{why}");
    let (mut c, _) = h.connect();
    expect(
        &mut c,
        b"+OK muxscope ready\r\n",
        "the old scenario still runs",
    );
}

#[test]
fn lifting_the_scenario_brings_plain_echo_back() {
    let h = line_protocol();
    let (mut c, _) = h.connect();
    expect(&mut c, b"+OK muxscope ready\r\n", "greeting");
    h.send(Command::SetScenario(None));
    h.wait_for("the scenario lifted", |m| {
        m.events.iter().find_map(|e| match &e.kind {
            EventKind::ScenarioSet { rules: 0, .. } => Some(()),
            _ => None,
        })
    });
    c.write_all(b"PING\n").unwrap();
    expect(&mut c, b"PING\n", "plain echo");
}

#[test]
fn try_scenario_reports_what_input_would_do_without_a_client() {
    let h = Harness::start(EngineConfig::default());
    h.send(Command::TryScenario {
        scenario: Box::new(example("line-protocol.muxscope-scenario.ron")),
        input: b"PING\nhello\n".to_vec(),
    });
    let report = h.wait_for("a try report", |m| m.tries.first().cloned());
    let report = report.expect("the example compiles");
    let replies: Vec<(TryOutcome, Option<Vec<u8>>)> = report
        .steps
        .iter()
        .map(|s| (s.outcome, s.reply.clone()))
        .collect();
    assert_eq!(
        replies,
        [
            (
                TryOutcome::Rule(0),
                Some(b"+OK muxscope ready\r\n".to_vec())
            ),
            (TryOutcome::Rule(1), Some(b"+PONG\r\n".to_vec())),
            // Echoed as received, line end included.
            (
                TryOutcome::Otherwise(Otherwise::Echo),
                Some(b"hello\n".to_vec())
            ),
        ]
    );
}

#[test]
fn a_scenario_can_run_on_chosen_connections_only() {
    let h = Harness::start(EngineConfig::default());
    let (mut a, a_id) = h.connect();
    let (mut b, _) = h.connect();
    h.send(Command::SetConnScenario {
        targets: muxscope::protocol::Targets::one(a_id),
        scenario: Some(Box::new(example("line-protocol.muxscope-scenario.ron"))),
    });
    // Commands apply in order: the inspection sees the script.
    assert!(h.inspect(a_id).script.is_some());
    // Only `a` runs it (no greeting: it connected before), `b` echoes.
    a.write_all(b"PING\n").unwrap();
    expect(&mut a, b"+PONG\r\n", "the chosen connection");
    assert_echo(&mut b, b"PING\n");
    // New connections get the engine's (none): plain echo.
    let (mut c, _) = h.connect();
    assert_echo(&mut c, b"PING\n");
    let detail = h.inspect(a_id);
    let script = detail.script.expect("a runs a script");
    assert!(script.own, "its own scenario, not the shared one");
    assert_eq!(script.fired[1].fired, 1);
    // And it can be taken away again.
    h.send(Command::SetConnScenario {
        targets: muxscope::protocol::Targets::one(a_id),
        scenario: None,
    });
    assert!(h.inspect(a_id).script.is_none(), "taken away");
    assert_echo(&mut a, b"PING\n");
}

#[test]
fn after_a_rule_closes_no_idle_rule_fires_while_the_fin_waits_for_the_peer() {
    let h = running(&parse(
        r#"(version: 1, framing: Lines, otherwise: Echo, rules: [
            (on: Message(Exact("QUIT")), send: Text("+BYE\r\n"), then: Close),
            (on: Idle("300ms"), send: Text("+STILL THERE?\r\n")),
        ])"#,
    ));
    let (mut c, id) = h.connect();
    c.write_all(b"QUIT\n").unwrap();
    // Our FIN arrives after the reply; the client keeps its side open past
    // the idle time, and nothing else may come, nor may the close turn
    // into an error.
    assert_eq!(read_to_eof(&mut c, "QUIT"), b"+BYE\r\n");
    std::thread::sleep(Duration::from_millis(700));
    drop(c);
    assert_eq!(
        h.wait_closed(id),
        CloseReason::Rule {
            rule: 1,
            reset: false
        }
    );
    let fired: Vec<u16> = h
        .kinds_of(id)
        .iter()
        .filter_map(|k| match k {
            EventKind::RuleFired { rule, .. } => Some(*rule),
            _ => None,
        })
        .collect();
    assert_eq!(fired, [1], "only QUIT's rule fired");
}

#[test]
fn a_rules_close_is_held_to_the_kick_deadline_when_the_peer_never_closes() {
    let file = parse(
        r#"(version: 1, framing: Lines, otherwise: Echo, rules: [
            (on: Message(Exact("QUIT")), send: Text("+BYE\r\n"), then: Close),
        ])"#,
    );
    let h = Harness::start(EngineConfig {
        kick_timeout: Duration::from_millis(300),
        scenario: Some(Arc::new(Scenario::compile(&file).unwrap())),
        ..EngineConfig::default()
    });
    let (mut c, id) = h.connect();
    c.write_all(b"QUIT\n").unwrap();
    // Our FIN comes after the reply; the client never sends its own.
    assert_eq!(read_to_eof(&mut c, "QUIT"), b"+BYE\r\n");
    assert_eq!(
        h.wait_closed(id),
        CloseReason::RuleTimedOut {
            rule: 1,
            after_ms: 300
        },
        "the close gave up at its deadline instead of waiting forever"
    );
}
