//! The engine moves bytes correctly: echo integrity under concurrency,
//! half-close, backpressure against a client that never reads, fairness
//! towards a client that floods, and a consumer that never reads its batches.

mod common;

use common::*;
use muxscope::engine::{EngineConfig, EngineHandle};
use muxscope::protocol::{CloseReason, ConnCounters, ConnState, EngineStats, EventKind};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A fresh random seed, or the one in `MUXSCOPE_TEST_SEED` (hex) to replay a
/// failure; printed, so a failing test shows it.
fn seed() -> u64 {
    let pinned = std::env::var("MUXSCOPE_TEST_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok());
    let seed = pinned.unwrap_or_else(rand::random);
    eprintln!("random seed: {seed:#x} (replay with MUXSCOPE_TEST_SEED={seed:#x})");
    seed
}

/// A random chunk size, mostly small with some large ones, so the engine
/// sees both many tiny reads and reads that fill its buffer.
fn chunk_size(rng: &mut SmallRng) -> usize {
    match rng.random_range(0..4) {
        0 => rng.random_range(1..=16),
        1 => rng.random_range(17..=1500),
        2 => rng.random_range(1501..=16 * 1024),
        _ => rng.random_range(16 * 1024..=96 * 1024),
    }
}

/// Write `data` in random chunks, occasionally pausing, then optionally
/// half-close.
fn write_chunked(mut w: TcpStream, data: &[u8], rng: &mut SmallRng, half_close: bool) {
    let mut at = 0;
    while at < data.len() {
        let n = chunk_size(rng).min(data.len() - at);
        w.write_all(&data[at..at + n]).expect("client writes");
        at += n;
        if rng.random_ratio(1, 50) {
            thread::sleep(Duration::from_millis(1));
        }
    }
    if half_close {
        w.shutdown(Shutdown::Write).expect("client half-closes");
    }
}

/// Write the [`pattern`] stream on a clone of `stream` until a write blocks
/// for 500 ms (or `max` bytes went out); the thread returns the byte count.
fn write_until_blocked(stream: &TcpStream, max: u64) -> thread::JoinHandle<u64> {
    let mut w = stream.try_clone().unwrap();
    // SO_SNDTIMEO is per socket: the clone shares it with `stream`.
    w.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    thread::spawn(move || -> u64 {
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent: u64 = 0;
        while sent < max {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = pattern(sent + i as u64);
            }
            match w.write(&buf) {
                Ok(0) => break,
                // Only the accepted prefix went out; the pattern is
                // regenerated from `sent` next round.
                Ok(n) => sent += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => panic!("writer: write failed after {sent} bytes: {e}"),
            }
        }
        sent
    })
}

#[test]
fn echo_integrity_200_concurrent_clients() {
    const CLIENTS: usize = 200;
    let h = Harness::start_without_event_log(EngineConfig::default());
    let seed = seed();

    // Connect everyone first so that all 200 conversations overlap.
    // Every tenth client is big: it sends more than the kernel buffers hold
    // on loopback (the server's send buffer alone grows to megabytes) and
    // has a small receive buffer, so its echo backs up into the engine's
    // queue and partial writes happen.
    let big = |i: usize| i.is_multiple_of(10);
    let streams: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| match big(i) {
            true => client_with_rcvbuf(h.addr, 8 * 1024),
            false => client(h.addr),
        })
        .collect();
    let started = Instant::now();
    let outcomes: Vec<thread::Result<(SocketAddr, usize, TcpStream)>> = thread::scope(|scope| {
        let workers: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, mut stream)| {
                let h = &h;
                scope.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(i as u64));
                    let total = if big(i) {
                        rng.random_range(5 * 1024 * 1024..=6 * 1024 * 1024)
                    } else {
                        rng.random_range(16 * 1024..=160 * 1024)
                    };
                    let data: Arc<[u8]> = random_bytes(&mut rng, total).into();
                    let writer = {
                        let w = stream.try_clone().unwrap();
                        let data = data.clone();
                        let mut rng = SmallRng::seed_from_u64(rng.random());
                        thread::spawn(move || write_chunked(w, &data, &mut rng, false))
                    };
                    // Big clients start reading only once their echo backs
                    // up in the engine (bounded wait; checked below).
                    if big(i) {
                        let peer = stream.local_addr().unwrap();
                        h.wait_until(Duration::from_secs(3), |m| {
                            let id = m.id_of(peer)?;
                            (m.counters.get(&id)?.queue_high_water > 0).then_some(())
                        });
                    }
                    // Read concurrently, in random-sized reads too.
                    let mut got = Vec::with_capacity(total);
                    let mut buf = vec![0u8; 96 * 1024];
                    while got.len() < total {
                        // Pause now and then so that echoes back up into the
                        // engine's queue and partial writes happen.
                        if rng.random_ratio(1, 16) {
                            thread::sleep(Duration::from_millis(rng.random_range(1..=15)));
                        }
                        let want = chunk_size(&mut rng).min(total - got.len());
                        match stream.read(&mut buf[..want]) {
                            Ok(0) => panic!("client {i}: EOF after {} of {total} bytes", got.len()),
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                            Err(e) => {
                                panic!("client {i}: read failed after {} bytes: {e}", got.len())
                            }
                        }
                    }
                    writer.join().expect("writer thread");
                    assert_same_bytes(&got, &data, &format!("client {i} echo"));
                    (stream.local_addr().unwrap(), total, stream)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join()).collect()
    });
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(r) => done.push(r),
            Err(e) => failures.push(format!(
                "client {i}: {}",
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        }
    }
    assert!(failures.is_empty(), "echo failures: {failures:#?}");
    eprintln!(
        "{CLIENTS} clients echoed {} bytes in {:?}",
        done.iter().map(|d| d.1).sum::<usize>(),
        started.elapsed()
    );

    // The engine's numbers agree with what the clients saw.
    let mut queued_clients = 0;
    let ids: Vec<_> = done
        .iter()
        .map(|(peer, total, _)| {
            let id = h.wait_for("Accepted of every client", |m| m.id_of(*peer));
            let total = *total as u64;
            let c = h.wait_counters(id, "rx == tx == bytes sent", |c| {
                c.rx_bytes == total && c.tx_bytes == total && c.queued_bytes == 0
            });
            queued_clients += usize::from(c.queue_high_water > 0);
            id
        })
        .collect();
    // Otherwise only the write-through fast path was exercised.
    assert!(
        queued_clients >= (0..CLIENTS).filter(|&i| big(i)).count(),
        "only {queued_clients} clients ever had echo bytes queued"
    );
    eprintln!("{queued_clients} of {CLIENTS} clients had echo bytes queued at some point");
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), CLIENTS, "every client has its own ConnId");

    // Closing the clients closes their connections as PeerClosed.
    let totals: Vec<u64> = done.iter().map(|d| d.1 as u64).collect();
    drop(done);
    for id in ids {
        assert_eq!(h.wait_closed(id), CloseReason::PeerClosed, "{id}");
    }
    let stats = h.wait_for("stats after every client left", |m| {
        m.stats
            .clone()
            .filter(|s| s.connections == 0 && s.accepted_total > 0)
    });
    assert_eq!(stats.accepted_total, CLIENTS as u64);
    assert_eq!(stats.queued_bytes, 0);
    let sent: u64 = totals.iter().sum();
    assert_eq!((stats.rx_bytes, stats.tx_bytes), (sent, sent));
    h.assert_stream_consistent();
}

#[test]
fn half_close_returns_everything_then_eof() {
    const SIZE: usize = 1024 * 1024;
    let h = Harness::start(EngineConfig::default());
    let seed = seed();
    let mut rng = SmallRng::seed_from_u64(seed);
    let data = random_bytes(&mut rng, SIZE);

    let (mut c, id) = h.connect();
    let writer = {
        let w = c.try_clone().unwrap();
        let data = data.clone();
        let mut rng = SmallRng::seed_from_u64(seed ^ 1);
        thread::spawn(move || write_chunked(w, &data, &mut rng, true))
    };
    // Read while writing, so that neither direction can stall the other.
    let got = read_to_eof(&mut c, "half-closed client");
    writer.join().expect("writer thread");
    assert_same_bytes(&got, &data, "echo after half-close");

    assert_eq!(h.wait_closed(id), CloseReason::PeerClosed);
    let last = h.wait_counters(id, "final counters", |c| {
        matches!(c.state, ConnState::Closed(_))
    });
    assert_eq!(last.state, ConnState::Closed(CloseReason::PeerClosed));
    assert_eq!((last.rx_bytes, last.tx_bytes), (SIZE as u64, SIZE as u64));
    assert_eq!(last.queued_bytes, 0);

    // The FIN was reported before the close, and nothing came after it.
    let kinds: Vec<EventKind> = h.with(|m| m.events_of(id).map(|e| e.kind.clone()).collect());
    let fin = kinds
        .iter()
        .position(|k| *k == EventKind::PeerHalfClosed)
        .expect("a PeerHalfClosed event");
    let closed = kinds
        .iter()
        .position(|k| matches!(k, EventKind::Closed { .. }))
        .expect("a Closed event");
    assert!(fin < closed, "PeerHalfClosed comes before Closed");
    assert_eq!(closed, kinds.len() - 1, "Closed is the last event of {id}");
    h.assert_stream_consistent();
}

#[test]
fn half_close_with_a_late_reader_flushes_the_queue_before_closing() {
    // More than the kernel buffers hold on loopback.
    const SIZE: usize = 8 * 1024 * 1024;
    let h = Harness::start(EngineConfig {
        queue_limit: 2 * SIZE,
        ..EngineConfig::default()
    });
    let seed = seed();
    let data = random_bytes(&mut SmallRng::seed_from_u64(seed), SIZE);

    let (mut c, id) = h.connect_with(|a| client_with_rcvbuf(a, 16 * 1024));
    // The client sends everything and its FIN before reading anything. The
    // queue bound plus the socket buffers hold the whole echo, so the writer
    // finishes, and part of the echo waits in the engine.
    let writer = {
        let mut w = c.try_clone().unwrap();
        let data = data.clone();
        thread::spawn(move || {
            w.write_all(&data).expect("client writes");
            w.shutdown(Shutdown::Write).expect("client half-closes");
        })
    };
    let at_fin = h.wait_counters(id, "the FIN is seen", |c| c.state == ConnState::HalfClosed);
    assert_eq!(at_fin.rx_bytes, SIZE as u64);
    assert!(
        at_fin.queued_bytes > 0,
        "precondition: part of the echo still waits in the engine at the FIN: {at_fin:#?}"
    );
    writer.join().expect("writer thread");
    let got = read_to_eof(&mut c, "late reader");
    assert_same_bytes(&got, &data, "echo delivered after the FIN");
    assert_eq!(h.wait_closed(id), CloseReason::PeerClosed);
}

#[test]
fn never_reading_client_is_held_by_backpressure() {
    const LIMIT: usize = 64 * 1024;
    /// The engine reads into a 64 KiB buffer, so one read may overshoot.
    const READ_BUF: u64 = 64 * 1024;
    const MAX_WRITE: u64 = 256 * 1024 * 1024;
    let h = Harness::start_without_event_log(EngineConfig {
        queue_limit: LIMIT,
        low_water: LIMIT / 4,
        ..EngineConfig::default()
    });
    let (mut hog, hog_id) = h.connect();
    let (mut other, other_id) = h.connect();

    // The hog writes until the pipeline is full and its writes time out.
    let writer = write_until_blocked(&hog, MAX_WRITE);

    // Meanwhile the other client gets prompt echoes.
    let mut worst = Duration::ZERO;
    for i in 0..40u32 {
        let payload = format!("ping {i} while the hog floods");
        worst = worst.max(assert_echo(&mut other, payload.as_bytes()));
        thread::sleep(Duration::from_millis(10));
    }
    let sent = writer.join().expect("hog writer");
    assert!(sent < MAX_WRITE, "the hog was never held back");
    for i in 0..20u32 {
        let payload = format!("ping {i} while the hog is held");
        worst = worst.max(assert_echo(&mut other, payload.as_bytes()));
    }
    // Held up behind the hog, the other client would wait for as long as
    // the hog writes (seconds); on a loaded 2-core machine a round trip may
    // take a few hundred milliseconds anyway.
    assert!(
        worst < Duration::from_secs(2),
        "echo to the other client took up to {worst:?}"
    );

    // The engine stopped reading the hog with a bounded queue.
    let held = h.wait_counters(hog_id, "backpressure on", |c| c.backpressure);
    let rx_then = held.rx_bytes;
    thread::sleep(Duration::from_millis(300));
    let held = h.with(|m| m.counters[&hog_id].clone());
    assert!(held.backpressure, "backpressure stays on: {held:#?}");
    assert_eq!(
        held.rx_bytes, rx_then,
        "no reading while backpressure is on"
    );
    assert!(
        held.rx_bytes < sent,
        "bytes wait in the kernel, not the engine"
    );
    assert!(
        held.queued_bytes <= LIMIT as u64 + READ_BUF,
        "queued {} B exceeds limit + one read",
        held.queued_bytes
    );
    assert!(
        held.queue_high_water <= LIMIT as u64 + READ_BUF,
        "queue peaked at {} B, beyond limit + one read",
        held.queue_high_water
    );
    assert!(
        held.queue_high_water >= LIMIT as u64,
        "the limit was reached"
    );
    let other_c = h.with(|m| m.counters[&other_id].clone());
    assert!(!other_c.backpressure, "the other client is not held");

    // Once the hog reads, everything it sent comes back in order: reading
    // resumes on its own after backpressure.
    let mut got: u64 = 0;
    let mut buf = vec![0u8; 256 * 1024];
    while got < sent {
        let want = (sent - got).min(buf.len() as u64) as usize;
        let n = match hog.read(&mut buf[..want]) {
            Ok(0) => panic!("hog: EOF after {got} of {sent} bytes"),
            Ok(n) => n,
            Err(e) => panic!("hog: read failed after {got} of {sent} bytes: {e}"),
        };
        if let Some(bad) = (0..n).find(|&i| buf[i] != pattern(got + i as u64)) {
            panic!("hog: wrong byte at offset {}", got + bad as u64);
        }
        got += n as u64;
    }
    hog.shutdown(Shutdown::Write).unwrap();
    let tail = read_to_eof(&mut hog, "hog after half-close");
    assert!(tail.is_empty(), "no extra bytes: {}", tail.len());
    assert_eq!(h.wait_closed(hog_id), CloseReason::PeerClosed);
    let last = h.wait_counters(hog_id, "final counters", |c| {
        matches!(c.state, ConnState::Closed(_))
    });
    assert_eq!((last.rx_bytes, last.tx_bytes), (sent, sent));
    assert!(!last.backpressure);
    assert!(last.queue_high_water <= LIMIT as u64 + READ_BUF);
    h.assert_stream_consistent();
}

/// `queue_limit` is documented as the per-client bound. Setting it alone
/// (keeping the default `low_water` of 256 KiB) must not weaken that bound.
#[test]
fn queue_limit_alone_bounds_the_queue() {
    const LIMIT: u64 = 64 * 1024;
    const READ_BUF: u64 = 64 * 1024;
    let h = Harness::start_without_event_log(EngineConfig {
        queue_limit: LIMIT as usize,
        ..EngineConfig::default()
    });
    let (hog, id) = h.connect();
    let sent = write_until_blocked(&hog, 256 * 1024 * 1024)
        .join()
        .expect("writer");
    assert!(sent < 256 * 1024 * 1024, "the hog was never held back");
    let held = h.wait_counters(id, "backpressure on", |c| c.backpressure);
    assert!(
        held.queue_high_water <= LIMIT + READ_BUF,
        "with queue_limit {LIMIT} the queue peaked at {} B (> limit + one 64 KiB read); \
         low_water ({} B by default) above queue_limit lifts backpressure at once",
        held.queue_high_water,
        EngineConfig::default().low_water
    );
}

/// A client that sends and reads as fast as it can must not monopolise the
/// single engine thread: the loop has to come back to `poll` regularly.
#[test]
fn a_flooding_client_does_not_starve_others() {
    /// A client's turn is at most 16 reads of 64 KiB (1 MiB), however often
    /// reading resumes within it (e.g. when a write lifts backpressure).
    /// One poll iteration drives a client at most twice (its readiness,
    /// then its read-again turn): 2 MiB.
    /// A loop without a read budget reads the flood for as long as it keeps
    /// up, tens of MiB. The number counts bytes, not time: machine load
    /// changes which of those paths run (a starved flood reader makes
    /// backpressure lift more often), never the bound.
    const MAX_PER_ITERATION: u64 = 2 * 1024 * 1024;
    /// Starving the other client would hold its echo for the whole flood
    /// (up to `STEP`); a loaded 2-core machine can delay a round trip by
    /// a few hundred milliseconds without any starvation.
    const MAX_ROUND_TRIP: Duration = Duration::from_secs(2);
    let h = Harness::start(EngineConfig::default());
    let (flood, flood_id) = h.connect();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut w = flood.try_clone().unwrap();
        let stop = stop.clone();
        thread::spawn(move || {
            let buf = vec![0x5au8; 64 * 1024];
            let t = Instant::now();
            while !stop.load(Ordering::Relaxed) && t.elapsed() < STEP {
                w.write_all(&buf).expect("flood write");
            }
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let reader = {
        let mut r = flood.try_clone().unwrap();
        thread::spawn(move || -> u64 {
            let mut buf = vec![0u8; 256 * 1024];
            let mut n = 0;
            loop {
                match r.read(&mut buf) {
                    Ok(0) => return n,
                    Ok(k) => n += k as u64,
                    Err(e) => panic!("flood reader: {e} after {n} bytes"),
                }
            }
        })
    };
    h.wait_counters(flood_id, "the flood is under way", |c| {
        c.rx_bytes > 16 << 20
    });

    let mut other = client(h.addr);
    let mut rtts = Vec::new();
    for i in 0..30u32 {
        rtts.push(assert_echo(&mut other, format!("ping {i}").as_bytes()));
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("flood writer");
    let echoed = reader.join().expect("flood reader");
    let last = h.wait_counters(flood_id, "flood closed", |c| {
        matches!(c.state, ConnState::Closed(_))
    });
    assert_eq!(last.rx_bytes, echoed, "every flooded byte came back");

    // One clock read stamps all events of a poll iteration, so Read events
    // sharing a stamp were read in one go.
    let model = h.shutdown();
    assert_eq!(model.dropped_events, 0, "the measurement saw every event");
    let mut per_iteration: HashMap<u64, u64> = HashMap::new();
    for e in model.events_of(flood_id) {
        if let EventKind::Read { n } = e.kind {
            *per_iteration.entry(e.at).or_default() += n as u64;
        }
    }
    let most = per_iteration.values().copied().max().unwrap_or(0);
    let worst = rtts.iter().max().copied().unwrap_or_default();
    eprintln!(
        "flood: {} MiB echoed; at most {} KiB read from it in one iteration; \
         other client's worst round trip {worst:?}",
        echoed >> 20,
        most >> 10
    );
    assert!(
        most <= MAX_PER_ITERATION,
        "one poll iteration read {} KiB from the flooding client without returning to poll \
         (other clients wait meanwhile; worst round trip of the other client {worst:?})",
        most >> 10
    );
    assert!(
        worst < MAX_ROUND_TRIP,
        "the other client's echo took up to {worst:?} during the flood: {rtts:?}"
    );
}

#[test]
fn slow_consumer_loses_events_but_not_echo_or_counters() {
    const TOTAL: usize = 4 * 1024 * 1024;
    let engine = EngineHandle::spawn(EngineConfig {
        listen: Some("127.0.0.1:0".into()),
        channel_capacity: 2,
        ..EngineConfig::default()
    })
    .expect("engine starts");
    let addr = engine.local_addr().expect("listening");
    let seed = seed();
    let mut rng = SmallRng::seed_from_u64(seed);
    let data = random_bytes(&mut rng, TOTAL);

    // Nobody reads batches during this conversation.
    let mut c = client(addr);
    let peer = c.local_addr().unwrap();
    let started = Instant::now();
    let writer = {
        let w = c.try_clone().unwrap();
        let data = data.clone();
        let mut rng = SmallRng::seed_from_u64(seed ^ 1);
        thread::spawn(move || write_chunked(w, &data, &mut rng, false))
    };
    let got = read_n(&mut c, TOTAL, "echo while the consumer sleeps");
    writer.join().expect("writer thread");
    assert_same_bytes(&got, &data, "echo while the consumer sleeps");
    // An engine waiting on the full channel would not answer at all (the
    // read times out after `STEP`); load alone stays well below 2 s.
    for i in 0..50u32 {
        let rtt = assert_echo(&mut c, format!("small {i}").as_bytes());
        assert!(rtt < Duration::from_secs(2), "round trip {i} took {rtt:?}");
    }
    eprintln!(
        "echoed {TOTAL} B with a stalled consumer in {:?}",
        started.elapsed()
    );
    // Batches go out once per flush interval: keep the conversation going
    // (bounded) until the engine has had the chance to fill the channel.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut extra = 0;
    while engine.batches().len() < 2 && Instant::now() < deadline {
        assert_echo(&mut c, b"keep going");
        extra += b"keep going".len();
    }
    assert_eq!(
        engine.batches().len(),
        2,
        "the channel filled up to its capacity and no further"
    );
    drop(c);
    // Let the engine handle the close while the channel is still full, so
    // the final counters must survive failed flushes.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(engine.batches().len(), 2);

    // Now consume: the drops are counted, and counters and stats arrive.
    let mut received_events: u64 = 0;
    let mut dropped: u64 = 0;
    let mut last_counters: HashMap<SocketAddr, ConnCounters> = HashMap::new();
    let mut stats_batches: Vec<(u64, u64, EngineStats)> = Vec::new();
    let mut last_seq = 0;
    let deadline = Instant::now() + STEP;
    let mut accounted = false;
    while Instant::now() < deadline {
        let Ok(batch) = engine.batches().recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        assert!(batch.seq > last_seq, "batch seq increases");
        last_seq = batch.seq;
        assert!(
            batch.dropped_events >= dropped,
            "dropped_events is cumulative"
        );
        dropped = batch.dropped_events;
        received_events += batch.events.len() as u64;
        for c in batch.counters {
            last_counters.insert(c.peer, c);
        }
        if let Some(s) = batch.stats {
            // Every event ever emitted was either delivered or counted as
            // dropped (events emitted after the stats may be in flight).
            assert!(
                received_events + batch.dropped_events >= s.events_total,
                "events lost without being counted: received {received_events} + dropped {} \
                 < emitted {}",
                batch.dropped_events,
                s.events_total
            );
            let closed = last_counters
                .get(&peer)
                .is_some_and(|c| matches!(c.state, ConnState::Closed(_)));
            // Once all is quiet the books balance exactly.
            if closed
                && s.connections == 0
                && received_events + batch.dropped_events == s.events_total
            {
                accounted = true;
            }
            stats_batches.push((received_events, batch.dropped_events, s));
        }
        if accounted {
            break;
        }
    }
    assert!(
        dropped > 0,
        "a stalled consumer must lose (and count) events"
    );
    let last = last_counters
        .get(&peer)
        .unwrap_or_else(|| panic!("no counters ever arrived for {peer}"));
    assert_eq!(
        last.state,
        ConnState::Closed(CloseReason::PeerClosed),
        "final counters arrive despite the drops"
    );
    let expected =
        (TOTAL + (0..50).map(|i| format!("small {i}").len()).sum::<usize>() + extra) as u64;
    assert_eq!(
        (last.rx_bytes, last.tx_bytes),
        (expected, expected),
        "counters are exact even though events were dropped"
    );
    let (_, _, s) = stats_batches.last().expect("stats arrive after the stall");
    assert!(s.dropped_events > 0, "stats report the drops too: {s:#?}");
    assert!(
        accounted,
        "received + dropped never matched events_total once quiet: {:?}",
        stats_batches
            .iter()
            .map(|(r, d, s)| (r, d, s.events_total))
            .collect::<Vec<_>>()
    );
}
