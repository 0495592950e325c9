//! The io thread of the control endpoint: one `mio` poll over the listening
//! socket, HTTP requests and WebSocket viewers, all non-blocking.
//!
//! A connection starts by sending a request head. `/ws` (if allowed)
//! becomes a viewer: tungstenite speaks WebSocket over the same socket, the
//! fan-out thread fills the viewer's bounded frame queue, and this thread
//! moves frames to the socket while it accepts them, reading commands in
//! between. Anything else gets one HTTP response and is closed.
//!
//! What a viewer sends is bounded (tungstenite's message and frame limits)
//! and checked (a command must decode); a viewer that breaks the rules is
//! closed on its own and nothing reaches the engine.

use super::fanout::{self, Frame, ToFanout};
use super::http::{self, HttpConfig, Parsed, Route};
use super::wire::{MAX_VIEWER_MESSAGE, decode_command};
use super::{ControlOptions, check_exposure, resolve_addr};
use crate::engine::EngineHandle;
use crate::protocol::{Batch, Command};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

/// Where viewers' commands go (normally the engine's commander).
pub type CommandSink = Box<dyn Fn(Command) + Send>;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;
/// Open connections (HTTP and viewers); more are closed on accept.
const MAX_CONNS: usize = 256;
/// A request head must arrive within this (slow-loris guard).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// An HTTP response may make no progress for this long.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// After a response, how long the client gets to close its side.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Commands read from one viewer before the others get a turn.
const COMMANDS_PER_STEP: usize = 256;
/// After `accept` fails (e.g. out of descriptors), wait this long.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_millis(500);

/// A running control endpoint. Dropping it closes every viewer and stops
/// its threads; the engine is not touched.
pub struct ControlServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    viewers: Arc<AtomicUsize>,
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
            Box::new(move |cmd| commander.send(cmd)),
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

        let fanout = {
            let (waker, viewers) = (waker.clone(), viewers.clone());
            std::thread::Builder::new()
                .name("muxscope-fanout".into())
                .spawn(move || fanout::run(batches, from_io, relay_tx, waker, viewers))
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
            stop: stop.clone(),
            shared: Shared {
                http: HttpConfig::new(opts.web_root.as_deref(), opts.token.clone()),
                ws_config,
                to_fanout,
                commands,
                max_viewers: opts.max_viewers,
                viewer_queue: opts.viewer_queue.max(1),
                viewer_count: 0,
            },
        };
        let io = std::thread::Builder::new()
            .name("muxscope-control".into())
            .spawn(move || io_loop.run())
            .map_err(fail)?;
        Ok((
            ControlServer {
                addr: local,
                stop,
                waker,
                viewers,
                io: Some(io),
                fanout: Some(fanout),
            },
            relay_rx,
        ))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Viewers attached right now.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
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
    ws_config: WebSocketConfig,
    to_fanout: Sender<ToFanout>,
    commands: CommandSink,
    max_viewers: usize,
    viewer_queue: usize,
    viewer_count: usize,
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
        stream: TcpStream,
        buf: Vec<u8>,
    },
    /// Writing one response.
    Reply {
        stream: TcpStream,
        out: Vec<u8>,
        pos: usize,
    },
    /// Response sent and our side shut: reading until the client closes,
    /// so closing never resets a response the client has not read yet.
    Drain {
        stream: TcpStream,
    },
    Viewer(Box<ViewerConn>),
    /// Only while moving between states.
    Gone,
}

struct ViewerConn {
    ws: WebSocket<TcpStream>,
    /// The `101` response, written before any frame.
    handshake: Vec<u8>,
    written: usize,
    frames: Receiver<Frame>,
    /// Tells the fan-out thread to forget this viewer.
    gone: Arc<AtomicBool>,
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
    stop: Arc<AtomicBool>,
    shared: Shared,
}

impl IoLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut viewer_keys = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            let timeout = if !self.again.is_empty() {
                Duration::ZERO
            } else if self.accept_paused_until.is_some() {
                ACCEPT_PAUSE
            } else {
                TICK
            };
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
                        // New frames for viewers.
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
                Ok((mut stream, peer)) => {
                    if self.conns.len() >= MAX_CONNS {
                        continue; // dropped: closed at once
                    }
                    let entry = self.conns.vacant_entry();
                    let token = Token(entry.key() + FIRST_CONN);
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        continue;
                    }
                    entry.insert(Conn {
                        peer,
                        deadline: Some(Instant::now() + HEAD_TIMEOUT),
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

    fn housekeeping(&mut self) {
        let now = Instant::now();
        if self.accept_paused_until.is_some_and(|t| now >= t) {
            self.accept_paused_until = None;
            self.accept();
        }
        let expired: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| now >= d))
            .map(|(k, _)| k)
            .collect();
        for key in expired {
            self.close(key);
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
    }

    fn close(&mut self, key: usize) {
        let Some(conn) = self.conns.try_remove(key) else {
            return;
        };
        let registry = self.poll.registry();
        match conn.state {
            State::Head { mut stream, .. }
            | State::Reply { mut stream, .. }
            | State::Drain { mut stream } => {
                let _ = registry.deregister(&mut stream);
            }
            State::Viewer(mut v) => {
                v.gone.store(true, Ordering::Relaxed);
                let _ = registry.deregister(v.ws.get_mut());
                self.shared.viewer_count -= 1;
                eprintln!("muxscope: viewer {} detached", conn.peer);
            }
            State::Gone => {}
        }
    }

    fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(Conn {
                state: State::Viewer(v),
                ..
            }) = self.conns.get_mut(key)
            {
                let _ =
                    v.ws.close(Some(close_frame(CloseCode::Away, "muxscope is stopping")));
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
                    start_reply(conn, reply);
                    continue;
                }
                HeadRead::Complete(head, used) => {
                    route(conn, shared, &head, used);
                    continue;
                }
            },
            State::Reply { stream, out, pos } => {
                let before = *pos;
                let next = write_reply(stream, out, pos);
                if *pos > before {
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
                let State::Reply { stream, .. } = std::mem::replace(&mut conn.state, State::Gone)
                else {
                    return Next::Close;
                };
                let _ = stream.shutdown(Shutdown::Write);
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

fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> HeadRead {
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
            Err(_) => return HeadRead::Closed,
        }
    }
}

fn start_reply(conn: &mut Conn, reply: Vec<u8>) {
    if let State::Head { stream, .. } = std::mem::replace(&mut conn.state, State::Gone) {
        conn.state = State::Reply {
            stream,
            out: reply,
            pos: 0,
        };
        conn.deadline = Some(Instant::now() + REPLY_TIMEOUT);
    }
}

fn route(conn: &mut Conn, shared: &mut Shared, head: &http::RequestHead, used: usize) {
    let handshake = match http::route(head, &shared.http) {
        Route::Reply(reply) => return start_reply(conn, reply),
        Route::Upgrade(handshake) => handshake,
    };
    if shared.viewer_count >= shared.max_viewers {
        return start_reply(
            conn,
            http::error(503, "Service Unavailable", "too many viewers attached"),
        );
    }
    let (tx, frames) = crossbeam_channel::bounded(shared.viewer_queue);
    let gone = Arc::new(AtomicBool::new(false));
    let attach = ToFanout::Attach {
        frames: tx,
        gone: gone.clone(),
    };
    if shared.to_fanout.send(attach).is_err() {
        return start_reply(
            conn,
            http::error(503, "Service Unavailable", "the engine has stopped"),
        );
    }
    let State::Head { stream, buf } = std::mem::replace(&mut conn.state, State::Gone) else {
        return;
    };
    // Bytes after the head already belong to the WebSocket.
    let rest = buf[used..].to_vec();
    let ws = WebSocket::from_partially_read(stream, rest, Role::Server, Some(shared.ws_config));
    conn.state = State::Viewer(Box::new(ViewerConn {
        ws,
        handshake,
        written: 0,
        frames,
        gone,
    }));
    conn.deadline = None;
    shared.viewer_count += 1;
    eprintln!("muxscope: viewer {} attached", conn.peer);
}

/// `None` once everything is written.
fn write_reply(stream: &mut TcpStream, out: &[u8], pos: &mut usize) -> Option<Next> {
    while *pos < out.len() {
        match stream.write(&out[*pos..]) {
            Ok(0) => return Some(Next::Close),
            Ok(n) => *pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(Next::Keep),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Some(Next::Close),
        }
    }
    None
}

fn drain(stream: &mut TcpStream) -> Option<Next> {
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

fn viewer_io(v: &mut ViewerConn, peer: SocketAddr, shared: &Shared) -> Next {
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
    // Commands in, up to a budget.
    let mut budget = COMMANDS_PER_STEP;
    let mut more = false;
    loop {
        if budget == 0 {
            more = true;
            break;
        }
        budget -= 1;
        match v.ws.read() {
            Ok(Message::Text(text)) => match decode_command(&text) {
                Ok(cmd) => (shared.commands)(cmd),
                Err(e) => return reject(v, peer, CloseCode::Invalid, &e.to_string()),
            },
            Ok(Message::Binary(_)) => {
                return reject(v, peer, CloseCode::Unsupported, "commands are text frames");
            }
            // Pings are answered by tungstenite; a close is answered too,
            // and the next read reports the connection closed.
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
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
        }
    }
    match write_frames(v) {
        Next::Keep if more => Next::Again,
        next => next,
    }
}

/// Frames out, one at a time, so at most one frame waits in tungstenite's
/// buffer and the rest stay in the bounded queue.
fn write_frames(v: &mut ViewerConn) -> Next {
    loop {
        match v.ws.flush() {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                return Next::Keep;
            }
            Err(_) => return Next::Close,
        }
        match v.frames.try_recv() {
            Ok(frame) => match v.ws.write(Message::Binary(frame.to_vec())) {
                Ok(()) => {}
                // Buffered; the next flush sends it.
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Next::Keep;
                }
                Err(_) => return Next::Close,
            },
            Err(TryRecvError::Empty) => return Next::Keep,
            Err(TryRecvError::Disconnected) => {
                let _ =
                    v.ws.close(Some(close_frame(CloseCode::Away, "the engine has stopped")));
                let _ = v.ws.flush();
                return Next::Close;
            }
        }
    }
}

/// Close a viewer that broke the protocol; the engine never hears of it.
fn reject(v: &mut ViewerConn, peer: SocketAddr, code: CloseCode, why: &str) -> Next {
    eprintln!("muxscope: closing viewer {peer}: {}", why.escape_debug());
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
