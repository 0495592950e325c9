//! `muxscope --headless --control …` as a user runs it: refusing unsafe
//! binds, serving the viewer and its WebSocket, stopping cleanly.

mod control_support;

use control_support::*;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn muxscope() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_muxscope"));
    c.env_remove("MUXSCOPE_TOKEN");
    c
}

/// Runs to completion with a deadline; returns (success, stderr).
fn run_to_end(mut cmd: Command) -> (bool, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.success(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("muxscope did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn refuses_a_network_bind_without_a_token() {
    let mut cmd = muxscope();
    cmd.args([
        "--headless",
        "--listen",
        "127.0.0.1:0",
        "--control",
        "0.0.0.0:0",
    ]);
    let (ok, err) = run_to_end(cmd);
    assert!(!ok);
    assert!(err.contains("refusing") && err.contains("--token"), "{err}");
}

#[test]
fn control_needs_headless() {
    let mut cmd = muxscope();
    cmd.args(["--control", "127.0.0.1:0"]);
    let (ok, err) = run_to_end(cmd);
    assert!(!ok);
    assert!(err.contains("--headless"), "{err}");
}

/// A headless muxscope with a control endpoint, stopped with SIGTERM.
struct Headless {
    child: Child,
    control: SocketAddr,
}

impl Headless {
    fn start(web_root: &std::path::Path, token: Option<&str>) -> Headless {
        let mut cmd = muxscope();
        cmd.args([
            "--headless",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ])
        .arg("--web-root")
        .arg(web_root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        if let Some(t) = token {
            // From the environment, so it stays out of `ps`.
            cmd.env("MUXSCOPE_TOKEN", t);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let control = loop {
            let line = lines.next().expect("a viewer line").unwrap();
            if let Some(rest) = line.strip_prefix("muxscope viewer on http://") {
                break rest.split('/').next().unwrap().parse().unwrap();
            }
        };
        // Keep reading stdout so the child never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Headless { child, control }
    }

    fn stop(mut self) -> bool {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "muxscope did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serves_the_viewer_and_stops_cleanly() {
    let dir = TempDir::new("cli");
    let www = web_root(&dir);
    let h = Headless::start(&www, None);
    let (status, _, body) = get(h.control, "/");
    assert_eq!(status, 200);
    assert_eq!(body, INDEX.as_bytes());
    let mut v = Viewer::attach(&format!("ws://{}/ws", h.control));
    v.wait_for("engine stats", |v| (v.batches > 0).then_some(()));
    assert!(h.stop(), "exit status");
    // The viewer is told (or sees the socket close).
    expect_closed(&mut v.ws, "viewer after shutdown");
}

#[test]
fn token_from_the_environment_guards_the_socket() {
    let dir = TempDir::new("cli-token");
    let www = web_root(&dir);
    let h = Headless::start(&www, Some("from-env"));
    let base = format!("ws://{}/ws", h.control);
    match connect_ws(&base) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let mut v = Viewer::attach(&format!("{base}?token=from-env"));
    v.wait_for("a batch", |v| (v.batches > 0).then_some(()));
    assert!(h.stop());
}
