//! The io thread of the control endpoint: one `mio` poll over the listening
//! socket, HTTP requests and WebSocket viewers, all non-blocking, over plain
//! TCP or TLS (see [`super::stream`]).
//!
//! A connection starts by sending a request head, which must be complete
//! within the head deadline counted from accept. `/ws` (if allowed)
//! becomes a viewer: tungstenite speaks WebSocket over the same socket, the
//! fan-out thread fills the viewer's bounded frame queue, and this thread
//! moves frames to the socket while it accepts them, reading commands in
//! between. Anything else gets one HTTP response (files streamed in
//! chunks) and is closed.
//!
//! What a viewer sends is bounded (tungstenite's message and frame limits,
//! a token bucket on commands: past it the viewer's socket is not read
//! until it is back within its rate) and checked (a command must decode
//! and pass [`super::vet`]); a viewer that breaks the rules is closed on its
//! own and nothing reaches the engine. A command the engine's (bounded)
//! channel has no room for is held, and that viewer not read, until it is
//! taken. Viewers are pinged; one not heard
//! from within the viewer timeout is dropped and its slot freed.
//!
//! When the engine ends while viewers are attached, each is closed with
//! code 1011 and the reason ([`ControlServer::engine_failed`]).

use super::fanout::{self, Fanout, Frame, Limits, ToFanout};
use super::http::{self, HttpConfig, Parsed, Route};
use super::stream::{self, Stream};
use super::vet::{self, Refusal};
use super::wire::{MAX_VIEWER_MESSAGE, decode_command, encode_batch};
use super::{ControlOptions, check_exposure, resolve_addr};
use crate::engine::{CommandError, EngineHandle, Rejected};
use crate::logging::terminal_safe;
use crate::protocol::{Batch, Command, Event, EventKind, LOCAL_VIEWER, ViewerId};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use rustls::ServerConfig;
use slab::Slab;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

/// Where viewers' commands go (normally the engine's commander). A sink
/// that is full hands the command back (`Err`); the viewer is then not
/// read until it is taken, so nothing is dropped and nothing piles up.
pub type CommandSink = Box<dyn Fn(Command) -> Result<(), Command> + Send>;

/// Ended watches kept for an engine with no room to take them; the engine
/// forgets the oldest watches by itself past a few.
const MAX_UNWATCHED: usize = 256;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;
/// Open connections (HTTP and viewers); more are closed on accept.
const MAX_CONNS: usize = 256;
/// An HTTP response may make no progress for this long.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// After a response, how long the client gets to close its side.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Commands read from one viewer before the others get a turn.
const COMMANDS_PER_STEP: usize = 256;
/// After `accept` fails (e.g. out of descriptors), wait this long.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_millis(500);
/// A file is sent in pieces of this size.
const FILE_CHUNK: usize = 64 * 1024;
/// Once the engine's stream ends, how long viewers wait for the reason
/// before they are closed without it.
const VERDICT_WAIT: Duration = Duration::from_secs(3);
/// What a command costs from the bucket: one, plus one per KiB.
const COST_PER_BYTE: f64 = 1.0 / 1024.0;
/// How soon a command the engine had no room for is offered again.
const SINK_RETRY: Duration = Duration::from_millis(10);

/// A running control endpoint. Dropping it closes every viewer and stops
/// its threads; the engine is not touched.
pub struct ControlServer {
    addr: SocketAddr,
    tls: bool,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    viewers: Arc<AtomicUsize>,
    verdict: Arc<Mutex<Option<String>>>,
    io: Option<JoinHandle<()>>,
    fanout: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ControlServer {
    /// Serve `engine` as described by `opts`. Returns the server and a
    /// channel that receives every batch after it was fanned out (lossy,
    /// for a local consumer such as the headless summary line).
    pub fn attach(
        opts: &ControlOptions,
        engine: &EngineHandle,
    ) -> Result<(ControlServer, Receiver<Batch>), String> {
        let commander = engine.commander();
        Self::start(
            opts,
            engine.batches().clone(),
            Box::new(move |cmd| match commander.try_send(cmd) {
                Err(Rejected {
                    why: CommandError::Full,
                    command,
                }) => Err(command),
                // A stopped engine is reported to viewers when its stream
                // ends.
                Ok(()) | Err(_) => Ok(()),
            }),
        )
    }

    /// Serve batches from `batches` (which this server then consumes alone)
    /// and hand viewers' commands to `commands`.
    pub fn start(
        opts: &ControlOptions,
        batches: Receiver<Batch>,
        commands: CommandSink,
    ) -> Result<(ControlServer, Receiver<Batch>), String> {
        let addr = resolve_addr(&opts.addr)?;
        check_exposure(addr, opts.token.as_deref())?;
        let tls = opts.tls.as_ref().map(stream::load_tls).transpose()?;
        let fail = |e: io::Error| format!("cannot serve the control endpoint on {addr}: {e}");
        let std_listener = std::net::TcpListener::bind(addr).map_err(fail)?;
        std_listener.set_nonblocking(true).map_err(fail)?;
        let mut listener = TcpListener::from_std(std_listener);
        let local = listener.local_addr().map_err(fail)?;
        let poll = Poll::new().map_err(fail)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(fail)?);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(fail)?;

        let (to_fanout, from_io) = crossbeam_channel::unbounded();
        let (relay_tx, relay_rx) = crossbeam_channel::bounded(1024);
        let viewers = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let clock = Arc::new(AtomicU64::new(0));
        let verdict = Arc::new(Mutex::new(None));

        let fanout = {
            let waker = waker.clone();
            let limits = Limits {
                queue_bytes: opts.viewer_queue_bytes.max(1),
                ..Limits::default()
            };
            let state = Fanout::new(limits, clock.clone());
            std::thread::Builder::new()
                .name("muxscope-fanout".into())
                .spawn(move || fanout::run(batches, from_io, relay_tx, waker, state))
                .map_err(fail)?
        };
        let ws_config = WebSocketConfig {
            max_message_size: Some(MAX_VIEWER_MESSAGE),
            max_frame_size: Some(MAX_VIEWER_MESSAGE),
            ..WebSocketConfig::default()
        };
        let io_loop = IoLoop {
            poll,
            listener,
            conns: Slab::new(),
            accept_paused_until: None,
            again: Vec::new(),
            next_wake: None,
            stop: stop.clone(),
            shared: Shared {
                http: HttpConfig::new(opts.web_root.as_deref(), opts.token.clone()),
                tls: tls.clone(),
                ws_config,
                to_fanout,
                commands,
                has_token: opts.token.is_some(),
                max_viewers: opts.max_viewers,
                viewer_queue: opts.viewer_queue.max(1),
                ping_interval: opts.ping_interval,
                viewer_timeout: opts.viewer_timeout,
                head_timeout: opts.head_timeout,
                rate: f64::from(opts.commands_per_sec.max(1)),
                burst: f64::from(opts.command_burst.max(1)),
                viewer_count: 0,
                last_viewer_id: LOCAL_VIEWER,
                unwatched: Vec::new(),
                viewers_shown: viewers.clone(),
                clock,
                verdict: verdict.clone(),
                engine_ended_at: None,
            },
        };
        let io = std::thread::Builder::new()
            .name("muxscope-control".into())
            .spawn(move || io_loop.run())
            .map_err(fail)?;
        Ok((
            ControlServer {
                addr: local,
                tls: tls.is_some(),
                stop,
                waker,
                viewers,
                verdict,
                io: Some(io),
                fanout: Some(fanout),
            },
            relay_rx,
        ))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the endpoint speaks TLS (https/wss).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Viewers attached right now.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// The engine died: every viewer is closed with code 1011 and `why`.
    pub fn engine_failed(&self, why: &str) {
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(why.to_owned());
        }
        let _ = self.waker.wake();
    }

    /// Close every viewer and stop the threads.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
        if let Some(t) = self.io.take() {
            let _ = t.join();
        }
        // The io thread dropped its end of the fan-out's control channel,
        // which ends the fan-out thread.
        if let Some(t) = self.fanout.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Everything but the connections, so a step can borrow both.
struct Shared {
    http: HttpConfig,
    tls: Option<Arc<ServerConfig>>,
    ws_config: WebSocketConfig,
    to_fanout: Sender<ToFanout>,
    commands: CommandSink,
    has_token: bool,
    max_viewers: usize,
    viewer_queue: usize,
    ping_interval: Duration,
    viewer_timeout: Duration,
    head_timeout: Duration,
    /// Command bucket: refill per second, and size.
    rate: f64,
    burst: f64,
    viewer_count: usize,
    /// The last id given to a viewer (each its own, for `Command::Watch`).
    last_viewer_id: ViewerId,
    /// Viewers gone whose watch the engine had no room to end yet; tried
    /// again every turn of the loop.
    unwatched: Vec<ViewerId>,
    /// `viewer_count` for [`ControlServer::viewers`].
    viewers_shown: Arc<AtomicUsize>,
    /// The engine's clock, for notices to one viewer.
    clock: Arc<AtomicU64>,
    /// Why the engine died, once known.
    verdict: Arc<Mutex<Option<String>>>,
    /// When a viewer first found the engine's stream ended.
    engine_ended_at: Option<Instant>,
}

impl Shared {
    /// Tell the engine the watches of viewers gone have ended, as many as
    /// it takes now; the rest wait for the next try.
    fn end_watches(&mut self) {
        while let Some(&viewer) = self.unwatched.first() {
            let end = Command::Watch {
                viewer,
                conns: Vec::new(),
            };
            if (self.commands)(end).is_err() {
                return;
            }
            self.unwatched.remove(0);
        }
    }

    /// The close frame for viewers of an ended engine, once it is known
    /// (or waited for long enough).
    fn engine_close(&mut self, now: Instant) -> Option<CloseFrame<'static>> {
        let why = self.verdict.lock().ok().and_then(|v| v.clone());
        if let Some(why) = why {
            return Some(close_frame(CloseCode::Error, &why));
        }
        let since = *self.engine_ended_at.get_or_insert(now);
        (now.duration_since(since) >= VERDICT_WAIT)
            .then(|| close_frame(CloseCode::Error, "the engine stopped"))
    }
}

struct Conn {
    peer: SocketAddr,
    /// Closed when this passes; viewers have none.
    deadline: Option<Instant>,
    state: State,
}

enum State {
    /// Reading the request head.
    Head {
        stream: Stream,
        buf: Vec<u8>,
    },
    /// Writing one response: `out[pos..]`, then `left` more bytes of `file`
    /// read a chunk at a time into `out`.
    Reply {
        stream: Stream,
        out: Vec<u8>,
        pos: usize,
        file: Option<File>,
        left: u64,
    },
    /// Response sent and our side shut: reading until the client closes,
    /// so closing never resets a response the client has not read yet.
    Drain {
        stream: Stream,
    },
    Viewer(Box<ViewerConn>),
    /// Only while moving between states.
    Gone,
}

impl State {
    fn stream(&mut self) -> Option<&mut Stream> {
        match self {
            State::Head { stream, .. } | State::Reply { stream, .. } | State::Drain { stream } => {
                Some(stream)
            }
            State::Viewer(v) => Some(v.ws.get_mut()),
            State::Gone => None,
        }
    }
}

struct ViewerConn {
    /// Stamped on its `Command::Watch`, so the engine keeps each viewer's
    /// watch apart (and one viewer cannot end another's).
    id: ViewerId,
    ws: WebSocket<Stream>,
    /// The `101` response, written before any frame.
    handshake: Vec<u8>,
    written: usize,
    frames: Receiver<Frame>,
    /// Bytes in `frames`, shared with the fan-out thread.
    queued: Arc<AtomicUsize>,
    /// Tells the fan-out thread to forget this viewer.
    gone: Arc<AtomicBool>,
    /// Anything (a pong, a command) last read from it.
    last_heard: Instant,
    next_ping: Instant,
    /// Command bucket; below zero the socket is not read until refilled.
    tokens: f64,
    refilled: Instant,
    throttled_until: Option<Instant>,
    /// A command the engine had no room for; nothing more is read until it
    /// is taken.
    pending: Option<Command>,
    /// The engine's stream ended; waiting for the reason to close with.
    engine_ended: bool,
}

impl ViewerConn {
    fn refill(&mut self, now: Instant, shared: &Shared) {
        let secs = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + secs * shared.rate).min(shared.burst);
        self.refilled = now;
    }
}

#[derive(PartialEq, Eq)]
enum Next {
    Keep,
    /// Stopped early (read budget spent) with input still waiting, which
    /// no new readiness edge will announce: step again soon.
    Again,
    Close,
}

struct IoLoop {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Conn>,
    accept_paused_until: Option<Instant>,
    /// Connections to step again without waiting for readiness.
    again: Vec<usize>,
    /// The earliest timer (throttle, ping) that housekeeping must serve.
    next_wake: Option<Instant>,
    stop: Arc<AtomicBool>,
    shared: Shared,
}

impl IoLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut viewer_keys = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            let mut timeout = if !self.again.is_empty() {
                Duration::ZERO
            } else if self.accept_paused_until.is_some() {
                ACCEPT_PAUSE
            } else {
                TICK
            };
            if let Some(at) = self.next_wake {
                timeout = timeout.min(at.saturating_duration_since(Instant::now()));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("muxscope: control endpoint stopped: {e}");
                break;
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {
                        // New frames for viewers (or the engine ended).
                        viewer_keys.clear();
                        viewer_keys.extend(
                            self.conns
                                .iter()
                                .filter(|(_, c)| matches!(c.state, State::Viewer(_)))
                                .map(|(k, _)| k),
                        );
                        for &key in &viewer_keys {
                            self.step(key);
                        }
                    }
                    Token(t) => self.step(t - FIRST_CONN),
                }
            }
            for key in std::mem::take(&mut self.again) {
                self.step(key);
            }
            self.housekeeping();
        }
        self.close_all();
    }

    fn accept(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            match self.listener.accept() {
                Ok((mut tcp, peer)) => {
                    if self.conns.len() >= MAX_CONNS {
                        continue; // dropped: closed at once
                    }
                    let entry = self.conns.vacant_entry();
                    let token = Token(entry.key() + FIRST_CONN);
                    if self
                        .poll
                        .registry()
                        .register(&mut tcp, token, Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        continue;
                    }
                    let Ok(stream) = Stream::accept(tcp, self.shared.tls.as_ref()) else {
                        continue;
                    };
                    entry.insert(Conn {
                        peer,
                        // Counted from accept, whatever trickles in.
                        deadline: Some(Instant::now() + self.shared.head_timeout),
                        state: State::Head {
                            stream,
                            buf: Vec::new(),
                        },
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // The connection stays in the backlog; retry later
                    // rather than spin on it.
                    eprintln!("muxscope: control endpoint cannot accept: {e}; retrying");
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    /// Deadlines, pings, throttles and the ended engine: whatever is due.
    fn housekeeping(&mut self) {
        let now = Instant::now();
        self.shared.end_watches();
        if self.accept_paused_until.is_some_and(|t| now >= t) {
            self.accept_paused_until = None;
            self.accept();
        }
        let mut close = Vec::new();
        let mut step = Vec::new();
        let mut next_wake: Option<Instant> = None;
        let mut wake_at = |t: Instant| next_wake = Some(next_wake.map_or(t, |n| n.min(t)));
        for (key, conn) in self.conns.iter_mut() {
            if conn.deadline.is_some_and(|d| now >= d) {
                close.push(key);
                continue;
            }
            let State::Viewer(v) = &mut conn.state else {
                continue;
            };
            if now.duration_since(v.last_heard) >= self.shared.viewer_timeout {
                eprintln!(
                    "muxscope: viewer {} not heard from in {:?}: dropped",
                    conn.peer, self.shared.viewer_timeout
                );
                close.push(key);
                continue;
            }
            wake_at(v.last_heard + self.shared.viewer_timeout);
            if now >= v.next_ping {
                v.next_ping = now + self.shared.ping_interval;
                // Queued behind what is being written; the next step
                // flushes it.
                let _ = v.ws.write(Message::Ping(Vec::new()));
                step.push(key);
            }
            wake_at(v.next_ping);
            match v.throttled_until {
                Some(t) if now >= t => step.push(key),
                Some(t) => wake_at(t),
                None => {}
            }
            if v.engine_ended {
                step.push(key);
                wake_at(now + TICK.min(VERDICT_WAIT));
            }
        }
        self.next_wake = next_wake;
        for key in close {
            self.close(key);
        }
        for key in step {
            self.step(key);
        }
    }

    fn step(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match step(conn, &mut self.shared) {
            Next::Keep => {}
            Next::Again => self.again.push(key),
            Next::Close => self.close(key),
        }
        // A throttled viewer needs its wake-up scheduled.
        if let Some(Conn {
            state: State::Viewer(v),
            ..
        }) = self.conns.get(key)
            && let Some(t) = v.throttled_until
        {
            self.next_wake = Some(self.next_wake.map_or(t, |n| n.min(t)));
        }
    }

    fn close(&mut self, key: usize) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        if let Some(stream) = conn.state.stream() {
            let _ = self.poll.registry().deregister(stream.tcp());
        }
        if let State::Viewer(v) = &conn.state {
            v.gone.store(true, Ordering::Relaxed);
            // Its watch ends with it, as soon as the engine has room (a
            // dead engine takes none: keep a bounded few).
            if self.shared.unwatched.len() >= MAX_UNWATCHED {
                self.shared.unwatched.remove(0);
            }
            self.shared.unwatched.push(v.id);
            self.shared.end_watches();
            self.shared.viewer_count -= 1;
            self.shared
                .viewers_shown
                .store(self.shared.viewer_count, Ordering::Relaxed);
            eprintln!("muxscope: viewer {} detached", conn.peer);
        }
    }

    fn close_all(&mut self) {
        let farewell = self
            .shared
            .verdict
            .lock()
            .ok()
            .and_then(|v| v.clone())
            .map(|why| close_frame(CloseCode::Error, &why))
            .unwrap_or_else(|| close_frame(CloseCode::Away, "muxscope is stopping"));
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(Conn {
                state: State::Viewer(v),
                ..
            }) = self.conns.get_mut(key)
            {
                let _ = v.ws.close(Some(farewell.clone()));
                let _ = v.ws.flush();
            }
            self.close(key);
        }
    }
}

/// Advance one connection as far as its socket allows.
fn step(conn: &mut Conn, shared: &mut Shared) -> Next {
    loop {
        let next = match &mut conn.state {
            State::Head { stream, buf } => match read_head(stream, buf) {
                HeadRead::Wait => return Next::Keep,
                HeadRead::Closed => return Next::Close,
                HeadRead::Invalid(reply) => {
                    start_reply(conn, reply, None);
                    continue;
                }
                HeadRead::Complete(head, used) => {
                    route(conn, shared, &head, used);
                    continue;
                }
            },
            State::Reply {
                stream,
                out,
                pos,
                file,
                left,
            } => {
                let before = (*pos, *left);
                let next = write_reply(stream, out, pos, file, left);
                if (*pos, *left) != before {
                    // A slow link is fine as long as it moves.
                    conn.deadline = Some(Instant::now() + REPLY_TIMEOUT);
                }
                next
            }
            State::Drain { stream } => drain(stream),
            State::Viewer(v) => return viewer_io(v, conn.peer, shared),
            State::Gone => return Next::Close,
        };
        match next {
            // A reply fully written moves on to draining.
            Some(next) => return next,
            None => {
                let State::Reply { mut stream, .. } =
                    std::mem::replace(&mut conn.state, State::Gone)
                else {
                    return Next::Close;
                };
                stream.shutdown_write();
                conn.state = State::Drain { stream };
                conn.deadline = Some(Instant::now() + DRAIN_TIMEOUT);
            }
        }
    }
}

enum HeadRead {
    Wait,
    Closed,
    Invalid(Vec<u8>),
    Complete(http::RequestHead, usize),
}

fn read_head(stream: &mut Stream, buf: &mut Vec<u8>) -> HeadRead {
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return HeadRead::Closed,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                match http::parse_head(buf) {
                    Parsed::Partial => {}
                    Parsed::Invalid(reply) => return HeadRead::Invalid(reply),
                    Parsed::Complete(head, used) => return HeadRead::Complete(head, used),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return HeadRead::Wait,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Includes a TLS handshake that failed (e.g. plain HTTP sent
            // to a TLS port): nothing is answered in clear.
            Err(_) => return HeadRead::Closed,
        }
    }
}

/// Send `out`, then (if any) `len` bytes of `file`, then close.
fn start_reply(conn: &mut Conn, out: Vec<u8>, file: Option<(File, u64)>) {
    if let State::Head { stream, .. } = std::mem::replace(&mut conn.state, State::Gone) {
        let (file, left) = match file {
            Some((f, len)) => (Some(f), len),
            None => (None, 0),
        };
        conn.state = State::Reply {
            stream,
            out,
            pos: 0,
            file,
            left,
        };
        conn.deadline = Some(Instant::now() + REPLY_TIMEOUT);
    }
}

fn route(conn: &mut Conn, shared: &mut Shared, head: &http::RequestHead, used: usize) {
    let handshake = match http::route(head, &shared.http) {
        Route::Reply(reply) => return start_reply(conn, reply, None),
        Route::File { head, file, len } => return start_reply(conn, head, Some((file, len))),
        Route::Upgrade(handshake) => handshake,
    };
    if shared.viewer_count >= shared.max_viewers {
        return start_reply(
            conn,
            http::error(503, "Service Unavailable", "too many viewers attached"),
            None,
        );
    }
    let (tx, frames) = crossbeam_channel::bounded(shared.viewer_queue);
    let gone = Arc::new(AtomicBool::new(false));
    let queued = Arc::new(AtomicUsize::new(0));
    let attach = ToFanout::Attach {
        frames: tx,
        queued: queued.clone(),
        gone: gone.clone(),
    };
    if shared.to_fanout.send(attach).is_err() {
        return start_reply(
            conn,
            http::error(503, "Service Unavailable", "the engine has stopped"),
            None,
        );
    }
    let State::Head { stream, buf } = std::mem::replace(&mut conn.state, State::Gone) else {
        return;
    };
    // Bytes after the head already belong to the WebSocket.
    let rest = buf[used..].to_vec();
    let ws = WebSocket::from_partially_read(stream, rest, Role::Server, Some(shared.ws_config));
    let now = Instant::now();
    shared.last_viewer_id += 1;
    conn.state = State::Viewer(Box::new(ViewerConn {
        id: shared.last_viewer_id,
        ws,
        handshake,
        written: 0,
        frames,
        queued,
        gone,
        last_heard: now,
        next_ping: now + shared.ping_interval,
        tokens: shared.burst,
        refilled: now,
        throttled_until: None,
        pending: None,
        engine_ended: false,
    }));
    conn.deadline = None;
    shared.viewer_count += 1;
    shared
        .viewers_shown
        .store(shared.viewer_count, Ordering::Relaxed);
    eprintln!("muxscope: viewer {} attached", conn.peer);
}

/// `None` once everything is written and flushed.
fn write_reply(
    stream: &mut Stream,
    out: &mut Vec<u8>,
    pos: &mut usize,
    file: &mut Option<File>,
    left: &mut u64,
) -> Option<Next> {
    loop {
        while *pos < out.len() {
            match stream.write(&out[*pos..]) {
                Ok(0) => return Some(Next::Close),
                Ok(n) => *pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(Next::Keep),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Some(Next::Close),
            }
        }
        let Some(f) = file.as_mut().filter(|_| *left > 0) else {
            break;
        };
        // The next chunk, into the same buffer.
        let want = (*left).min(FILE_CHUNK as u64) as usize;
        out.resize(want, 0);
        match f.read(&mut out[..want]) {
            // The file shrank under us: the client gets a short body.
            Ok(0) | Err(_) => return Some(Next::Close),
            Ok(n) => {
                out.truncate(n);
                *pos = 0;
                *left -= n as u64;
            }
        }
    }
    match stream.flush() {
        Ok(()) => None,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(Next::Keep),
        Err(_) => Some(Next::Close),
    }
}

fn drain(stream: &mut Stream) -> Option<Next> {
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Some(Next::Close),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(Next::Keep),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Some(Next::Close),
        }
    }
}

fn viewer_io(v: &mut ViewerConn, peer: SocketAddr, shared: &mut Shared) -> Next {
    // The handshake response goes first, as raw bytes.
    while v.written < v.handshake.len() {
        match v.ws.get_mut().write(&v.handshake[v.written..]) {
            Ok(0) => return Next::Close,
            Ok(n) => v.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Next::Close,
        }
    }
    // Commands in, up to a budget and within the viewer's rate.
    let mut budget = COMMANDS_PER_STEP;
    let mut more = false;
    let now = Instant::now();
    v.refill(now, shared);
    v.throttled_until = None;
    if let Some(cmd) = v.pending.take()
        && let Err(cmd) = (shared.commands)(cmd)
    {
        v.pending = Some(cmd);
    }
    loop {
        if v.pending.is_some() {
            v.throttled_until = Some(now + SINK_RETRY);
            break;
        }
        if v.tokens < 0.0 {
            // Not read until the bucket is back to zero; the socket's
            // buffers (then TCP) hold the rest.
            let wait = Duration::from_secs_f64(-v.tokens / shared.rate);
            v.throttled_until = Some(now + wait);
            break;
        }
        if budget == 0 {
            more = true;
            break;
        }
        budget -= 1;
        let msg = match v.ws.read() {
            Ok(msg) => msg,
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(tungstenite::Error::Capacity(e)) => {
                return reject(v, peer, CloseCode::Size, &e.to_string());
            }
            Err(tungstenite::Error::Protocol(e)) => {
                return reject(v, peer, CloseCode::Protocol, &e.to_string());
            }
            Err(tungstenite::Error::Utf8) => {
                return reject(v, peer, CloseCode::Invalid, "text frame is not UTF-8");
            }
            Err(_) => return Next::Close,
        };
        v.last_heard = now;
        v.tokens -= 1.0 + msg.len() as f64 * COST_PER_BYTE;
        match msg {
            Message::Text(text) => match decode_command(&text).map(|cmd| stamp(cmd, v.id)) {
                Ok(cmd) => match vet::vet(&cmd, shared.has_token) {
                    Ok(()) => v.pending = (shared.commands)(cmd).err(),
                    Err(Refusal::Listen { addr, why }) => {
                        notice(v, shared, EventKind::ListenFailed { addr, error: why })
                    }
                    Err(Refusal::Told(kind)) => notice(v, shared, kind),
                    Err(Refusal::Abuse(why)) => return reject(v, peer, CloseCode::Policy, &why),
                },
                Err(e) => return reject(v, peer, CloseCode::Invalid, &e.to_string()),
            },
            Message::Binary(_) => {
                return reject(v, peer, CloseCode::Unsupported, "commands are text frames");
            }
            // Pings are answered by tungstenite; a close is answered too,
            // and the next read reports the connection closed.
            _ => {}
        }
    }
    match write_frames(v, shared) {
        Next::Keep if more => Next::Again,
        next => next,
    }
}

/// A command as the engine takes it from viewer `id`: a watch is that
/// viewer's, whatever it said.
fn stamp(cmd: Command, id: ViewerId) -> Command {
    match cmd {
        Command::Watch { conns, .. } => Command::Watch { viewer: id, conns },
        other => other,
    }
}

/// Tell this viewer (only) that a command was refused, as the engine
/// reports one that failed (e.g. a listen): an event in a batch of its own.
fn notice(v: &mut ViewerConn, shared: &Shared, kind: EventKind) {
    let batch = Batch {
        events: vec![Event {
            at: shared.clock.load(Ordering::Relaxed),
            conn: None,
            kind,
        }],
        ..Batch::default()
    };
    // Buffered if the socket is busy; the next flush sends it.
    let _ = v.ws.write(Message::Binary(encode_batch(&batch)));
}

/// Frames out, one at a time, so at most one frame waits in tungstenite's
/// buffer and the rest stay in the bounded queue.
fn write_frames(v: &mut ViewerConn, shared: &mut Shared) -> Next {
    loop {
        match v.ws.flush() {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                return Next::Keep;
            }
            Err(_) => return Next::Close,
        }
        if v.engine_ended {
            let Some(farewell) = shared.engine_close(Instant::now()) else {
                return Next::Keep;
            };
            let _ = v.ws.close(Some(farewell));
            let _ = v.ws.flush();
            return Next::Close;
        }
        match v.frames.try_recv() {
            Ok(frame) => {
                v.queued.fetch_sub(frame.len(), Ordering::Relaxed);
                match v.ws.write(Message::Binary(frame.to_vec())) {
                    Ok(()) => {}
                    // Buffered; the next flush sends it.
                    Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Next::Keep;
                    }
                    Err(_) => return Next::Close,
                }
            }
            Err(TryRecvError::Empty) => return Next::Keep,
            // Everything the engine sent is out; it will send no more.
            Err(TryRecvError::Disconnected) => v.engine_ended = true,
        }
    }
}

/// Close a viewer that broke the protocol; the engine never hears of it.
fn reject(v: &mut ViewerConn, peer: SocketAddr, code: CloseCode, why: &str) -> Next {
    eprintln!(
        "muxscope: closing viewer {peer}: {}",
        terminal_safe(why, 200)
    );
    let _ = v.ws.close(Some(close_frame(code, why)));
    let _ = v.ws.flush();
    Next::Close
}

/// A close frame; its reason must fit in 123 bytes.
fn close_frame(code: CloseCode, why: &str) -> CloseFrame<'static> {
    let mut end = why.len().min(120);
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code,
        reason: why[..end].to_owned().into(),
    }
}
