//! An engine that dies must never look like success: `--headless` ends with
//! the panic message as an error (so a non-zero exit), and every viewer is
//! told with a WebSocket close 1011 carrying the reason.
//!
//! The engine is made to panic for real: its `notify` hook (called on the
//! engine thread after each batch) panics once the test arms it.

mod control_support;

use control_support::*;
use muxscope::control::ControlOptions;
use muxscope::engine::EngineConfig;
use muxscope::headless::Headless;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tungstenite::Message;

#[test]
fn a_panicking_engine_fails_the_run_and_viewers_are_told() {
    let dir = TempDir::new("engine-failure");
    let armed = Arc::new(AtomicBool::new(false));
    let trigger = armed.clone();
    let config = EngineConfig {
        listen: Some("127.0.0.1:0".into()),
        notify: Some(Arc::new(move || {
            if trigger.load(Ordering::Relaxed) {
                panic!("test-provoked engine failure");
            }
        })),
        ..EngineConfig::default()
    };
    let mut opts = ControlOptions::new("127.0.0.1:0");
    opts.web_root = Some(web_root(&dir));
    let headless = Headless::start(config, Some(opts)).expect("starts");
    let control = headless.control_addr().expect("a control endpoint");
    let echo = headless.echo_addr().expect("listening");
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
    let run = std::thread::spawn(move || headless.run(stop_rx));

    let mut v = Viewer::attach(&format!("ws://{control}/ws"));
    v.wait_for("a batch", |v| (v.batches > 0).then_some(()));
    armed.store(true, Ordering::Relaxed);
    // Anything the engine publishes now runs the hook.
    let _c = client(echo);

    let deadline = Instant::now() + STEP;
    let close = loop {
        assert!(Instant::now() < deadline, "the viewer was never told");
        match v.ws.read() {
            Ok(Message::Close(frame)) => break frame.expect("a close frame with a reason"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("closed without a close frame: {e}"),
        }
    };
    assert_eq!(u16::from(close.code), 1011);
    assert!(
        close.reason.contains("test-provoked engine failure"),
        "{}",
        close.reason
    );

    let result = run.join().expect("run returns");
    let err = result.expect_err("a dead engine is an error");
    assert!(err.contains("test-provoked engine failure"), "{err}");
    drop(stop_tx);
}

/// Stopping on request is still a success.
#[test]
fn a_requested_stop_is_a_success() {
    let config = EngineConfig {
        listen: Some("127.0.0.1:0".into()),
        ..EngineConfig::default()
    };
    let headless = Headless::start(config, None).expect("starts");
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
    let run = std::thread::spawn(move || headless.run(stop_rx));
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop_tx.send(()).unwrap();
    assert_eq!(run.join().unwrap(), Ok(()));
}
