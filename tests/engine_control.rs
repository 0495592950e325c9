//! Steering the engine: kicks, inject, modes, read pause, listening, and the
//! identity of connections.

mod common;

use common::*;
use muxscope::engine::{EngineConfig, EngineHandle};
use muxscope::protocol::{
    CloseReason, Command, ConnId, ConnState, Direction, EventKind, KickMode, ListenState, Mode,
    Targets,
};
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const QUIET: Duration = Duration::from_millis(300);

fn config(mode: Mode) -> EngineConfig {
    EngineConfig {
        mode,
        ..EngineConfig::default()
    }
}

fn rx_text(detail: &muxscope::protocol::ConnDetail, dir: Direction) -> Vec<u8> {
    detail
        .transcript
        .iter()
        .filter(|c| c.dir == dir)
        .flat_map(|c| c.bytes.iter().copied())
        .collect()
}

fn kicked_event_seen(h: &Harness, id: ConnId) {
    h.wait_for(&format!("Kicked event of {id}"), |m| {
        m.events_of(id)
            .any(|e| matches!(e.kind, EventKind::Kicked { .. }))
            .then_some(())
    });
}

// ---- kicks -----------------------------------------------------------------

#[test]
fn graceful_kick_delivers_queued_bytes_then_eof() {
    const PAYLOAD: usize = 8 * 1024 * 1024;
    // The whole inject fits the queue (injects obey its bound).
    let h = Harness::start(EngineConfig {
        queue_limit: 2 * PAYLOAD,
        ..config(Mode::Echo)
    });
    let (mut c, id) = h.connect();
    assert_echo(&mut c, b"before the kick");

    // More than the socket buffers hold while the client does not read, so
    // part of it waits in the engine's queue.
    let payload: Vec<u8> = (0..PAYLOAD as u64).map(pattern).collect();
    h.send(Command::Inject {
        targets: Targets::one(id),
        bytes: payload.clone(),
    });
    let queued = h.wait_counters(id, "the inject is partly queued", |c| {
        c.queued_bytes > 0 && c.queued_bytes + c.tx_bytes == (PAYLOAD + 15) as u64
    });
    assert!(queued.tx_bytes < (PAYLOAD + 15) as u64);

    h.send(Command::Kick {
        targets: Targets::one(id),
        mode: KickMode::Graceful,
    });
    kicked_event_seen(&h, id);
    let closing = h.wait_counters(id, "state Closing", |c| {
        matches!(c.state, ConnState::Closing { .. })
    });
    assert!(closing.queued_bytes > 0, "the queue is still being flushed");

    // Input after the kick is read and discarded: not echoed, and it must
    // not turn the close into a reset.
    c.write_all(&vec![b'j'; 256 * 1024]).unwrap();

    let got = read_to_eof(&mut c, "gracefully kicked client");
    assert_same_bytes(&got, &payload, "queued inject, then EOF");
    drop(c);
    assert_eq!(h.wait_closed(id), CloseReason::Kicked(KickMode::Graceful));
    let last = h.wait_counters(id, "final counters", |c| {
        matches!(c.state, ConnState::Closed(_))
    });
    assert_eq!(last.tx_bytes, (PAYLOAD + 15) as u64);
    assert_eq!(
        last.rx_bytes,
        (15 + 256 * 1024) as u64,
        "discarded input is counted"
    );
    h.assert_stream_consistent();
}

#[test]
fn graceful_kick_of_a_peer_that_never_closes_ends_at_the_kick_deadline() {
    const KICK_TIMEOUT: Duration = Duration::from_secs(1);
    let h = Harness::start(EngineConfig {
        kick_timeout: KICK_TIMEOUT,
        ..config(Mode::Echo)
    });
    let (mut c, id) = h.connect();
    let kicked = Instant::now();
    h.send(Command::Kick {
        targets: Targets::one(id),
        mode: KickMode::Graceful,
    });
    // Nothing was queued: the FIN comes at once.
    let got = read_to_eof(&mut c, "kicked idle client");
    assert!(got.is_empty());
    // The client keeps its socket open and never sends its FIN: the engine
    // waits for it until the kick's deadline, no less, then resets.
    let reason = h.wait_closed(id);
    let waited = kicked.elapsed();
    assert_eq!(
        reason,
        CloseReason::KickTimedOut {
            after_ms: KICK_TIMEOUT.as_millis() as u64
        }
    );
    assert!(
        waited >= KICK_TIMEOUT.mul_f64(0.9),
        "closed {waited:?} after the kick, before its deadline of {KICK_TIMEOUT:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "closed only {waited:?} after the kick"
    );
    h.wait_for("no connections left", |m| {
        m.stats
            .as_ref()
            .filter(|s| s.connections == 0 && s.accepted_total == 1)
            .map(|_| ())
    });
    drop(c);
}

#[test]
fn reset_kick_gives_connection_reset_and_spares_others() {
    let h = Harness::start(config(Mode::Echo));
    let (mut a, ia) = h.connect();
    let (mut b, ib) = h.connect();
    let (mut c, ic) = h.connect();
    assert_echo(&mut a, b"a");

    h.send(Command::Kick {
        targets: Targets::one(ia),
        mode: KickMode::Reset,
    });
    let mut buf = [0u8; 16];
    match a.read(&mut buf) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("expected a reset, read returned Ok({n})"),
    }
    assert_eq!(h.wait_closed(ia), CloseReason::Kicked(KickMode::Reset));
    let kinds: Vec<_> = h.with(|m| m.events_of(ia).map(|e| e.kind.clone()).collect());
    let n = kinds.len();
    assert_eq!(
        kinds[n - 2..],
        [
            EventKind::Kicked {
                mode: KickMode::Reset
            },
            EventKind::Closed {
                reason: CloseReason::Kicked(KickMode::Reset)
            }
        ]
    );

    // The others still echo; then one graceful kick of All ends both.
    assert_echo(&mut b, b"b still here");
    assert_echo(&mut c, b"c still here");
    h.send(Command::Kick {
        targets: Targets::All,
        mode: KickMode::Graceful,
    });
    assert!(read_to_eof(&mut b, "b").is_empty());
    assert!(read_to_eof(&mut c, "c").is_empty());
    drop((b, c));
    for id in [ib, ic] {
        assert_eq!(h.wait_closed(id), CloseReason::Kicked(KickMode::Graceful));
    }
    h.assert_stream_consistent();
}

// ---- inject and modes ------------------------------------------------------

#[test]
fn inject_reaches_exactly_its_targets() {
    let h = Harness::start(config(Mode::Echo));
    let (mut a, ia) = h.connect();
    let (mut b, ib) = h.connect();

    h.send(Command::Inject {
        targets: Targets::one(ia),
        bytes: b"only for a".to_vec(),
    });
    assert_eq!(read_n(&mut a, 10, "a's inject"), b"only for a");
    assert_silent(&mut b, QUIET, "b during a's inject");

    h.send(Command::Inject {
        targets: Targets::All,
        bytes: b"for all".to_vec(),
    });
    assert_eq!(read_n(&mut a, 7, "inject to all"), b"for all");
    assert_eq!(read_n(&mut b, 7, "inject to all"), b"for all");

    // An unknown id is ignored; a list reaches each listed client once.
    h.send(Command::Inject {
        targets: Targets::Conns(vec![ConnId(u64::MAX), ib]),
        bytes: b"list".to_vec(),
    });
    assert_eq!(read_n(&mut b, 4, "inject by list"), b"list");
    assert_silent(&mut a, QUIET, "a is not in the list");

    // Echo and inject share the stream without mixing up bytes.
    assert_echo(&mut a, b"echo still works");
    let ca = h.wait_counters(ia, "a's tx", |c| c.tx_bytes == 10 + 7 + 16);
    let cb = h.wait_counters(ib, "b's tx", |c| c.tx_bytes == 7 + 4);
    assert_eq!((ca.rx_bytes, cb.rx_bytes), (16, 0));
    let injected = |id| {
        h.with(|m| {
            m.events_of(id)
                .filter_map(|e| match e.kind {
                    EventKind::Injected { n } => Some(n),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(injected(ia), vec![10, 7]);
    assert_eq!(injected(ib), vec![7, 4]);
}

#[test]
fn manual_mode_records_input_without_echo() {
    let h = Harness::start(config(Mode::Manual));
    let (mut c, id) = h.connect();
    c.write_all(b"hello manual\n").unwrap();
    c.write_all(b"second line").unwrap();
    assert_silent(&mut c, QUIET, "manual mode");
    let counters = h.wait_counters(id, "rx grows", |c| c.rx_bytes == 24);
    assert_eq!((counters.tx_bytes, counters.queued_bytes), (0, 0));

    let detail = h.inspect(id);
    assert_eq!(
        rx_text(&detail, Direction::Rx),
        b"hello manual\nsecond line"
    );
    assert!(rx_text(&detail, Direction::Tx).is_empty());
    assert_eq!(detail.counters.rx_bytes, 24);

    // The user answers by hand.
    h.send(Command::Inject {
        targets: Targets::one(id),
        bytes: b"reply".to_vec(),
    });
    assert_eq!(read_n(&mut c, 5, "manual reply"), b"reply");
    let detail = h.inspect(id);
    let last = detail.transcript.last().expect("a transcript");
    assert_eq!(
        (last.dir, last.bytes.as_slice()),
        (Direction::Tx, &b"reply"[..])
    );
    assert_eq!(detail.counters.tx_bytes, 5);
}

#[test]
fn discard_mode_counts_input_and_sends_nothing_back() {
    const SIZE: usize = 256 * 1024;
    let h = Harness::start(config(Mode::Discard));
    let (mut c, id) = h.connect();
    c.write_all(&vec![7u8; SIZE]).unwrap();
    let counters = h.wait_counters(id, "all input counted", |c| c.rx_bytes == SIZE as u64);
    assert_eq!((counters.tx_bytes, counters.queued_bytes), (0, 0));
    assert!(!counters.backpressure, "discarded bytes never queue");
    assert_silent(&mut c, QUIET, "discard mode");
    assert!(
        h.inspect(id).transcript.is_empty(),
        "discarded bytes are not kept"
    );
    // Injecting still works.
    h.send(Command::Inject {
        targets: Targets::one(id),
        bytes: b"hi".to_vec(),
    });
    assert_eq!(read_n(&mut c, 2, "inject in discard mode"), b"hi");
}

#[test]
fn mode_can_change_at_runtime() {
    let h = Harness::start(config(Mode::Echo));
    let (mut c, id) = h.connect();
    assert_echo(&mut c, b"echo 1");

    let set_mode = |mode: Mode| {
        h.send(Command::SetMode(mode));
        h.wait_for(&format!("stats in {mode} mode"), |m| {
            m.stats.as_ref().filter(|s| s.mode == mode).map(|_| ())
        });
        assert!(h.with(|m| {
            m.events
                .iter()
                .any(|e| e.conn.is_none() && e.kind == EventKind::ModeChanged { mode })
        }));
    };
    set_mode(Mode::Discard);
    c.write_all(b"dropped").unwrap();
    assert_silent(&mut c, QUIET, "after switching to discard");
    set_mode(Mode::Manual);
    c.write_all(b"recorded").unwrap();
    assert_silent(&mut c, QUIET, "after switching to manual");
    h.wait_counters(id, "rx counts all modes", |c| c.rx_bytes == 6 + 7 + 8);
    let rx = rx_text(&h.inspect(id), Direction::Rx);
    assert_eq!(
        rx, b"echo 1recorded",
        "discard keeps nothing, manual keeps input"
    );

    // Back to echo: only new bytes come back, nothing held from before.
    set_mode(Mode::Echo);
    assert_echo(&mut c, b"echo 2");
    assert_silent(&mut c, QUIET, "no late echo of earlier input");
}

#[test]
fn manual_mode_keeps_a_half_closed_client_for_an_answer() {
    let h = Harness::start(config(Mode::Manual));
    let (mut asker, ia) = h.connect();
    let (mut other, io) = h.connect();
    for (s, text) in [
        (&mut asker, &b"GET / HTTP/1.0\r\n\r\n"[..]),
        (&mut other, b"hi"),
    ] {
        s.write_all(text).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
    }
    for id in [ia, io] {
        h.wait_counters(id, "half-closed", |c| c.state == ConnState::HalfClosed);
    }
    std::thread::sleep(QUIET);
    assert!(
        h.with(|m| m.closed.is_empty()),
        "half-closed clients stay open in manual mode"
    );

    let answer = b"HTTP/1.0 200 OK\r\n\r\nhello".to_vec();
    h.send(Command::Inject {
        targets: Targets::one(ia),
        bytes: answer.clone(),
    });
    h.send(Command::Kick {
        targets: Targets::one(ia),
        mode: KickMode::Graceful,
    });
    assert_eq!(read_to_eof(&mut asker, "answered client"), answer);
    assert_eq!(h.wait_closed(ia), CloseReason::Kicked(KickMode::Graceful));

    // Leaving manual mode ends the half-closed clients kept for answers.
    h.send(Command::SetMode(Mode::Echo));
    assert!(read_to_eof(&mut other, "half-closed client on mode change").is_empty());
    assert_eq!(h.wait_closed(io), CloseReason::PeerClosed);
}

#[test]
fn read_pause_holds_input_until_resumed() {
    let h = Harness::start(config(Mode::Echo));
    let (mut c, id) = h.connect();
    let mut d = client(h.addr);
    h.send(Command::SetReadPaused {
        targets: Targets::one(id),
        paused: true,
    });
    h.wait_counters(id, "read_paused", |c| c.read_paused);
    c.write_all(b"held back").unwrap();
    assert_silent(&mut c, QUIET, "paused client");
    assert_echo(&mut d, b"others are not paused");
    assert_eq!(
        h.with(|m| m.counters[&id].rx_bytes),
        0,
        "nothing read while paused"
    );

    // Resuming reads what arrived while paused, with no new readable edge.
    h.send(Command::SetReadPaused {
        targets: Targets::one(id),
        paused: false,
    });
    assert_eq!(read_n(&mut c, 9, "resumed client"), b"held back");
    let counters = h.wait_counters(id, "resumed", |c| !c.read_paused && c.rx_bytes == 9);
    assert_eq!(counters.tx_bytes, 9);
    let pauses: Vec<bool> = h.with(|m| {
        m.events_of(id)
            .filter_map(|e| match e.kind {
                EventKind::ReadPaused { paused } => Some(paused),
                _ => None,
            })
            .collect()
    });
    assert_eq!(pauses, vec![true, false]);
}

// ---- identity --------------------------------------------------------------

#[test]
fn conn_ids_are_never_reused_when_slots_are() {
    let h = Harness::start_with_monitor(config(Mode::Echo));
    let mut ids = Vec::new();
    let mut peers = Vec::new();
    // One client at a time: each connects after the previous one's Closed
    // event, when the engine holds no connection, so every client lands in
    // the same slab slot (and mio token), yet must get a new id. Every odd
    // round also reuses the previous (reset, so free) client's port: the
    // same peer address, the same slot, a different connection.
    let mut reset_port = None;
    let mut port_reuses = 0;
    for round in 0..20u32 {
        let port = reset_port.take();
        let (mut c, id) =
            h.connect_with(|a| match port.and_then(|port| client_from_port(a, port)) {
                Some(c) => {
                    port_reuses += 1;
                    c
                }
                None => client(a),
            });
        peers.push((id, c.local_addr().unwrap()));
        assert_echo(&mut c, format!("round {round}").as_bytes());
        if round % 2 == 0 {
            // Reset, so the engine sees an error rather than a FIN.
            reset_port = Some(c.local_addr().unwrap().port());
            reset(c);
        } else {
            drop(c);
        }
        let reason = h.wait_closed(id);
        let expected = if round % 2 == 0 {
            CloseReason::PeerReset
        } else {
            CloseReason::PeerClosed
        };
        assert_eq!(reason, expected, "round {round}");
        ids.push(id);
    }
    // A close and a connect racing each other, many times.
    let (mut prev, mut prev_id) = h.connect();
    for round in 0..30u32 {
        socket2::SockRef::from(&prev)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(prev);
        let (mut next, next_id) = h.connect();
        assert_echo(&mut next, format!("race {round}").as_bytes());
        ids.push(prev_id);
        peers.push((next_id, next.local_addr().unwrap()));
        (prev, prev_id) = (next, next_id);
    }
    drop(prev);
    ids.push(prev_id);
    h.wait_closed(prev_id);

    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids only grow: {ids:?}"
    );
    let model = h.shutdown();
    assert!(model.violations.is_empty(), "{:#?}", model.violations);
    for &(id, peer) in &peers {
        assert!(
            model
                .accepted
                .get(&peer)
                .is_some_and(|ids| ids.contains(&id)),
            "{id}'s Accepted event names its peer {peer}"
        );
    }
    // A recurring peer address is a new connection: a new id, and the old
    // connection's final state untouched, in the model and in a viewer.
    let reused: Vec<&Vec<ConnId>> = model
        .accepted
        .values()
        .filter(|ids| ids.len() > 1)
        .collect();
    assert!(
        port_reuses >= 5 && reused.len() >= port_reuses,
        "{} peer addresses recurred after {port_reuses} port reuses (of 10 tried)",
        reused.len()
    );
    let monitor = model.monitor.as_ref().expect("a monitor");
    for ids in reused {
        let distinct: HashSet<_> = ids.iter().collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "one peer, one id each time: {ids:?}"
        );
        let first = ids[0];
        assert_eq!(
            model.counters[&first].state,
            ConnState::Closed(CloseReason::PeerReset),
            "{first} keeps its own end after {:?} reused its address",
            &ids[1..]
        );
        assert_eq!(
            monitor.connections.get(first).map(|c| &c.state),
            Some(&ConnState::Closed(CloseReason::PeerReset)),
            "the viewer's row of {first}"
        );
    }
    let known: HashSet<ConnId> = ids.iter().copied().collect();
    for &id in &ids {
        let events: Vec<_> = model.events_of(id).collect();
        assert!(
            matches!(
                events.first().map(|e| &e.kind),
                Some(EventKind::Accepted { .. })
            ),
            "{id}'s first event is Accepted: {:?}",
            events.first()
        );
        assert!(
            matches!(
                events.last().map(|e| &e.kind),
                Some(EventKind::Closed { .. })
            ),
            "nothing carries {id} after its Closed event: {:?}",
            events.last()
        );
        assert!(matches!(model.counters[&id].state, ConnState::Closed(_)));
    }
    let strangers: Vec<_> = model
        .events
        .iter()
        .filter(|e| e.conn.is_some_and(|id| !known.contains(&id)))
        .collect();
    assert!(
        strangers.is_empty(),
        "events for unknown ids: {strangers:?}"
    );
}

#[test]
fn stopping_the_engine_closes_every_client() {
    let h = Harness::start(config(Mode::Echo));
    let (mut a, ia) = h.connect();
    let (mut b, ib) = h.connect();
    assert_echo(&mut a, b"a");
    let model = h.shutdown();
    assert!(read_to_eof(&mut a, "a").is_empty());
    assert!(read_to_eof(&mut b, "b").is_empty());
    for id in [ia, ib] {
        assert_eq!(model.closed.get(&id), Some(&CloseReason::EngineStopped));
        assert_eq!(
            model.counters[&id].state,
            ConnState::Closed(CloseReason::EngineStopped),
            "final counters are flushed before the engine ends"
        );
    }
}

// ---- listening -------------------------------------------------------------

#[test]
fn port_in_use_is_reported_at_start_and_on_listen() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();

    // At start: the engine still runs, without a listener.
    let engine = EngineHandle::spawn(EngineConfig {
        listen: Some(taken_addr.clone()),
        ..EngineConfig::default()
    })
    .expect("the engine starts even if it cannot listen");
    assert_eq!(engine.local_addr(), None);
    match engine.initial_listen() {
        ListenState::Failed { addr, error } => {
            assert_eq!(addr, &taken_addr);
            assert!(error.contains("already in use"), "{error}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let deadline = Instant::now() + STEP;
    let (mut event, mut stats) = (None, None);
    while Instant::now() < deadline && (event.is_none() || stats.is_none()) {
        let Ok(batch) = engine.batches().recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        for e in batch.events {
            if let EventKind::ListenFailed { error, .. } = e.kind {
                event = Some(error);
            }
        }
        stats = stats.or(batch.stats);
    }
    assert!(
        event
            .expect("a ListenFailed event")
            .contains("already in use")
    );
    assert!(matches!(
        stats.expect("stats").listen,
        ListenState::Failed { .. }
    ));
    drop(engine);

    // On a Listen command: the failure is reported, and the old listener
    // stays, so a failed move leaves the server where it was.
    let h = Harness::start(config(Mode::Echo));
    let old = h.addr;
    h.send(Command::Listen {
        addr: taken_addr.clone(),
    });
    let error = h.wait_for("ListenFailed", |m| {
        m.events.iter().find_map(|e| match &e.kind {
            EventKind::ListenFailed { addr, error } if *addr == taken_addr => Some(error.clone()),
            _ => None,
        })
    });
    assert!(error.contains("already in use"), "{error}");
    let mut on_old = client(old);
    assert_echo(&mut on_old, b"still on the old port");
    h.wait_for("stats still listening on the old address", |m| {
        m.stats
            .as_ref()
            .filter(|s| s.listen == ListenState::Listening(old))
            .map(|_| ())
    });
    drop(on_old);

    // Listening elsewhere works, and replaces the old listener.
    h.send(Command::Listen {
        addr: "127.0.0.1:0".into(),
    });
    let new = h.wait_for("Listening again", |m| {
        m.events.iter().rev().find_map(|e| match e.kind {
            EventKind::Listening { addr } if addr != old => Some(addr),
            _ => None,
        })
    });
    let mut c = client(new);
    assert_echo(&mut c, b"on the new port");
    assert!(
        TcpStream::connect(old).is_err(),
        "the old listener is closed once the new one listens"
    );

    // And stopping refuses new clients but keeps the connected one.
    h.send(Command::StopListening);
    h.wait_for("stats: stopped", |m| {
        m.stats
            .as_ref()
            .filter(|s| s.listen == ListenState::Stopped)
            .map(|_| ())
    });
    assert!(
        TcpStream::connect(new).is_err(),
        "no listener after StopListening"
    );
    assert_echo(&mut c, b"still connected");
    drop(taken);
}

/// The loop sleeps in `poll` unless there is work: under light, steady
/// traffic it polls about once per exchange, never in a busy loop (a timer
/// that stays due, e.g. for counters waiting on the flush interval, would
/// spin at full CPU while everything looks fine from outside).
#[test]
fn the_loop_polls_only_when_there_is_work() {
    let h = Harness::start(EngineConfig {
        listen: Some("127.0.0.1:0".into()),
        ..EngineConfig::default()
    });
    let (mut c, id) = h.connect();
    let started = Instant::now();
    let mut exchanges = 0;
    while started.elapsed() < Duration::from_millis(1300) {
        assert_echo(&mut c, b"tick");
        exchanges += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    h.wait_counters(id, "the echoes to be counted", |c| {
        c.tx_bytes >= 4 * exchanges
    });
    let polls = h
        .with(|m| m.stats.as_ref().map(|s| s.polls_per_sec))
        .unwrap_or(0.0);
    assert!(
        polls < 2000.0,
        "{polls:.0} polls/s for about {:.0} exchanges/s: the loop is spinning",
        exchanges as f64 / 1.3
    );
    // And when the traffic stops, it sleeps between ticks: judged by stats
    // whose one-second window lies wholly after the last exchange.
    let quiet_from = h
        .with(|m| m.events_of(id).last().map(|e| e.at))
        .unwrap_or(0)
        + 1_300_000;
    let idle = h.wait_for("stats of an idle second", |m| {
        m.stats
            .as_ref()
            .filter(|s| s.at >= quiet_from)
            .map(|s| s.polls_per_sec)
    });
    assert!(
        idle < 50.0,
        "an idle engine polled {idle:.0} times a second"
    );
}
