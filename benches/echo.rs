//! Echo benchmark: muxscope's engine against a bare mio echo loop.
//!
//! Run with `cargo bench --bench echo`. It prints figures; it asserts nothing.
//!
//! Each server runs in a child process (this binary re-executed with
//! `MUXSCOPE_BENCH_ROLE=engine|bare`), so its CPU time, read from
//! `/proc/PID/stat`, excludes the load generator. The child prints its port,
//! serves until its stdin closes, and is killed by the parent at the end
//! even on error.
//!
//! - `engine`: `EngineHandle::spawn` on 127.0.0.1:0, with its whole event
//!   stream folded by a consumer thread the way a viewer does (every event
//!   looked at, latest counters per connection, last stats).
//! - `bare`: the reference: one thread, edge-triggered mio, a slab of
//!   connections, read until `WouldBlock`, write back directly, buffer and
//!   WRITABLE interest only when a write would block.
//!
//! The load is closed-loop (send a request, wait for the whole echo,
//! repeat), driven by a few threads that each run many connections on one
//! mio poll. Every load runs flat out and rate-limited at a fixed request
//! rate: on 2 vCPUs the load generator competes with the server for CPU, so
//! CPU per request at a fixed rate is the fair comparison.
//!
//! Each (server, load) gets `MUXSCOPE_BENCH_SECS` of measurement, split into
//! `MUXSCOPE_BENCH_ROUNDS` windows that alternate engine, bare, bare, engine,
//! each after a warm-up on a fresh child, so that whatever else the machine
//! does at the time weighs on both servers alike. The table shows the median
//! throughput of the rounds and their pooled CPU per request. The whole run
//! takes about two minutes.
//!
//! Knobs (environment): `MUXSCOPE_BENCH_SECS` (default 10),
//! `MUXSCOPE_BENCH_ROUNDS` (default 4), `MUXSCOPE_BENCH_WARMUP_SECS`
//! (default 1), `MUXSCOPE_BENCH_THREADS` (load threads, default 2),
//! `MUXSCOPE_BENCH_RATE` (the fixed rate, default 10000 req/s),
//! `MUXSCOPE_BENCH_IDLE` (idle connections, default 10000),
//! `MUXSCOPE_BENCH_FILTER` (run only rows whose label contains it, e.g.
//! `@10k`, `50x512`, `idle`), `MUXSCOPE_BENCH_PERF=DIR` (`perf record -g`
//! each server child during its measurement windows, into DIR). Diagnostic
//! knobs that move the engine away from its defaults:
//! `MUXSCOPE_BENCH_TRANSCRIPT` (bytes kept per direction, 0 = off),
//! `MUXSCOPE_BENCH_FLUSH_MS`. And `MUXSCOPE_BENCH_FAULT` (faults for every
//! connection of the engine, in `--fault` grammar, e.g. `latency=50ms`):
//! then the reference is the same engine without the faults (`plain`),
//! in the same alternating rounds, and the CPU target is 1.5x. Likewise
//! `MUXSCOPE_BENCH_SCENARIO=FILE` (a scenario every connection runs, e.g.
//! `benches/twenty-rules.muxscope-scenario.ron`; the requests are lines),
//! and `MUXSCOPE_BENCH_RECORD=DIR` (the engine records everything into a
//! file in DIR, deleted after each run; the target is 1.25x, and the
//! summary says how many MB per minute the recording grew).

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use muxscope::engine::{EngineConfig, EngineHandle};
use muxscope::protocol::{Batch, ConnCounters, ConnId, EngineStats, Event, EventKind};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const ROLE_ENV: &str = "MUXSCOPE_BENCH_ROLE";
const READ_BUF: usize = 64 * 1024;

const TARGET_THROUGHPUT: f64 = 0.90;
const TARGET_CPU: f64 = 1.15;
/// With `MUXSCOPE_BENCH_FAULT`: the engine under the faults against the
/// same engine without them.
const TARGET_CPU_UNDER_FAULTS: f64 = 1.5;
/// The knob that gives the engine child its faults.
const FAULT_ENV: &str = "MUXSCOPE_BENCH_FAULT";
/// The knob that gives the engine child a scenario (a file).
const SCENARIO_ENV: &str = "MUXSCOPE_BENCH_SCENARIO";
/// The knob that makes the engine child record (a directory).
const RECORD_ENV: &str = "MUXSCOPE_BENCH_RECORD";
/// Recording against the same engine not recording.
const TARGET_CPU_RECORDING: f64 = 1.25;
const TARGET_RSS: f64 = 512.0;

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let outcome = match std::env::var(ROLE_ENV).as_deref() {
        Ok("engine") => child_engine(),
        Ok("bare") => child_bare(),
        Ok(other) => Err(format!("unknown {ROLE_ENV}={other}")),
        Err(_) => run_parent(),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo bench: {e}");
            ExitCode::FAILURE
        }
    }
}

// ==== server children =======================================================

/// Blocks until the parent closes our stdin (or dies).
fn wait_for_stdin_eof() {
    let mut sink = [0u8; 64];
    let mut stdin = io::stdin();
    while let Ok(n) = stdin.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

fn announce_port(port: u16) -> Result<()> {
    let mut out = io::stdout();
    writeln!(out, "PORT {port}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot report the port: {e}"))
}

/// What a viewer folds the engine's stream into.
#[derive(Default)]
struct Viewer {
    batches: u64,
    events: u64,
    by_kind: [u64; muxscope::protocol::KIND_NAMES.len()],
    dropped: u64,
    counters: HashMap<ConnId, ConnCounters>,
    stats: Option<EngineStats>,
}

impl Viewer {
    fn absorb(&mut self, batch: Batch) {
        self.batches += 1;
        self.events += batch.events.len() as u64;
        for event in &batch.events {
            let slot = match &event.kind {
                EventKind::Readiness(_) => 0,
                EventKind::Accepted { .. } => 1,
                EventKind::Read { .. } => 2,
                EventKind::Wrote { .. } => 3,
                EventKind::WouldBlock { .. } => 4,
                EventKind::Queued { .. } => 5,
                EventKind::Backpressure { .. } => 6,
                EventKind::ReadPaused { .. } => 7,
                EventKind::Injected { .. } => 8,
                EventKind::PeerHalfClosed => 9,
                EventKind::Kicked { .. } => 10,
                EventKind::Closed { .. } => 11,
                EventKind::AcceptError { .. } => 12,
                EventKind::AcceptResumed => 13,
                EventKind::Listening { .. } => 14,
                EventKind::ListenFailed { .. } => 15,
                EventKind::ListenStopped => 16,
                EventKind::ModeChanged { .. } => 17,
                EventKind::InjectRefused { .. } => 18,
                EventKind::FaultsSet { .. } => 19,
                EventKind::FaultHeld { .. } => 20,
                EventKind::AcceptFaultSet { .. } => 21,
                EventKind::RuleFired { .. } => 22,
                EventKind::FramingError { .. } => 23,
                EventKind::ScenarioSet { .. } => 24,
                EventKind::ScenarioRefused { .. } => 25,
                EventKind::RecordingStarted { .. } => 26,
                EventKind::RecordingStopped { .. } => 27,
                EventKind::ReplayDiverged { .. } => 28,
                EventKind::Lint { .. } => 29,
            };
            self.by_kind[slot] += 1;
        }
        for c in batch.counters {
            self.counters.insert(c.id, c);
        }
        if let Some(stats) = batch.stats {
            self.stats = Some(stats);
        }
        self.dropped = self.dropped.max(batch.dropped_events);
    }
}

fn child_engine() -> Result<()> {
    let defaults = EngineConfig::default();
    // The defaults unless a diagnostic knob says otherwise.
    let config = EngineConfig {
        listen: Some("127.0.0.1:0".to_owned()),
        transcript_limit: env_or("MUXSCOPE_BENCH_TRANSCRIPT", defaults.transcript_limit),
        flush_interval: Duration::from_secs_f64(
            env_or(
                "MUXSCOPE_BENCH_FLUSH_MS",
                defaults.flush_interval.as_secs_f64() * 1e3,
            ) / 1e3,
        ),
        ..defaults
    };
    // Faults for every connection, in `--fault` grammar.
    let config = match std::env::var(FAULT_ENV) {
        Ok(spec) => {
            let plan =
                muxscope::faults::spec::parse(&spec).map_err(|e| format!("{FAULT_ENV}: {e}"))?;
            EngineConfig {
                faults: plan.faults,
                accept_fault: plan.accept,
                ..config
            }
        }
        Err(_) => config,
    };
    // A scenario every connection runs, from a file.
    let config = match std::env::var_os(SCENARIO_ENV) {
        Some(path) => {
            let (file, scenario) = muxscope::cli::load_scenario(std::path::Path::new(&path))
                .map_err(|e| format!("{SCENARIO_ENV}: {e}"))?;
            EngineConfig {
                mode: file.otherwise.into(),
                scenario: Some(Arc::new(scenario)),
                ..config
            }
        }
        None => config,
    };
    // A recording of everything, into a file removed at the end.
    let recording = std::env::var_os(RECORD_ENV)
        .map(|dir| std::path::Path::new(&dir).join(format!("bench-{}.muxrec", std::process::id())));
    let config = EngineConfig {
        record: recording
            .clone()
            .map(|path| muxscope::record::writer::RecordingConfig {
                path,
                max_bytes: None,
                at_cap: muxscope::record::writer::AtCap::Stop,
            }),
        ..config
    };
    let started = Instant::now();
    let engine = EngineHandle::spawn(config).map_err(|e| format!("engine: {e}"))?;
    let addr = engine
        .local_addr()
        .ok_or_else(|| format!("engine did not listen: {:?}", engine.initial_listen()))?;
    let batches = engine.batches().clone();
    let consumer = thread::Builder::new()
        .name("viewer".into())
        .spawn(move || {
            let mut viewer = Viewer::default();
            for batch in batches.iter() {
                viewer.absorb(batch);
            }
            viewer
        })
        .map_err(|e| format!("viewer thread: {e}"))?;
    announce_port(addr.port())?;
    wait_for_stdin_eof();
    engine.shutdown();
    let viewer = consumer.join().map_err(|_| "viewer panicked".to_owned())?;
    let recorded = match &recording {
        Some(path) => {
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let _ = std::fs::remove_file(path);
            let minutes = started.elapsed().as_secs_f64() / 60.0;
            let lost = viewer
                .stats
                .as_ref()
                .and_then(|s| s.recording.as_ref())
                .map_or(0, |r| r.lost_events);
            format!(
                " recorded={:.1}MB ({:.1} MB/min, {lost} events lost)",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / minutes
            )
        }
        None => String::new(),
    };
    let accepted = viewer.stats.as_ref().map_or(0, |s| s.accepted_total);
    // What the viewer's own table holds (hashbrown: one control byte per
    // bucket), to tell it apart from the engine's memory in the RSS figure.
    let table_bytes =
        viewer.counters.capacity() * (std::mem::size_of::<(ConnId, ConnCounters)>() + 1);
    println!(
        "SUMMARY events={} reads={} batches={} dropped={} accepted={} viewer_table={}KiB \
         (Event {} B, ConnCounters {} B){recorded}",
        viewer.events,
        viewer.by_kind[2],
        viewer.batches,
        viewer.dropped,
        accepted,
        table_bytes / 1024,
        std::mem::size_of::<Event>(),
        std::mem::size_of::<ConnCounters>(),
    );
    Ok(())
}

fn child_bare() -> Result<()> {
    let listener = bind_listener().map_err(|e| format!("bare: bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    announce_port(port)?;
    thread::spawn(|| {
        wait_for_stdin_eof();
        println!("SUMMARY bare");
        let _ = io::stdout().flush();
        std::process::exit(0);
    });
    bare_loop(listener).map_err(|e| format!("bare: {e}"))
}

/// Like the engine's listener: non-blocking, SO_REUSEADDR, backlog 4096
/// (mio's own `bind` uses 128, which a burst of 10k connects overflows).
fn bind_listener() -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(TcpListener::from_std(socket.into()))
}

struct BareConn {
    stream: TcpStream,
    /// Bytes the socket did not take; non-empty only while WRITABLE is
    /// registered, and reading waits until it is flushed.
    pending: Vec<u8>,
}

fn bare_loop(mut listener: TcpListener) -> io::Result<()> {
    const LISTENER: Token = Token(usize::MAX);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Slab<BareConn> = Slab::new();
    let mut buf = vec![0u8; READ_BUF];
    // Diagnostic: echoes held this long (a constant delay, so a FIFO is in
    // time order), to measure what delaying replies costs any server.
    let delay = std::env::var("MUXSCOPE_BENCH_BARE_DELAY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    let mut held: VecDeque<(Instant, usize, Vec<u8>)> = VecDeque::new();
    loop {
        let timeout = held
            .front()
            .map(|(due, ..)| due.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            let token = Token(entry.key());
                            poll.registry()
                                .register(&mut stream, token, Interest::READABLE)?;
                            entry.insert(BareConn {
                                stream,
                                pending: Vec::new(),
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // Out of descriptors and the like: not expected under
                        // this benchmark's limits; give up on this edge.
                        Err(_) => break,
                    }
                }
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let keep = match delay {
                Some(d) => bare_hold(conn, &mut buf, key, d, &mut held).unwrap_or(false),
                None => bare_serve(conn, &mut buf, &poll, event.token()).unwrap_or(false),
            };
            if !keep {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, ..)| *due <= now) {
            let Some((_, key, bytes)) = held.pop_front() else {
                break;
            };
            // 64-byte echoes to a reading client: a short write would be a
            // broken measurement, not something to recover from.
            if let Some(conn) = conns.get_mut(key) {
                let _ = conn.stream.write(&bytes);
            }
        }
    }
}

/// Read until `WouldBlock`, holding each read's echo in `held` until
/// `delay` passed. Returns whether the connection stays open.
fn bare_hold(
    conn: &mut BareConn,
    buf: &mut [u8],
    key: usize,
    delay: Duration,
    held: &mut VecDeque<(Instant, usize, Vec<u8>)>,
) -> io::Result<bool> {
    loop {
        match conn.stream.read(buf) {
            Ok(0) => return Ok(false),
            Ok(n) => held.push_back((Instant::now() + delay, key, buf[..n].to_vec())),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Returns whether the connection stays open.
fn bare_serve(conn: &mut BareConn, buf: &mut [u8], poll: &Poll, token: Token) -> io::Result<bool> {
    if !conn.pending.is_empty() {
        let mut written = 0;
        while written < conn.pending.len() {
            match conn.stream.write(&conn.pending[written..]) {
                Ok(0) => return Ok(false),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        conn.pending.drain(..written);
        if !conn.pending.is_empty() {
            return Ok(true);
        }
        poll.registry()
            .reregister(&mut conn.stream, token, Interest::READABLE)?;
        // The readable edge may have come and gone while we held back.
    }
    loop {
        match conn.stream.read(buf) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                let mut written = 0;
                while written < n {
                    match conn.stream.write(&buf[written..n]) {
                        Ok(0) => return Ok(false),
                        Ok(w) => written += w,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                if written < n {
                    conn.pending.extend_from_slice(&buf[written..n]);
                    poll.registry().reregister(
                        &mut conn.stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    // Stop reading until the peer drains what we owe it.
                    return Ok(true);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

// ==== the parent: child control ============================================

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Role {
    Engine,
    /// The engine without `MUXSCOPE_BENCH_FAULT`, `MUXSCOPE_BENCH_SCENARIO`
    /// and `MUXSCOPE_BENCH_RECORD`: the reference when those are measured.
    Plain,
    Bare,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Engine => "engine",
            Role::Plain => "plain",
            Role::Bare => "bare",
        }
    }

    /// The `MUXSCOPE_BENCH_ROLE` the child runs as.
    fn child_role(self) -> &'static str {
        match self {
            Role::Engine | Role::Plain => "engine",
            Role::Bare => "bare",
        }
    }
}

/// A server child. Dropping it kills the process.
struct Server {
    role: Role,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    port: u16,
}

impl Server {
    fn start(role: Role) -> Result<Server> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut command = Command::new(exe);
        if role == Role::Plain {
            command
                .env_remove(FAULT_ENV)
                .env_remove(SCENARIO_ENV)
                .env_remove(RECORD_ENV);
        }
        let mut child = command
            .env(ROLE_ENV, role.child_role())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the {} child: {e}", role.name()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        // Build the guard first so that every error below kills the child.
        let (tx, lines) = mpsc::channel();
        let mut server = Server {
            role,
            child,
            stdin,
            lines,
            port: 0,
        };
        let stdout = stdout.ok_or("child has no stdout")?;
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = server.line(Duration::from_secs(10))?;
        server.port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| format!("{} child said {line:?}, not its port", role.name()))?;
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn line(&self, timeout: Duration) -> Result<String> {
        self.lines
            .recv_timeout(timeout)
            .map_err(|_| format!("{} child stopped talking", self.role.name()))
    }

    /// utime + stime of the whole process (all threads), in clock ticks.
    fn cpu_ticks(&self) -> Result<u64> {
        let path = format!("/proc/{}/stat", self.pid());
        let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        // The command name may hold spaces; fields resume after its ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
        let field = |i: usize| -> Result<u64> {
            fields
                .get(i - 3)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| format!("{path}: no field {i}"))
        };
        Ok(field(14)? + field(15)?)
    }

    /// Run time of each thread in nanoseconds, from the scheduler, keyed by
    /// thread id, with the thread's name; `None` where the kernel does not
    /// provide schedstat.
    fn thread_cpu_ns(&self) -> Option<ThreadTimes> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid())).ok()?;
        let mut times = ThreadTimes::new();
        for task in tasks {
            let dir = task.ok()?.path();
            let tid: u32 = dir.file_name()?.to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(dir.join("schedstat")).ok()?;
            let ns = text.split_whitespace().next()?.parse::<u64>().ok()?;
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            times.insert(tid, (name.trim().to_owned(), ns));
        }
        Some(times)
    }

    fn rss_kb(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("{path}: no VmRSS"))
    }

    fn open_fds(&self) -> Result<usize> {
        let path = format!("/proc/{}/fd", self.pid());
        std::fs::read_dir(&path)
            .map(|d| d.count())
            .map_err(|e| format!("{path}: {e}"))
    }

    /// Close the child's stdin so it shuts down, and collect its summary.
    fn finish(mut self) -> Option<String> {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(s) = line.strip_prefix("SUMMARY ") {
                        return Some(s.to_owned());
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

// ==== the parent: load generation ===========================================

#[derive(Copy, Clone, Debug)]
struct Load {
    conns: usize,
    size: usize,
    /// Total requests per second over all connections; `None` is flat out.
    rate: Option<f64>,
}

impl Load {
    fn label(&self) -> String {
        let shape = format!("{}x{} B", self.conns, self.size);
        match self.rate {
            None => format!("{shape} closed loop"),
            Some(r) => format!("{shape} @{}k/s", r / 1000.0),
        }
    }
}

type ThreadTimes = std::collections::BTreeMap<u32, (String, u64)>;

/// One measurement window of one server.
#[derive(Clone, Debug, Default)]
struct Measured {
    requests: u64,
    secs: f64,
    /// utime + stime of the server process, from `/proc/PID/stat`.
    cpu_ticks: u64,
    /// The same from the scheduler's per-thread nanosecond counters
    /// (`/proc/PID/task/*/schedstat`), as a finer-grained cross-check and
    /// to tell the engine's loop from its viewer: (thread name, ns).
    threads: Option<Vec<(String, u64)>>,
    /// The server's VmRSS at the end of the window.
    rss_kb: u64,
}

impl Measured {
    fn req_per_sec(&self) -> f64 {
        self.requests as f64 / self.secs
    }

    fn cpu_secs(&self, ticks_per_sec: f64) -> f64 {
        self.cpu_ticks as f64 / ticks_per_sec
    }

    fn cpu_us_per_req(&self, ticks_per_sec: f64) -> f64 {
        self.cpu_secs(ticks_per_sec) * 1e6 / self.requests as f64
    }

    fn precise_us_per_req(&self) -> Option<f64> {
        let total: u64 = self.threads.as_ref()?.iter().map(|(_, ns)| ns).sum();
        Some(total as f64 / 1e3 / self.requests as f64)
    }

    /// Per-thread µs per request, e.g. `muxscope-engine 11.20 + viewer 1.30`.
    fn thread_breakdown(&self) -> String {
        let Some(threads) = &self.threads else {
            return String::new();
        };
        let parts: Vec<String> = threads
            .iter()
            .filter(|(_, ns)| *ns > 0)
            .map(|(name, ns)| format!("{name} {:.2}", *ns as f64 / 1e3 / self.requests as f64))
            .collect();
        parts.join(" + ")
    }
}

/// What the table shows for one server under one load. Throughput is the
/// median of the rounds, which shrugs off a round that something else on the
/// machine disturbed. CPU per request pools the rounds (all CPU time over
/// all requests), from schedstat nanoseconds when the kernel has them and
/// from 10 ms ticks otherwise.
#[derive(Clone, Copy, Debug)]
struct Figures {
    req_per_sec: f64,
    cpu_us_per_req: f64,
}

impl Figures {
    fn of(rounds: &[Measured], ticks_per_sec: f64) -> Figures {
        let mut rates: Vec<f64> = rounds.iter().map(Measured::req_per_sec).collect();
        rates.sort_by(f64::total_cmp);
        let n = rates.len();
        let req_per_sec = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => rates[n / 2],
            _ => (rates[n / 2 - 1] + rates[n / 2]) / 2.0,
        };
        let requests: u64 = rounds.iter().map(|m| m.requests).sum();
        // The scheduler's nanosecond counters where every round has them:
        // at 10k req/s a round is only ~20 ticks, so a tick either way
        // would move the figure by 5%.
        let precise_ns: Option<u64> = rounds
            .iter()
            .map(|m| Some(m.threads.as_ref()?.iter().map(|(_, ns)| ns).sum::<u64>()))
            .sum();
        let cpu_us = match precise_ns {
            Some(ns) => ns as f64 / 1e3,
            None => rounds.iter().map(|m| m.cpu_ticks).sum::<u64>() as f64 / ticks_per_sec * 1e6,
        };
        Figures {
            req_per_sec,
            cpu_us_per_req: cpu_us / requests.max(1) as f64,
        }
    }
}

/// One load thread's completion count, alone on its cache line.
#[repr(align(64))]
#[derive(Default)]
struct Counter(AtomicU64);

struct Client {
    stream: TcpStream,
    written: usize,
    received: usize,
}

struct Settings {
    threads: usize,
    warmup: Duration,
    rounds: usize,
    /// `measure` split over `rounds` alternating windows per server.
    measure_round: Duration,
    filter: String,
    perf_dir: Option<String>,
    rate: f64,
    idle: usize,
    ticks_per_sec: f64,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn connect(addr: SocketAddr) -> Result<std::net::TcpStream> {
    std::net::TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))
}

fn run_load(server: &Server, load: Load, s: &Settings) -> Result<Measured> {
    let addr = server.addr();
    let threads = s.threads.clamp(1, load.conns);
    let mut groups: Vec<Vec<std::net::TcpStream>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..load.conns {
        let stream = connect(addr)?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_nonblocking(true))
            .map_err(|e| format!("socket options: {e}"))?;
        groups[i % threads].push(stream);
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Stop the load threads whatever happens below.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop_guard = StopOnDrop(stop.clone());
    let counters: Vec<Arc<Counter>> = (0..threads).map(|_| Arc::default()).collect();
    let mut workers: Vec<JoinHandle<io::Result<()>>> = Vec::new();
    for (group, counter) in groups.into_iter().zip(&counters) {
        let thread_stop = stop.clone();
        let counter = counter.clone();
        let rate = load.rate.map(|r| r / threads as f64);
        let size = load.size;
        let worker = thread::Builder::new()
            .name("load".into())
            .spawn(move || drive(group, size, rate, &thread_stop, &counter))
            .map_err(|e| format!("load thread: {e}"))?;
        workers.push(worker);
    }

    let completed = || -> u64 { counters.iter().map(|c| c.0.load(Ordering::Relaxed)).sum() };
    thread::sleep(s.warmup);
    let profiler = s
        .perf_dir
        .as_deref()
        .map(|dir| Profiler::start(dir, server, &load))
        .transpose()?;
    let (t0, n0, c0, p0) = (
        Instant::now(),
        completed(),
        server.cpu_ticks()?,
        server.thread_cpu_ns(),
    );
    thread::sleep(s.measure_round);
    let (t1, n1, c1, p1) = (
        Instant::now(),
        completed(),
        server.cpu_ticks()?,
        server.thread_cpu_ns(),
    );
    if let Some(p) = profiler {
        p.stop();
    }
    let rss_kb = server.rss_kb()?;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("load thread failed: {e}")),
            Err(_) => return Err("load thread panicked".to_owned()),
        }
    }
    let requests = n1.saturating_sub(n0);
    if requests == 0 {
        return Err(format!("{}: no request completed", load.label()));
    }
    Ok(Measured {
        requests,
        secs: (t1 - t0).as_secs_f64(),
        cpu_ticks: c1.saturating_sub(c0),
        rss_kb,
        threads: p0.zip(p1).map(|(before, after)| {
            after
                .into_iter()
                .map(|(tid, (name, ns))| {
                    let was = before.get(&tid).map_or(0, |(_, b)| *b);
                    (name, ns.saturating_sub(was))
                })
                .collect()
        }),
    })
}

/// `perf record` of one server child during a measurement window, for
/// `MUXSCOPE_BENCH_PERF=DIR`.
struct Profiler(Child);

impl Profiler {
    fn start(dir: &str, server: &Server, load: &Load) -> Result<Profiler> {
        let name = format!(
            "{dir}/{}-{}.data",
            server.role.name(),
            load.label().replace([' ', '/', '@'], "_")
        );
        let child = Command::new("perf")
            .args(["record", "-q", "-F", "4999", "-g", "-o", &name, "-p"])
            .arg(server.pid().to_string())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("perf: {e}"))?;
        // perf needs a moment to attach.
        thread::sleep(Duration::from_millis(200));
        Ok(Profiler(child))
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Closed-loop driver of some connections on one poll. With `rate`, a
/// connection whose echo came back waits in `idle` until the schedule lets
/// the next request go.
fn drive(
    streams: Vec<std::net::TcpStream>,
    size: usize,
    rate: Option<f64>,
    stop: &AtomicBool,
    counter: &Counter,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut request: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    // A line, so a scenario with line framing sees one message per request.
    if let Some(last) = request.last_mut() {
        *last = b'\n';
    }
    let mut buf = vec![0u8; READ_BUF];
    let mut clients = Vec::with_capacity(streams.len());
    for (i, s) in streams.into_iter().enumerate() {
        let mut stream = TcpStream::from_std(s);
        // Both interests once: edges are rare for WRITABLE (only after a
        // write blocked), so nothing is ever re-registered.
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        clients.push(Client {
            stream,
            written: size,
            received: 0,
        });
    }
    let send = |c: &mut Client| -> io::Result<()> {
        while c.written < size {
            match c.stream.write(&request[c.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    let mut idle: VecDeque<usize> = VecDeque::new();
    for (i, c) in clients.iter_mut().enumerate() {
        if rate.is_some() {
            idle.push_back(i);
        } else {
            c.written = 0;
            send(c)?;
        }
    }
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut done: u64 = 0;
    // Tokens that find every connection busy (or the thread descheduled)
    // are kept for at most 50 ms, so a stall does not turn into a long burst.
    let max_debt = rate.map_or(0, |r| (r * 0.05) as u64).max(1);
    while !stop.load(Ordering::Relaxed) {
        let mut timeout = Duration::from_millis(10);
        if let Some(r) = rate {
            let elapsed = start.elapsed().as_secs_f64();
            let allowed = (elapsed * r) as u64;
            sent = sent.max(allowed.saturating_sub(max_debt));
            while sent < allowed {
                let Some(i) = idle.pop_front() else { break };
                let c = &mut clients[i];
                c.written = 0;
                send(c)?;
                sent += 1;
            }
            if !idle.is_empty() {
                let next = (sent + 1) as f64 / r - elapsed;
                timeout = timeout.min(Duration::from_secs_f64(next.max(0.0)));
            }
        }
        counter.0.store(done, Ordering::Relaxed);
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            let i = event.token().0;
            let c = &mut clients[i];
            if event.is_writable() && c.written < size {
                send(c)?;
            }
            if !(event.is_readable() || event.is_read_closed()) {
                continue;
            }
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed a connection",
                        ));
                    }
                    Ok(n) => {
                        c.received += n;
                        // Closed loop: once the whole echo is in, nothing
                        // more can be pending, so skip the WouldBlock read.
                        if c.received >= size {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if c.received > size {
                return Err(io::Error::other("more bytes echoed than sent"));
            }
            if c.received == size && c.written == size {
                c.received = 0;
                done += 1;
                if rate.is_some() {
                    idle.push_back(i);
                } else {
                    c.written = 0;
                    send(c)?;
                }
            }
        }
    }
    counter.0.store(done, Ordering::Relaxed);
    Ok(())
}

/// RSS growth of the server per connection while `idle` connections are
/// held open without traffic, and the server's CPU (% of one core) over
/// the next `IDLE_CPU_WINDOW` (with faults armed, too: an idle engine must
/// not spin on them).
fn idle_rss(role: Role, s: &Settings) -> Result<(f64, f64, Option<String>)> {
    let server = Server::start(role)?;
    thread::sleep(Duration::from_millis(300));
    let before = server.rss_kb()?;
    let fds_before = server.open_fds()?;
    let mut held = Vec::with_capacity(s.idle);
    for _ in 0..s.idle {
        held.push(connect(server.addr())?);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.open_fds()? < fds_before + s.idle {
        if Instant::now() > deadline {
            return Err(format!(
                "{}: only {} of {} connections accepted",
                role.name(),
                server.open_fds()?.saturating_sub(fds_before),
                s.idle
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
    // Let the engine flush and the viewer fold what the accepts produced.
    thread::sleep(Duration::from_millis(700));
    let after = server.rss_kb()?;
    let ticks = server.cpu_ticks()?;
    thread::sleep(IDLE_CPU_WINDOW);
    let idle_cpu =
        (server.cpu_ticks()? - ticks) as f64 / s.ticks_per_sec / IDLE_CPU_WINDOW.as_secs_f64()
            * 100.0;
    for stream in held {
        // RST instead of FIN: no TIME_WAIT pile-up from run to run.
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    }
    let per_conn = (after.saturating_sub(before) * 1024) as f64 / s.idle as f64;
    Ok((per_conn, idle_cpu, server.finish()))
}

/// How long the idle server's CPU is watched.
const IDLE_CPU_WINDOW: Duration = Duration::from_secs(3);
// ==== the parent: the report ================================================

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

fn run_parent() -> Result<()> {
    let measure = Duration::from_secs_f64(env_or("MUXSCOPE_BENCH_SECS", 10.0f64).max(0.5));
    let rounds = env_or("MUXSCOPE_BENCH_ROUNDS", 4usize).max(1);
    let s = Settings {
        threads: env_or("MUXSCOPE_BENCH_THREADS", 2usize).max(1),
        warmup: Duration::from_secs_f64(env_or("MUXSCOPE_BENCH_WARMUP_SECS", 1.0f64).max(0.0)),
        rounds,
        measure_round: measure / rounds as u32,
        filter: std::env::var("MUXSCOPE_BENCH_FILTER").unwrap_or_default(),
        perf_dir: std::env::var("MUXSCOPE_BENCH_PERF").ok(),
        rate: env_or("MUXSCOPE_BENCH_RATE", 10_000.0f64).max(1.0),
        idle: env_or("MUXSCOPE_BENCH_IDLE", 10_000usize).max(1),
        ticks_per_sec: clock_ticks_per_sec(),
    };
    println!(
        "echo bench: {} load threads; per server and load {} alternating rounds of \
         {:.1} s warm-up + {:.1} s measured; {} CPUs, {} clock ticks/s, load average {}",
        s.threads,
        s.rounds,
        s.warmup.as_secs_f64(),
        s.measure_round.as_secs_f64(),
        thread::available_parallelism().map_or(0, |n| n.get()),
        s.ticks_per_sec,
        loadavg()
    );
    let tps = s.ticks_per_sec;
    // Under faults the question is what they cost the engine, so the
    // reference is the engine without them; otherwise the bare loop.
    let under_faults =
        std::env::var_os(FAULT_ENV).is_some() || std::env::var_os(SCENARIO_ENV).is_some();
    let recording = std::env::var_os(RECORD_ENV).is_some();
    let (roles, target_cpu) = if recording {
        ([Role::Engine, Role::Plain], TARGET_CPU_RECORDING)
    } else if under_faults {
        ([Role::Engine, Role::Plain], TARGET_CPU_UNDER_FAULTS)
    } else {
        ([Role::Engine, Role::Bare], TARGET_CPU)
    };
    let shapes = [(50, 512), (1000, 64)];
    let mut rows: Vec<(Load, Figures, Figures)> = Vec::new();
    for (conns, size) in shapes {
        for rate in [None, Some(s.rate)] {
            let load = Load { conns, size, rate };
            if !load.label().contains(&s.filter) {
                continue;
            }
            let mut rounds: [Vec<Measured>; 2] = [Vec::new(), Vec::new()];
            for round in 0..s.rounds {
                // engine, bare, bare, engine, ...: a drift in what else the
                // machine does hits both servers alike.
                let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
                for slot in order {
                    let role = roles[slot];
                    let server = Server::start(role)?;
                    let m = run_load(&server, load, &s)
                        .map_err(|e| format!("{} under {}: {e}", role.name(), load.label()))?;
                    let summary = server.finish();
                    println!(
                        "  {:<22} {:<6} {:>7.0} req/s  {:>6.2} us/req (schedstat {}: {})  \
                         server CPU {:>5.1}%  RSS {:.1} MiB{}",
                        load.label(),
                        role.name(),
                        m.req_per_sec(),
                        m.cpu_us_per_req(tps),
                        m.precise_us_per_req()
                            .map_or_else(|| "n/a".to_owned(), |u| format!("{u:.2}")),
                        m.thread_breakdown(),
                        m.cpu_secs(tps) / m.secs * 100.0,
                        m.rss_kb as f64 / 1024.0,
                        match (summary, role) {
                            (Some(sum), Role::Engine | Role::Plain) => format!("  [{sum}]"),
                            _ => String::new(),
                        }
                    );
                    rounds[slot].push(m);
                }
            }
            let [engine, bare] = rounds.map(|r| Figures::of(&r, tps));
            rows.push((load, engine, bare));
        }
    }
    let mut rss: Option<[f64; 2]> = None;
    if "idle".contains(&s.filter) {
        let mut per_conn = [0.0f64; 2];
        for (slot, role) in roles.into_iter().enumerate() {
            let (bytes, cpu, summary) = idle_rss(role, &s)?;
            println!(
                "  {:<22} {:<6} {:>7.0} B RSS/conn, {:.1}% CPU idle{}",
                format!("{} idle conns", s.idle),
                role.name(),
                bytes,
                cpu,
                match (summary, role) {
                    (Some(sum), Role::Engine | Role::Plain) => format!("  [{sum}]"),
                    _ => String::new(),
                }
            );
            per_conn[slot] = bytes;
        }
        rss = Some(per_conn);
    }

    println!();
    println!(
        "{:<38} {:>10} {:>10} {:>9}  {:<9} result",
        "measurement",
        "engine",
        roles[1].name(),
        format!("eng/{}", roles[1].name()),
        "target"
    );
    println!("{}", "-".repeat(86));
    for (load, engine, bare) in &rows {
        let label = load.label();
        let tput = engine.req_per_sec / bare.req_per_sec;
        let (target, result) = match load.rate {
            None => (
                format!(">= {TARGET_THROUGHPUT:.2}x"),
                verdict(tput >= TARGET_THROUGHPUT),
            ),
            Some(_) => ("(fixed)".to_owned(), ""),
        };
        println!(
            "{:<38} {:>10.0} {:>10.0} {:>8.3}x  {:<9} {}",
            format!("{label}: req/s"),
            engine.req_per_sec,
            bare.req_per_sec,
            tput,
            target,
            result
        );
        let cpu = engine.cpu_us_per_req / bare.cpu_us_per_req;
        println!(
            "{:<38} {:>10.2} {:>10.2} {:>8.3}x  {:<9} {}",
            format!("{label}: server CPU us/req"),
            engine.cpu_us_per_req,
            bare.cpu_us_per_req,
            cpu,
            format!("<= {target_cpu:.2}x"),
            verdict(cpu <= target_cpu)
        );
    }
    if let Some([engine, bare]) = rss {
        println!(
            "{:<38} {:>10.0} {:>10.0} {:>8.3}x  {:<9} {}",
            format!("{} idle conns: RSS B/conn", s.idle),
            engine,
            bare,
            engine / bare.max(1.0),
            format!("<= {TARGET_RSS:.0} B"),
            verdict(engine <= TARGET_RSS)
        );
    }
    println!();
    println!(
        "Server CPU = run time of all server threads (engine: event loop + viewer thread) from \
         /proc/PID/task/*/schedstat in ns (utime+stime ticks of {:.0} ms where schedstat is \
         missing); the table shows the median req/s of the rounds and their pooled CPU per request. \
         On 2 vCPUs the fixed-rate rows are the fair CPU comparison: flat out, the load \
         generator competes with the server for the same cores. Load average at the end: {}.",
        1000.0 / s.ticks_per_sec,
        loadavg()
    );
    Ok(())
}
