//! `muxscope --headless --control …` as a user runs it: refusing unsafe
//! binds, serving the viewer and its WebSocket, stopping cleanly.

mod control_support;

use control_support::*;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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

/// `--version` prints the package version and exits without a display (the
/// .deb check runs the installed binary this way on a machine with none).
#[test]
fn version_prints_the_package_version_without_a_display() {
    let out = muxscope()
        .arg("--version")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("muxscope {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// A headless muxscope with a control endpoint, stopped with SIGTERM. Its
/// stdout lines are collected.
struct Headless {
    child: Child,
    control: SocketAddr,
    /// The viewer line, e.g. `muxscope viewer on http://ADDR/?token=…`.
    viewer_line: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Headless {
    fn start(web_root: &std::path::Path, token: Option<&str>) -> Headless {
        let mut cmd = muxscope();
        cmd.arg("--web-root").arg(web_root);
        if let Some(t) = token {
            // From the environment, so it stays out of `ps`.
            cmd.env("MUXSCOPE_TOKEN", t);
        }
        Self::spawn(cmd, &[])
    }

    fn spawn(mut cmd: Command, extra: &[&str]) -> Headless {
        cmd.args([
            "--headless",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (control, viewer_line) = loop {
            let line = lines.next().expect("a viewer line").unwrap();
            let rest = line
                .strip_prefix("muxscope viewer on http://")
                .or_else(|| line.strip_prefix("muxscope viewer on https://"));
            if let Some(rest) = rest {
                break (rest.split('/').next().unwrap().parse().unwrap(), line);
            }
        };
        // Keep reading stdout so the child never blocks on it.
        let collected = Arc::new(Mutex::new(Vec::new()));
        let sink = collected.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Headless {
            child,
            control,
            viewer_line,
            lines: collected,
        }
    }

    fn stop(mut self) -> bool {
        stop_on_sigterm(&mut self.child)
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

#[test]
fn token_auto_makes_one_and_prints_the_url_once() {
    let dir = TempDir::new("cli-auto");
    let www = web_root(&dir);
    let mut cmd = muxscope();
    cmd.arg("--web-root").arg(&www);
    let h = Headless::spawn(cmd, &["--token", "auto"]);
    let token = h
        .viewer_line
        .split("?token=")
        .nth(1)
        .and_then(|t| t.split([' ', '&']).next())
        .unwrap_or_else(|| panic!("no token in {:?}", h.viewer_line))
        .to_owned();
    assert!(token.len() >= 32, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()), "{token}");
    let base = format!("ws://{}/ws", h.control);
    match connect_ws(&base) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let mut v = Viewer::attach(&format!("{base}?token={token}"));
    v.wait_for("a batch", |v| (v.batches > 0).then_some(()));
    std::thread::sleep(Duration::from_millis(1200));
    let printed = h.lines.lock().unwrap().join("\n");
    assert!(!printed.contains(&token), "the token was printed again");
    // A second run makes another token.
    let mut cmd = muxscope();
    cmd.arg("--web-root").arg(&www);
    let h2 = Headless::spawn(cmd, &["--token", "auto"]);
    assert!(!h2.viewer_line.contains(&token));
    assert!(h.stop() && h2.stop());
}

#[test]
fn a_short_token_is_refused_on_a_network_bind() {
    let mut cmd = muxscope();
    cmd.env("MUXSCOPE_TOKEN", "short-secret");
    cmd.args([
        "--headless",
        "--listen",
        "127.0.0.1:0",
        "--control",
        "0.0.0.0:0",
    ]);
    let (ok, err) = run_to_end(cmd);
    assert!(!ok);
    assert!(err.contains("16") && err.contains("--token auto"), "{err}");
}

/// Without --web-root, a `dist/` in the working directory is not served
/// (it may be anything); the page says how to build the viewer instead.
#[test]
fn the_default_web_root_is_not_the_working_directory() {
    let dir = TempDir::new("cli-cwd");
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("secret.txt"), SECRET).unwrap();
    let mut cmd = muxscope();
    cmd.current_dir(dir.path());
    let h = Headless::spawn(cmd, &[]);
    let (status, _, body) = get(h.control, "/secret.txt");
    assert_ne!(status, 200);
    assert!(!String::from_utf8_lossy(&body).contains(SECRET));
    let (_, head, body) = get(h.control, "/");
    let body = String::from_utf8_lossy(&body);
    assert!(head.contains("text/html"), "{head}");
    assert!(
        body.contains("scripts/build-web.sh") && body.contains("--web-root"),
        "{body}"
    );
    assert!(h.stop());
}

/// What a viewer types ends up in the summary line (a failed listen
/// address); it is printed escaped, never as terminal control sequences.
#[test]
fn what_viewers_send_is_printed_escaped() {
    let dir = TempDir::new("cli-escape");
    let www = web_root(&dir);
    let token = "a-token-of-sixteen-or-more";
    let h = Headless::start(&www, Some(token));
    let mut v = Viewer::attach(&format!("ws://{}/ws?token={token}", h.control));
    v.wait_for("a batch", |v| (v.batches > 0).then_some(()));
    let evil = format!(
        "\u{1b}[2J\u{1b}]0;pwned\u{7}\r\u{202e}{}:99999",
        "x".repeat(200)
    );
    // With no listener left, the failed address is the listen state that
    // the summary line shows.
    v.send(&muxscope::protocol::Command::StopListening);
    v.send(&muxscope::protocol::Command::Listen { addr: evil });
    let deadline = Instant::now() + STEP;
    loop {
        assert!(
            Instant::now() < deadline,
            "the failed listen was never printed"
        );
        let _ = v.read_once();
        let lines = h.lines.lock().unwrap().clone();
        if lines.iter().any(|l| l.contains("pwned")) {
            for l in &lines {
                assert!(
                    !l.chars()
                        .any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
                    "raw control characters printed: {l:?}"
                );
                assert!(l.len() <= 1024, "{} bytes in one line", l.len());
            }
            assert!(lines.iter().any(|l| l.contains("\\u{1b}[2J")), "{lines:?}");
            break;
        }
    }
    assert!(h.stop());
}

#[test]
fn an_unreadable_tls_key_is_named_before_anything_is_served() {
    let dir = TempDir::new("cli-tls");
    let cert = dir.path().join("cert.pem");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(&cert, made.cert.pem()).unwrap();
    let mut cmd = muxscope();
    cmd.args([
        "--headless",
        "--listen",
        "127.0.0.1:0",
        "--control",
        "127.0.0.1:0",
        "--tls-cert",
    ])
    .arg(&cert)
    .arg("--tls-key")
    .arg(dir.path().join("missing-key.pem"));
    let (ok, err) = run_to_end(cmd);
    assert!(!ok);
    assert!(
        err.contains("cannot read the TLS key") && err.contains("missing-key.pem"),
        "{err}"
    );
    // --tls-key alone is refused by the parser.
    let mut cmd = muxscope();
    cmd.args(["--headless", "--control", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert);
    let (ok, err) = run_to_end(cmd);
    assert!(!ok && err.contains("--tls-key"), "{err}");
}
