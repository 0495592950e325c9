//! Helpers for the control endpoint's tests: an engine with a control
//! server in this process, a web root in a temporary directory, raw HTTP
//! requests, and a WebSocket viewer (tungstenite) that decodes batches.
//! Every wait is bounded.

#![allow(dead_code)]
// Tests hand tungstenite's own error back as it is.
#![allow(clippy::result_large_err)]

use muxscope::control::wire::{decode_batch, encode_command};
use muxscope::control::{ControlOptions, ControlServer};
use muxscope::engine::{EngineConfig, EngineHandle};
use muxscope::protocol::{Batch, Command, ConnCounters};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub const STEP: Duration = Duration::from_secs(10);

#[path = "../temp_dir/mod.rs"]
mod temp_dir;
pub use temp_dir::TempDir;

pub const INDEX: &str = "<!doctype html><title>viewer</title><canvas id=muxscope_canvas></canvas>";
pub const SECRET: &str = "secret outside the web root";

/// `dir/www` holding a fake viewer, and `dir/Cargo.toml` + `dir/secret.txt`
/// next to it, which must never be served.
pub fn web_root(dir: &TempDir) -> PathBuf {
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("sub")).unwrap();
    std::fs::write(www.join("index.html"), INDEX).unwrap();
    std::fs::write(www.join("muxscope_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(www.join("muxscope.js"), "export default 1;").unwrap();
    std::fs::write(www.join("sub").join("index.html"), "sub").unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), SECRET).unwrap();
    std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
    www
}

/// An engine on 127.0.0.1:0 with a control server on 127.0.0.1:0.
pub struct Setup {
    pub server: Option<ControlServer>,
    pub engine: Option<EngineHandle>,
    pub echo_addr: SocketAddr,
    pub control_addr: SocketAddr,
    pub dir: TempDir,
    /// Batches after fan-out; kept drained so the relay never matters.
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Setup {
    pub fn start(token: Option<&str>) -> Setup {
        Self::start_with(token, |_| {})
    }

    pub fn start_with(token: Option<&str>, tweak: impl FnOnce(&mut ControlOptions)) -> Setup {
        let dir = TempDir::new("control");
        let www = web_root(&dir);
        let engine = EngineHandle::spawn(EngineConfig {
            listen: Some("127.0.0.1:0".into()),
            ..EngineConfig::default()
        })
        .expect("engine starts");
        let echo_addr = engine.local_addr().expect("engine listens");
        let mut opts = ControlOptions::new("127.0.0.1:0");
        opts.token = token.map(str::to_owned);
        opts.web_root = Some(www);
        tweak(&mut opts);
        let (server, relay) = ControlServer::attach(&opts, &engine).expect("control starts");
        let drain = std::thread::spawn(move || while relay.recv().is_ok() {});
        Setup {
            control_addr: server.local_addr(),
            server: Some(server),
            engine: Some(engine),
            echo_addr,
            dir,
            drain: Some(drain),
        }
    }

    pub fn server(&self) -> &ControlServer {
        self.server.as_ref().unwrap()
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws{query}", self.control_addr)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        drop(self.server.take());
        drop(self.engine.take());
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }
}

/// An echo client with timeouts.
pub fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s
}

pub fn assert_echo(stream: &mut TcpStream, payload: &[u8]) {
    stream.write_all(payload).unwrap();
    let mut got = vec![0u8; payload.len()];
    stream.read_exact(&mut got).expect("echo comes back");
    assert_eq!(got, payload);
}

/// Send `request` as raw bytes and read the whole response (the server
/// closes after each). Returns (status, headers+body as text, body bytes).
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = client(addr);
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("response read to EOF");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => out[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, text, body)
}

pub fn get(addr: SocketAddr, target: &str) -> (u16, String, Vec<u8>) {
    http_raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
}

pub type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

pub fn connect_ws(url: &str) -> Result<Ws, tungstenite::Error> {
    let (ws, _) = tungstenite::connect(url)?;
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    Ok(ws)
}

/// A viewer as the UI sees the stream: latest counters per connection.
pub struct Viewer {
    pub ws: Ws,
    pub batches: u64,
    pub events: u64,
    pub dropped_events: u64,
    pub counters: HashMap<SocketAddr, ConnCounters>,
}

impl Viewer {
    pub fn attach(url: &str) -> Viewer {
        Viewer {
            ws: connect_ws(url).expect("viewer attaches"),
            batches: 0,
            events: 0,
            dropped_events: 0,
            counters: HashMap::new(),
        }
    }

    pub fn absorb(&mut self, batch: Batch) {
        self.batches += 1;
        self.events += batch.events.len() as u64;
        self.dropped_events = self.dropped_events.max(batch.dropped_events);
        for c in batch.counters {
            self.counters.insert(c.peer, c);
        }
    }

    /// Read one message; `Ok(false)` on a read timeout.
    pub fn read_once(&mut self) -> Result<bool, tungstenite::Error> {
        match self.ws.read() {
            Ok(Message::Binary(frame)) => {
                self.absorb(decode_batch(&frame).expect("server frames decode"));
                Ok(true)
            }
            Ok(_) => Ok(true),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Read until `f` gives a value, or fail after [`STEP`].
    pub fn wait_for<R>(&mut self, what: &str, mut f: impl FnMut(&Viewer) -> Option<R>) -> R {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(r) = f(self) {
                return r;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.read_once().expect("viewer connection stays up");
        }
    }

    pub fn send(&mut self, cmd: &Command) {
        self.ws.send(Message::Text(encode_command(cmd))).unwrap();
    }
}

/// Wait until the server ends this connection (close frame, EOF or reset).
/// Returns the close code if a close frame came.
pub fn expect_closed(ws: &mut Ws, what: &str) -> Option<u16> {
    let deadline = Instant::now() + STEP;
    loop {
        assert!(Instant::now() < deadline, "{what}: server did not close");
        match ws.read() {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
}

/// Stop a muxscope process with SIGTERM, as a service manager would;
/// whether it then exited successfully (fails after [`STEP`]).
pub fn stop_on_sigterm(child: &mut std::process::Child) -> bool {
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        assert!(
            Instant::now() < deadline,
            "muxscope did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `muxscope --headless --listen 127.0.0.1:0 ARGS…` as a child, its
/// stdout read line by line; killed when dropped.
pub struct HeadlessChild {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

#[allow(dead_code)] // not every test crate that includes this needs all
impl HeadlessChild {
    pub fn spawn(args: &[&str]) -> HeadlessChild {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_muxscope"))
            .env_remove("MUXSCOPE_TOKEN")
            .args(["--headless", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        HeadlessChild { child, lines }
    }

    /// The first line starting with `prefix` within [`STEP`], and the
    /// lines before it.
    pub fn line_starting(&self, prefix: &str) -> (String, Vec<String>) {
        self.line_within(prefix, STEP)
            .unwrap_or_else(|before| panic!("no line starting with {prefix:?}; got {before:?}"))
    }

    /// The first line starting with `prefix` within `wait`, or the lines
    /// seen instead.
    pub fn line_within(
        &self,
        prefix: &str,
        wait: Duration,
    ) -> Result<(String, Vec<String>), Vec<String>> {
        let deadline = Instant::now() + wait;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok((line, before)),
                Ok(line) => before.push(line),
                Err(_) => return Err(before),
            }
        }
    }

    /// The address it listens on (from its first line).
    pub fn echo_addr(&self) -> SocketAddr {
        let (line, _) = self.line_starting("muxscope listening on ");
        line["muxscope listening on ".len()..].parse().unwrap()
    }

    /// SIGKILL, as a crash would end it (nothing runs after).
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; whether it then exited cleanly.
    pub fn stop(mut self) -> bool {
        stop_on_sigterm(&mut self.child)
    }
}

impl Drop for HeadlessChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs to completion with a deadline; returns (exit code, stdout, stderr).
pub fn run_to_end(mut cmd: std::process::Command) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let (mut out, mut err) = (String::new(), String::new());
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), out, err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("muxscope did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
