//! The wire encoding of the control WebSocket: every protocol type survives
//! a round trip, and hostile bytes decode to an error, never a panic or a
//! huge allocation.

use muxscope::control::wire::{
    WIRE_VERSION, WireError, decode_batch, decode_command, encode_batch, encode_command,
};
use muxscope::faults::*;
use muxscope::protocol::*;
use rand::{Rng, SeedableRng};

fn counters(id: u64, state: ConnState) -> ConnCounters {
    ConnCounters {
        id: ConnId(id),
        peer: if id.is_multiple_of(2) {
            "127.0.0.1:40000".parse().unwrap()
        } else {
            "[::1]:40001".parse().unwrap()
        },
        opened_at: 12,
        state,
        rx_bytes: u64::MAX,
        tx_bytes: 1 << 40,
        queued_bytes: 3,
        queued_msgs: 1,
        queue_high_water: 1 << 20,
        backpressure: true,
        read_paused: false,
        events: EventCounts {
            readable: 5,
            writable: 4,
            read_closed: 1,
            write_closed: 0,
            error: 0,
        },
        last_activity: 99,
        faults: (!id.is_multiple_of(3)).then(|| {
            Box::new(FaultStatus {
                active: true,
                chosen: id.is_multiple_of(2),
                held: 1 << 33,
                next_release: Some(12_345),
            })
        }),
        tcp: id.is_multiple_of(2).then(|| {
            Box::new(muxscope::protocol::TcpInfo {
                at: 7,
                rtt_us: u32::MAX,
                rttvar_us: 1,
                total_retrans: 3,
                lost: 1,
                unacked: 2,
                cwnd: 10,
                snd_mss: 65_483,
                peer_window: Some(0),
                rcv_window: None,
                notsent_bytes: 5,
                last_data_sent_ms: 6,
                last_data_recv_ms: 7,
                delivery_rate: u64::MAX,
                segs_out: 8,
                segs_in: 9,
            })
        }),
        pending: id.is_multiple_of(3).then(|| {
            Box::new(muxscope::protocol::PendingMessage {
                since: 3,
                len: 5,
                expected: Some(12),
                head: vec![0, 10, b'h', b'e', b'l'],
            })
        }),
    }
}

/// Every fault set at once, with extreme values.
fn every_fault() -> Faults {
    Faults {
        latency: Some(Latency {
            delay: u32::MAX,
            jitter: 50,
        }),
        bandwidth: Some(u64::MAX),
        read_bandwidth: Some(1),
        slice: Some(Slice {
            min: 1,
            max: 64,
            delay: 5,
        }),
        stall_writes: true,
        close_after: Some(Limit::Bytes(1 << 40)),
        reset_after: Some(Limit::After(2000)),
        slow_close: Some(3000),
        corrupt: Some(Chance(10_000)),
        rcvbuf: Some(4096),
        toxicity: Some(Chance::ALWAYS),
    }
}

/// The reference scenario: every framing, trigger, pattern, reply and
/// action of the format, so postcard must carry each of them.
fn reference_scenario() -> muxscope::scenario::ScenarioFile {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/reference.muxscope-scenario.ron"
    );
    muxscope::scenario::load(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{e}"))
}

/// A batch using every event kind, state and option.
fn full_batch() -> Batch {
    let peer = "10.1.2.3:5555".parse().unwrap();
    let kinds = vec![
        EventKind::Readiness(Readiness(Readiness::READABLE | Readiness::READ_CLOSED)),
        EventKind::Accepted { peer },
        EventKind::Read { n: 512 },
        EventKind::Wrote { n: u32::MAX },
        EventKind::WouldBlock { op: IoOp::Write },
        EventKind::Queued {
            n: 7,
            origin: Origin::Inject,
        },
        EventKind::Backpressure { on: true },
        EventKind::ReadPaused { paused: false },
        EventKind::Injected { n: 3 },
        EventKind::InjectRefused {
            n: 9,
            why: InjectRefusal::QueueFull,
        },
        EventKind::PeerHalfClosed,
        EventKind::Kicked {
            mode: KickMode::Graceful,
        },
        EventKind::Closed {
            reason: CloseReason::Error("connection reset — ünïcode".into()),
        },
        EventKind::AcceptError {
            error: "too many open files".into(),
            paused: true,
        },
        EventKind::AcceptResumed,
        EventKind::Listening { addr: peer },
        EventKind::ListenFailed {
            addr: "nonsense".into(),
            error: "invalid".into(),
        },
        EventKind::ListenStopped,
        EventKind::ModeChanged { mode: Mode::Manual },
        EventKind::FaultsSet {
            spec: "latency=200ms~50ms".into(),
        },
        EventKind::FaultHeld {
            n: 1 << 20,
            wait: 150_000,
        },
        EventKind::AcceptFaultSet {
            fault: Some(AcceptFault::Refuse),
        },
        EventKind::RuleFired { rule: 3, sent: 10 },
        EventKind::FramingError {
            why: "length prefix says 4294967295 bytes".into(),
        },
        EventKind::ScenarioSet {
            name: "line protocol".into(),
            rules: 6,
        },
        EventKind::ScenarioRefused {
            why: "rule 1: bad regex".into(),
        },
        EventKind::Queued {
            n: 4,
            origin: Origin::Rule,
        },
        EventKind::Queued {
            n: 5,
            origin: Origin::Replay,
        },
        EventKind::ReplayDiverged {
            offset: u64::MAX,
            expected: b"PING\r\n".to_vec(),
            got: vec![0, 0xff],
        },
    ];
    let events = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Event {
            at: i as u64 * 1_000_003,
            conn: (!i.is_multiple_of(3)).then_some(ConnId(i as u64)),
            kind,
        })
        .collect();
    Batch {
        seq: 42,
        events,
        counters: vec![
            counters(1, ConnState::Open),
            counters(2, ConnState::HalfClosed),
            counters(
                3,
                ConnState::Closing {
                    deadline: 2_000_000,
                },
            ),
            counters(4, ConnState::Closed(CloseReason::Kicked(KickMode::Reset))),
            counters(5, ConnState::Closed(CloseReason::EngineStopped)),
            counters(6, ConnState::Closed(CloseReason::PeerReset)),
            counters(7, ConnState::Closed(CloseReason::PeerClosed)),
            counters(
                8,
                ConnState::Closed(CloseReason::KickTimedOut { after_ms: 2000 }),
            ),
            counters(
                12,
                ConnState::Closed(CloseReason::RuleTimedOut {
                    rule: 1,
                    after_ms: 2000,
                }),
            ),
            counters(9, ConnState::Closed(CloseReason::Missed)),
            counters(
                13,
                ConnState::Closed(CloseReason::ReplayDiverged { offset: 12 }),
            ),
            counters(
                14,
                ConnState::Closed(CloseReason::ReplayEnded { reset: true }),
            ),
            counters(
                11,
                ConnState::Closed(CloseReason::Rule {
                    rule: 4,
                    reset: false,
                }),
            ),
            counters(
                10,
                ConnState::Closed(CloseReason::Fault {
                    limit: Limit::Bytes(1024),
                    reset: true,
                }),
            ),
        ],
        open_conns: Some(vec![ConnId(1), ConnId(2), ConnId(3)]),
        stats: Some(EngineStats {
            at: 1,
            started_unix_ms: 1_700_000_000_000,
            listen: ListenState::Failed {
                addr: "x".into(),
                error: "y".into(),
            },
            mode: Mode::Discard,
            connections: 3,
            accepted_total: 10,
            rx_bytes: 1,
            tx_bytes: 2,
            queued_bytes: 3,
            events_total: 4,
            events_per_sec: 1234.5,
            polls_per_sec: 0.25,
            dropped_events: 9,
            accept_paused: true,
            queue_limit: 1 << 20,
            new_faults: every_fault(),
            accept_fault: Some(AcceptFault::Delay(500)),
            scenario: Some(Box::new(ScenarioStatus {
                file: reference_scenario(),
                fired: vec![
                    RuleTally::default(),
                    RuleTally {
                        fired: 7,
                        last_at: Some(99),
                    },
                ],
            })),
            recording: Some(Box::new(muxscope::protocol::RecordingStatus {
                path: "/tmp/x.muxrec".into(),
                started_at: 5,
                bytes: 1 << 30,
                part: 2,
                lost_events: 3,
                lost_bytes: 4,
                ended: Some("size cap".into()),
            })),
            tcp_info_unavailable: Some("not available on this platform".into()),
        }),
        details: vec![ConnDetail {
            counters: counters(1, ConnState::Open),
            queue: vec![QueuedMessage {
                len: 5,
                queued_at: 77,
                origin: Origin::Echo,
            }],
            transcript: vec![
                TranscriptChunk {
                    at: 1,
                    dir: Direction::Rx,
                    bytes: (0..=255).collect(),
                },
                TranscriptChunk {
                    at: 2,
                    dir: Direction::Tx,
                    bytes: Vec::new(),
                },
            ],
            faults: every_fault(),
            transcript_dropped_rx: 100,
            transcript_dropped_tx: 0,
            script: Some(ScriptDetail {
                name: "reference".into(),
                own: true,
                fired: vec![RuleTally {
                    fired: 1,
                    last_at: Some(5),
                }],
                pending: vec![0, 1, 0xff],
                pending_len: 3,
                framing_error: Some("too long".into()),
                deferred: 2,
            }),
            replay: Some(Box::new(ReplayDetail {
                file: "session.muxrec".into(),
                recorded_conn: ConnId(3),
                timing: ReplayTiming::Original,
                matched: 12,
                expected: 340,
                beyond: 1,
                sent_writes: 2,
                writes: 12,
                ends_with: Some(CloseReason::Kicked(KickMode::Reset)),
                ended: false,
                divergence: Some(ReplayDivergence {
                    offset: 12,
                    expected: b"PING".to_vec(),
                    got: b"PONG".to_vec(),
                }),
            })),
        }],
        dropped_events: 17,
        tries: vec![
            Ok(muxscope::scenario::Scenario::compile(&reference_scenario())
                .unwrap_or_else(|e| panic!("{e}"))
                .try_input(b"PING\nECHO hi\n\x00\x01", 7)),
            Err("rule 2: unknown variable ${nope}".into()),
        ],
    }
}

fn all_commands() -> Vec<Command> {
    vec![
        Command::Kick {
            targets: Targets::All,
            mode: KickMode::Graceful,
        },
        Command::Kick {
            targets: Targets::Conns(vec![ConnId(1), ConnId(u64::MAX)]),
            mode: KickMode::Reset,
        },
        Command::Inject {
            targets: Targets::one(ConnId(3)),
            bytes: (0..=255).collect(),
        },
        Command::SetMode(Mode::Echo),
        Command::SetMode(Mode::Manual),
        Command::SetMode(Mode::Discard),
        Command::Listen {
            addr: "0.0.0.0:8800 \"quoted\" ünïcode".into(),
        },
        Command::StopListening,
        Command::SetReadPaused {
            targets: Targets::All,
            paused: true,
        },
        Command::Inspect { conn: ConnId(9) },
        Command::SetFaults {
            scope: FaultScope::New,
            faults: Box::new(every_fault()),
        },
        Command::SetFaults {
            scope: FaultScope::Conns(Targets::Conns(vec![ConnId(1)])),
            faults: Box::default(),
        },
        Command::SetAcceptFault(None),
        Command::SetAcceptFault(Some(AcceptFault::Stall)),
        Command::SetScenario(None),
        Command::SetScenario(Some(Box::new(reference_scenario()))),
        Command::SetConnScenario {
            targets: Targets::Conns(vec![ConnId(2)]),
            scenario: Some(Box::new(reference_scenario())),
        },
        Command::SetConnScenario {
            targets: Targets::All,
            scenario: None,
        },
        Command::TryScenario {
            scenario: Box::new(reference_scenario()),
            input: (0..=255).collect(),
        },
    ]
}

#[test]
fn batches_round_trip() {
    for batch in [Batch::default(), full_batch()] {
        let frame = encode_batch(&batch);
        assert_eq!(frame[0], WIRE_VERSION);
        assert_eq!(decode_batch(&frame).unwrap(), batch);
    }
}

#[test]
fn batches_are_compact() {
    // A typical busy batch: thousands of small events.
    let batch = Batch {
        seq: 1,
        events: (0..4096)
            .map(|i| Event {
                at: 1_000_000 + i,
                conn: Some(ConnId(i % 50)),
                kind: EventKind::Read { n: 512 },
            })
            .collect(),
        ..Batch::default()
    };
    let frame = encode_batch(&batch);
    let per_event = frame.len() as f64 / 4096.0;
    assert!(per_event <= 10.0, "{per_event} bytes per event");
    assert_eq!(decode_batch(&frame).unwrap(), batch);
}

#[test]
fn commands_round_trip() {
    for cmd in all_commands() {
        let text = encode_command(&cmd);
        assert_eq!(decode_command(&text).unwrap(), cmd, "{text}");
    }
}

#[test]
fn hostile_batch_frames_are_errors() {
    assert_eq!(decode_batch(&[]), Err(WireError::Empty));
    assert!(matches!(
        decode_batch(&[WIRE_VERSION + 1, 0, 0]),
        Err(WireError::Version { .. })
    ));
    let good = encode_batch(&full_batch());
    // Every truncation fails cleanly.
    for len in 1..good.len() {
        assert!(decode_batch(&good[..len]).is_err(), "truncated to {len}");
    }
    // Trailing bytes are refused.
    let mut long = good.clone();
    long.push(0);
    assert!(decode_batch(&long).is_err());
    // A length prefix claiming 2^63 events must not allocate it.
    let mut huge = vec![WIRE_VERSION, 1];
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert!(decode_batch(&huge).is_err());
    // Random bytes and random corruptions of a good frame never panic.
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for _ in 0..2000 {
        let n = rng.random_range(0..256);
        let mut bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        if let Some(first) = bytes.first_mut() {
            *first = WIRE_VERSION;
        }
        let _ = decode_batch(&bytes);
        let mut corrupt = good.clone();
        for _ in 0..4 {
            let i = rng.random_range(1..corrupt.len());
            corrupt[i] = rng.random();
        }
        let _ = decode_batch(&corrupt);
    }
}

#[test]
fn hostile_command_texts_are_errors() {
    for text in [
        "",
        "   ",
        "hello",
        "Kick",
        "Kick(targets: All)",
        "Kick(targets: Everyone, mode: Reset)",
        "SetMode(Loud)",
        "Inject(targets: All, bytes: [256])",
        "Inspect(conn: -1)",
        "StopListening trailing",
        "\u{0}\u{1}\u{2}",
    ] {
        assert!(decode_command(text).is_err(), "{text:?} decoded");
    }
    let deep = format!("Kick(targets:Conns({}", "[".repeat(50_000));
    assert!(decode_command(&deep).is_err());
    let deep = format!("Listen(addr:{}", "(".repeat(50_000));
    assert!(decode_command(&deep).is_err());
}
