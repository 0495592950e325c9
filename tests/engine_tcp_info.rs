//! The kernel's view of each connection (`TCP_INFO`), sampled by the
//! engine, with real sockets: a client that does not read shows a closed
//! window, an echo client an RTT, and a watched connection is sampled far
//! more often than one nobody looks at.

#![cfg(target_os = "linux")]

mod common;

use common::*;
use muxscope::engine::EngineConfig;
use muxscope::protocol::{Command, ConnId, LOCAL_VIEWER, Targets, TcpInfo};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn tcp_of(h: &Harness, id: ConnId, what: &str, pred: impl Fn(&TcpInfo) -> bool) -> TcpInfo {
    let c = h.wait_counters(id, what, |c| c.tcp.as_deref().is_some_and(&pred));
    *c.tcp.expect("sampled")
}

#[test]
fn a_client_that_never_reads_closes_its_window() {
    let h = Harness::start(EngineConfig::default());
    assert_eq!(
        h.wait_for("stats", |m| m.stats.clone())
            .tcp_info_unavailable,
        None,
        "Linux has TCP_INFO"
    );
    // A small receive buffer that the client never empties.
    let (_stream, id) = h.connect_with(|addr| client_with_rcvbuf(addr, 16 * 1024));
    h.send(Command::Watch {
        viewer: LOCAL_VIEWER,
        conns: vec![id],
    });
    h.send(Command::Inject {
        targets: Targets::one(id),
        bytes: vec![b'x'; 1024 * 1024],
    });
    let stuck = tcp_of(&h, id, "a zero peer window with bytes waiting", |t| {
        t.peer_window == Some(0) && t.notsent_bytes > 0
    });
    assert!(stuck.at > 0);
    assert!(
        stuck.notsent_bytes + stuck.unacked > 0,
        "bytes wait in the kernel: {stuck:?}"
    );
}

#[test]
fn an_echo_client_has_an_rtt_and_an_open_window() {
    let h = Harness::start(EngineConfig::default());
    let (mut stream, id) = h.connect();
    for _ in 0..20 {
        assert_echo(&mut stream, b"hello kernel\n");
    }
    // Unwatched: sampled within a second or so (the first sample, taken
    // at accept, saw no data yet).
    let t = tcp_of(&h, id, "an RTT and a peer window after the echoes", |t| {
        t.segs_out > 20 && t.rtt_us > 0 && t.peer_window.is_some_and(|w| w > 0)
    });
    assert!(t.segs_in > 20, "{t:?}");
    assert!(t.rcv_window.is_some_and(|w| w > 0), "{t:?}");
    assert!(t.cwnd > 0 && t.snd_mss > 0, "{t:?}");
}

#[test]
fn what_any_viewer_watches_is_sampled_far_more_often() {
    let h = Harness::start_with_monitor(EngineConfig::default());
    let (a, by_one) = h.connect();
    let (b, by_two) = h.connect();
    let (c, unwatched) = h.connect();
    let (d, dropped) = h.connect();
    // Two viewers, each its own set; a third watches and then stops.
    for (viewer, id) in [(1, by_one), (2, by_two), (3, dropped)] {
        h.send(Command::Watch {
            viewer,
            conns: vec![id],
        });
    }
    h.send(Command::Watch {
        viewer: 3,
        conns: Vec::new(),
    });
    // All busy, so every sample differs and goes out.
    let stop = Arc::new(AtomicBool::new(false));
    let chat = |mut s: std::net::TcpStream| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                assert_echo(&mut s, b"ping\n");
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let threads = [chat(a), chat(b), chat(c), chat(d)];
    std::thread::sleep(Duration::from_millis(2_200));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    let count = |id| h.with_monitor(|m| m.tcp_history(id).map_or(0, |hist| hist.samples().len()));
    let (one, two) = (count(by_one), count(by_two));
    // Ideally about 22 and 3; margins for a loaded machine.
    for (u, what) in [
        (count(unwatched), "unwatched"),
        (count(dropped), "no longer watched"),
    ] {
        assert!(u >= 1, "{what}: {u} samples in 2.2 s");
        assert!(u <= 5, "{what}: sampled about once a second, {u} in 2.2 s");
        assert!(
            one >= 2 * u && two >= 2 * u,
            "watched {one}, {two} vs {what} {u}"
        );
    }
    assert!(one >= 8, "watched by viewer 1: {one} samples in 2.2 s");
    assert!(two >= 8, "watched by viewer 2: {two} samples in 2.2 s");
}

#[test]
fn an_idle_connection_causes_no_counters_traffic() {
    let h = Harness::start(EngineConfig::default());
    let (mut stream, id) = h.connect();
    assert_echo(&mut stream, b"once\n");
    h.send(Command::Watch {
        viewer: LOCAL_VIEWER,
        conns: vec![id],
    });
    tcp_of(&h, id, "a first sample", |_| true);
    // Let the last changes (delayed ACKs) settle, then count batches that
    // carry its counters: sampled ten times a second, it sends none.
    std::thread::sleep(Duration::from_millis(600));
    let first = h.with(|m| m.counters[&id].tcp.clone());
    std::thread::sleep(Duration::from_millis(1_000));
    let last = h.with(|m| m.counters[&id].tcp.clone());
    assert_eq!(first, last, "an idle connection's samples did not go out");
}
