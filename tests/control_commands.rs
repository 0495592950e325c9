//! What a viewer may ask of the engine: `Listen` only on loopback without a
//! token, no over-long strings, and no faster than the configured rate.
//! Refusals reach the viewer; nothing refused reaches the engine.

mod control_support;

use control_support::*;
use muxscope::control::wire::encode_command;
use muxscope::control::{ControlOptions, ControlServer};
use muxscope::protocol::{Batch, Command, ConnId, EventKind};
use std::time::{Duration, Instant};
use tungstenite::Message;

type Started = (
    ControlServer,
    crossbeam_channel::Sender<Batch>,
    crossbeam_channel::Receiver<Command>,
    TempDir,
);

/// A control server fed by a hand-driven batch channel; the commands it
/// forwards land in the returned receiver.
fn start(token: Option<&str>, tweak: impl FnOnce(&mut ControlOptions)) -> Started {
    serve(token, tweak, None)
}

/// A control server whose engine channel has room for `room` commands:
/// the endpoint must hold the rest back, as with a busy engine.
fn start_with_room(room: usize) -> Started {
    serve(None, |_| {}, Some(room))
}

fn serve(
    token: Option<&str>,
    tweak: impl FnOnce(&mut ControlOptions),
    room: Option<usize>,
) -> Started {
    let dir = TempDir::new("commands");
    let mut opts = ControlOptions::new("127.0.0.1:0");
    opts.web_root = Some(web_root(&dir));
    opts.token = token.map(str::to_owned);
    tweak(&mut opts);
    let (batches_tx, batches_rx) = crossbeam_channel::bounded::<Batch>(64);
    let (cmd_tx, cmd_rx) = match room {
        Some(n) => crossbeam_channel::bounded::<Command>(n),
        None => crossbeam_channel::unbounded::<Command>(),
    };
    let (server, _relay) = ControlServer::start(
        &opts,
        batches_rx,
        Box::new(move |c| {
            cmd_tx.try_send(c).map_err(|e| match e {
                crossbeam_channel::TrySendError::Full(c)
                | crossbeam_channel::TrySendError::Disconnected(c) => c,
            })
        }),
    )
    .unwrap();
    (server, batches_tx, cmd_rx, dir)
}

fn listen(addr: &str) -> Command {
    Command::Listen {
        addr: addr.to_owned(),
    }
}

/// Read until a `ListenFailed` event arrives; returns its (addr, error).
fn refusal(v: &mut Viewer) -> (String, String) {
    let deadline = Instant::now() + STEP;
    loop {
        assert!(Instant::now() < deadline, "no refusal arrived");
        match v.ws.read() {
            Ok(Message::Binary(frame)) => {
                let batch = muxscope::control::wire::decode_batch(&frame).unwrap();
                for e in batch.events {
                    if let EventKind::ListenFailed { addr, error } = e.kind {
                        return (addr, error);
                    }
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("viewer closed instead of told: {e}"),
        }
    }
}

#[test]
fn without_a_token_a_viewer_may_listen_on_loopback_only() {
    let (server, _batches, cmds, _dir) = start(None, |_| {});
    let mut v = Viewer::attach(&format!("ws://{}/ws", server.local_addr()));
    for addr in [
        "0.0.0.0:9000",
        "[::]:9000",
        "192.0.2.1:9000",
        "example.org:9000",
        "localhost.example.org:9000",
        "127.0.0.1.nip.io:9000",
    ] {
        v.send(&listen(addr));
        let (shown, error) = refusal(&mut v);
        assert_eq!(shown, addr);
        assert!(
            error.contains("loopback") && error.contains("--token"),
            "{error}"
        );
    }
    // Allowed ones reach the engine, in order, and nothing refused did.
    for addr in [
        "127.0.0.1:0",
        "[::1]:9000",
        "localhost:9000",
        "127.8.9.10:1",
    ] {
        v.send(&listen(addr));
    }
    v.send(&Command::StopListening);
    let mut got = Vec::new();
    while got.len() < 5 {
        got.push(cmds.recv_timeout(STEP).expect("allowed commands arrive"));
    }
    assert_eq!(
        got,
        vec![
            listen("127.0.0.1:0"),
            listen("[::1]:9000"),
            listen("localhost:9000"),
            listen("127.8.9.10:1"),
            Command::StopListening
        ]
    );
    assert!(cmds.try_recv().is_err());
}

#[test]
fn with_a_token_any_address_goes_but_not_an_overlong_one() {
    let token = "a-token-long-enough-for-tests";
    let (server, _batches, cmds, _dir) = start(Some(token), |_| {});
    let mut v = Viewer::attach(&format!("ws://{}/ws?token={token}", server.local_addr()));
    v.send(&listen("0.0.0.0:9000"));
    assert_eq!(cmds.recv_timeout(STEP).unwrap(), listen("0.0.0.0:9000"));

    let long = format!("127.0.0.1:{}", "9".repeat(1000));
    v.send(&listen(&long));
    let (shown, error) = refusal(&mut v);
    assert!(shown.len() < 200, "the refusal does not echo it whole");
    assert!(error.contains("256"), "{error}");
    v.send(&Command::StopListening);
    assert_eq!(
        cmds.recv_timeout(STEP).unwrap(),
        Command::StopListening,
        "the long one never reached the engine"
    );
}

#[test]
fn a_viewer_cannot_send_commands_faster_than_its_rate() {
    let (server, _batches, cmds, _dir) = start(None, |o| {
        o.commands_per_sec = 200;
        o.command_burst = 50;
    });
    let url = format!("ws://{}/ws", server.local_addr());
    let mut flooder = Viewer::attach(&url);
    const N: u64 = 600;
    let started = Instant::now();
    for i in 0..N {
        let cmd = Command::Inspect { conn: ConnId(i) };
        flooder
            .ws
            .write(Message::Text(encode_command(&cmd)))
            .unwrap();
    }
    flooder.ws.flush().unwrap();
    // Whatever arrived within the first 500 ms is bounded by the bucket.
    std::thread::sleep(Duration::from_millis(500));
    let early = cmds.try_iter().count() as u64;
    let allowed = 50 + (200.0 * started.elapsed().as_secs_f64()) as u64 + 10;
    assert!(
        early <= allowed,
        "{early} commands in {:?}, at most {allowed} allowed",
        started.elapsed()
    );
    assert!(early >= 50, "the burst goes through at once ({early})");
    // None is lost: the rest arrive, in order, as the rate allows.
    let mut next = early;
    let deadline = Instant::now() + 2 * STEP;
    while next < N {
        let cmd = cmds.recv_deadline(deadline).expect("every command arrives");
        assert_eq!(cmd, Command::Inspect { conn: ConnId(next) });
        next += 1;
    }
    // The flooder is still attached (throttled, not dropped).
    assert_eq!(server.viewers(), 1);
    flooder.send(&Command::StopListening);
    assert_eq!(cmds.recv_timeout(STEP).unwrap(), Command::StopListening);
}

/// The engine's command channel is bounded: when it is full, the io thread
/// holds the viewer's command (and stops reading that viewer) until there
/// is room, so nothing is lost and nothing piles up in between.
#[test]
fn a_full_engine_channel_holds_commands_back_losslessly() {
    let (server, _batches, cmd_rx, _dir) = start_with_room(8);
    let mut v = Viewer::attach(&format!("ws://{}/ws", server.local_addr()));
    const N: u64 = 200;
    for i in 0..N {
        let cmd = Command::Inspect { conn: ConnId(i) };
        v.ws.write(Message::Text(encode_command(&cmd))).unwrap();
    }
    v.ws.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cmd_rx.len(), 8, "the channel filled and no further");
    assert_eq!(server.viewers(), 1, "the viewer is held back, not dropped");
    let deadline = Instant::now() + STEP;
    for i in 0..N {
        let cmd = cmd_rx
            .recv_deadline(deadline)
            .expect("every command arrives");
        assert_eq!(cmd, Command::Inspect { conn: ConnId(i) }, "in order");
        if i % 16 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn each_viewer_watches_as_itself_and_its_watch_ends_when_it_leaves() {
    let (server, _batches, cmds, _dir) = start(None, |_| {});
    let url = format!("ws://{}/ws", server.local_addr());
    let mut one = Viewer::attach(&url);
    let mut two = Viewer::attach(&url);
    // Both claim to be the local window, and the second tries to end the
    // first's watch: the endpoint stamps each with its own id.
    one.send(&Command::Watch {
        viewer: 0,
        conns: vec![ConnId(1)],
    });
    let first = cmds.recv_timeout(STEP).expect("the watch arrives");
    two.send(&Command::Watch {
        viewer: 0,
        conns: vec![ConnId(2)],
    });
    let second = cmds.recv_timeout(STEP).expect("the watch arrives");
    let (Command::Watch { viewer: a, conns }, Command::Watch { viewer: b, .. }) = (&first, &second)
    else {
        panic!("{first:?} {second:?}");
    };
    assert_eq!(conns, &vec![ConnId(1)]);
    assert!(*a != 0 && *b != 0 && a != b, "viewers {a} and {b}");
    // The first leaves: the engine is told its watch ended, and only its.
    drop(one);
    let ended = cmds
        .recv_timeout(STEP)
        .expect("the end of its watch arrives");
    assert_eq!(
        ended,
        Command::Watch {
            viewer: *a,
            conns: Vec::new()
        }
    );
    drop(two);
}

#[test]
fn a_viewer_leaving_while_the_engine_is_full_still_ends_its_watch() {
    let (server, _batches, cmd_rx, _dir) = start_with_room(1);
    let mut v = Viewer::attach(&format!("ws://{}/ws", server.local_addr()));
    v.send(&Command::Watch {
        viewer: 0,
        conns: vec![ConnId(7)],
    });
    // The watch fills the engine's one slot; the viewer leaves meanwhile.
    let deadline = Instant::now() + STEP;
    while cmd_rx.is_empty() {
        assert!(Instant::now() < deadline, "the watch never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(v);
    let deadline = Instant::now() + STEP;
    while server.viewers() > 0 {
        assert!(Instant::now() < deadline, "the viewer never left");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    let Command::Watch { viewer, conns } = cmd_rx.recv_timeout(STEP).unwrap() else {
        panic!("a watch first");
    };
    assert_eq!(conns, vec![ConnId(7)]);
    // Room again: the end of its watch comes, though it left while full.
    let ended = cmd_rx
        .recv_timeout(STEP)
        .expect("the end of its watch arrives");
    assert_eq!(
        ended,
        Command::Watch {
            viewer,
            conns: Vec::new()
        }
    );
}
