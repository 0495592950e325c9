//! Shared helpers for the engine's integration tests.
//!
//! - [`Harness`] runs an in-process engine and drains its batches in a
//!   background thread into a [`Model`] (and, if asked, a viewer's
//!   [`Monitor`]), so the engine never drops events because a test forgot to
//!   read, and tests can wait for conditions. A test can stall the drain to
//!   play a consumer that falls behind.
//! - [`client`] and friends make `std::net::TcpStream` clients with timeouts,
//!   so an engine bug fails a test instead of hanging it.
//! - [`Server`] runs the headless binary as a subprocess and reads its
//!   descriptor count and CPU time from `/proc`.
//!
//! Every loop here is bounded by a deadline.

#![allow(dead_code)]

use muxscope::engine::{EngineConfig, EngineHandle};
use muxscope::monitor::Monitor;
use muxscope::protocol::{
    Batch, CloseReason, Command, ConnCounters, ConnDetail, ConnId, ConnState, EngineStats, Event,
    EventKind,
};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command as Process, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest any single step of a test may wait before it counts as failed.
pub const STEP: Duration = Duration::from_secs(10);

// ---- in-process engine ---------------------------------------------------

/// Everything the drain thread learned from the batches so far.
#[derive(Debug, Default)]
pub struct Model {
    pub batches: u64,
    pub last_seq: u64,
    /// All events in arrival order (unless the harness was told not to keep
    /// them); the maps below are kept either way.
    pub events: Vec<Event>,
    pub events_received: u64,
    /// Latest counters per connection, including final (`Closed`) ones.
    pub counters: HashMap<ConnId, ConnCounters>,
    /// Peer address (the client's local address) → connection ids, oldest
    /// first, from `Accepted` events. A peer address can recur: once a
    /// client's connection is gone, the kernel may give its port to a new one.
    pub accepted: HashMap<SocketAddr, Vec<ConnId>>,
    /// The highest id seen in an `Accepted` event.
    pub max_accepted: u64,
    pub closed: HashMap<ConnId, CloseReason>,
    pub stats: Option<EngineStats>,
    pub details: HashMap<ConnId, ConnDetail>,
    pub dropped_events: u64,
    /// Problems the drain thread saw in the stream itself.
    pub violations: Vec<String>,
    /// A viewer's model fed with every batch, if the harness was asked for
    /// one ([`Harness::start_with_monitor`]).
    pub monitor: Option<Monitor>,
    /// The batch channel disconnected: the engine thread has ended.
    pub engine_gone: bool,
    /// Answers to `TryScenario`, in arrival order.
    pub tries: Vec<Result<muxscope::scenario::TryReport, String>>,
}

impl Model {
    fn absorb(&mut self, batch: Batch, keep_events: bool) {
        if let Some(monitor) = &mut self.monitor {
            monitor.absorb(batch.clone());
        }
        self.batches += 1;
        if batch.seq <= self.last_seq {
            self.violations
                .push(format!("batch seq {} after {}", batch.seq, self.last_seq));
        }
        self.last_seq = batch.seq;
        if batch.dropped_events < self.dropped_events {
            self.violations.push(format!(
                "dropped_events went down from {} to {}",
                self.dropped_events, batch.dropped_events
            ));
        }
        // After any loss, the first batch that gets through resynchronises
        // its consumer with the list of open connections.
        if batch.dropped_events > self.dropped_events && batch.open_conns.is_none() {
            self.violations.push(format!(
                "batch {} follows a loss ({} events dropped in all) but has no open_conns",
                batch.seq, batch.dropped_events
            ));
        }
        if let Some(open) = &batch.open_conns {
            for id in open.iter().filter(|id| self.closed.contains_key(id)) {
                self.violations.push(format!(
                    "batch {} lists {id} as open after it closed",
                    batch.seq
                ));
            }
        }
        self.dropped_events = batch.dropped_events;
        self.events_received += batch.events.len() as u64;
        for event in &batch.events {
            match &event.kind {
                EventKind::Accepted { peer } => {
                    if let Some(id) = event.conn {
                        self.accepted.entry(*peer).or_default().push(id);
                        self.max_accepted = self.max_accepted.max(id.0);
                    }
                }
                EventKind::Closed { reason } => {
                    if let Some(id) = event.conn {
                        self.closed.insert(id, reason.clone());
                    }
                }
                _ => {}
            }
        }
        if keep_events {
            self.events.extend(batch.events);
        }
        for c in batch.counters {
            // A closed connection's final counters are final: live counters
            // of the same id must never come after them.
            if let Some(old) = self.counters.get(&c.id)
                && matches!(old.state, ConnState::Closed(_))
                && !matches!(c.state, ConnState::Closed(_))
            {
                self.violations.push(format!(
                    "live counters for {} after its final counters",
                    c.id
                ));
            }
            self.counters.insert(c.id, c);
        }
        if let Some(s) = batch.stats {
            self.stats = Some(s);
        }
        for d in batch.details {
            self.details.insert(d.counters.id, d);
        }
        self.tries.extend(batch.tries);
    }

    /// The latest connection accepted from `peer`.
    pub fn id_of(&self, peer: SocketAddr) -> Option<ConnId> {
        self.accepted.get(&peer).and_then(|ids| ids.last().copied())
    }

    pub fn events_of(&self, id: ConnId) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.conn == Some(id))
    }
}

struct Shared {
    model: Mutex<Model>,
    changed: Condvar,
    /// While set, the drain thread takes no batches.
    stalled: Mutex<bool>,
    unstalled: Condvar,
}

/// An in-process engine whose batches are drained into a [`Model`].
pub struct Harness {
    engine: Option<EngineHandle>,
    shared: Arc<Shared>,
    drain: Option<JoinHandle<()>>,
    pub addr: SocketAddr,
}

impl Harness {
    /// Start an engine on `127.0.0.1:0` with `config` (its `listen` is
    /// replaced), keeping every event.
    pub fn start(config: EngineConfig) -> Harness {
        Self::start_with(config, true, false)
    }

    /// Like [`Harness::start`], and also feed every batch to a viewer's
    /// [`Monitor`] (`Model::monitor`).
    pub fn start_with_monitor(config: EngineConfig) -> Harness {
        Self::start_with(config, true, true)
    }

    /// Like [`Harness::start`] but without keeping the event list, for tests
    /// that generate millions of events; the maps are still kept.
    pub fn start_without_event_log(config: EngineConfig) -> Harness {
        Self::start_with(config, false, false)
    }

    fn start_with(config: EngineConfig, keep_events: bool, monitor: bool) -> Harness {
        let engine = EngineHandle::spawn(EngineConfig {
            listen: Some("127.0.0.1:0".into()),
            ..config
        })
        .expect("engine starts");
        let addr = engine.local_addr().expect("engine listens on 127.0.0.1:0");
        let shared = Arc::new(Shared {
            model: Mutex::new(Model {
                monitor: monitor.then(Monitor::default),
                ..Model::default()
            }),
            changed: Condvar::new(),
            stalled: Mutex::new(false),
            unstalled: Condvar::new(),
        });
        let rx = engine.batches().clone();
        let drain_shared = shared.clone();
        // Ends by itself when the engine is dropped (the channel disconnects).
        let drain = std::thread::Builder::new()
            .name("test-drain".into())
            .spawn(move || {
                loop {
                    let mut stalled = drain_shared.stalled.lock().unwrap();
                    while *stalled {
                        stalled = drain_shared.unstalled.wait(stalled).unwrap();
                    }
                    drop(stalled);
                    // Bounded, so that a stall takes effect within 50 ms.
                    let batch = match rx.recv_timeout(Duration::from_millis(50)) {
                        Ok(batch) => batch,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                    };
                    let mut model = drain_shared.model.lock().unwrap();
                    model.absorb(batch, keep_events);
                    drop(model);
                    drain_shared.changed.notify_all();
                }
                drain_shared.model.lock().unwrap().engine_gone = true;
                drain_shared.changed.notify_all();
            })
            .expect("drain thread starts");
        Harness {
            engine: Some(engine),
            shared,
            drain: Some(drain),
            addr,
        }
    }

    pub fn engine(&self) -> &EngineHandle {
        self.engine.as_ref().expect("engine is running")
    }

    /// Send a command; a test fails if the engine refuses it (its command
    /// channel is full), rather than lose it silently.
    pub fn send(&self, cmd: Command) {
        if let Err(e) = self.engine().try_send(cmd) {
            panic!("command not delivered: {}", e.why);
        }
    }

    /// If the engine thread has died, why (its panic message).
    pub fn failure(&mut self) -> Option<String> {
        self.engine.as_mut()?.failure()
    }

    /// Fail the test if the engine thread has died.
    pub fn assert_engine_alive(&mut self) {
        if let Some(why) = self.failure() {
            panic!("{why}");
        }
    }

    /// Stop taking batches, as a consumer that fell behind (at most one
    /// more batch is taken after this returns).
    pub fn stall_consumer(&self) {
        *self.shared.stalled.lock().unwrap() = true;
    }

    /// Take batches again.
    pub fn resume_consumer(&self) {
        *self.shared.stalled.lock().unwrap() = false;
        self.shared.unstalled.notify_all();
    }

    /// Run `f` on the viewer's [`Monitor`]; the harness must have been
    /// started with [`Harness::start_with_monitor`].
    pub fn with_monitor<R>(&self, f: impl FnOnce(&Monitor) -> R) -> R {
        self.with(|m| f(m.monitor.as_ref().expect("harness started with a monitor")))
    }

    /// Run `f` on the model as it is now.
    pub fn with<R>(&self, f: impl FnOnce(&Model) -> R) -> R {
        f(&self.shared.model.lock().unwrap())
    }

    /// Wait until `f` returns `Some`, re-checking after every batch, for at
    /// most `timeout`. `None` if it never did, at once if the engine thread
    /// has ended.
    pub fn wait_until<R>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&Model) -> Option<R>,
    ) -> Option<R> {
        let deadline = Instant::now() + timeout;
        let mut model = self.shared.model.lock().unwrap();
        loop {
            if let Some(r) = f(&model) {
                return Some(r);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || model.engine_gone {
                return None;
            }
            // Bounded wait; a batch wakes us earlier.
            model = self
                .shared
                .changed
                .wait_timeout(model, left.min(Duration::from_millis(50)))
                .unwrap()
                .0;
        }
    }

    /// [`Harness::wait_until`] with [`STEP`] as timeout that panics with
    /// `what` when it times out.
    pub fn wait_for<R>(&self, what: &str, f: impl FnMut(&Model) -> Option<R>) -> R {
        match self.wait_until(STEP, f) {
            Some(r) => r,
            None => panic!("{} waiting for {what}", self.why_no_answer()),
        }
    }

    /// Why a wait ended without an answer.
    fn why_no_answer(&self) -> String {
        if self.with(|m| m.engine_gone) && self.engine.is_some() {
            "the engine thread died (its panic is printed above)".to_owned()
        } else {
            format!("timed out after {STEP:?}")
        }
    }

    /// Connect a [`client`] and learn its id from its `Accepted` event.
    pub fn connect(&self) -> (TcpStream, ConnId) {
        self.connect_with(client)
    }

    /// Connect a [`client`] to `addr` (a listener other than the first) and
    /// learn its id.
    pub fn connect_to(&self, addr: SocketAddr) -> (TcpStream, ConnId) {
        self.connect_with(|_| client(addr))
    }

    /// Connect with `make` and learn the id from the `Accepted` event.
    ///
    /// Ids only grow, so the new connection's id exceeds every id accepted
    /// before the connect; that tells it apart from an earlier connection
    /// whose port the kernel handed out again.
    pub fn connect_with(&self, make: impl FnOnce(SocketAddr) -> TcpStream) -> (TcpStream, ConnId) {
        let floor = self.with(|m| m.max_accepted);
        let stream = make(self.addr);
        let peer = stream.local_addr().expect("client has a local address");
        let id = self.wait_for(&format!("the Accepted event of {peer}"), |m| {
            m.accepted
                .get(&peer)?
                .iter()
                .copied()
                .find(|id| id.0 > floor)
        });
        (stream, id)
    }

    /// Wait until the counters of `id` satisfy `pred` and return them.
    pub fn wait_counters(
        &self,
        id: ConnId,
        what: &str,
        mut pred: impl FnMut(&ConnCounters) -> bool,
    ) -> ConnCounters {
        let found = self.wait_until(STEP, |m| m.counters.get(&id).filter(|c| pred(c)).cloned());
        match found {
            Some(c) => c,
            None => {
                let last = self.with(|m| m.counters.get(&id).cloned());
                panic!(
                    "{} waiting for counters of {id}: {what}; last seen: {last:#?}",
                    self.why_no_answer()
                )
            }
        }
    }

    /// Wait for `id`'s `Closed` event and return its reason.
    pub fn wait_closed(&self, id: ConnId) -> CloseReason {
        self.wait_for(&format!("{id} to close"), |m| m.closed.get(&id).cloned())
    }

    /// Ask for a `ConnDetail` of `id` taken after this call, and return it.
    pub fn inspect(&self, id: ConnId) -> ConnDetail {
        // Forget an older answer so a fresh one is awaited.
        self.shared.model.lock().unwrap().details.remove(&id);
        self.send(Command::Inspect { conn: id });
        self.wait_for(&format!("Inspect answer for {id}"), |m| {
            m.details.get(&id).cloned()
        })
    }

    /// The kinds of `id`'s events so far, in order.
    pub fn kinds_of(&self, id: ConnId) -> Vec<EventKind> {
        self.with(|m| m.events_of(id).map(|e| e.kind.clone()).collect())
    }

    /// Wait for an event of `id` that `f` picks, and return what it picked.
    pub fn wait_event<R>(
        &self,
        id: ConnId,
        what: &str,
        mut f: impl FnMut(&EventKind) -> Option<R>,
    ) -> R {
        self.wait_for(&format!("{what} of {id}"), |m| {
            m.events_of(id).find_map(|e| f(&e.kind))
        })
    }

    /// Fail if the drain thread saw the stream break its own rules.
    pub fn assert_stream_consistent(&self) {
        let v = self.with(|m| m.violations.clone());
        assert!(v.is_empty(), "batch stream violations: {v:#?}");
    }

    /// Stop the engine, wait for the drain thread to take the last batch,
    /// and return what it learned.
    pub fn shutdown(mut self) -> Model {
        self.stop();
        std::mem::take(&mut *self.shared.model.lock().unwrap())
    }

    fn stop(&mut self) {
        self.resume_consumer();
        if let Some(engine) = self.engine.take() {
            engine.shutdown();
        }
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- clients -------------------------------------------------------------

/// A connected client with read and write timeouts of [`STEP`].
pub fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, STEP).expect("client connects");
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A client like [`client`] whose receive buffer is fixed at (about)
/// `rcvbuf` bytes, which turns off the kernel's autotuning. On loopback the
/// kernel otherwise buffers megabytes, and a server's echo would rarely have
/// to wait in its own queue.
pub fn client_with_rcvbuf(addr: SocketAddr, rcvbuf: usize) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    // Set before connecting, so the advertised window scale matches.
    socket.set_recv_buffer_size(rcvbuf).unwrap();
    socket
        .connect_timeout(&addr.into(), STEP)
        .expect("client connects");
    let s = TcpStream::from(socket);
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A client like [`client`] that connects from 127.0.0.1:`port`, e.g. the
/// port of a client that was just reset (a reset leaves no TIME_WAIT).
/// `None` if the port is taken: tests running beside this one draw their
/// clients' ports from the same range and may have got it first.
pub fn client_from_port(addr: SocketAddr, port: u16) -> Option<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    let local: SocketAddr = ([127, 0, 0, 1], port).into();
    socket.bind(&local.into()).ok()?;
    socket.connect_timeout(&addr.into(), STEP).ok()?;
    let s = TcpStream::from(socket);
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s.set_nodelay(true).unwrap();
    Some(s)
}

/// Read exactly `n` bytes or panic with what went wrong.
pub fn read_n(stream: &mut TcpStream, n: usize, what: &str) -> Vec<u8> {
    let mut buf = vec![0; n];
    if let Err(e) = stream.read_exact(&mut buf) {
        panic!("{what}: reading {n} bytes failed: {e}");
    }
    buf
}

/// Write `payload` and read the same number of bytes back; returns them and
/// the round-trip time.
pub fn round_trip(stream: &mut TcpStream, payload: &[u8]) -> (Vec<u8>, Duration) {
    let t = Instant::now();
    stream.write_all(payload).expect("client writes");
    let back = read_n(stream, payload.len(), "echo");
    (back, t.elapsed())
}

/// Assert that echo works: `payload` comes back unchanged.
pub fn assert_echo(stream: &mut TcpStream, payload: &[u8]) -> Duration {
    let (back, rtt) = round_trip(stream, payload);
    assert_eq!(back, payload, "echo returned different bytes");
    rtt
}

/// Assert that nothing arrives on `stream` for `wait` (no bytes, no EOF).
pub fn assert_silent(stream: &mut TcpStream, wait: Duration, what: &str) {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    let result = stream.read(&mut buf);
    stream.set_read_timeout(Some(STEP)).unwrap();
    match result {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        Ok(0) => panic!("{what}: expected silence, got EOF"),
        Ok(n) => panic!(
            "{what}: expected silence, got {n} bytes: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("{what}: expected silence, got error {e}"),
    }
}

/// Read until EOF, failing on any error (including a timeout).
pub fn read_to_eof(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = stream.read_to_end(&mut out) {
        panic!("{what}: read to EOF failed after {} bytes: {e}", out.len());
    }
    out
}

/// Random bytes from `rng` (seeded by the caller, so a failure can be replayed).
pub fn random_bytes(rng: &mut impl rand::Rng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

/// A cheap position-dependent byte stream, for payloads too big to keep.
pub fn pattern(offset: u64) -> u8 {
    (offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ (offset as u8)
}

/// Compare byte strings without dumping megabytes on failure.
pub fn assert_same_bytes(got: &[u8], expected: &[u8], what: &str) {
    if got == expected {
        return;
    }
    let first_diff = got
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(expected.len()));
    panic!(
        "{what}: got {} bytes, expected {}; first difference at offset {first_diff}",
        got.len(),
        expected.len()
    );
}

/// Raise the soft `RLIMIT_NOFILE` of this process (and so of the children
/// it starts from now on) to its hard limit. `Err` says why a test that
/// needs `need` descriptors cannot run here.
pub fn raise_fd_limit(need: u64) -> Result<u64, String> {
    use rlimit::Resource;
    let (soft, hard) = Resource::NOFILE
        .get()
        .map_err(|e| format!("getrlimit: {e}"))?;
    if hard < need {
        return Err(format!(
            "the hard limit on open files is {hard}, below the {need} this test needs \
             (soft {soft}); raise it with `ulimit -Hn` as root"
        ));
    }
    if soft < hard {
        Resource::NOFILE
            .set(hard, hard)
            .map_err(|e| format!("setrlimit({hard}): {e}"))?;
    }
    Ok(hard)
}

/// Read what `stream` has for us without blocking (at most `max` bytes);
/// the second value is true at EOF or on an error (reset).
pub fn read_available(stream: &mut TcpStream, max: usize) -> (Vec<u8>, bool) {
    stream.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut ended = false;
    while got.len() < max {
        let want = buf.len().min(max - got.len());
        match stream.read(&mut buf[..want]) {
            Ok(0) => {
                ended = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                ended = true;
                break;
            }
        }
    }
    stream.set_nonblocking(false).unwrap();
    (got, ended)
}

/// Close `stream` with an RST (`SO_LINGER` 0) instead of a FIN.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

/// Poll `f` every 10 ms until it returns `Some` or `timeout` passes.
pub fn poll_until<R>(timeout: Duration, mut f: impl FnMut() -> Option<R>) -> Option<R> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(r) = f() {
            return Some(r);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- the headless binary -------------------------------------------------

pub const BIN: &str = env!("CARGO_BIN_EXE_muxscope");

/// The headless binary running as a child process.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    /// Stdout lines after the first, collected by a thread.
    pub lines: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Start `muxscope --headless --listen 127.0.0.1:0 <extra>`, optionally
    /// under `ulimit -n fd_limit`, and wait for its address line.
    pub fn start(extra: &[&str], fd_limit: Option<u32>) -> Server {
        let mut child = spawn_headless(&["--headless", "--listen", "127.0.0.1:0"], extra, fd_limit);
        let pid = child.id();
        let (stderr, _) = collect_stderr(&mut child);
        let stdout = child.stdout.take().expect("stdout is piped");
        let (first_tx, first_rx) = crossbeam_channel::bounded::<String>(1);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let lines_in = lines.clone();
        std::thread::spawn(move || read_stdout(stdout, first_tx, lines_in));
        let first = match first_rx.recv_timeout(STEP) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "headless server printed no first line; stderr: {}",
                    stderr.lock().unwrap()
                );
            }
        };
        let addr = first
            .strip_prefix("muxscope listening on ")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"));
        Server {
            child,
            pid,
            addr,
            lines,
            stderr,
        }
    }

    /// Open descriptors of the server process (including any it inherited).
    pub fn fd_count(&self) -> usize {
        self.fds().len()
    }

    /// The numbers of the server's open descriptors.
    pub fn fds(&self) -> Vec<u32> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .expect("server's /proc/PID/fd is readable")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// utime + stime in clock ticks (100 per second here).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .expect("server's /proc/PID/stat is readable");
        // The command name may contain spaces; fields resume after ')'.
        let rest = &stat[stat.rfind(')').expect("stat has a comm field") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // rest starts at field 3 (state); utime and stime are fields 14, 15.
        let utime: u64 = fields[14 - 3].parse().unwrap();
        let stime: u64 = fields[15 - 3].parse().unwrap();
        utime + stime
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn output_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Send SIGTERM with the `kill` command and wait (bounded) for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let sent = Process::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM {} failed", self.pid);
        match wait_exit(&mut self.child, STEP) {
            Some(status) => status,
            None => panic!("server did not exit within {STEP:?} after SIGTERM"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run the binary with `args` until it exits (bounded); returns its status,
/// stdout and stderr.
pub fn run_headless_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = spawn_headless(args, &[], None);
    let (stderr, stderr_done) = collect_stderr(&mut child);
    let mut stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let status = match wait_exit(&mut child, STEP) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("muxscope {args:?} did not exit within {STEP:?}");
        }
    };
    let out = out.join().unwrap();
    // The pipes reach EOF once the process has exited.
    let _ = stderr_done.join();
    let err = stderr.lock().unwrap().clone();
    (status, out, err)
}

fn spawn_headless(args: &[&str], extra: &[&str], fd_limit: Option<u32>) -> Child {
    let mut cmd = match fd_limit {
        Some(n) => {
            let mut c = Process::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(BIN);
            c
        }
        None => Process::new(BIN),
    };
    cmd.args(args)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("muxscope binary starts")
}

fn collect_stderr(child: &mut Child) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let mut pipe = child.stderr.take().expect("stderr is piped");
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = buf.clone();
    let done = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    (buf, done)
}

fn read_stdout(
    stdout: ChildStdout,
    first: crossbeam_channel::Sender<String>,
    lines: Arc<Mutex<Vec<String>>>,
) {
    let mut reader = BufReader::new(stdout).lines();
    match reader.next() {
        Some(Ok(line)) => {
            let _ = first.send(line);
        }
        _ => return,
    }
    for line in reader.map_while(Result::ok) {
        lines.lock().unwrap().push(line);
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    poll_until(timeout, || child.try_wait().ok().flatten())
}
