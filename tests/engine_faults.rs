//! Faults, measured as the client sees them, over real loopback sockets:
//! each test sets one fault (at start or by command) and checks timing,
//! segmentation, byte counts or close behaviour from the client's side.
//!
//! Timing assertions have one-sided bounds where the fault promises one
//! (latency is never below its setting) and wide margins where a loaded
//! 2-core machine could stretch them.

mod common;

use common::*;
use muxscope::engine::EngineConfig;
use muxscope::faults::{AcceptFault, Chance, Faults, Latency, Limit, Slice};
use muxscope::protocol::{CloseReason, Command, EventKind, FaultScope, Targets};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn with_faults(faults: Faults) -> Harness {
    Harness::start(EngineConfig {
        faults,
        ..EngineConfig::default()
    })
}

#[test]
fn latency_is_never_below_its_setting_and_order_is_kept() {
    let h = with_faults(Faults {
        latency: Some(Latency {
            delay: 150,
            jitter: 0,
        }),
        ..Faults::default()
    });
    let (mut c, id) = h.connect();
    for i in 0..5u8 {
        let rtt = assert_echo(&mut c, &[b'a' + i; 100]);
        assert!(
            rtt >= Duration::from_millis(150),
            "round trip {rtt:?} under a 150 ms latency"
        );
    }
    // Several writes in flight come back in order, each held its time.
    let t = Instant::now();
    for i in 0..10u8 {
        c.write_all(&[i; 10]).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let back = read_n(&mut c, 100, "pipelined echoes");
    let expected: Vec<u8> = (0..10u8).flat_map(|i| [i; 10]).collect();
    assert_eq!(back, expected);
    assert!(t.elapsed() >= Duration::from_millis(150 + 90));
    let held = h.wait_event(id, "a fault-held event", |k| match k {
        EventKind::FaultHeld { n, wait } => Some((*n, *wait)),
        _ => None,
    });
    // The wait is rounded up to a whole millisecond.
    assert!(held.0 > 0 && held.1 <= 151_000, "{held:?}");
}

#[test]
fn slow_close_delays_the_fin() {
    let h = with_faults(Faults {
        slow_close: Some(400),
        ..Faults::default()
    });
    let (mut c, _) = h.connect();
    assert_echo(&mut c, b"bye");
    let t = Instant::now();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut c, "slow close"), b"");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "FIN after {:?}",
        t.elapsed()
    );
}

#[test]
fn slicer_delivers_each_slice_in_its_own_recv() {
    let h = with_faults(Faults {
        slice: Some(Slice {
            min: 3,
            max: 3,
            delay: 20,
        }),
        ..Faults::default()
    });
    let (mut c, _) = h.connect();
    c.write_all(b"abcdefghijkl").unwrap();
    let mut reads = Vec::new();
    let mut got = 0;
    while got < 12 {
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).expect("slices arrive");
        assert!(n > 0, "EOF before all slices");
        reads.push(buf[..n].to_vec());
        got += n;
    }
    assert_eq!(
        reads,
        [
            b"abc".to_vec(),
            b"def".to_vec(),
            b"ghi".to_vec(),
            b"jkl".to_vec()
        ],
        "one recv per slice, 20 ms apart"
    );
}

#[test]
fn bandwidth_holds_within_fifteen_percent_over_five_seconds() {
    const RATE: u64 = 20 * 1024;
    let h = with_faults(Faults {
        bandwidth: Some(RATE),
        ..Faults::default()
    });
    let (mut c, id) = h.connect();
    // More than 5 s worth, queued at once (inject, so the client does not
    // have to write while it measures).
    h.send(Command::Inject {
        targets: Targets::one(id),
        bytes: vec![b'x'; (RATE * 8) as usize],
    });
    let t = Instant::now();
    let mut got = 0u64;
    let mut buf = [0u8; 65536];
    while t.elapsed() < Duration::from_secs(5) {
        got += c.read(&mut buf).expect("bytes keep coming") as u64;
    }
    let rate = got as f64 / t.elapsed().as_secs_f64();
    assert!(
        (RATE as f64 * 0.85..=RATE as f64 * 1.15).contains(&rate),
        "{rate:.0} B/s under a {RATE} B/s cap"
    );
}

#[test]
fn close_after_delivers_exactly_n_bytes_then_eof() {
    let h = with_faults(Faults {
        close_after: Some(Limit::Bytes(1000)),
        ..Faults::default()
    });
    let (mut c, id) = h.connect();
    c.write_all(&[7u8; 3000]).unwrap();
    let got = read_to_eof(&mut c, "close-after");
    assert_eq!(got.len(), 1000, "exactly N bytes, then EOF");
    drop(c);
    assert_eq!(
        h.wait_closed(id),
        CloseReason::Fault {
            limit: Limit::Bytes(1000),
            reset: false
        }
    );
}

#[test]
fn reset_after_delivers_exactly_n_bytes_then_econnreset() {
    let h = with_faults(Faults {
        reset_after: Some(Limit::Bytes(512)),
        ..Faults::default()
    });
    let (mut c, id) = h.connect();
    c.write_all(&[9u8; 2048]).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let error = loop {
        match c.read(&mut buf) {
            Ok(0) => panic!("EOF instead of a reset after {} bytes", got.len()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
    assert_eq!(got.len(), 512, "exactly N bytes before the reset");
    assert_eq!(h.wait_closed(id).to_string(), "reset after 512 B (fault)");
}

#[test]
fn corrupt_at_one_alters_every_byte() {
    let h = with_faults(Faults {
        corrupt: Some(Chance::ALWAYS),
        ..Faults::default()
    });
    let (mut c, _) = h.connect();
    let sent: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let (back, _) = round_trip(&mut c, &sent);
    let same = back.iter().zip(&sent).filter(|(a, b)| a == b).count();
    assert_eq!(same, 0, "every byte altered");
}

/// Stall `id`'s writes, and wait until the engine has.
fn stall_writes(h: &Harness, id: muxscope::protocol::ConnId) {
    h.send(Command::SetFaults {
        scope: FaultScope::Conns(Targets::one(id)),
        faults: Box::new(Faults {
            stall_writes: true,
            ..Faults::default()
        }),
    });
    h.wait_for("the stall to be set", |m| {
        m.counters.get(&id).filter(|c| c.has_faults()).map(|_| ())
    });
}

#[test]
fn lifting_a_stall_delivers_everything_intact() {
    let h = Harness::start(EngineConfig::default());
    let (mut c, id) = h.connect();
    stall_writes(&h, id);
    let payload: Vec<u8> = (0..200_000u64).map(pattern).collect();
    c.write_all(&payload).unwrap();
    assert_silent(&mut c, Duration::from_millis(300), "stalled writes");
    h.wait_for("the stalled bytes to show as held", |m| {
        m.counters
            .get(&id)
            .filter(|c| c.faults.as_ref().is_some_and(|f| f.held > 0))
            .map(|_| ())
    });
    h.send(Command::SetFaults {
        scope: FaultScope::Conns(Targets::one(id)),
        faults: Box::default(),
    });
    let back = read_n(&mut c, payload.len(), "after the stall");
    assert_same_bytes(&back, &payload, "stalled bytes");
}

#[test]
fn accept_refuse_gives_econnrefused_until_lifted() {
    let h = Harness::start(EngineConfig::default());
    let addr = h.addr;
    h.send(Command::SetAcceptFault(Some(AcceptFault::Refuse)));
    let refused = poll_until(STEP, || {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        }
    });
    assert!(refused.is_some(), "connects are refused");
    h.send(Command::SetAcceptFault(None));
    let back = poll_until(STEP, || TcpStream::connect_timeout(&addr, STEP).ok());
    let mut c = back.expect("the same address accepts again");
    c.set_read_timeout(Some(STEP)).unwrap();
    assert_echo(&mut c, b"again");
}

#[test]
fn accept_stall_leaves_clients_waiting_until_lifted() {
    let h = Harness::start(EngineConfig::default());
    h.send(Command::SetAcceptFault(Some(AcceptFault::Stall)));
    h.wait_for("the stall", |m| {
        m.stats
            .as_ref()
            .filter(|s| s.accept_fault == Some(AcceptFault::Stall))
            .map(|_| ())
    });
    // The kernel completes the handshake; muxscope never accepts.
    let mut c = client(h.addr);
    c.write_all(b"hello").unwrap();
    assert_silent(&mut c, Duration::from_millis(300), "a stalled accept");
    assert_eq!(h.with(|m| m.max_accepted), 0, "nothing accepted");
    h.send(Command::SetAcceptFault(None));
    assert_eq!(read_n(&mut c, 5, "after the stall"), b"hello");
}

#[test]
fn accept_delay_serves_each_client_that_much_later() {
    let h = Harness::start(EngineConfig {
        accept_fault: Some(AcceptFault::Delay(300)),
        ..EngineConfig::default()
    });
    // From before the connect: the server accepts (and starts the delay)
    // as soon as the handshake completes, which may be before connect()
    // returns here.
    let t = Instant::now();
    let mut c = client(h.addr);
    let rtt = {
        c.write_all(b"ping").unwrap();
        read_n(&mut c, 4, "delayed echo");
        t.elapsed()
    };
    assert!(rtt >= Duration::from_millis(300), "served after {rtt:?}");
    assert!(assert_echo(&mut c, b"then at once") < Duration::from_millis(300));
}

#[test]
fn read_bandwidth_slows_the_clients_writes() {
    const RATE: u64 = 50 * 1024;
    let h = with_faults(Faults {
        read_bandwidth: Some(RATE),
        rcvbuf: Some(4096),
        ..Faults::default()
    });
    let (mut c, id) = h.connect();
    // The client can only write as fast as muxscope reads, once the
    // (small) buffers are full.
    let t = Instant::now();
    let payload = vec![1u8; (RATE * 2) as usize];
    let writer = {
        let mut w = c.try_clone().unwrap();
        std::thread::spawn(move || w.write_all(&payload).unwrap())
    };
    let back = read_n(&mut c, (RATE * 2) as usize, "echo under read-bandwidth");
    writer.join().unwrap();
    assert!(back.iter().all(|&b| b == 1));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "{} B read in {took:?} under a {RATE} B/s read cap",
        RATE * 2
    );
    h.wait_counters(id, "every byte read", |c| c.rx_bytes == RATE * 2);
}

#[test]
fn toxicity_zero_spares_new_connections_and_says_so() {
    let h = with_faults(Faults {
        stall_writes: true,
        toxicity: Some(Chance(0)),
        ..Faults::default()
    });
    let (mut c, id) = h.connect();
    assert_echo(&mut c, b"spared");
    let status = h.with(|m| m.counters[&id].faults.clone());
    assert!(
        status.is_some_and(|s| !s.chosen && !s.active),
        "the row says it was not chosen"
    );
}

/// Found by the property test: a client whose first bytes come after its
/// accept delay is over must still be read.
#[test]
fn a_client_that_speaks_after_its_accept_delay_is_read() {
    let h = Harness::start(EngineConfig {
        accept_fault: Some(AcceptFault::Delay(30)),
        ..EngineConfig::default()
    });
    let mut c = client(h.addr);
    std::thread::sleep(Duration::from_millis(150));
    assert_echo(&mut c, b"late");
}

/// Found by the property test: slices with no delay between them, behind
/// a latency, must all go out (nothing else would bring the next one).
#[test]
fn back_to_back_slices_behind_a_latency_all_arrive() {
    let h = with_faults(Faults {
        latency: Some(Latency {
            delay: 10,
            jitter: 1,
        }),
        slice: Some(Slice {
            min: 397,
            max: 794,
            delay: 0,
        }),
        ..Faults::default()
    });
    let (mut c, _) = h.connect();
    let payload: Vec<u8> = (0..47_182u64).map(pattern).collect();
    let (back, _) = round_trip(&mut c, &payload);
    assert_same_bytes(&back, &payload, "sliced echo");
}

/// A client that half-closes and then goes away sends nothing more, so
/// only a write can find out it is gone. While writes are stalled there is
/// none: the connection stays half-closed, its bytes held. Lifting the
/// stall writes them, the kernel answers with a reset, and it closes.
#[test]
fn a_client_gone_while_writes_are_stalled_is_found_gone_once_lifted() {
    let h = Harness::start(EngineConfig::default());
    let (mut c, id) = h.connect();
    stall_writes(&h, id);
    c.write_all(b"held back\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    drop(c);
    let closed = |m: &Model| {
        matches!(
            m.counters.get(&id).map(|c| &c.state),
            Some(muxscope::protocol::ConnState::Closed(_))
        )
        .then_some(())
    };
    assert!(
        h.wait_until(Duration::from_millis(600), closed).is_none(),
        "nothing can tell the engine the client is gone while it may not write"
    );
    h.send(Command::SetFaults {
        scope: FaultScope::Conns(Targets::one(id)),
        faults: Box::default(),
    });
    let reason = h.wait_closed(id);
    assert!(
        matches!(
            reason,
            CloseReason::PeerReset | CloseReason::PeerClosed | CloseReason::Error(_)
        ),
        "{reason:?}"
    );
}
