//! `RemoteBackend` (the web viewer's backend, and `--attach`) natively
//! against a real control endpoint: the same `Backend` interface as the
//! local engine, folding batches into a `Monitor` and sending commands.

mod control_support;

use control_support::*;
use muxscope::backend::{Backend, BackendStatus, RemoteBackend};
use muxscope::monitor::Monitor;
use muxscope::protocol::{Command, ConnState, KickMode, Targets};
use std::io::Read;
use std::time::{Duration, Instant};

/// Drain until `f` gives a value, or fail after [`STEP`].
fn pump_until<R>(
    backend: &mut RemoteBackend,
    monitor: &mut Monitor,
    what: &str,
    mut f: impl FnMut(&Monitor, &BackendStatus) -> Option<R>,
) -> R {
    let deadline = Instant::now() + STEP;
    loop {
        backend.drain_into(monitor, Duration::from_millis(4));
        if let Some(r) = f(monitor, &backend.status()) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; status {:?}",
            backend.status()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn remote_backend_shows_the_engine_and_steers_it() {
    let s = Setup::start(Some("tok"));
    let mut c = client(s.echo_addr);
    assert_echo(&mut c, b"ping");
    let peer = c.local_addr().unwrap();

    let mut backend = RemoteBackend::connect(s.ws_url("?token=tok"), || {});
    assert!(matches!(backend.status(), BackendStatus::Connecting { .. }));
    let mut monitor = Monitor::default();
    let id = pump_until(&mut backend, &mut monitor, "the client's row", |m, _| {
        m.connections.iter().find(|r| r.peer == peer).map(|r| r.id)
    });
    match backend.status() {
        BackendStatus::Connected { url } => {
            assert!(!url.contains("tok&") && url.ends_with("token=…"), "{url}")
        }
        other => panic!("{other:?}"),
    }
    assert!(monitor.stats.is_some(), "the snapshot carries the stats");

    backend.send(Command::Kick {
        targets: Targets::one(id),
        mode: KickMode::Graceful,
    });
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "kicked: EOF");
    pump_until(&mut backend, &mut monitor, "the closed row", |m, _| {
        matches!(m.connections.get(id)?.state, ConnState::Closed(_)).then_some(())
    });
}

#[test]
fn remote_backend_reports_a_lost_server_and_a_refused_token() {
    let s = Setup::start(Some("right"));
    let mut monitor = Monitor::default();

    let mut wrong = RemoteBackend::connect(s.ws_url("?token=wrong"), || {});
    let error = pump_until(&mut wrong, &mut monitor, "a refusal", |_, st| match st {
        BackendStatus::Disconnected { error, .. } => Some(error.clone()),
        _ => None,
    });
    assert!(error.contains("401"), "{error}");

    let mut backend = RemoteBackend::connect(s.ws_url("?token=right"), || {});
    pump_until(&mut backend, &mut monitor, "attached", |m, st| {
        (matches!(st, BackendStatus::Connected { .. }) && m.stats.is_some()).then_some(())
    });
    drop(s); // the server and engine stop
    pump_until(&mut backend, &mut monitor, "the loss", |_, st| {
        matches!(st, BackendStatus::Disconnected { .. }).then_some(())
    });
    // Commands while disconnected go nowhere and hurt nothing.
    backend.send(Command::StopListening);
}
