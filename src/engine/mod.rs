//! The server engine: one thread, one `mio::Poll`, every client in a slab.
//!
//! It knows nothing of egui. It takes [`Command`]s over a channel (a
//! `mio::Waker` interrupts the poll) and hands [`Batch`]es of what it did to
//! one consumer over a bounded channel that it never blocks on.

mod accept;
mod commands;
mod conn_io;
mod connection;
mod event_loop;
mod faults;
mod listener;
mod publish;
mod queue;
mod read_gate;
mod record_tap;
mod replay;
mod resolve;
mod rng;
mod scenario;
mod script;
mod script_io;
mod shaper;
mod stats;
mod sys;
mod tcp_sample;
mod timers;
mod transcript;

pub use listener::describe_bind_error;
pub use publish::{MAX_BATCH_EVENTS, Notify};

use crate::protocol::{Batch, Command, ListenState, Mode};
use crossbeam_channel::{Receiver, Sender};
use mio::{Poll, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub use crate::protocol::DEFAULT_LISTEN;

/// Bytes of conversation kept per client and direction. Enough to read a
/// hand-driven exchange; small enough that 10,000 busy clients stay in
/// hundreds of megabytes, and the copy stays in cache.
pub const DEFAULT_TRANSCRIPT_LIMIT: usize = 16 * 1024;

/// Commands waiting for the engine at most. The loop drains them every
/// iteration, so only a flood fills this; beyond it commands are refused
/// rather than queued without bound.
pub const COMMAND_CAPACITY: usize = 4096;

/// Why a command did not reach the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError {
    /// [`COMMAND_CAPACITY`] commands are already waiting.
    Full,
    /// The engine has stopped.
    Stopped,
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CommandError::Full => {
                "the engine has too many commands waiting; the command was dropped, try again"
            }
            CommandError::Stopped => "the engine has stopped",
        })
    }
}

impl std::error::Error for CommandError {}

/// A command the engine did not take, handed back so it need not be copied
/// before trying (an inject may be a megabyte).
#[derive(Debug)]
pub struct Rejected {
    pub why: CommandError,
    pub command: Command,
}

fn try_send(commands: &Sender<Command>, waker: &Waker, cmd: Command) -> Result<(), Rejected> {
    commands.try_send(cmd).map_err(|e| match e {
        crossbeam_channel::TrySendError::Full(command) => Rejected {
            why: CommandError::Full,
            command,
        },
        crossbeam_channel::TrySendError::Disconnected(command) => Rejected {
            why: CommandError::Stopped,
            command,
        },
    })?;
    let _ = waker.wake();
    Ok(())
}

/// A graceful kick that has not finished by then resets the connection.
pub const DEFAULT_KICK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct EngineConfig {
    /// Where to listen at start; `None` starts without a listener.
    pub listen: Option<String>,
    pub mode: Mode,
    /// Per-client queue bound; reading that client stops at this size.
    pub queue_limit: usize,
    /// Reading resumes once the queue drains to this size.
    pub low_water: usize,
    /// Bytes of recent conversation kept per client and direction.
    pub transcript_limit: usize,
    /// How long a graceful kick may take (flushing the queue, then waiting
    /// for the peer's FIN) before the connection is reset instead.
    pub kick_timeout: Duration,
    /// Batches the consumer may fall behind before events are dropped.
    pub channel_capacity: usize,
    /// How often pending observations are handed over.
    pub flush_interval: Duration,
    /// Called (throttled) after a batch was handed over.
    pub notify: Option<Notify>,
    /// Faults given to every new connection (`--fault`).
    pub faults: crate::faults::Faults,
    /// Engine-wide fault on accepting (`--fault accept=…`).
    pub accept_fault: Option<crate::faults::AcceptFault>,
    /// The scenario every connection runs from the start (`--scenario`).
    pub scenario: Option<Arc<crate::scenario::Scenario>>,
    /// Record from the start (`--record`).
    pub record: Option<crate::record::writer::RecordingConfig>,
    /// Play the server side of a recorded connection to every client
    /// (`--replay`); it replaces the mode's answer and any scenario.
    pub replay: Option<Arc<crate::record::replay::ReplayScript>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            listen: Some(DEFAULT_LISTEN.to_owned()),
            mode: Mode::Echo,
            queue_limit: 1024 * 1024,
            low_water: 256 * 1024,
            transcript_limit: DEFAULT_TRANSCRIPT_LIMIT,
            kick_timeout: DEFAULT_KICK_TIMEOUT,
            channel_capacity: 1024,
            // Below the UI's 30 Hz wake-up there is nothing to gain, and
            // each batch costs the consumer a wake-up.
            flush_interval: Duration::from_millis(15),
            notify: None,
            faults: crate::faults::Faults::default(),
            accept_fault: None,
            scenario: None,
            record: None,
            replay: None,
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("listen", &self.listen)
            .field("mode", &self.mode)
            .field("queue_limit", &self.queue_limit)
            .field("low_water", &self.low_water)
            .field("transcript_limit", &self.transcript_limit)
            .field("faults", &self.faults)
            .field("accept_fault", &self.accept_fault)
            .field("replay", &self.replay.as_ref().map(|r| r.summary_line()))
            .finish_non_exhaustive()
    }
}

/// The running engine. Dropping it stops the thread and closes every client.
pub struct EngineHandle {
    commands: Sender<Command>,
    batches: Receiver<Batch>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    initial_listen: ListenState,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle")
            .field("initial_listen", &self.initial_listen)
            .finish_non_exhaustive()
    }
}

impl EngineHandle {
    /// Start the engine thread. Failing to bind is not an error here: it is
    /// reported in [`EngineHandle::initial_listen`] and as an event, so a
    /// window can still open and offer another port.
    pub fn spawn(mut config: EngineConfig) -> io::Result<EngineHandle> {
        config.queue_limit = config.queue_limit.max(1);
        if config.low_water >= config.queue_limit {
            // A low-water mark at or above the bound would lift
            // backpressure at once and let the queue grow past it.
            config.low_water = config.queue_limit / 4;
        }
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), event_loop::WAKER)?);
        let (cmd_tx, cmd_rx) = crossbeam_channel::bounded(COMMAND_CAPACITY);
        let (batch_tx, batch_rx) = crossbeam_channel::bounded(config.channel_capacity.max(1));
        let stop = Arc::new(AtomicBool::new(false));

        let (listener, initial_listen) = match &config.listen {
            None => (None, ListenState::Stopped),
            Some(addr) => match listener::bind(addr) {
                Ok(l) => {
                    let local = l.local_addr()?;
                    (Some(l), ListenState::Listening(local))
                }
                Err(error) => (
                    None,
                    ListenState::Failed {
                        addr: addr.clone(),
                        error,
                    },
                ),
            },
        };
        let publisher =
            publish::Publisher::new(batch_tx, config.notify.clone(), config.flush_interval);
        let event_loop = event_loop::EventLoop::new(
            poll,
            waker.clone(),
            cmd_rx,
            stop.clone(),
            publisher,
            config,
            listener,
            initial_listen.clone(),
        )?;
        let thread = std::thread::Builder::new()
            .name("muxscope-engine".into())
            .spawn(move || event_loop.run())?;
        Ok(EngineHandle {
            commands: cmd_tx,
            batches: batch_rx,
            waker,
            stop,
            thread: Some(thread),
            initial_listen,
        })
    }

    /// The listen outcome at start.
    pub fn initial_listen(&self) -> &ListenState {
        &self.initial_listen
    }

    /// The bound address, if the start-up bind succeeded.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self.initial_listen {
            ListenState::Listening(a) => Some(a),
            _ => None,
        }
    }

    /// Send a command; one that cannot be delivered is logged and dropped.
    pub fn send(&self, cmd: Command) {
        if let Err(rejected) = self.try_send(cmd) {
            log::warn!("command not delivered: {}", rejected.why);
        }
    }

    pub fn try_send(&self, cmd: Command) -> Result<(), Rejected> {
        try_send(&self.commands, &self.waker, cmd)
    }

    pub fn batches(&self) -> &Receiver<Batch> {
        &self.batches
    }

    /// A cloneable way to send commands from another thread.
    pub fn commander(&self) -> Commander {
        Commander {
            commands: self.commands.clone(),
            waker: self.waker.clone(),
        }
    }

    /// If the engine thread has ended on its own (it only does so by
    /// panicking, or when `poll` itself fails), why.
    pub fn failure(&mut self) -> Option<String> {
        if !self.thread.as_ref().is_some_and(|t| t.is_finished()) {
            return None;
        }
        let result = self.thread.take()?.join();
        Some(match result {
            Ok(()) => "the engine thread stopped (see the log)".to_owned(),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                format!("the engine thread panicked: {message}")
            }
        })
    }

    /// Stop the engine, closing every client, and wait for its thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Sends commands to the engine from any thread.
#[derive(Clone)]
pub struct Commander {
    commands: Sender<Command>,
    waker: Arc<Waker>,
}

impl std::fmt::Debug for Commander {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Commander")
    }
}

impl Commander {
    /// Send a command; one that cannot be delivered is logged and dropped.
    pub fn send(&self, cmd: Command) {
        if let Err(rejected) = self.try_send(cmd) {
            log::warn!("command not delivered: {}", rejected.why);
        }
    }

    pub fn try_send(&self, cmd: Command) -> Result<(), Rejected> {
        try_send(&self.commands, &self.waker, cmd)
    }
}
