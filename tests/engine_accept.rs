//! Accepting when the process runs out of descriptors, watched through the
//! engine's events. Like `engine_process`'s test it saturates the
//! descriptor limit, but in-process (the events are only visible here), so
//! it is its own test binary: the limit is per process, and no other test
//! may open descriptors while it is lowered.

mod common;

use common::*;
use muxscope::engine::EngineConfig;
use muxscope::protocol::EventKind;
use rlimit::Resource;
use socket2::{Domain, Socket, Type};
use std::fs::File;
use std::net::TcpStream;

/// Lowers the soft `RLIMIT_NOFILE` while it lives; restores it on drop, also
/// when the test fails.
struct LoweredFdLimit {
    soft: u64,
    hard: u64,
}

impl LoweredFdLimit {
    fn to(limit: u64) -> Self {
        let (soft, hard) = Resource::NOFILE.get().expect("getrlimit");
        Resource::NOFILE.set(limit, hard).expect("setrlimit");
        LoweredFdLimit { soft, hard }
    }
}

impl Drop for LoweredFdLimit {
    fn drop(&mut self) {
        let _ = Resource::NOFILE.set(self.soft, self.hard);
    }
}

fn highest_open_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .max()
        .expect("some descriptors are open")
}

#[test]
fn accepting_resumes_with_one_event_after_running_out_of_descriptors() {
    const WAITING: usize = 12;
    let h = Harness::start(EngineConfig::default());
    let (mut early, _) = h.connect();

    // Sockets for the clients that will wait, made while descriptors are
    // plenty: connecting them takes no new descriptor.
    let sockets: Vec<Socket> = (0..WAITING)
        .map(|_| Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket"))
        .collect();
    // Then no descriptor is left: the limit is lowered to just above the
    // highest one, and the gaps below are filled with ballast.
    let limit = highest_open_fd() + 4;
    let lowered = LoweredFdLimit::to(limit);
    let mut ballast = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => ballast.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("opening ballast: {e}"),
        }
        assert!(ballast.len() as u64 <= limit, "the limit does not hold");
    }
    for s in &sockets {
        // The kernel completes the handshake; the client waits in the
        // backlog until the engine can accept it.
        s.connect_timeout(&h.addr.into(), STEP)
            .expect("client connects");
    }
    h.wait_for("accept to fail and pause", |m| {
        m.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::AcceptError { paused: true, .. }))
            .then_some(())
    });
    drop(ballast);
    drop(lowered);

    // Descriptors are free again: every waiting client is accepted (on the
    // engine's retry timer) and served.
    let mut waiting: Vec<TcpStream> = sockets.into_iter().map(TcpStream::from).collect();
    for (i, c) in waiting.iter_mut().enumerate() {
        c.set_read_timeout(Some(STEP)).unwrap();
        assert_echo(c, format!("waited {i}").as_bytes());
    }
    // Later clients are accepted as usual.
    let later: Vec<_> = (0..4).map(|_| h.connect()).collect();
    assert_echo(&mut early, b"the first client was served throughout");

    let kinds: Vec<EventKind> = h.with(|m| {
        m.events
            .iter()
            .filter(|e| e.conn.is_none())
            .map(|e| e.kind.clone())
            .filter(|k| matches!(k, EventKind::AcceptError { .. } | EventKind::AcceptResumed))
            .collect()
    });
    let pauses = kinds
        .iter()
        .filter(|k| matches!(k, EventKind::AcceptError { paused: true, .. }))
        .count();
    let resumes = kinds
        .iter()
        .filter(|k| **k == EventKind::AcceptResumed)
        .count();
    assert_eq!(
        (pauses, resumes),
        (1, 1),
        "one pause, one resume (not one per client accepted): {kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&EventKind::AcceptResumed));
    let accepted = h.with(|m| m.max_accepted);
    assert_eq!(accepted, 1 + WAITING as u64 + later.len() as u64);
    h.assert_stream_consistent();
}
