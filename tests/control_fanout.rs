//! Fan-out over real sockets, fed by a stand-in engine: a viewer that stops
//! reading loses events (counted, and told) but not counters, and neither
//! the feed nor a viewer that keeps up is slowed by it.

mod control_support;

use control_support::*;
use muxscope::control::wire::decode_batch;
use muxscope::control::{ControlOptions, ControlServer};
use muxscope::monitor::Monitor;
use muxscope::protocol::{
    Batch, CloseReason, Command, ConnCounters, ConnId, ConnState, Event, EventKind,
};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tungstenite::Message;

fn counters(rx: u64) -> ConnCounters {
    ConnCounters {
        rx_bytes: rx,
        ..ConnCounters::opened(ConnId(1), "127.0.0.1:4000".parse().unwrap(), 0)
    }
}

/// A big batch: 8192 events (the engine's largest) and conn 1's counters.
fn batch(seq: u64) -> Batch {
    Batch {
        seq,
        events: (0..8192)
            .map(|i| Event {
                at: seq * 10_000 + i,
                conn: Some(ConnId(1)),
                kind: EventKind::Read { n: 1000 + i as u32 },
            })
            .collect(),
        counters: vec![counters(seq)],
        ..Batch::default()
    }
}

/// A control server fed by a hand-driven batch channel; commands it
/// forwards land in the returned receiver.
fn start(
    opts: &ControlOptions,
) -> (
    ControlServer,
    crossbeam_channel::Receiver<Batch>,
    crossbeam_channel::Sender<Batch>,
    crossbeam_channel::Receiver<Command>,
) {
    let (batches_tx, batches_rx) = crossbeam_channel::bounded::<Batch>(1024);
    let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded::<Command>();
    let (server, relay) = ControlServer::start(
        opts,
        batches_rx,
        Box::new(move |c| {
            let _ = cmd_tx.send(c);
            Ok(())
        }),
    )
    .unwrap();
    (server, relay, batches_tx, cmd_rx)
}

#[test]
fn a_stalled_viewer_drops_events_keeps_counters_and_slows_nobody() {
    let dir = TempDir::new("fanout");
    let mut opts = ControlOptions::new("127.0.0.1:0");
    opts.web_root = Some(web_root(&dir));
    opts.viewer_queue = 4;
    let (server, relay, batches_tx, cmd_rx) = start(&opts);
    let url = format!("ws://{}/ws", server.local_addr());
    let mut fast = Viewer::attach(&url);
    let mut stalled = Viewer::attach(&url);
    let deadline = Instant::now() + STEP;
    while server.viewers() != 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }

    // About 40 MB of frames: far more than the stalled viewer's queue and
    // socket buffers hold. The feed waits for the fast viewer (so a slow
    // test machine cannot make *it* drop), never for the stalled one.
    const N: u64 = 600;
    let progress = std::sync::Arc::new(AtomicU64::new(0));
    // The fast viewer counts frames and decodes only the last one (decoding
    // 40 MB in a debug build would take longer than the feed).
    let reader = {
        let progress = progress.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + 6 * STEP;
            let mut frames = 0;
            loop {
                assert!(
                    Instant::now() < deadline,
                    "fast viewer timed out at {frames}"
                );
                match fast.ws.read() {
                    Ok(Message::Binary(frame)) => {
                        frames += 1;
                        // The first frame is the attach snapshot.
                        progress.store(frames - 1, Ordering::Relaxed);
                        if frames - 1 == N {
                            fast.absorb(decode_batch(&frame).unwrap());
                            return (fast, frames);
                        }
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) => panic!("fast viewer: {e}"),
                }
            }
        })
    };
    let started = Instant::now();
    for seq in 1..=N {
        let deadline = Instant::now() + STEP;
        while progress.load(Ordering::Relaxed) + 2 < seq {
            assert!(
                Instant::now() < deadline,
                "the fast viewer stalled at {seq}"
            );
            std::thread::yield_now();
        }
        batches_tx.send(batch(seq)).unwrap();
        // The local consumer keeps up too.
        while relay.try_recv().is_ok() {}
    }
    let fed_in = started.elapsed();
    let (fast, frames) = reader.join().unwrap();
    assert_eq!(frames, N + 1, "the fast viewer got every batch");
    assert_eq!(fast.dropped_events, 0, "and was told it lost nothing");
    assert_eq!(fast.counters.values().next().unwrap().rx_bytes, N);

    // Now the stalled viewer reads: it missed events, knows how many, and
    // still ends with the latest counters.
    stalled.wait_for("the latest counters", |v| {
        (v.counters.values().next().map(|c| c.rx_bytes) == Some(N)).then_some(())
    });
    // Anything still queued for it arrives within a moment.
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        let _ = stalled.read_once();
    }
    assert!(
        stalled.dropped_events > 0,
        "the stalled viewer dropped events"
    );
    assert_eq!(
        stalled.events + stalled.dropped_events,
        N * 8192,
        "every event was delivered or counted as dropped"
    );
    println!(
        "fed {N} batches in {fed_in:?}; stalled viewer got {} events, dropped {}",
        stalled.events, stalled.dropped_events
    );
    assert!(cmd_rx.try_recv().is_err(), "nothing reached the engine");
    drop(server);
}

/// One viewer sends thousands of commands in a burst: every one reaches the
/// engine, in order, and another viewer keeps getting its batches.
#[test]
fn a_flooding_viewer_is_served_in_turns() {
    let dir = TempDir::new("flood");
    let mut opts = ControlOptions::new("127.0.0.1:0");
    opts.web_root = Some(web_root(&dir));
    let (server, _relay, batches_tx, cmd_rx) = start(&opts);
    let url = format!("ws://{}/ws", server.local_addr());
    let mut flooder = Viewer::attach(&url);
    let mut watcher = Viewer::attach(&url);
    const COMMANDS: u64 = 5000;
    let flood = std::thread::spawn(move || {
        for i in 0..COMMANDS {
            let cmd = Command::Inspect { conn: ConnId(i) };
            flooder
                .ws
                .write(Message::Text(muxscope::control::wire::encode_command(&cmd)))
                .unwrap();
        }
        flooder.ws.flush().unwrap();
        flooder
    });
    for seq in 1..=20 {
        let mut b = batch(seq);
        b.events.truncate(10);
        batches_tx.send(b).unwrap();
        watcher.wait_for("the batch", |v| {
            (v.counters.values().next().map(|c| c.rx_bytes) == Some(seq)).then_some(())
        });
    }
    let _flooder = flood.join().unwrap();
    let deadline = Instant::now() + STEP;
    let mut got = 0;
    while got < COMMANDS {
        let cmd = cmd_rx
            .recv_deadline(deadline)
            .expect("every command arrives");
        assert_eq!(cmd, Command::Inspect { conn: ConnId(got) }, "in order");
        got += 1;
    }
}

/// The per-viewer queue is bounded in bytes too: a stalled viewer with room
/// for many frames by count still loses events once its bytes are spent.
#[test]
fn a_stalled_viewers_queue_is_bounded_in_bytes() {
    let dir = TempDir::new("fanout-bytes");
    let mut opts = ControlOptions::new("127.0.0.1:0");
    opts.web_root = Some(web_root(&dir));
    opts.viewer_queue = 10_000;
    opts.viewer_queue_bytes = 256 * 1024;
    let (server, relay, batches_tx, _cmds) = start(&opts);
    let url = format!("ws://{}/ws", server.local_addr());
    let mut stalled = Viewer::attach(&url);
    let deadline = Instant::now() + STEP;
    while server.viewers() != 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    // 400 frames of ~60 KB: 24 MB, far below 10,000 frames, far above
    // 256 KiB plus what the socket buffers take (a few MB on loopback).
    const N: u64 = 400;
    for seq in 1..=N {
        batches_tx.send(batch(seq)).unwrap();
    }
    // The viewer stays stalled until the fan-out has offered it every batch
    // (the relay gets each batch after the viewers): on a loaded machine the
    // fan-out may still be encoding when the sends above return, and a
    // viewer that read meanwhile would never fall behind.
    let deadline = Instant::now() + 6 * STEP;
    for _ in 1..=N {
        relay
            .recv_deadline(deadline)
            .expect("the fan-out relays every batch");
    }
    // Decoding megabytes of events in a debug build on a loaded machine
    // takes a while: a longer deadline than one step.
    let deadline = Instant::now() + 6 * STEP;
    while stalled.counters.values().next().map(|c| c.rx_bytes) != Some(N) {
        assert!(Instant::now() < deadline, "the latest counters never came");
        stalled
            .read_once()
            .expect("the stalled viewer stays attached");
    }
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        let _ = stalled.read_once();
    }
    assert!(
        stalled.dropped_events > 0,
        "the byte bound made the stalled viewer drop events"
    );
    assert_eq!(stalled.events + stalled.dropped_events, N * 8192);
}

fn conn(id: u64, state: ConnState) -> ConnCounters {
    ConnCounters {
        state,
        ..ConnCounters::opened(
            ConnId(id),
            format!("127.0.0.1:{}", 10_000 + id).parse().unwrap(),
            0,
        )
    }
}

/// A viewer that attaches late gets the present with the list of open
/// connections, so it can tell what is live.
#[test]
fn a_late_viewers_snapshot_lists_the_open_connections() {
    let dir = TempDir::new("fanout-late");
    let mut opts = ControlOptions::new("127.0.0.1:0");
    opts.web_root = Some(web_root(&dir));
    let (server, relay, batches_tx, _cmds) = start(&opts);
    batches_tx
        .send(Batch {
            seq: 1,
            counters: vec![
                conn(1, ConnState::Open),
                conn(2, ConnState::Open),
                conn(3, ConnState::Open),
            ],
            ..Batch::default()
        })
        .unwrap();
    batches_tx
        .send(Batch {
            seq: 2,
            counters: vec![conn(2, ConnState::Closed(CloseReason::PeerClosed))],
            ..Batch::default()
        })
        .unwrap();
    // Both were fanned out once the relay has them.
    for _ in 0..2 {
        relay.recv_timeout(STEP).unwrap();
    }
    let mut ws = connect_ws(&format!("ws://{}/ws", server.local_addr())).unwrap();
    let snapshot = loop {
        match ws.read().expect("a snapshot") {
            Message::Binary(f) => break decode_batch(&f).unwrap(),
            _ => continue,
        }
    };
    assert_eq!(snapshot.open_conns, Some(vec![ConnId(1), ConnId(3)]));
}

/// A viewer stalled while thousands of connections come and go is not owed
/// an unbounded pile of counters; when it reads again it is sent a resync
/// and its model converges: exactly the live connections shown open.
#[test]
fn a_stalled_viewer_converges_after_thousands_of_closes() {
    let dir = TempDir::new("fanout-resync");
    let mut opts = ControlOptions::new("127.0.0.1:0");
    opts.web_root = Some(web_root(&dir));
    opts.viewer_queue = 2;
    let (server, relay, batches_tx, _cmds) = start(&opts);
    let url = format!("ws://{}/ws", server.local_addr());
    let mut ws = connect_ws(&url).unwrap();
    let deadline = Instant::now() + STEP;
    while server.viewers() != 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut monitor = Monitor::default();
    // It reads the snapshot and one batch, then stalls.
    let read_one = |ws: &mut Ws, monitor: &mut Monitor| -> bool {
        match ws.read() {
            Ok(Message::Binary(f)) => {
                monitor.absorb(decode_batch(&f).unwrap());
                true
            }
            Ok(_) => true,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                false
            }
            Err(e) => panic!("{e}"),
        }
    };
    batches_tx
        .send(Batch {
            seq: 1,
            counters: (1..=10).map(|i| conn(i, ConnState::Open)).collect(),
            ..Batch::default()
        })
        .unwrap();
    let deadline = Instant::now() + STEP;
    while monitor.connections.open_count() != 10 {
        assert!(Instant::now() < deadline, "the first batch");
        read_one(&mut ws, &mut monitor);
    }
    // While it is stalled: 1..=10 close without their final counters ever
    // reaching it (20,000 other connections open and close in between,
    // more than any viewer is owed), and 30_001..=30_005 open.
    let mut seq = 1;
    let mut feed = |counters: Vec<ConnCounters>| {
        seq += 1;
        batches_tx
            .send(Batch {
                seq,
                counters,
                ..Batch::default()
            })
            .unwrap();
        while relay.try_recv().is_ok() {}
    };
    feed(
        (1..=10)
            .map(|i| conn(i, ConnState::Closed(CloseReason::PeerReset)))
            .collect(),
    );
    for chunk in (100..20_100u64).collect::<Vec<_>>().chunks(500) {
        feed(chunk.iter().map(|&i| conn(i, ConnState::Open)).collect());
        feed(
            chunk
                .iter()
                .map(|&i| conn(i, ConnState::Closed(CloseReason::PeerClosed)))
                .collect(),
        );
    }
    feed(
        (30_001..=30_005)
            .map(|i| conn(i, ConnState::Open))
            .collect(),
    );
    // Now it reads until quiet.
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + 2 * STEP;
    while quiet_since.elapsed() < Duration::from_millis(500) {
        assert!(Instant::now() < deadline, "the viewer never went quiet");
        if read_one(&mut ws, &mut monitor) {
            quiet_since = Instant::now();
        }
    }
    let mut open: Vec<u64> = monitor
        .connections
        .iter()
        .filter(|c| !matches!(c.state, ConnState::Closed(_)))
        .map(|c| c.id.0)
        .collect();
    open.sort();
    assert_eq!(open, (30_001..=30_005).collect::<Vec<_>>(), "converged");
    for id in 1..=10 {
        let row = monitor.connections.get(ConnId(id)).expect("row kept");
        assert!(
            matches!(row.state, ConnState::Closed(_)),
            "{id}: {:?}",
            row.state
        );
    }
}
