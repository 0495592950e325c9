//! The engine moves bytes correctly: echo integrity under concurrency,
//! half-close, backpressure against a client that never reads, and a
//! consumer that never reads its batches.

mod common;

use common::*;
use muxscope::engine::{EngineConfig, EngineHandle};
use muxscope::protocol::{CloseReason, ConnCounters, ConnState, EngineStats, EventKind};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

fn seed() -> u64 {
    let seed: u64 = rand::random();
    // Printed so a failing run can be replayed by pinning the seed.
    eprintln!("random seed: {seed:#x}");
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

#[test]
fn echo_integrity_200_concurrent_clients() {
    const CLIENTS: usize = 200;
    let h = Harness::start_without_event_log(EngineConfig::default());
    let seed = seed();

    // Connect everyone first so that all 200 conversations overlap.
    let streams: Vec<TcpStream> = (0..CLIENTS).map(|_| client(h.addr)).collect();
    let started = Instant::now();
    let workers: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut stream)| {
            thread::spawn(move || -> (SocketAddr, usize, TcpStream) {
                let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(i as u64));
                let total = rng.random_range(16 * 1024..=160 * 1024);
                let data = random_bytes(&mut rng, total);
                let writer = {
                    let w = stream.try_clone().unwrap();
                    let data = data.clone();
                    let mut rng = SmallRng::seed_from_u64(rng.random());
                    thread::spawn(move || write_chunked(w, &data, &mut rng, false))
                };
                // Read concurrently, in random-sized reads too.
                let mut got = Vec::with_capacity(total);
                let mut buf = vec![0u8; 96 * 1024];
                while got.len() < total {
                    let want = chunk_size(&mut rng).min(total - got.len());
                    match stream.read(&mut buf[..want]) {
                        Ok(0) => panic!("client {i}: EOF after {} of {total} bytes", got.len()),
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e) => panic!("client {i}: read failed after {} bytes: {e}", got.len()),
                    }
                }
                writer.join().expect("writer thread");
                assert_same_bytes(&got, &data, &format!("client {i} echo"));
                (stream.local_addr().unwrap(), total, stream)
            })
        })
        .collect();
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for (i, w) in workers.into_iter().enumerate() {
        match w.join() {
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
    let ids: Vec<_> = done
        .iter()
        .map(|(peer, total, _)| {
            let id = h.wait_for("Accepted of every client", |m| m.id_of(*peer));
            let total = *total as u64;
            h.wait_counters(id, "rx == tx == bytes sent", |c| {
                c.rx_bytes == total && c.tx_bytes == total && c.queued_bytes == 0
            });
            id
        })
        .collect();
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), CLIENTS, "every client has its own ConnId");

    // Closing the clients closes their connections as PeerClosed.
    drop(done);
    for id in ids {
        assert_eq!(h.wait_closed(id), CloseReason::PeerClosed, "{id}");
    }
    let stats = h.wait_for("stats with no connections", |m| {
        m.stats.clone().filter(|s| s.connections == 0)
    });
    assert!(stats.accepted_total >= CLIENTS as u64);
    assert_eq!(stats.queued_bytes, 0);
    h.assert_stream_consistent();
}

#[test]
fn half_close_returns_everything_then_eof() {
    const SIZE: usize = 1024 * 1024;
    let h = Harness::start(EngineConfig::default());
    let seed = seed();
    let mut rng = SmallRng::seed_from_u64(seed);
    let data = random_bytes(&mut rng, SIZE);

    let mut c = client(h.addr);
    let id = h.id_of(&c);
    let writer = {
        let w = c.try_clone().unwrap();
        let data = data.clone();
        let mut rng = SmallRng::seed_from_u64(seed ^ 1);
        thread::spawn(move || write_chunked(w, &data, &mut rng, true))
    };
    // Reading while writing: the echo of 1 MiB exceeds the socket buffers.
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
    let mut hog = client(h.addr);
    let hog_id = h.id_of(&hog);
    let mut other = client(h.addr);
    let other_id = h.id_of(&other);

    // The hog writes until the pipeline is full and its writes time out.
    let writer = {
        let mut w = hog.try_clone().unwrap();
        w.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        thread::spawn(move || -> u64 {
            let mut buf = vec![0u8; 64 * 1024];
            let mut sent: u64 = 0;
            while sent < MAX_WRITE {
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = pattern(sent + i as u64);
                }
                match w.write(&buf) {
                    Ok(0) => break,
                    // Only the accepted prefix was sent; the pattern is
                    // regenerated from `sent` next round.
                    Ok(n) => sent += n as u64,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                        break;
                    }
                    Err(e) => panic!("hog write failed: {e}"),
                }
            }
            sent
        })
    };

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
    assert!(
        worst < Duration::from_millis(500),
        "echo to the other client took up to {worst:?}"
    );

    // The engine stopped reading the hog with a bounded queue.
    let held = h.wait_counters(hog_id, "backpressure on", |c| c.backpressure);
    let rx_then = held.rx_bytes;
    thread::sleep(Duration::from_millis(300));
    let held = h.with(|m| m.counters[&hog_id].clone());
    assert!(held.backpressure, "backpressure stays on: {held:#?}");
    assert_eq!(held.rx_bytes, rx_then, "no reading while backpressure is on");
    assert!(held.rx_bytes < sent, "bytes wait in the kernel, not the engine");
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
    assert!(held.queue_high_water >= LIMIT as u64, "the limit was reached");
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
    for i in 0..50u32 {
        let rtt = assert_echo(&mut c, format!("small {i}").as_bytes());
        assert!(rtt < Duration::from_secs(1), "round trip {i} took {rtt:?}");
    }
    eprintln!("echoed {TOTAL} B with a stalled consumer in {:?}", started.elapsed());
    assert_eq!(
        engine.batches().len(),
        2,
        "the channel filled up to its capacity and no further"
    );
    drop(c);

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
        assert!(batch.dropped_events >= dropped, "dropped_events is cumulative");
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
            if closed && s.connections == 0 && received_events + batch.dropped_events == s.events_total
            {
                accounted = true;
            }
            stats_batches.push((received_events, batch.dropped_events, s));
        }
        if accounted {
            break;
        }
    }
    assert!(dropped > 0, "a stalled consumer must lose (and count) events");
    let last = last_counters
        .get(&peer)
        .unwrap_or_else(|| panic!("no counters ever arrived for {peer}"));
    assert_eq!(
        last.state,
        ConnState::Closed(CloseReason::PeerClosed),
        "final counters arrive despite the drops"
    );
    let expected = (TOTAL + (0..50).map(|i| format!("small {i}").len()).sum::<usize>()) as u64;
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
