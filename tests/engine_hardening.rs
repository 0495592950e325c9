//! Regression tests for engine defects found while hardening (issue 8): each
//! one drives the engine into a corner it once got wrong.

mod common;

use common::*;
use muxscope::engine::EngineConfig;
use muxscope::protocol::{
    CloseReason, Command, ConnId, ConnState, EventKind, InjectRefusal, KickMode, ListenState, Mode,
    Targets,
};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

const QUIET: Duration = Duration::from_millis(300);

/// `Targets::Conns` naming `id` twice, with ids that match nothing around.
fn twice(id: ConnId) -> Targets {
    Targets::Conns(vec![id, ConnId(u64::MAX), id, ConnId(0)])
}

fn count(kinds: &[EventKind], pred: impl Fn(&EventKind) -> bool) -> usize {
    kinds.iter().filter(|k| pred(k)).count()
}

/// The engine still accepts and echoes: a new client gets its echo.
fn assert_still_serving(h: &mut Harness) {
    let (mut c, _) = h.connect();
    assert_echo(&mut c, b"still serving");
    h.assert_engine_alive();
}

/// Pause reading `id`, then let its client send `last` and its FIN, which
/// the engine does not see until it reads again.
fn pause_then_half_close(h: &Harness, id: ConnId, c: &mut TcpStream, last: &[u8]) {
    h.send(Command::SetReadPaused {
        targets: Targets::one(id),
        paused: true,
    });
    h.wait_counters(id, "read_paused", |c| c.read_paused);
    c.write_all(last).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
}

// ---- duplicate ids -------------------------------------------------------

#[test]
fn duplicate_ids_in_a_reset_kick_close_the_client_once() {
    let mut h = Harness::start(EngineConfig::default());
    let (mut victim, id) = h.connect();
    let (mut other, _) = h.connect();
    h.send(Command::Kick {
        targets: twice(id),
        mode: KickMode::Reset,
    });
    assert_eq!(h.wait_closed(id), CloseReason::Kicked(KickMode::Reset));
    let mut buf = [0u8; 16];
    match victim.read(&mut buf) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("expected a reset, read returned Ok({n})"),
    }
    let kinds = h.kinds_of(id);
    assert_eq!(
        count(&kinds, |k| matches!(k, EventKind::Kicked { .. })),
        1,
        "{kinds:?}"
    );
    assert_echo(&mut other, b"the other client is served");
    assert_still_serving(&mut h);
    h.assert_stream_consistent();
}

#[test]
fn duplicate_ids_in_a_graceful_kick_kick_once() {
    let mut h = Harness::start(EngineConfig::default());
    let (mut c, id) = h.connect();
    let (mut other, _) = h.connect();
    // The first kick of the pair reads the FIN and closes the connection at
    // once, so the second one finds it gone.
    pause_then_half_close(&h, id, &mut c, b"");
    h.send(Command::Kick {
        targets: twice(id),
        mode: KickMode::Graceful,
    });
    assert!(read_to_eof(&mut c, "kicked client").is_empty());
    assert_eq!(h.wait_closed(id), CloseReason::Kicked(KickMode::Graceful));
    let kinds = h.kinds_of(id);
    assert_eq!(
        count(&kinds, |k| matches!(k, EventKind::Kicked { .. })),
        1,
        "{kinds:?}"
    );
    assert_echo(&mut other, b"the other client is served");
    assert_still_serving(&mut h);
    h.assert_stream_consistent();
}

#[test]
fn duplicate_ids_in_an_inject_deliver_it_once() {
    let mut h = Harness::start(EngineConfig::default());
    let (mut c, id) = h.connect();
    h.send(Command::Inject {
        targets: twice(id),
        bytes: b"once".to_vec(),
    });
    assert_eq!(read_n(&mut c, 4, "inject"), b"once");
    assert_silent(&mut c, QUIET, "a duplicated target");
    let kinds = h.kinds_of(id);
    assert_eq!(
        count(&kinds, |k| matches!(k, EventKind::Injected { .. })),
        1,
        "{kinds:?}"
    );
    assert_echo(&mut c, b"and echo goes on");
    assert_still_serving(&mut h);
}

#[test]
fn duplicate_ids_in_a_read_resume_resume_once() {
    let mut h = Harness::start(EngineConfig::default());
    let (mut c, id) = h.connect();
    // Resuming reads "bye", echoes it, reads the FIN and closes: the second
    // resume of the pair finds the connection gone.
    pause_then_half_close(&h, id, &mut c, b"bye");
    h.send(Command::SetReadPaused {
        targets: twice(id),
        paused: false,
    });
    assert_eq!(read_to_eof(&mut c, "resumed client"), b"bye");
    assert_eq!(h.wait_closed(id), CloseReason::PeerClosed);
    let kinds = h.kinds_of(id);
    let resumes = count(&kinds, |k| *k == EventKind::ReadPaused { paused: false });
    assert_eq!(resumes, 1, "{kinds:?}");
    assert_still_serving(&mut h);
    h.assert_stream_consistent();
}

// ---- graceful kicks end by a deadline ------------------------------------

const KICK_TIMEOUT: Duration = Duration::from_secs(1);

/// A config where `KICK_TIMEOUT` bounds graceful kicks and 4 MiB of inject
/// fit in the queue.
fn kick_config() -> EngineConfig {
    EngineConfig {
        kick_timeout: KICK_TIMEOUT,
        queue_limit: 8 * 1024 * 1024,
        ..EngineConfig::default()
    }
}

/// A client with a small receive buffer that never reads, with 4 MiB
/// injected and (mostly) waiting in the engine's queue.
fn stuffed_client(h: &Harness) -> (TcpStream, ConnId) {
    const STUFFING: usize = 4 * 1024 * 1024;
    let (c, id) = h.connect_with(|a| client_with_rcvbuf(a, 8 * 1024));
    h.send(Command::Inject {
        targets: Targets::one(id),
        bytes: vec![b's'; STUFFING],
    });
    h.wait_counters(id, "the inject waits in the queue", |c| {
        c.queued_bytes > 0 && c.queued_bytes + c.tx_bytes == STUFFING as u64
    });
    (c, id)
}

fn event_time(h: &Harness, id: ConnId, pred: impl Fn(&EventKind) -> bool) -> u64 {
    h.with(|m| m.events_of(id).find(|e| pred(&e.kind)).map(|e| e.at))
        .expect("the event was seen")
}

#[test]
fn graceful_kick_of_a_client_that_never_reads_resets_it_at_the_deadline() {
    let mut h = Harness::start(kick_config());
    let (c, id) = stuffed_client(&h);
    let kicked = Instant::now();
    h.send(Command::Kick {
        targets: Targets::one(id),
        mode: KickMode::Graceful,
    });
    // Counters go out every 100 ms; the kick runs for a second.
    let deadline = h.wait_for("counters in state Closing", |m| {
        match m.counters.get(&id)?.state {
            ConnState::Closing { deadline } => Some(deadline),
            _ => None,
        }
    });
    let kicked_at = event_time(&h, id, |k| matches!(k, EventKind::Kicked { .. }));
    let timeout = KICK_TIMEOUT.as_micros() as u64;
    assert!(
        (timeout - 50_000..=timeout + 200_000).contains(&deadline.saturating_sub(kicked_at)),
        "the deadline {deadline} µs is not about {KICK_TIMEOUT:?} after the kick at {kicked_at} µs"
    );

    let reason = h.wait_closed(id);
    let elapsed = kicked.elapsed();
    assert!(
        matches!(reason, CloseReason::KickTimedOut { after_ms } if (900..5000).contains(&after_ms)),
        "closed with {reason:?}"
    );
    assert!(
        elapsed >= KICK_TIMEOUT.mul_f64(0.9) && elapsed < Duration::from_secs(5),
        "closed {elapsed:?} after a graceful kick with a deadline of {KICK_TIMEOUT:?}"
    );
    let closed_at = event_time(&h, id, |k| matches!(k, EventKind::Closed { .. }));
    assert!(
        closed_at - kicked_at >= timeout * 9 / 10,
        "engine time from kick to close: {} µs",
        closed_at - kicked_at
    );
    drop(c);
    assert_still_serving(&mut h);
    h.assert_stream_consistent();
}

// ---- inject --------------------------------------------------------------

/// Injects the engine accepted for `id` (the `n` of each `Injected`).
fn injected(h: &Harness, id: ConnId) -> Vec<u32> {
    h.with(|m| {
        m.events_of(id)
            .filter_map(|e| match e.kind {
                EventKind::Injected { n } => Some(n),
                _ => None,
            })
            .collect()
    })
}

#[test]
fn inject_to_a_connection_that_is_flushing_for_a_kick_is_refused() {
    let h = Harness::start(EngineConfig {
        kick_timeout: Duration::from_secs(30),
        ..kick_config()
    });
    let (c, id) = stuffed_client(&h);
    h.send(Command::Kick {
        targets: Targets::one(id),
        mode: KickMode::Graceful,
    });
    let closing = h.wait_counters(id, "state Closing", |c| {
        matches!(c.state, ConnState::Closing { .. })
    });
    h.send(Command::Inject {
        targets: Targets::one(id),
        bytes: b"too late".to_vec(),
    });
    let why = h.wait_event(id, "InjectRefused", |k| match k {
        EventKind::InjectRefused { n: 8, why } => Some(*why),
        _ => None,
    });
    assert_eq!(why, InjectRefusal::Closing);
    assert_eq!(
        injected(&h, id),
        vec![4 * 1024 * 1024],
        "only the first inject"
    );
    let now = h.inspect(id).counters;
    assert_eq!(
        now.queued_bytes + now.tx_bytes,
        closing.queued_bytes + closing.tx_bytes,
        "nothing was queued"
    );
    h.send(Command::Kick {
        targets: Targets::one(id),
        mode: KickMode::Reset,
    });
    h.wait_closed(id);
    drop(c);
}

#[test]
fn inject_to_a_connection_waiting_for_the_peers_fin_is_refused() {
    let h = Harness::start(kick_config());
    let (mut c, id) = h.connect();
    h.send(Command::Kick {
        targets: Targets::one(id),
        mode: KickMode::Graceful,
    });
    assert!(read_to_eof(&mut c, "kicked client").is_empty());
    h.send(Command::Inject {
        targets: Targets::one(id),
        bytes: b"after our FIN".to_vec(),
    });
    let refused = h.wait_for("InjectRefused", |m| {
        let r = refusals_in(m, id);
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(refused, vec![(13, InjectRefusal::Closing)]);
    assert!(injected(&h, id).is_empty());
    drop(c);
    assert!(matches!(
        h.wait_closed(id),
        CloseReason::Kicked(KickMode::Graceful) | CloseReason::KickTimedOut { .. }
    ));
}

fn refusals_in(m: &Model, id: ConnId) -> Vec<(u32, InjectRefusal)> {
    m.events_of(id)
        .filter_map(|e| match e.kind {
            EventKind::InjectRefused { n, why } => Some((n, why)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_inject_larger_than_the_queue_limit_is_refused_beyond_it() {
    const LIMIT: usize = 1024 * 1024;
    const SIZE: usize = 2 * LIMIT;
    let h = Harness::start(EngineConfig {
        queue_limit: LIMIT,
        ..EngineConfig::default()
    });
    let (mut c, id) = h.connect_with(|a| client_with_rcvbuf(a, 8 * 1024));
    let payload: Vec<u8> = (0..SIZE as u64).map(pattern).collect();
    h.send(Command::Inject {
        targets: Targets::one(id),
        bytes: payload.clone(),
    });
    let refused = h.wait_for("InjectRefused", |m| {
        let r = refusals_in(m, id);
        (!r.is_empty()).then_some(r)
    });
    let fit: u32 = injected(&h, id).iter().sum();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let (rest, why) = refused[0];
    assert_eq!(why, InjectRefusal::QueueFull);
    assert_eq!(
        fit as usize + rest as usize,
        SIZE,
        "fit {fit} + refused {rest}"
    );
    let counters = h.inspect(id).counters;
    assert!(
        counters.queue_high_water <= LIMIT as u64,
        "the queue grew to {} B with a limit of {LIMIT} B",
        counters.queue_high_water
    );
    assert!(
        fit as usize >= LIMIT / 2,
        "only {fit} B of {SIZE} B were taken"
    );
    // What fit is the start of the inject; nothing of the rest follows.
    let got = read_n(&mut c, fit as usize, "the part that fit");
    assert_same_bytes(&got, &payload[..fit as usize], "the part that fit");
    assert_silent(&mut c, QUIET, "after the part that fit");
}

// ---- transcript_limit 0 --------------------------------------------------

#[test]
fn transcript_limit_zero_survives_partial_echo_writes() {
    const SIZE: u64 = 4 * 1024 * 1024;
    let mut h = Harness::start_without_event_log(EngineConfig {
        transcript_limit: 0,
        ..EngineConfig::default()
    });
    let (mut c, id) = h.connect_with(|a| client_with_rcvbuf(a, 8 * 1024));
    let writer = {
        let mut w = c.try_clone().unwrap();
        thread::spawn(move || {
            let data: Vec<u8> = (0..SIZE).map(pattern).collect();
            w.write_all(&data).expect("client writes");
        })
    };
    // A slow reader: the queue drains now and then, so many echoes go out
    // straight from the read buffer and are cut short by the full socket.
    let mut got: u64 = 0;
    let mut buf = vec![0u8; 16 * 1024];
    while got < SIZE {
        let want = (SIZE - got).min(buf.len() as u64) as usize;
        let n = match c.read(&mut buf[..want]) {
            Ok(0) => panic!("EOF after {got} of {SIZE} bytes"),
            Ok(n) => n,
            Err(e) => {
                h.assert_engine_alive();
                panic!("read failed after {got} of {SIZE} bytes: {e}")
            }
        };
        if let Some(bad) = (0..n).find(|&i| buf[i] != pattern(got + i as u64)) {
            panic!("wrong byte at offset {}", got + bad as u64);
        }
        got += n as u64;
        if got % (256 * 1024) < n as u64 {
            thread::sleep(Duration::from_millis(2));
        }
    }
    writer.join().expect("writer");
    let counters = h.wait_counters(id, "everything echoed", |c| c.tx_bytes == SIZE);
    assert!(
        counters.queue_high_water > 0,
        "precondition: echoes were cut short and queued"
    );
    h.assert_engine_alive();
    assert!(h.inspect(id).transcript.is_empty(), "nothing is recorded");
}

// ---- a consumer that falls behind ----------------------------------------

#[test]
fn a_viewer_that_fell_behind_converges_on_the_open_connections() {
    /// Clients that come and go while the consumer is stalled: more than
    /// an engine should keep final counters of for one viewer (it keeps a
    /// few thousand at most, and says the rest closed by omission).
    const CHURN: usize = 6000;
    const CAPACITY: usize = 2;
    let h = Harness::start_with_monitor(EngineConfig {
        channel_capacity: CAPACITY,
        ..EngineConfig::default()
    });
    let mut staying: Vec<(TcpStream, ConnId)> = (0..4).map(|_| h.connect()).collect();
    let leaving: Vec<(TcpStream, ConnId)> = (0..4).map(|_| h.connect()).collect();
    h.wait_for("the viewer to show all eight open", |m| {
        let monitor = m.monitor.as_ref()?;
        let open = |id: &ConnId| {
            monitor
                .connections
                .get(*id)
                .is_some_and(|c| !matches!(c.state, ConnState::Closed(_)))
        };
        staying
            .iter()
            .chain(&leaving)
            .all(|(_, id)| open(id))
            .then_some(())
    });

    h.stall_consumer();
    // Traffic until the channel is full, and a little more so that a flush
    // fails and events are lost.
    let deadline = Instant::now() + STEP;
    while h.engine().batches().len() < CAPACITY && Instant::now() < deadline {
        assert_echo(&mut staying[0].0, b"fill the channel");
    }
    assert_eq!(
        h.engine().batches().len(),
        CAPACITY,
        "the channel filled up"
    );
    assert_echo(&mut staying[0].0, b"lost");
    thread::sleep(Duration::from_millis(50));

    // While the consumer is behind: the viewer's open clients leave, and
    // many more come and go (each is served, then resets).
    for (i, (c, _)) in leaving.into_iter().enumerate() {
        if i % 2 == 0 {
            reset(c);
        } else {
            drop(c);
        }
    }
    let churn_started = Instant::now();
    for i in 0..CHURN {
        let mut c = client(h.addr);
        if i % 100 == 0 {
            assert_echo(&mut c, b"churn");
        }
        reset(c);
    }
    eprintln!(
        "{CHURN} clients came and went in {:?} while the consumer was stalled",
        churn_started.elapsed()
    );
    // The engine must have noticed the resets: the staying clients are
    // served after them (one thread, in order of readiness).
    for (c, _) in &mut staying {
        assert_echo(c, b"still here");
    }
    let batches_before = h.with(|m| m.batches);
    h.resume_consumer();

    let staying_ids: Vec<ConnId> = staying.iter().map(|(_, id)| *id).collect();
    let converged = h.wait_until(STEP, |m| {
        let monitor = m.monitor.as_ref()?;
        let mut open: Vec<ConnId> = monitor
            .connections
            .iter()
            .filter(|c| !matches!(c.state, ConnState::Closed(_)))
            .map(|c| c.id)
            .collect();
        open.sort();
        let stats = m.stats.as_ref()?;
        (open == staying_ids && stats.connections as usize == staying_ids.len()).then_some(())
    });
    let (open, stats) = h.with(|m| {
        let monitor = m.monitor.as_ref().unwrap();
        let open: Vec<ConnId> = monitor
            .connections
            .iter()
            .filter(|c| !matches!(c.state, ConnState::Closed(_)))
            .map(|c| c.id)
            .collect();
        (open, m.stats.clone())
    });
    assert!(
        converged.is_some(),
        "the viewer shows {} connections open ({:?}...), the engine has {:?}; expected {staying_ids:?}",
        open.len(),
        &open[..open.len().min(10)],
        stats.map(|s| s.connections)
    );
    let dropped = h.with(|m| m.dropped_events);
    assert!(
        dropped > 0,
        "precondition: the stalled consumer lost events"
    );
    // How much the engine held for the stalled consumer shows in what it
    // delivered after the stall: final counters of the clients that left.
    let held_finals = h.with(|m| {
        m.counters
            .values()
            .filter(|c| matches!(c.state, ConnState::Closed(_)))
            .count()
    });
    eprintln!(
        "{dropped} events dropped; {} batches after the stall; final counters of {held_finals} \
         closed connections delivered in all",
        h.with(|m| m.batches) - batches_before
    );
    assert!(
        held_finals < CHURN,
        "the engine kept final counters of all {held_finals} connections that closed while \
         its consumer was behind: its memory grows with every connection"
    );
    for (c, _) in &mut staying {
        assert_echo(c, b"after the stall");
    }
    h.assert_stream_consistent();
}

// ---- modes ---------------------------------------------------------------

#[test]
fn switching_to_discard_resumes_reading_a_client_held_by_backpressure() {
    const LIMIT: usize = 64 * 1024;
    let h = Harness::start_without_event_log(EngineConfig {
        queue_limit: LIMIT,
        low_water: LIMIT / 4,
        ..EngineConfig::default()
    });
    let (hog, id) = h.connect_with(|a| client_with_rcvbuf(a, 8 * 1024));
    let writer = write_pattern_until_blocked(&hog, 0);
    let held = h.wait_counters(id, "backpressure on", |c| c.backpressure);
    let sent = writer.join().expect("writer");
    assert!(
        held.rx_bytes < sent,
        "precondition: bytes wait in the kernel"
    );

    // Discarded input never queues: nothing holds reading back any more.
    // The client still reads nothing.
    h.send(Command::SetMode(Mode::Discard));
    let more = write_pattern_until_blocked(&hog, sent);
    let resumed = h.wait_counters(id, "reading resumed in discard mode", |c| {
        c.rx_bytes >= sent
    });
    let total = more.join().expect("second writer");
    assert!(!resumed.backpressure, "{resumed:#?}");
    assert!(total > sent, "the client could send more");
    h.wait_counters(id, "everything sent is read", |c| c.rx_bytes == total);
    drop(hog);
}

/// Write the [`pattern`] stream from offset `from` on a clone of `stream`
/// until a write blocks for 500 ms (at most 64 MiB); returns the offset
/// reached.
fn write_pattern_until_blocked(stream: &TcpStream, from: u64) -> thread::JoinHandle<u64> {
    let mut w = stream.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    thread::spawn(move || -> u64 {
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = from;
        while at - from < 64 * 1024 * 1024 {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = pattern(at + i as u64);
            }
            match w.write(&buf) {
                Ok(n) => at += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => panic!("writer: write failed at offset {at}: {e}"),
            }
        }
        at
    })
}

// ---- listening -----------------------------------------------------------

#[test]
fn a_listen_that_fails_keeps_the_old_listener() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let h = Harness::start(EngineConfig::default());
    let old = h.addr;
    let (mut before, _) = h.connect();

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
    let (mut after, _) = h.connect_to(old);
    assert_echo(&mut after, b"the old address still accepts");
    assert_echo(&mut before, b"and serves");
    h.wait_for("stats: still listening on the old address", |m| {
        let s = m.stats.as_ref()?;
        (s.listen == ListenState::Listening(old)).then_some(())
    });

    // Listening again where it already listens keeps it listening there.
    let listened = h.with(|m| m.events.len());
    h.send(Command::Listen {
        addr: old.to_string(),
    });
    h.wait_for("the answer to the second Listen", |m| {
        m.events[listened..]
            .iter()
            .any(|e| {
                matches!(
                    e.kind,
                    EventKind::Listening { .. } | EventKind::ListenFailed { .. }
                )
            })
            .then_some(())
    });
    let (mut again, _) = h.connect_to(old);
    assert_echo(&mut again, b"same address");
    drop(taken);
}

// ---- reading to the end --------------------------------------------------

/// Bytes and a FIN that arrive while reading is paused are both found when
/// it resumes: the short read that drains the bytes must not end reading,
/// since the EOF behind them gets no readiness edge of its own.
#[test]
fn a_fin_that_arrived_while_paused_is_read_after_the_bytes_before_it() {
    let h = Harness::start(EngineConfig::default());
    let (mut c, id) = h.connect();
    assert_echo(&mut c, b"hello");
    pause_then_half_close(&h, id, &mut c, b"last words");
    // Let both reach the engine's socket (and its edges pass) while paused.
    thread::sleep(QUIET);
    h.send(Command::SetReadPaused {
        targets: Targets::one(id),
        paused: false,
    });
    let got = read_to_eof(&mut c, "client half-closed while paused");
    assert_eq!(got, b"last words", "the bytes, echoed, then EOF");
    assert_eq!(h.wait_closed(id), CloseReason::PeerClosed);
}
